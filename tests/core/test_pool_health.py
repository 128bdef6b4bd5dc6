"""Key health, cooldowns, quota groups, events and bounded memory (fake clock)."""

from __future__ import annotations

import pytest

from pooltui.core import (
    Classification,
    CooldownPolicy,
    DeadlineSource,
    EventKind,
    EventLog,
    FakeClock,
    KeySpec,
    KeyState,
    Outcome,
    Pool,
)
from pooltui.core.events import StateChange
from pooltui.core.headers import RateLimits

OK = Classification(Outcome.OK, 200)


def rl(retry: float | None = None, source: DeadlineSource | None = DeadlineSource.RETRY_AFTER) -> Classification:
    return Classification(Outcome.RATE_LIMITED, 429, "rate limited", retry, source if retry is not None else None)


def make(n: int = 3, groups: list[str | None] | None = None, **kw) -> Pool:
    groups = groups or [None] * n
    return Pool("p", [KeySpec(f"k{i}", f"sk-test-{i:030d}", groups[i]) for i in range(n)], "failover",
                clock=FakeClock(), **kw)


def hit(p: Pool, label: str, result: Classification) -> None:
    key = p.key(label)
    key.inflight += 1
    p.report(key, result)


def test_provider_reset_wins_and_records_its_source() -> None:
    p = make()
    hit(p, "k0", rl(7.0))
    k = p.key("k0")
    assert k.state is KeyState.COOLING and k.source is DeadlineSource.RETRY_AFTER
    assert k.until == pytest.approx(p.clock.now() + 7)
    p.clock.advance(7.01)
    assert p.pick().label == "k0"


def test_default_cooldown_escalates_on_repeated_429s_and_success_resets_it() -> None:
    p = make(cooldown=CooldownPolicy(base_s=30, factor=2, max_s=100))
    waits = []
    for _ in range(4):
        hit(p, "k0", rl())
        k = p.key("k0")
        assert k.source is DeadlineSource.DEFAULT
        waits.append(k.until - p.clock.now())
        p.clock.advance(waits[-1] + 0.01)
    assert waits == [30, 60, 100, 100]
    hit(p, "k0", OK)
    hit(p, "k0", rl())
    assert p.key("k0").until - p.clock.now() == 30


@pytest.mark.wording
def test_a_later_longer_signal_extends_never_shortens() -> None:
    p = make()
    hit(p, "k0", rl(20.0))
    until = p.key("k0").until
    hit(p, "k0", rl(5.0))  # an in-flight request's later, shorter 429
    assert p.key("k0").until == until
    hit(p, "k0", rl(40.0))
    assert p.key("k0").until == pytest.approx(p.clock.now() + 40)
    assert p.events.recent(1)[0].action == "cooldown extended to 40 s (retry-after)"


def test_a_sole_key_is_never_benched_longer_than_the_provider_said() -> None:
    p = make(1, cooldown=CooldownPolicy(base_s=30, factor=2, max_s=600))
    hit(p, "k0", rl(3.0))
    assert p.key("k0").until - p.clock.now() == pytest.approx(3.0)
    p.clock.advance(3.1)
    for _ in range(3):  # no reset given, repeated: a sole key does not escalate
        hit(p, "k0", rl())
        assert p.key("k0").until - p.clock.now() == 30
        p.clock.advance(30.1)


@pytest.mark.wording
def test_quota_group_cools_down_together() -> None:
    p = make(4, groups=["proj-a", "proj-a", None, "proj-b"])
    hit(p, "k0", rl(12.0))
    states = [k.state for k in p.keys]
    assert states == [KeyState.COOLING, KeyState.COOLING, KeyState.OK, KeyState.OK]
    assert "quota group proj-a: 2 keys" in p.events.recent(1)[0].action


