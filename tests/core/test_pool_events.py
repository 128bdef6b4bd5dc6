"""Each state change says exactly what happened (kind, status, reason, action), and the snapshot the monitor
renders carries every field with its value (fake clock)."""

from __future__ import annotations

import pytest

from pooltui.core import (
    Classification,
    CooldownPolicy,
    DeadlineSource,
    EventKind,
    FakeClock,
    KeySpec,
    KeyState,
    Outcome,
    Pool,
)
from pooltui.core.headers import RateLimits

OK = Classification(Outcome.OK, 200)
T0 = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC


def make(n: int = 3, groups=None, **kw) -> Pool:
    groups = groups or [None] * n
    return Pool("p", [KeySpec(f"k{i}", f"sk-test-{i:030d}", groups[i]) for i in range(n)], "failover",
                clock=FakeClock(T0), **kw)


def last(p: Pool) -> tuple:
    e = p.events.recent()[-1]
    return e.kind.value, e.key, e.status, e.reason, e.action


def send(p: Pool, label: str, result: Classification, **kw) -> None:
    key = p.key(label)
    key.inflight += 1
    p.report(key, result, request_id=5, **kw)


def rl(retry: float | None = None) -> Classification:
    return Classification(Outcome.RATE_LIMITED, 429, "slow down", retry,
                          DeadlineSource.RETRY_AFTER if retry is not None else None)


@pytest.mark.wording
def test_a_429_cools_then_extends_then_says_it_already_cools() -> None:
    p = make(cooldown=CooldownPolicy(base_s=30, floor_s=2))
    send(p, "k0", rl(12))
    assert last(p) == ("rate_limited", "k0", 429, "slow down", "cooled 12 s (retry-after)")
    assert p.events.recent()[-1].request_id == 5
    k0 = p.key("k0")
    assert (k0.state, k0.until, k0.source, k0.reason, k0.status_code, k0.changed_at, k0.strikes) == (
        KeyState.COOLING, T0 + 12, DeadlineSource.RETRY_AFTER, "slow down", 429, T0, 1)
    send(p, "k0", rl(90))
    assert last(p) == ("rate_limited", "k0", 429, "slow down", "cooldown extended to 2 min (retry-after)")
    send(p, "k0", rl(5))
    assert last(p) == ("rate_limited", "k0", 429, "slow down", "already cooling, 90.0 s left")
    send(p, "k1", rl(0.5))
    assert last(p) == ("rate_limited", "k1", 429, "slow down",
                       "cooled 2.0 s (retry-after); floor 2 s applied (provider said 0.5 s)")
    send(p, "k2", rl())
    assert last(p) == ("rate_limited", "k2", 429, "slow down", "cooled 30 s (default)")
    p.disable("k1")
    send(p, "k1", rl(3))
    assert last(p)[-1] == "already disabled"


@pytest.mark.wording
def test_a_quota_group_cools_and_parks_together() -> None:
    p = make(3, ["g", "g", None])
    send(p, "k0", rl(10))
    assert last(p)[-1] == "cooled 10 s (retry-after); quota group g: 2 keys"
    assert p.key("k1").state is KeyState.COOLING and p.key("k2").state is KeyState.OK
    q = make(3, ["g", "g", None])
    reset = Classification(Outcome.QUOTA, 429, "quota", 3600.0, DeadlineSource.KNOWN_RESET)
    send(q, "k0", reset)
    assert last(q) == ("quota", "k0", 429, "quota", "parked until 2026-09-21 15:13:20 UTC with quota group g")
    k1 = q.key("k1")
    assert (k1.state, k1.until, k1.source) == (KeyState.EXHAUSTED, T0 + 3600, DeadlineSource.KNOWN_RESET)
    assert q.key("k0").stats.quota == 1 and k1.stats.quota == 0
    send(q, "k2", Classification(Outcome.QUOTA, 402, "no credits"))
    assert last(q) == ("quota", "k2", 402, "no credits", "parked until re-verified")
    assert q.key("k2").until is None


