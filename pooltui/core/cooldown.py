"""Cooldown and backoff policies."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CooldownPolicy:
    """Default cooldown after a 429 that carried no reset: ``base_s`` doubling per strike up to ``max_s``."""

    base_s: float = 30.0
    factor: float = 2.0
    max_s: float = 600.0
    floor_s: float = 1.0  # a key that answered 429 is not picked again sooner, whatever the provider said

    def default_for(self, strikes: int, pool_size: int) -> float:
        """Cooldown for the n-th consecutive 429 (strikes >= 1). A sole key never escalates."""
        if pool_size <= 1:
            return self.base_s
        return min(self.max_s, self.base_s * self.factor ** max(0, strikes - 1))


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff for provider-transient errors, with "equal jitter": a random delay between half the
    ceiling and the ceiling (the ceiling doubles per attempt up to ``max_s``), never below ``min_s``."""

    base_s: float = 0.25
    factor: float = 2.0
    max_s: float = 8.0
    max_retries: int = 3

    min_s: float = 0.05  # even with a zero base, a retry waits: never a busy loop

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before retry number ``attempt`` (1-based); at least ``min_s``."""
        ceiling = min(self.max_s, self.base_s * self.factor ** max(0, attempt - 1))
        return max(self.min_s, (rng or random).uniform(ceiling / 2, ceiling))