def test_quota_parks_until_known_reset_or_reverification() -> None:
    p = make()
    hit(p, "k0", Classification(Outcome.QUOTA, 429, "insufficient_quota"))
    k = p.key("k0")
    assert k.state is KeyState.EXHAUSTED and k.until is None
    p.clock.advance(10 * 86400)
    assert p.pick().label == "k1"  # never comes back by itself
    p.mark_verified("k0", OK)
    assert k.state is KeyState.OK
    hit(p, "k1", Classification(Outcome.QUOTA, 429, "spend limit", 3600.0, DeadlineSource.KNOWN_RESET))
    assert p.key("k1").until == pytest.approx(p.clock.now() + 3600)


def test_invalid_forbidden_disabled() -> None:
    p = make()
    hit(p, "k0", Classification(Outcome.INVALID, 401, "invalid x-api-key"))
    hit(p, "k1", Classification(Outcome.FORBIDDEN, 403, "region"))
    p.disable("k2", until=p.clock.now() + 60)
    assert [k.state for k in p.keys] == [KeyState.INVALID, KeyState.FORBIDDEN, KeyState.DISABLED]
    assert p.pick() is None
    assert p.summary() == "1 key invalid; 1 key forbidden; 1 key disabled"
    p.clock.advance(61)
    assert p.pick().label == "k2"


def test_transient_errors_do_not_blame_the_key() -> None:
    p = make()
    hit(p, "k0", Classification(Outcome.TRANSIENT, 529, "Overloaded"))
    assert p.key("k0").state is KeyState.OK and p.key("k0").stats.server_errors == 1
    ev = p.events.recent(1)[0]
    assert (ev.kind, ev.status, ev.key) == (EventKind.SERVER_ERROR, 529, "k0")


def test_summary_states_the_pool() -> None:
    p = make(4)
    for label in ("k0", "k1", "k2"):
        hit(p, label, rl(12.0))
    hit(p, "k3", Classification(Outcome.INVALID, 401, "bad"))
    assert p.summary() == "3 keys cooling, next ready in 12 s; 1 key invalid"
    assert p.next_ready_in() == pytest.approx(12.0)


def test_every_transition_is_an_event() -> None:
    p = make()
    hit(p, "k0", rl(5.0))
    p.clock.advance(6)
    p.pick()
    kinds = [(e.kind, e.key, e.status, e.change) for e in p.events]
    assert kinds == [(EventKind.RATE_LIMITED, "k0", 429, StateChange.COOLED),
                     (EventKind.STATE, "k0", None, StateChange.RECOVERED)]


@pytest.mark.wording
def test_a_cooldown_and_its_end_say_so() -> None:
    p = make()
    hit(p, "k0", rl(5.0))
    p.clock.advance(6)
    p.pick()
    assert [(e.reason, e.action) for e in p.events] == [("rate limited", "cooled 5.0 s (retry-after)"),
                                                       ("cooling over", "back in rotation")]


def test_success_that_spends_the_budget_cools_the_key_before_it_429s() -> None:
    p = make()
    spent = Classification(Outcome.OK, 200, limits=RateLimits(10, 0, 4.0, None, None, None))
    hit(p, "k0", spent)
    k = p.key("k0")
    assert k.state is KeyState.COOLING and k.source is DeadlineSource.RESET_HEADER
    assert k.stats.rate_limited == 0


def test_memory_stays_bounded() -> None:
    log = EventLog(maxlen=50)
    p = Pool("p", [KeySpec(f"k{i}", f"sk-test-{i:030d}") for i in range(3)], clock=FakeClock(), events=log)
    for i in range(20_000):
        key = p.pick()
        if key is None:
            p.clock.advance(2)
            continue
        p.report(key, rl(1.0) if i % 3 == 0 else OK, 0.01, 3, 5)
        p.clock.advance(0.01)
    assert len(log) == 50 and log.total > 50
    assert len(p.picks) == 32
    for k in p.keys:
        assert len(k.stats.latencies) <= 128
        assert len(k.stats.per_second.series(p.clock.now())) == 60
    assert len(p._timers) < 100 and len(p._heap) <= 4 * 3 + 64