@pytest.mark.wording
def test_invalid_and_forbidden_bar_the_key_but_a_disabled_key_stays_disabled() -> None:
    p = make()
    send(p, "k0", Classification(Outcome.INVALID, 401, "bad key"))
    assert last(p) == ("invalid", "k0", 401, "bad key", "marked invalid")
    send(p, "k1", Classification(Outcome.FORBIDDEN, 403, "no access"))
    assert last(p) == ("forbidden", "k1", 403, "no access", "marked forbidden")
    assert (p.key("k0").stats.invalid, p.key("k0").stats.forbidden) == (1, 0)
    assert (p.key("k1").stats.invalid, p.key("k1").stats.forbidden) == (0, 1)
    p.disable("k2")
    send(p, "k2", Classification(Outcome.INVALID, 401, "bad key"))
    assert p.key("k2").state is KeyState.DISABLED and p.key("k2").stats.invalid == 1


@pytest.mark.wording
def test_transient_and_request_errors_count_without_blame() -> None:
    p = make()
    send(p, "k0", Classification(Outcome.TRANSIENT, 503, "overloaded"))
    assert last(p) == ("server_error", "k0", 503, "overloaded", "backed off (key not blamed)")
    n = len(p.events.recent())
    send(p, "k0", Classification(Outcome.REQUEST_ERROR, 400, "bad request"))
    assert len(p.events.recent()) == n  # the caller's mistake: no event
    s = p.key("k0").stats
    assert (s.server_errors, s.request_errors, p.key("k0").state) == (1, 1, KeyState.OK)


@pytest.mark.wording
def test_a_success_that_spends_the_budget_cools_before_a_429() -> None:
    p = make()
    spent = Classification(Outcome.OK, 200, limits=RateLimits(requests_remaining=0, requests_limit=10,
                                                               requests_reset_s=6.0))
    send(p, "k0", spent)
    assert last(p) == ("state", "k0", 200, "budget spent (remaining 0)", "cooled 6.0 s before a 429 (reset-header)")
    k0 = p.key("k0")
    assert (k0.state, k0.until, k0.source) == (KeyState.COOLING, T0 + 6, DeadlineSource.RESET_HEADER)
    tokens = Classification(Outcome.OK, 200, limits=RateLimits(requests_remaining=5, tokens_remaining=0,
                                                                tokens_reset_s=9.0))
    send(p, "k1", tokens)
    assert p.key("k1").until == T0 + 9
    calm = Classification(Outcome.OK, 200, limits=RateLimits(requests_remaining=0))  # no reset given
    send(p, "k2", calm)
    assert p.key("k2").state is KeyState.OK
    q = make(preempt=False)
    send(q, "k0", spent)
    assert q.key("k0").state is KeyState.OK


@pytest.mark.wording
def test_hand_actions_say_what_they_did() -> None:
    p = make()
    p.disable("k0", until=T0 + 60, reason="maintenance")
    assert last(p) == ("state", "k0", None, "maintenance", "disabled until 2026-09-21 14:14:20 UTC")
    assert p.key("k0").source is DeadlineSource.MANUAL
    p.disable("k1")
    assert last(p) == ("state", "k1", None, "disabled by hand", "disabled")
    assert p.key("k1").source is None and p.key("k1").until is None
    p.enable("k1")
    assert last(p) == ("state", "k1", None, "enabled by hand", "back in rotation")
    n = len(p.events.recent())
    p.enable("k2")  # not disabled: nothing to do
    assert len(p.events.recent()) == n
    send(p, "k2", rl(30))
    p.key("k1").strikes = 4
    assert p.reset() == 1
    assert last(p) == ("state", "k2", None, "cooldown reset by hand", "back in rotation")
    assert p.key("k1").strikes == 0 and p.key("k0").state is KeyState.DISABLED
    send(p, "k2", Classification(Outcome.QUOTA, 402, "no credits"))
    send(p, "k1", rl(30))
    assert p.reset("k2") == 1 and p.key("k1").state is KeyState.COOLING


@pytest.mark.wording
def test_verification_brings_a_key_back_or_bars_it() -> None:
    p = make()
    send(p, "k0", Classification(Outcome.QUOTA, 402, "no credits"))
    limits = RateLimits(requests_remaining=7, requests_limit=10)
    p.mark_verified("k0", Classification(Outcome.OK, 200, limits=limits))
    assert last(p) == ("state", "k0", 200, "verified valid", "back in rotation")
    assert p.key("k0").state is KeyState.OK and p.key("k0").stats.limits is limits
    p.mark_verified("k1", OK)
    assert last(p) == ("state", "k1", 200, "verified valid", "verified")
    p.disable("k2")
    p.mark_verified("k2", OK)
    assert p.key("k2").state is KeyState.DISABLED
    p.mark_verified("k1", Classification(Outcome.INVALID, 401, "revoked"))
    assert p.key("k1").state is KeyState.INVALID and p.key("k1").inflight == 0


