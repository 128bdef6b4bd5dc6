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


def test_a_traced_requests_record_reads_the_picks_records_and_says_the_same() -> None:
    """Tracing's record of a request takes each pick from the engine's pick record: no step of a pick is built
    for the spans, and the step records are the same as from the built steps (a pick that passed a key over, one
    paced by a learnt limit, a plain one)."""
    from pooltui.proxy.telemetry import _step_record, _step_records

    pool = Pool("p", [KeySpec(f"k{i}", f"sk-test-{i:030d}") for i in range(3)], "round_robin", clock=FakeClock())
    plain = traced_request()
    assert pool.restore("k0", "cooling", pool.clock.now() + 60, None, f"429 from {pool.key('k0').secret}", 429)
    passed_over = RequestTrace(2, 0.0, "round_robin")
    assert pool.pick(passed_over) is not None
    pool.set_learning(True)
    assert pool.restore_learned("k1", "", 5, 60.0) and pool.restore_learned("k2", "", 5, 60.0)
    paced = RequestTrace(3, 0.0, "round_robin")
    assert pool.pick(paced) is not None
    for trace in (plain, passed_over, paced):
        assert trace.raw and type(trace.entries[0]) is tuple
        records = _step_records(trace)
        assert trace.raw and type(trace.entries[0]) is tuple  # no pick step built for the spans
        assert records == tuple(map(_step_record, trace.steps))
    assert passed_over.steps[0].detail["excluded"] and "excluded" in _step_records(passed_over)[0][4]
    learned = paced.steps[0].detail["learned"]
    assert learned and _step_records(paced)[0][4]["learned"] == str(learned)


def test_the_access_lines_outline_of_a_request_is_what_the_watchs_properties_say() -> None:
    """The access line reads provider, key, attempts and fallback in one pass over the trace (no pick's step built):
    the same as the properties, served by a fallback, by the primary, by a keyless endpoint, or not at all."""
    served_by_fallback = traced_request()
    by_primary = RequestTrace(2, 0.0, "failover")
    by_primary.add(1.0, "attempt", "p", "k0", status=200, outcome="ok", latency_ms=30.0)
    by_primary.add(1.1, "fallback", "q", reason="an earlier fallback")  # another provider's fallback step
    by_primary.served_by = "p/k0"
    keyless = RequestTrace(3, 0.0, "failover")
    keyless.add(1.0, "attempt", "local", None, status=200, outcome="ok", latency_ms=5.0)
    keyless.served_by = "local/None"
    expected = {1: ("q", "j0", 2, "q"), 2: ("p", "k0", 1, ""), 3: ("local", "", 1, ""), None: ("", "", 0, "")}
    for trace in (served_by_fallback, by_primary, keyless, None):
        watch = RequestWatch("openai", "POST", "/v1/chat/completions", 0.0, 0.0, {}, trace=trace)
        outline = watch.outline()
        assert outline == (*watch.served, watch.attempts, watch.fallback)
        assert outline == expected[trace.request_id if trace is not None else None]
    assert served_by_fallback.raw and type(served_by_fallback.entries[0]) is tuple
