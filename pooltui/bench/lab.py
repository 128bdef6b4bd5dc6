"""``python -m pooltui.bench lab``: the wall time of ``pooltui compare`` on each built-in scenario in simulated
time and in real time, and the largest difference in served requests between the two (issue 22).

Per scenario: its own workload (requests, rate, concurrency, seed) and every strategy, compared in simulated
time as ``pooltui compare`` runs it. Real time takes as long as the traffic lasts (minutes on every scenario),
so the real-time run sends only the arrivals of the first ``--real-time-seconds`` of the workload (0: all of
them), and the simulated run is repeated on exactly those arrivals to compare served requests one for one."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pooltui.session.lab import LAB_STRATEGIES, RunResult, lab_workers, run_lab
from pooltui.session.workload import Arrival, seeded_workload
from pooltui.sim.scenario import Scenario, builtin_names, load_scenario


@dataclass(frozen=True)
class LabRow:
    """One scenario: the whole workload in simulated time, then its first arrivals both ways."""

    scenario: str
    requests: int
    simulated_s: float
    capped_requests: int
    capped_simulated_s: float
    real_time_s: float
    largest_served_difference: int
    served: dict[str, tuple[int, int]]  # strategy -> (simulated, real time)


def _timed(sc: Scenario, strategies: list[str], arrivals: list[Arrival], real_time: bool, workers: int = 1
           ) -> tuple[float, list[RunResult]]:
    started = time.perf_counter()
    results = run_lab(sc, strategies, arrivals, concurrency=sc.traffic.concurrency, seed=sc.seed,
                      real_time=real_time, workers=workers)
    return time.perf_counter() - started, results


def bench_lab(scenarios: list[str] | None = None, strategies: list[str] | None = None,
              real_time_s: float = 5.0) -> list[LabRow]:
    names = scenarios or [n for n in builtin_names() if n != "bench"]
    strategies = list(strategies or LAB_STRATEGIES)
    cap = f"the arrivals of its first {real_time_s:g} s" if real_time_s > 0 else "the whole workload"
    print(f"lab: `pooltui compare` per scenario ({len(strategies)} strategies: {', '.join(strategies)}), wall time "
          f"in simulated time (the whole workload; as the CLI runs it, processes in parallel when long) and in "
          f"real time ({cap}, one strategy after another, beside the same in simulated time); served requests "
          "compared strategy by strategy on the same arrivals")
    print(f"  {'scenario':14} {'requests':>8} {'simulated':>10} | {'requests':>8} {'simulated':>10} {'real time':>10}"
          f"  largest served difference")
    out: list[LabRow] = []
    for name in names:
        sc = load_scenario(name)
        t = sc.traffic
        arrivals = seeded_workload(sc, requests=t.requests, rate=t.rate, seed=sc.seed)
        full_s, _ = _timed(sc, strategies, arrivals, False, lab_workers(len(strategies), len(arrivals)))
        part = [a for a in arrivals if real_time_s <= 0 or a.at_s < real_time_s]
        sim_s, simulated = _timed(sc, strategies, part, False)
        real_s, real = _timed(sc, strategies, part, True)
        diffs = sorted(((abs(s.succeeded - r.succeeded), s.strategy, s.succeeded, r.succeeded)
                        for s, r in zip(simulated, real, strict=True)), reverse=True)
        worst = diffs[0]
        print(f"  {name:14} {len(arrivals):>8} {full_s:>9.1f}s | {len(part):>8} {sim_s:>9.1f}s {real_s:>9.1f}s  "
              f"{worst[0]} ({worst[1]}: {worst[2]} simulated, {worst[3]} real time, of {len(part)})")
        out.append(LabRow(name, len(arrivals), full_s, len(part), sim_s, real_s, worst[0],
                          {s.strategy: (s.succeeded, r.succeeded) for s, r in zip(simulated, real, strict=True)}))
    if out:
        worst_run = max(out, key=lambda row: row.largest_served_difference)
        print(f"  largest difference in served requests, simulated vs real time: "
              f"{worst_run.largest_served_difference} ({worst_run.scenario}); compare in simulated time took "
              f"{max(row.simulated_s for row in out):.1f} s at most per scenario")
    return out
