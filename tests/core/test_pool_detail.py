"""The pool's finer behaviour, each checked exactly (fake clock): the trace of an empty pick, retrying on
another key, per-model cooling, releases, transport failures, late usage, restored rotation and states."""

from __future__ import annotations

import pytest

from pooltui.core import Classification, DeadlineSource, EventKind, FakeClock, KeySpec, KeyState, Outcome, Pool
from pooltui.core.headers import RateLimits
from pooltui.core.trace import RequestTrace, format_trace

OK = Classification(Outcome.OK, 200)


def make(n: int = 3, strategy: str = "failover", **kw) -> Pool:
    return Pool("p", [KeySpec(f"k{i}", f"sk-test-{i:030d}") for i in range(n)], strategy, clock=FakeClock(), **kw)


def rl(retry: float | None = 5.0) -> Classification:
    return Classification(Outcome.RATE_LIMITED, 429, "rate limited", retry,
                          DeadlineSource.RETRY_AFTER if retry is not None else None)


def test_an_empty_pick_traces_every_excluded_key() -> None:
    p = make()
    for i in range(3):
        p.disable(f"k{i}")
    trace = RequestTrace(1, p.clock.now(), p.strategy)
    assert p.pick(trace) is None
    step = trace.steps[-1]
    assert (step.kind, step.provider, step.key, step.ts) == ("pick", "p", None, p.clock.now())
    assert step.detail["candidates"] == 0 and step.detail["excluded_total"] == 3
    assert [(e.label, e.state) for e in step.detail["excluded"]] == [("k0", "disabled"), ("k1", "disabled"),
                                                                     ("k2", "disabled")]
    assert "nothing: no key available; excluded: k0 disabled, k1 disabled, k2 disabled" in format_trace(trace)


def test_a_pick_traces_the_chosen_key_and_its_candidates() -> None:
    p = make()
    p.disable("k2")
    trace = RequestTrace(1, p.clock.now(), p.strategy)
    assert p.pick(trace).label == "k0"
    step = trace.steps[-1]
    assert (step.key, step.detail["candidates"], step.detail["excluded_total"]) == ("k0", 2, 1)
    assert "pick [p] k0  from 2 available; excluded: k2 disabled" in format_trace(trace)


def test_a_cooldown_ends_exactly_at_its_deadline() -> None:
    p = make()
    k0 = p.pick()
    p.report(k0, rl(5.0))
    p.clock.advance(4.999)
    assert p.pick().label == "k1"
    p.clock.advance(0.001)  # now == until: over
    assert p.peek() == "k0" and p.pick().label == "k0"


def test_a_retry_avoids_the_key_that_just_failed_when_another_is_available() -> None:
    p = make()
    k0 = p.pick()
    p.report(k0, Classification(Outcome.TRANSIENT, 503, "unavailable"))
    assert p.pick(avoid=k0).label == "k1"
    p.disable("k1")
    p.disable("k2")
    assert p.pick(avoid=k0).label == "k0"  # the only key: retried on it


def test_round_robin_avoid_takes_the_next_key_and_the_rotation_goes_on_from_it() -> None:
    """A retry sent to k3 instead of k2 used to leave the cursor on k2: the next request went to k3 again."""
    p = make(4, "round-robin")
    assert [p.pick().label for _ in range(2)] == ["k0", "k1"]
    assert p.pick(avoid=p.key("k2")).label == "k3"
    assert p.pick().label == "k0"
    p.disable("k0")
    assert p.pick(avoid=p.key("k1")).label == "k2"


