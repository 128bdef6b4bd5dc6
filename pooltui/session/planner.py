"""How many keys a pool needs for a workload: the same arrivals run in simulated time against the scenario
with 1, 2, 4, ... keys like its primary's (the same limits), then halved down to the smallest that serves
every caller with no caller waiting longer than a target and no 429 sent upstream.

"Keys like these": the primary's healthy keys (not invalid, forbidden or revoked), taken in turn, each copy
with its own secret and its own budget (a key of a new project: no shared ``quota_group``; of an account of its
own: no shared ``org``). The fallbacks, outages and latencies stay the scenario's. More keys are assumed never to
serve worse (the search gallops up then bisects), and the answer is checked both ways: ``n`` keys pass and
``n - 1`` were run and fail. ``pooltui advise --keys`` builds on :func:`plan_keys` (session/advice_plan.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from pooltui.session.lab import RunResult, simulated_run
from pooltui.session.workload import Arrival
from pooltui.sim.scenario import Scenario, SimKey

DEFAULT_TARGET_WAIT_S = 2.0
DEFAULT_MAX_KEYS = 64


@dataclass(frozen=True, slots=True)
class Trial:
    """One pool size tried: what it did to the workload."""

    keys: int
    requests: int
    served: int
    max_wait_ms: float
    upstream_429: int

    def passes(self, target_wait_s: float) -> bool:
        return (self.served == self.requests and self.upstream_429 == 0
                and self.max_wait_ms <= target_wait_s * 1000)

    def as_dict(self) -> dict[str, object]:
        return {"keys": self.keys, "requests": self.requests, "served": self.served,
                "max_wait_ms": round(self.max_wait_ms, 1), "upstream_429": self.upstream_429}


@dataclass
class Plan:
    """The smallest pool found (``keys_needed``; None: none up to ``max_keys``) and every size tried."""

    strategy: str
    target_wait_s: float
    max_keys: int
    keys_now: int
    keys_needed: int | None = None
    trials: list[Trial] = field(default_factory=list)
    why_not: str = ""  # when nothing could be tried (no healthy key to copy)

    def as_dict(self) -> dict[str, object]:
        return {"strategy": self.strategy, "target_wait_s": self.target_wait_s, "max_keys": self.max_keys,
                "keys_now": self.keys_now, "keys_needed": self.keys_needed,
                "tried": [t.as_dict() for t in sorted(self.trials, key=lambda t: t.keys)],
                **({"why_not": self.why_not} if self.why_not else {})}


def healthy_keys(scenario: Scenario) -> list[SimKey]:
    """The primary's keys that serve for good: the ones new keys are copied from."""
    return [k for k in scenario.primary.keys if not (k.invalid or k.forbidden or k.revoke_after is not None)]


def scenario_with_keys(scenario: Scenario, n: int) -> Scenario:
    """``scenario`` with ``n`` keys like its primary's healthy ones (taken in turn), everything else the same."""
    models = healthy_keys(scenario)
    if not models:
        raise ValueError(f"scenario {scenario.name}: the primary has no healthy key to copy")
    keys = [dataclasses.replace(models[i % len(models)], label=f"plan-{i + 1}",
                                secret=f"sk-sim-plan-{i + 1:04d}-{'0' * 24}", quota_group=None, org=None)
            for i in range(n)]
    primary = dataclasses.replace(scenario.primary, keys=keys)
    return dataclasses.replace(scenario, providers=[primary, *scenario.fallbacks])


def plan_keys(scenario: Scenario, arrivals: list[Arrival], *, concurrency: int, seed: int,
              strategy: str = "round-robin", target_wait_s: float = DEFAULT_TARGET_WAIT_S,
              max_keys: int = DEFAULT_MAX_KEYS, learn: bool = True,
              progress: Callable[[Trial], None] | None = None) -> Plan:
    """The smallest number of keys like the scenario's that serves ``arrivals`` (in simulated time) with every
    caller served, none waiting over ``target_wait_s`` and no 429 upstream; ``keys_needed`` None when even
    ``max_keys`` does not."""
    plan = Plan(strategy, target_wait_s, max_keys, len(scenario.primary.keys))
    if not healthy_keys(scenario):
        plan.why_not = "the primary has no healthy key to copy"
        return plan
    tried: dict[int, Trial] = {}

    def passes(n: int) -> bool:
        if n not in tried:
            result = simulated_run(scenario_with_keys(scenario, n), strategy, arrivals, concurrency, seed, learn)
            tried[n] = trial_of(n, result)
            if progress is not None:
                progress(tried[n])
        return tried[n].passes(target_wait_s)

    low, high = 0, 1  # low: the largest size known to fail (0: none tried); high: the next to try
    while not passes(high):
        low = high
        if high >= max_keys:
            plan.trials = list(tried.values())
            return plan
        high = min(max_keys, high * 2)
    while high - low > 1:  # low fails, high passes
        mid = (low + high) // 2
        if passes(mid):
            high = mid
        else:
            low = mid
    plan.keys_needed = high
    plan.trials = list(tried.values())
    return plan


def trial_of(keys: int, result: RunResult) -> Trial:
    return Trial(keys, result.requests, result.succeeded, result.max_wait_ms, result.limited)
