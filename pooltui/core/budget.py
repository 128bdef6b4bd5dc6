"""Prices per model and per-key budgets (tokens or money, per UTC day or month)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pooltui.core.validate import finite


@dataclass(slots=True)
class Prices:
    """USD per million input/output tokens, per model name."""

    per_model: dict[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Any) -> Prices:
        if not isinstance(raw, dict):
            raise ValueError("'prices' must be a table of models")
        out: dict[str, tuple[float, float]] = {}
        for model, entry in raw.items():
            if not isinstance(entry, dict):
                raise ValueError(f"prices.{model} must be a table with input_per_mtok and output_per_mtok")
            values = []
            for name in ("input_per_mtok", "output_per_mtok"):
                values.append(finite(f"prices.{model}.{name}", entry.get(name, 0.0)))
            out[str(model)] = (values[0], values[1])
        return cls(out)

    def cost(self, model: str | None, tokens_in: int, tokens_out: int) -> float | None:
        """The cost in USD, or None when the model has no price."""
        if not model:
            return None
        price = self.per_model.get(model)
        if price is None:
            # "claude-sonnet-4-5-20250929" is priced like "claude-sonnet-4-5"
            price = next((p for m, p in self.per_model.items() if model.startswith(m)), None)
        if price is None:
            return None
        return (tokens_in * price[0] + tokens_out * price[1]) / 1_000_000


@dataclass(frozen=True, slots=True)
class Budget:
    """Optional limits for one key; None means no limit."""

    tokens_day: int | float | None = None
    tokens_month: int | float | None = None
    cost_day: float | None = None
    cost_month: float | None = None

    def is_set(self) -> bool:
        return any(v is not None for v in (self.tokens_day, self.tokens_month, self.cost_day, self.cost_month))


def period_starts(now: float) -> tuple[str, str, float, float]:
    """(day id, month id, next day start, next month start) in UTC."""
    t = datetime.fromtimestamp(now, UTC)
    day0 = t.replace(hour=0, minute=0, second=0, microsecond=0)
    month0 = day0.replace(day=1)
    next_month = (month0 + timedelta(days=32)).replace(day=1)
    return day0.strftime("%Y-%m-%d"), month0.strftime("%Y-%m"), (day0 + timedelta(days=1)).timestamp(), \
        next_month.timestamp()


def month_start_of(now: float) -> float:
    """The start of ``now``'s UTC month."""
    return datetime.fromtimestamp(now, UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


class Spend:
    """What one key spent this UTC day and month."""

    __slots__ = ("cost_day", "cost_month", "day", "month", "tokens_day", "tokens_month")

    def __init__(self) -> None:
        self.day = self.month = ""
        self.tokens_day = self.tokens_month = 0
        self.cost_day = self.cost_month = 0.0

    def add(self, now: float, tokens: int, cost: float) -> None:
        day, month, _, _ = period_starts(now)
        if day != self.day:
            self.day, self.tokens_day, self.cost_day = day, 0, 0.0
        if month != self.month:
            self.month, self.tokens_month, self.cost_month = month, 0, 0.0
        self.tokens_day += tokens
        self.tokens_month += tokens
        self.cost_day += cost
        self.cost_month += cost

    def over(self, budget: Budget, now: float) -> tuple[str, float] | None:
        """(what was reached, when it resets) if a limit is reached, else None."""
        _, _, next_day, next_month = period_starts(now)
        checks = (
            (budget.tokens_month, self.tokens_month, "monthly token budget", next_month),
            (budget.cost_month, self.cost_month, "monthly cost budget", next_month),
            (budget.tokens_day, self.tokens_day, "daily token budget", next_day),
            (budget.cost_day, self.cost_day, "daily cost budget", next_day),
        )
        for limit, spent, what, reset in checks:
            if limit is not None and spent >= limit:
                return what, reset
        return None