def test_a_429_for_one_model_cools_the_key_for_that_model_only() -> None:
    p = make(2)
    for model in ("a", "b"):  # the pool has seen two models: a 429 speaks of one
        p.report(p.pick(model=model), OK, model=model)
    k0 = p.pick(model="a")
    p.report(k0, rl(10.0), model="a")
    assert k0.state is KeyState.OK
    assert p.model_cooldowns(k0) == {"a": pytest.approx(p.clock.now() + 10)}
    assert p.snapshot()[0]["models"] == {"a": pytest.approx(10.0)}
    assert {p.pick(model="a").label for _ in range(4)} == {"k1"}
    assert p.pick(model="b").label == "k0"
    k1 = p.key("k1")
    p.report(k1, rl(3.0), model="a")
    trace = RequestTrace(1, p.clock.now(), p.strategy)
    assert p.pick(trace, model="a") is None
    assert trace.steps[-1].detail["excluded_total"] == 2
    assert p.next_ready_in("a") == pytest.approx(3.0)
    assert p.next_ready_in() is None  # the keys themselves are usable
    p.clock.advance(3.0)
    assert p.pick(model="a").label == "k1"
    p.clock.advance(7.0)
    assert p.model_cooldowns(k0) == {}
    assert p.pick(model="a").label == "k0"


def test_with_one_model_a_429_cools_the_key_itself() -> None:
    p = make(2)
    k0 = p.pick(model="a")
    p.report(k0, rl(10.0), model="a")
    assert k0.state is KeyState.COOLING and p.model_cooldowns(k0) == {}


@pytest.mark.wording
def test_per_model_budget_spent_cools_that_model_before_a_429() -> None:
    p = make(2)
    for model in ("a", "b"):
        p.report(p.pick(model=model), OK, model=model)
    k0 = p.pick(model="a")
    spent = Classification(Outcome.OK, 200, limits=RateLimits(requests_remaining=0, requests_limit=10,
                                                               requests_reset_s=4.0))
    p.report(k0, spent, model="a")
    assert k0.state is KeyState.OK and p.model_cooldowns(k0) == {"a": pytest.approx(p.clock.now() + 4)}
    events = [e for e in p.events.recent() if e.key == "k0" and e.kind is EventKind.STATE]
    assert events[-1].reason == "a: budget spent (remaining 0)"


def test_release_gives_back_the_slot_and_the_spoken_for_budget() -> None:
    p = make(1)
    k0 = p.pick()
    k0.allow = 3
    p.pick()
    assert (k0.inflight, k0.allow) == (2, 2)
    p.release(k0)
    assert (k0.inflight, k0.allow) == (1, 3)
    p.release(k0)
    p.release(k0)
    assert k0.inflight == 0


@pytest.mark.wording
def test_a_transport_failure_counts_and_emits_but_does_not_blame_the_key() -> None:
    p = make()
    k0 = p.pick()
    p.report_transport(k0, "ConnectError: refused", 0.5, request_id=9)
    assert (k0.state, k0.inflight, k0.stats.transport, list(k0.stats.latencies)) == (KeyState.OK, 0, 1, [0.5])
    e = p.events.recent()[-1]
    assert (e.kind, e.key, e.reason, e.action, e.request_id) == (
        EventKind.TRANSPORT, "k0", "ConnectError: refused", "backed off (key not blamed)", 9)
    stranger = make().key("k0")
    with pytest.raises(ValueError, match="not a key of pool"):
        p.report_transport(stranger, "x")


def test_late_usage_counts_tokens_cost_and_budget() -> None:
    from pooltui.core.budget import Budget

    p = make()
    k0 = p.key("k0")
    p.set_budget("k0", Budget(tokens_day=100))
    p.add_usage(k0, 30, 40, 0.25)
    assert (k0.stats.tokens_in, k0.stats.tokens_out, k0.stats.cost) == (30, 40, 0.25)
    assert k0.state is KeyState.OK
    p.add_usage(k0, 20, 10)
    assert k0.state is KeyState.EXHAUSTED and k0.source is DeadlineSource.BUDGET


