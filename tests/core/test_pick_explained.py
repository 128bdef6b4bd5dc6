"""The inspector explains every key not picked, and no line contradicts another (issue 8, item 7): the
pool's summary once said "1 available" next to a pick that found "no key available" (a held key)."""

from __future__ import annotations

from pooltui.core import Classification, DeadlineSource, FakeClock, KeySpec, Outcome, Pool
from pooltui.core.headers import RateLimits
from pooltui.core.trace import RequestTrace, format_trace


def make(n: int = 3) -> Pool:
    return Pool("p", [KeySpec(f"k{i}", f"sk-test-{i:030d}") for i in range(n)], "failover", clock=FakeClock())


def answer(p: Pool, label: str, result: Classification, **kw) -> None:
    key = p.key(label)
    key.inflight += 1
    p.report(key, result, **kw)


def traced_pick(p: Pool, **kw):
    trace = RequestTrace(1, p.clock.now(), p.strategy)
    key = p.pick(trace, **kw)
    trace.add(p.clock.now(), "wait", p.name, seconds=1.0, reason=p.summary())  # what the client records next
    return key, trace, format_trace(trace)


def test_every_excluded_key_says_why_and_the_summary_agrees() -> None:
    p = make()
    answer(p, "k0", Classification(Outcome.RATE_LIMITED, 429, "slow", 10.0, DeadlineSource.RETRY_AFTER))
    answer(p, "k1", Classification(Outcome.RATE_LIMITED, 429, "slow", 1.0, DeadlineSource.RETRY_AFTER))
    answer(p, "k2", Classification(Outcome.INVALID, 401, "revoked"))
    p.clock.advance(1.0)
    assert p.pick().label == "k1"  # back from its cooldown: its probe goes out, the key is held meanwhile
    key, trace, text = traced_pick(p)
    assert key is None
    pick = next(s for s in trace.steps if s.kind == "pick")
    why = {e.label: (e.state, e.reason) for e in pick.detail["excluded"]}
    assert why == {"k0": ("cooling", "slow"), "k2": ("invalid", "revoked"), "k1": ("held", "recovery probe in flight")}
    assert "excluded: k0 cooling 9s, k2 invalid, k1 held (recovery probe in flight)" in text
    assert "available" not in p.summary()  # nothing is: the summary must not say otherwise
    assert p.summary().startswith("1 held")


def test_a_budget_spoken_for_by_requests_in_flight_is_explained() -> None:
    p = make(2)
    answer(p, "k0", Classification(Outcome.OK, 200, limits=RateLimits(requests_limit=10, requests_remaining=1)))
    assert p.pick().label == "k0"  # the last request its budget allows: held until it answers
    key, _, text = traced_pick(p)
    assert key.label == "k1"
    assert "k0 held (budget spoken for: 1 in flight, the provider allowed no more)" in text


def test_skips_for_a_model_cooldown_and_for_a_retry_are_in_the_trace() -> None:
    p = make(2)
    for model in ("a", "b"):
        answer(p, "k0", Classification(Outcome.OK, 200), model=model)
        p.pick(model=model)
    answer(p, "k0", Classification(Outcome.RATE_LIMITED, 429, "slow", 5.0, DeadlineSource.RETRY_AFTER), model="a")
    key, _, text = traced_pick(p, model="a")
    assert key.label == "k1" and "skip [p] k0: k0 cooling for a 5.0 s" in text
    key, _, text = traced_pick(p, avoid=p.key("k0"), model="b")
    assert key.label == "k1" and "skip [p] k0: k0 just failed: retried elsewhere" in text
