"""``advise --keys`` on the ``peak-hour`` scenario: the planner's answer checked against direct simulations with
that many keys, written out as a scenario of their own (not through the planner's copies)."""

from __future__ import annotations

from pooltui.session.advice_plan import busiest_hour, plan_workload
from pooltui.session.lab import simulated_run
from pooltui.session.workload import seeded_workload
from pooltui.sim.scenario import load_scenario, scenario_from_dict


def _with_keys(n: int):
    """peak-hour's provider with ``n`` keys of its own (8 per 5 s each), written as a scenario."""
    sc = load_scenario("peak-hour")
    p = sc.primary
    return scenario_from_dict({
        "name": f"peak-hour-{n}", "seed": sc.seed,
        "traffic": {"requests": sc.traffic.requests, "concurrency": sc.traffic.concurrency, "rate": sc.traffic.rate,
                    "deadline_s": sc.traffic.deadline_s},
        "providers": [{"name": p.name, "window_s": p.window_s, "latency_ms": list(p.latency_ms),
                       "success_headers": p.success_headers,
                       "keys": [{"label": f"direct{i}", "secret": f"sk-test-direct-{i:024d}", "rpm": 8}
                                for i in range(n)]}]})


def test_the_planner_on_peak_hour_matches_direct_simulations() -> None:
    sc = load_scenario("peak-hour")
    t = sc.traffic
    arrivals = seeded_workload(sc, requests=t.requests, rate=t.rate, seed=sc.seed)
    peak = plan_workload(sc, arrivals, "peak-hour", concurrency=t.concurrency, seed=sc.seed, target_wait_s=2.0)
    n = peak.plan.keys_needed
    assert n is not None and n > len(sc.primary.keys)  # the scenario is a 429 storm at twice its capacity
    enough = simulated_run(_with_keys(n), t.strategy, arrivals, t.concurrency, sc.seed)
    short = simulated_run(_with_keys(n - 1), t.strategy, arrivals, t.concurrency, sc.seed)
    assert enough.succeeded == t.requests and enough.limited == 0 and enough.max_wait_ms <= 2000
    assert not (short.succeeded == t.requests and short.limited == 0 and short.max_wait_ms <= 2000)
    assert peak.one_more is not None and peak.one_more.keys == n + 1
    assert f"{n} keys like the current ones (each of its own account) serve it" in " ".join(peak.sentences())


def test_the_busiest_hour_is_the_hour_with_most_requests() -> None:
    times = [0.0, 10.0, 5000.0, 5001.0, 5002.0, 8700.0]
    assert busiest_hour([{"ts": t} for t in times]) == (5000.0, 3)
