"""How many keys the recorded peak needs (``pooltui advise --keys``): the busiest hour of the history rebuilt
into a workload and a simulator like the provider (session/replay.py), then sized by the planner
(session/planner.py) in simulated time, with what one more key than the answer would change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pooltui.core.words import plural
from pooltui.session.lab import simulated_run
from pooltui.session.planner import Plan, Trial, plan_keys, scenario_with_keys, trial_of
from pooltui.session.replay import ReplayError, build_replay
from pooltui.session.workload import Arrival
from pooltui.sim.scenario import Scenario

HOUR_S = 3600.0


@dataclass
class PeakPlan:
    """The planner's answer on a workload (the busiest hour, or a scenario's traffic)."""

    what: str  # "the busiest hour (14:00 UTC, 812 requests)", "scenario peak-hour"
    plan: Plan
    one_more: Trial | None  # the smallest passing pool plus one key

    def sentences(self) -> list[str]:
        p = self.plan
        if p.keys_needed is None:
            why = p.why_not or f"even {plural(p.max_keys, 'key')} like these do not serve it"
            return [f"For {self.what}: no pool found ({why})."]
        tried = {t.keys: t for t in p.trials}
        verb = "serves" if p.keys_needed == 1 else "serve"
        out = [f"For {self.what}: {plural(p.keys_needed, 'key')} like the current ones (each of its own account) "
               f"{verb} it with no caller waiting over {p.target_wait_s:g} s and no 429 (the pool has {p.keys_now})."]
        fewer = tried.get(p.keys_needed - 1)
        if fewer is not None:
            out.append(f"With {plural(fewer.keys, 'key')}: {fewer.served}/{fewer.requests} served, longest wait "
                       f"{fewer.max_wait_ms / 1000:.1f} s, {plural(fewer.upstream_429, '429')}.")
        at = tried.get(p.keys_needed)
        if self.one_more is not None and at is not None:
            before, after = at.max_wait_ms / 1000, self.one_more.max_wait_ms / 1000
            out.append(f"One more key ({self.one_more.keys}) would bring the longest wait from {before:.1f} s to "
                       f"{after:.1f} s." if round(after, 1) < round(before, 1) else
                       f"One more key ({self.one_more.keys}) would change nothing: the longest wait stays "
                       f"{after:.1f} s.")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"workload": self.what, **self.plan.as_dict(),
                "one_more": self.one_more.as_dict() if self.one_more is not None else None}


def plan_workload(scenario: Scenario, arrivals: list[Arrival], what: str, *, concurrency: int, seed: int,
                  target_wait_s: float, max_keys: int = 64) -> PeakPlan:
    """The smallest pool for ``arrivals`` on ``scenario``, and the same plus one key."""
    strategy = scenario.traffic.strategy
    plan = plan_keys(scenario, arrivals, concurrency=concurrency, seed=seed, strategy=strategy,
                     target_wait_s=target_wait_s, max_keys=max_keys)
    one_more = None
    if plan.keys_needed is not None:
        n = plan.keys_needed + 1
        one_more = next((t for t in plan.trials if t.keys == n), None) or trial_of(
            n, simulated_run(scenario_with_keys(scenario, n), strategy, arrivals, concurrency, seed))
    return PeakPlan(what, plan, one_more)


def busiest_hour(records: list[dict[str, Any]]) -> tuple[float, int]:
    """(start, requests) of the hour (a sliding window starting at a request) with the most requests."""
    times = sorted(r["ts"] for r in records)
    best, start, j = 0, times[0] if times else 0.0, 0
    for i, t in enumerate(times):
        while times[j] <= t - HOUR_S:
            j += 1
        if i - j + 1 > best:
            best, start = i - j + 1, times[j]
    return start, best


def plan_peak(history: Any, cfg: Any, since: float, provider: str, *, target_wait_s: float,
              concurrency: int = 16) -> PeakPlan:
    """The planner on the busiest hour of ``provider``'s recorded requests since ``since``."""
    records = history.request_records(since, provider)
    if not records:
        raise ReplayError(f"no requests recorded for {provider} in that period: nothing to size a pool for")
    start, n = busiest_hour(records)
    replay = build_replay(history, cfg, start, provider)
    arrivals = [a for a in replay.arrivals if a.at_s < HOUR_S]
    import time

    what = f"the busiest hour ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(start))}, {plural(n, 'request')})"
    return plan_workload(replay.scenario, arrivals, what, concurrency=concurrency, seed=1,
                         target_wait_s=target_wait_s)