def test_rotation_goes_on_where_an_earlier_run_stopped() -> None:
    p = make(3, "round-robin")
    p.pick()
    p.pick()
    last, counts = p.rotation_state()
    assert (last, counts) == ("k1", {"k0": 1, "k1": 1, "k2": 0})
    q = make(3, "round-robin")
    q.restore_rotation(last, counts)
    assert q.pick().label == "k2"
    lu = make(3, "least-used")
    lu.restore_rotation(None, {"k0": 5, "k1": 0, "k2": 2, "gone": 9, "k3": True})
    assert [lu.key(f"k{i}").used_before for i in range(3)] == [5, 0, 2]
    assert lu.pick().label == "k1"
    assert lu.rotation_state()[1] == {"k0": 5, "k1": 1, "k2": 2}
    lu.restore_rotation(None, {"k0": -1})
    assert lu.key("k0").used_before == 5  # a negative count is ignored


def test_restore_applies_only_states_that_have_not_ended() -> None:
    p = make()
    now = p.clock.now()
    assert p.restore("k0", "cooling", now + 30, "retry-after", "429 earlier", 429)
    k0 = p.key("k0")
    assert (k0.state, k0.until, k0.source, k0.reason, k0.status_code) == (
        KeyState.COOLING, now + 30, DeadlineSource.RETRY_AFTER, "429 earlier", 429)
    assert not p.restore("k1", "cooling", now, "retry-after", "ended")  # ends now: over
    assert not p.restore("k1", "cooling", None, None, "no deadline")
    assert not p.restore("k1", "ok", None, None, "")
    assert not p.restore("k1", "bogus", None, None, "")
    assert not p.restore("nope", "invalid", None, None, "")
    assert p.restore("k2", "invalid", None, None, "401 earlier")
    assert p.key("k1").state is KeyState.OK and p.key("k2").state is KeyState.INVALID


def test_a_soft_inflight_cap_prefers_a_key_under_it() -> None:
    p = make(2, max_inflight=1)
    k0 = p.pick()
    assert k0.label == "k0"
    assert p.pick().label == "k1"  # k0 is at the cap
    assert p.pick().label in ("k0", "k1")  # all at the cap: never blocks
    p.stream_opened(p.key("k1"))
    p.release(k0)
    p.release(k0)
    p.release(p.key("k1"))
    p.release(p.key("k1"))
    assert p.key("k1").streams == 1
    assert p.pick().label == "k0"  # k1's open stream counts against its cap
    p.stream_closed(p.key("k1"))
    p.stream_closed(p.key("k1"))
    assert p.key("k1").streams == 0


def test_a_removed_key_leaves_rotation_and_reports_for_it_change_nothing() -> None:
    p = make()
    k1 = p.pick(avoid=p.key("k0"))
    p.remove_key("k1")
    assert [k.label for k in p.keys] == ["k0", "k2"]
    p.report(p.key("k0"), OK)
    p.report(k1, rl())  # its late answer settles quietly (tests/core/test_pool_detached.py)
    assert p.usable() == 2 and p.key("k0").state is KeyState.OK
    with pytest.raises(KeyError):
        p.key("k1")


def test_a_report_without_figures_counts_zero_and_a_strangers_key_is_refused_by_name() -> None:
    p = make()
    k0 = p.pick()
    p.report(k0, OK)
    assert list(k0.stats.latencies) == [0.0] and (k0.stats.tokens_in, k0.stats.tokens_out, k0.stats.cost) == (0, 0, 0)
    stranger = make().key("k1")
    with pytest.raises(ValueError, match=r"^key 'k1' is not a key of pool 'p'$"):
        p.report(stranger, OK)


def test_a_model_cooldown_learnt_elsewhere_is_applied_and_never_shortened() -> None:
    p = make(2)
    now = p.clock.now()
    assert p.restore_model_cooldown("k0", "big", now + 10)
    assert p.model_cooldowns(p.key("k0")) == {"big": now + 10}
    assert not p.restore_model_cooldown("k0", "big", now + 5)  # a shorter one changes nothing
    assert p.restore_model_cooldown("k0", "big", now + 20) and p.model_cooldowns(p.key("k0")) == {"big": now + 20}
    assert not p.restore_model_cooldown("k0", "big", now)  # already over
    assert not p.restore_model_cooldown("nope", "big", now + 10) and not p.restore_model_cooldown("k0", "", now + 9)
    p.pick(model="small")
    assert p.pick(model="big").label == "k1"