def test_secret_never_in_repr_or_snapshot() -> None:
    secret = "sk-test-PLANTED-SECRET-0000000000001234"
    p = Pool("p", [KeySpec("a", secret)], clock=FakeClock())
    assert secret not in repr(p.key("a"))
    assert secret not in str(p.snapshot())
    assert p.snapshot()[0]["masked"] == "sk-test-…1234"


def test_budget_parks_the_key_until_the_period_resets() -> None:
    from pooltui.core.budget import Budget, period_starts

    p = make(2)
    p.set_budget("k0", Budget(tokens_day=100))
    for _ in range(3):
        key = p.key("k0")
        key.inflight += 1
        p.report(key, OK, 0.01, 20, 20)
    k = p.key("k0")
    assert k.state is KeyState.EXHAUSTED and k.source is DeadlineSource.BUDGET
    assert k.reason == "budget: daily token budget reached"
    assert k.until == period_starts(p.clock.now())[2]
    p.clock.t = k.until + 1
    assert p.pick().label == "k0"  # a new day: back in rotation, spend starts again


def test_cost_budget_uses_prices() -> None:
    from pooltui.core.budget import Budget, Prices

    prices = Prices.from_dict({"m": {"input_per_mtok": 1_000_000, "output_per_mtok": 0}})
    p = make(1)
    p.set_budget("k0", Budget(cost_month=5.0))
    key = p.key("k0")
    for _ in range(5):
        key.inflight += 1
        p.report(key, OK, 0.01, 1, 0, cost=prices.cost("m", 1, 0))
    assert key.state is KeyState.EXHAUSTED and "monthly cost budget" in key.reason
    assert key.stats.cost == pytest.approx(5.0)


def test_restore_reapplies_a_remembered_state() -> None:
    p = make(2)
    assert p.restore("k0", "invalid", None, None, "401 yesterday")
    assert not p.restore("k1", "cooling", p.clock.now() - 5, "retry-after", "over")  # already ended
    assert [k.state for k in p.keys] == [KeyState.INVALID, KeyState.OK]


def test_a_key_back_from_cooldown_is_probed_by_one_request_first() -> None:
    p = Pool("p", [KeySpec("solo", "sk-test-000000000000000000001")], clock=FakeClock())
    hit(p, "solo", rl(5.0))
    p.clock.advance(5.1)
    probe = p.pick()
    assert probe.label == "solo" and probe.probe == 2
    assert p.pick() is None  # the queue waits for the probe, it does not stampede the key
    assert p.usable() == 1 and p.next_ready_in() == pytest.approx(0.05)
    p.report(probe, OK)
    assert [p.pick().label for _ in range(3)] == ["solo"] * 3


def test_a_failed_probe_cools_the_key_again() -> None:
    p = make(2)
    hit(p, "k0", rl(5.0))
    p.clock.advance(5.1)
    probe = p.pick()
    assert probe.label == "k0"
    assert p.pick().label == "k1"  # others still serve while k0 is probed
    p.report(probe, rl(7.0))
    assert p.key("k0").state is KeyState.COOLING and p.key("k0").probe == 0


def test_a_key_whose_remaining_budget_is_spoken_for_gets_no_more_until_an_answer() -> None:
    from pooltui.core import Classification, KeySpec, Outcome, Pool
    from pooltui.core.clock import FakeClock
    from pooltui.core.headers import RateLimits

    pool = Pool("p", [KeySpec("a", "sk-test-held-a-0000000001"), KeySpec("b", "sk-test-held-b-0000000001")],
                "failover", clock=FakeClock(1000.0))
    a = pool.key("a")
    pool.report(pool.pick(), Classification(Outcome.OK, 200, limits=RateLimits(10, 1, 60.0, None, None, None)))
    first = pool.pick()
    assert first is a  # the one request the provider still allows
    assert pool.pick().label == "b", "a's last slot is spoken for by the request in flight"
    pool.report(first, Classification(Outcome.OK, 200, limits=RateLimits(10, 5, 60.0, None, None, None)))
    assert pool.pick() is a
