"""``python -m pooltui.bench learned``: a scenario without rate-limit headers on successes (peak-hour) driven at
0.75x, 1.0x and 1.5x of its pool's capacity, with learned limits off and on, in one run.

The capacity comes from the scenario file (the primary's keys: rpm per window), never from the engine: the
engine only sees answers. Each load sends the same seeded Poisson arrivals for ``seconds`` to a fresh
simulator; requests give up at the scenario's deadline after their arrival. In simulated time (the lab's
fast-forwarded loop): the figures of a real-time run, in seconds."""

from __future__ import annotations

from pooltui.session.lab import RunResult, run_strategy
from pooltui.session.simtime import run_simulated
from pooltui.session.workload import seeded_workload
from pooltui.sim.scenario import Scenario, load_scenario

Run = tuple[float, float, bool, RunResult]  # load (x capacity), rate (requests/s), learning on, what it did


def capacity(scenario: Scenario) -> float:
    """Requests per second the primary's keys allow together (their rpm per window), from the file."""
    p = scenario.primary
    groups: dict[str, float] = {}
    for k in p.keys:
        if k.rpm is None or k.invalid or k.forbidden:
            continue
        groups[k.quota_group or k.label] = k.rpm / p.window_s
    return sum(groups.values())


async def _runs(sc: Scenario, loads: tuple[float, ...], seconds: float, strategy: str) -> list[Run]:
    cap = capacity(sc)
    out: list[Run] = []
    for load in loads:
        rate = cap * load
        arrivals = seeded_workload(sc, requests=max(1, int(rate * seconds)), rate=rate, seed=sc.seed)
        for learn in (False, True):
            result = await run_strategy(sc, strategy, arrivals, concurrency=sc.traffic.concurrency, seed=sc.seed,
                                        learn=learn)
            out.append((load, rate, learn, result))
    return out


def _line(load: float, rate: float, learn: bool, r: RunResult) -> str:
    row = r.row()
    calls = "-" if row["attempts_per_success"] is None else f"{row['attempts_per_success']:.2f}"
    p50 = "-" if row["p50_ms"] is None else f"{row['p50_ms']:.0f}"
    p95 = "-" if row["p95_ms"] is None else f"{row['p95_ms']:.0f}"
    return (f"  {load:>4.2f}x {rate:6.1f}/s  {'on ' if learn else 'off'}  {r.requests:>8} {r.succeeded:>9} "
            f"{r.limited:>8} {calls:>9} {p50:>7} {p95:>7}")


def bench_learned(scenario: str = "peak-hour", seconds: float = 30.0, strategy: str = "round-robin",
                  loads: tuple[float, ...] = (0.75, 1.0, 1.5)) -> list[Run]:
    sc = load_scenario(scenario)
    cap = capacity(sc)
    print(f"learned limits: {sc.name}, {strategy}, capacity {cap:.2f} requests/s from the scenario file "
          f"({len(sc.primary.keys)} keys), {seconds:g} s of arrivals per load, deadline {sc.traffic.deadline_s:g} s, "
          "in simulated time")
    print("  load   rate     learn  requests succeeded 429s-up calls/ok  p50 ms  p95 ms")
    runs = run_simulated(_runs(sc, loads, seconds, strategy))
    for load, rate, learn, result in runs:
        print(_line(load, rate, learn, result))
    return runs