def test_the_snapshot_carries_every_field() -> None:
    p = make()
    k0 = p.pick()
    p.report(k0, Classification(Outcome.OK, 200, limits=RateLimits(requests_remaining=7, requests_limit=10,
                                                                     tokens_remaining=900)),
             latency_s=0.2, tokens_in=11, tokens_out=22, cost=0.5)
    p.pick()  # one in flight on k0
    send(p, "k1", rl(8))
    snap = p.snapshot()
    assert [s["label"] for s in snap] == ["k0", "k1", "k2"]
    s0 = snap[0]
    assert {k: s0[k] for k in ("state", "until", "remaining_s", "source", "reason", "models", "quota_group",
                               "inflight", "probing", "rpm", "last_used", "requests_remaining", "requests_limit",
                               "tokens_remaining", "requests", "ok", "tokens_in", "tokens_out", "cost")} == {
        "state": "ok", "until": None, "remaining_s": None, "source": None, "reason": "", "models": {},
        "quota_group": None, "inflight": 1, "probing": False, "rpm": 2, "last_used": T0,
        "requests_remaining": 7, "requests_limit": 10, "tokens_remaining": 900, "requests": 2, "ok": 1,
        "tokens_in": 11, "tokens_out": 22, "cost": 0.5}
    assert s0["p50_ms"] == pytest.approx(200.0) and s0["p95_ms"] == pytest.approx(200.0)
    assert s0["masked"] == p.key("k0").masked and "0000000000000" not in s0["masked"]
    assert s0["fingerprint"] == p.key("k0").fingerprint and len(s0["fingerprint"]) >= 8
    p.clock.advance(3)
    s1 = p.snapshot()[1]
    assert (s1["state"], s1["until"], s1["remaining_s"], s1["source"], s1["reason"], s1["rate_limited"]) == (
        "cooling", T0 + 8, 5.0, "retry-after", "slow down", 1)
    p.clock.advance(10)
    s1 = p.snapshot()[1]
    assert (s1["state"], s1["remaining_s"]) == ("ok", None)  # back: no countdown left over
    s2 = p.snapshot()[2]
    assert (s2["requests"], s2["p50_ms"], s2["last_used"], s2["requests_limit"]) == (0, None, None, None)


def test_the_summary_reads_the_pool_in_one_line() -> None:
    p = make(4)
    assert p.summary() == "4 available"
    send(p, "k0", rl(12))
    send(p, "k1", Classification(Outcome.INVALID, 401, "bad"))
    assert p.summary() == "2 available; 1 key cooling, next ready in 12 s; 1 key invalid"
    send(p, "k2", rl(40))
    send(p, "k3", Classification(Outcome.QUOTA, 402, "none"))
    assert p.summary() == "2 keys cooling, next ready in 12 s; 1 key exhausted; 1 key invalid"
    assert make(0).summary() == "no keys"


@pytest.mark.wording
def test_a_per_model_budget_spent_with_nothing_to_cool_is_not_an_event() -> None:
    """mixed-models: a success whose reset is a few ms away, or that ends no later than a cooldown the model
    already has, cools nothing a person could see: no `cooled 0.0 s for ...` row (issue 22, item 5)."""
    p = make(2)
    for model in ("busy", "light"):
        p.report(p.pick(model=model), OK, model=model)  # two models: headers speak of one model each

    def spent(reset_s: float) -> Classification:
        return Classification(Outcome.OK, 200, limits=RateLimits(requests_remaining=0, requests_limit=6,
                                                                   requests_reset_s=reset_s))

    def told() -> list[str]:
        return [e.action for e in p.events.recent() if e.kind is EventKind.STATE and e.status == 200]

    k0 = p.pick(model="busy")
    p.report(k0, spent(0.03), model="busy")
    assert told() == []
    assert p.model_cooldowns(k0) == {"busy": pytest.approx(T0 + 0.03)}  # still applied: pacing is unchanged
    p.clock.advance(0.05)
    k0.inflight += 1
    p.report(k0, spent(2.0), model="busy")
    assert told() == ["cooled 2.0 s for busy before a 429 (reset-header)"]
    k0.inflight += 1
    p.report(k0, spent(1.5), model="busy")  # ends before the cooldown it has: nothing new cools
    assert len(told()) == 1 and p.model_cooldowns(k0) == {"busy": pytest.approx(T0 + 2.05)}
