"""A workload for the strategy lab: arrivals (when, which model, which prompt) drawn from a seed or rebuilt
from the history, and what each caller got."""

from __future__ import annotations

import random
from dataclasses import dataclass

from pooltui.session.traffic import PROMPTS
from pooltui.sim.scenario import Scenario


@dataclass(frozen=True, slots=True)
class Arrival:
    """One request of a workload: seconds after the start, its model (None: the provider's default)."""

    at_s: float
    model: str | None = None
    prompt: str = "ping"
    max_tokens: int = 16


def seeded_workload(scenario: Scenario, *, requests: int, rate: float, seed: int) -> list[Arrival]:
    """``requests`` arrivals at ``rate`` per second on average (Poisson; 0: all at once), the scenario's models
    in turn; the same seed gives the same list."""
    rng = random.Random(seed)
    models = scenario.traffic.models
    t, out = 0.0, []
    for i in range(requests):
        if rate > 0 and i:
            t += rng.expovariate(rate)
        out.append(Arrival(round(t, 6), models[i % len(models)] if models else None, rng.choice(PROMPTS)))
    return out


@dataclass
class CallerResult:
    """What one caller got: served or not, by which provider, its tokens, why it failed."""

    ok: bool
    provider: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    error: str | None = None
    answer_s: float = 0.0  # the attempt that answered: the provider's own time (the rest of the latency is waiting)
