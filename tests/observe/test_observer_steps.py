"""The observer reads a request's attempts and fallbacks from its trace without building the steps of its picks
(the engine keeps each pick as a plain record until something shows them): what it finds is the same."""

from __future__ import annotations

from pooltui.core import FakeClock, KeySpec, Pool
from pooltui.core.trace import RequestTrace
from pooltui.proxy.observe import Observer, RequestWatch


def traced_request() -> RequestTrace:
    """A trace as the client leaves it: a real pool's pick, a 429 attempt, a fallback, then a served attempt."""
    pool = Pool("p", [KeySpec("k0", "sk-test-000000000000000000000000000000")], "failover", clock=FakeClock())
    trace = RequestTrace(1, 0.0, "failover")
    assert pool.pick(trace) is not None
    trace.add(1.0, "attempt", "p", "k0", status=429, outcome="rate_limited", latency_ms=40.0)
    trace.add(1.1, "fallback", "q", reason="p: rate limited")
    trace.add(1.2, "attempt", "q", "j0", status=200, outcome="ok", latency_ms=250.0)
    trace.served_by = "q/j0"
    return trace


def test_a_trace_steps_of_one_kind_leave_its_picks_unbuilt() -> None:
    trace = traced_request()
    assert trace.raw and type(trace.entries[0]) is tuple  # the pick: a record, not yet a step
    assert [(s.provider, s.key) for s in trace.of_kind("attempt")] == [("p", "k0"), ("q", "j0")]
    assert [s.provider for s in trace.of_kind("fallback")] == ["q"]
    assert trace.raw and type(trace.entries[0]) is tuple
    assert [s.kind for s in trace.steps] == ["pick", "attempt", "fallback", "attempt"]  # built when shown


def test_the_observer_counts_attempts_without_building_picks() -> None:
    observer = Observer(access_log=False)
    trace = traced_request()
    observer._outcome("ok", "q", trace)
    assert {k: h.count for k, h in observer.upstream_latency.items()} == {("p", "k0"): 1, ("q", "j0"): 1}
    assert trace.raw and type(trace.entries[0]) is tuple  # no pick step made for the histograms
    watch = RequestWatch("openai", "POST", "/v1/chat/completions", 0.0, 0.0, {}, trace=trace)
    assert (watch.attempts, watch.fallback, watch.served) == (2, "q", ("q", "j0"))
    assert trace.raw and type(trace.entries[0]) is tuple
