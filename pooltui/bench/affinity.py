"""``python -m pooltui.bench affinity``: the built-in ``conversations`` scenario (20 conversations of 15 turns over
3 keys in 3 organizations, each turn re-sending the conversation with prompt caching) at 0.75x and 1.5x of the
pool's capacity, each strategy without and with affinity: served, 429s, cache hit rate, cost, and what the run's
pools estimated, live, round-robin without affinity would have cost (``rr est``: core/round_robin_cost.py).

The lab's runs (``pooltui compare --affinity both``), in simulated time against the simulator's prompt caches
(per organization, Anthropic's rules); the scenario runs at about 0.75x of its keys' capacity, so another load
shortens the conversations' think time in proportion. The same seed gives the same figures.

Target (issue 28): a hit rate of at least 80% with affinity at 0.75x, served unchanged at 0.75x and not lower at
1.5x."""

from __future__ import annotations

from pooltui.session.lab import RunResult, run_lab, with_affinity
from pooltui.session.workload import conversation_workload
from pooltui.sim.scenario import load_scenario

SCENARIO = "conversations"
SCENARIO_LOAD = 0.75  # the scenario's own traffic against its keys' capacity (see its description)


def bench_affinity(loads: tuple[float, ...] = (0.75, 1.5), strategies: tuple[str, ...] = ("round-robin",)
                   ) -> dict[float, list[RunResult]]:
    """Print the table and return its runs per load (each strategy without affinity, then with it)."""
    sc = load_scenario(SCENARIO)
    t = sc.traffic
    print(f"affinity: scenario {SCENARIO} ({t.conversations} conversations of {t.turns} turns, "
          f"{len(sc.primary.keys)} keys in {len({k.cache_org for k in sc.primary.keys})} organizations), each "
          "strategy without and with affinity, in simulated time")
    print(f"  {'load':>5} {'strategy':22} {'served':>9} {'429s':>5} {'hit rate':>9} {'cost $':>9} {'rr est $':>9}")
    out: dict[float, list[RunResult]] = {}
    for load in loads:
        arrivals = conversation_workload(sc, seed=sc.seed, think_scale=SCENARIO_LOAD / load)
        runs = run_lab(sc, with_affinity(list(strategies), "both"), arrivals, concurrency=t.concurrency,
                       seed=sc.seed)
        out[load] = runs
        for r in runs:
            hit = "-" if r.cache_hit_rate is None else f"{r.cache_hit_rate:.0%}"
            cost = "-" if r.cost is None else f"{r.cost:.4f}"
            estimate = "-" if r.cost_round_robin is None else f"{r.cost_round_robin:.4f}"
            print(f"  {load:>4g}x {r.strategy:22} {r.succeeded:>4}/{r.requests:<4} {r.limited:>5} {hit:>9} "
                  f"{cost:>9} {estimate:>9}")
    return out
