"""Prices per model and per-key budgets (tokens or money, per UTC day or month)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pooltui.core.usage import Usage
from pooltui.core.validate import finite

#: prompt-cache prices as multiples of the input price when ``[prices.MODEL]`` sets none, from the providers'
#: pricing docs: Anthropic writes 1.25x (5-minute TTL) or 2x (1 hour), reads 0.1x; OpenAI has no write premium and
#: reads at 0.1x (gpt-5 family), 0.25x (gpt-4.1 family) or 0.5x (gpt-4o, o-series and older)
ANTHROPIC_CACHE = (1.25, 2.0, 0.1)
OPENAI_CACHE_READ = (("gpt-5", 0.1), ("gpt-4.1", 0.25))
OPENAI_CACHE_READ_DEFAULT = 0.5
CACHE_FIELDS = ("cache_write_per_mtok", "cache_write_1h_per_mtok", "cache_read_per_mtok")


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens of one model: input, output, and prompt-cache writes (5 min, 1 h) and reads."""

    input: float
    output: float
    cache_write: float
    cache_write_1h: float
    cache_read: float


def default_cache_prices(model: str, input_price: float) -> tuple[float, float, float]:
    """(write, write 1 h, read) per million tokens for ``model`` from its provider's multipliers."""
    name = model.lower()
    if "claude" in name:
        write, write_1h, read = ANTHROPIC_CACHE
        return input_price * write, input_price * write_1h, input_price * read
    read = next((r for family, r in OPENAI_CACHE_READ if family in name), OPENAI_CACHE_READ_DEFAULT)
    return input_price, input_price, input_price * read


@dataclass(slots=True)
class Prices:
    """USD per million input/output tokens, per model name; cache prices where set (else the provider's
    multipliers, see :func:`default_cache_prices`)."""

    per_model: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: model -> (cache write, cache write 1 h, cache read) as configured, None where not set
    cache_per_model: dict[str, tuple[float | None, float | None, float | None]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Any) -> Prices:
        if not isinstance(raw, dict):
            raise ValueError("'prices' must be a table of models")
        out: dict[str, tuple[float, float]] = {}
        cache: dict[str, tuple[float | None, float | None, float | None]] = {}
        for model, entry in raw.items():
            if not isinstance(entry, dict):
                raise ValueError(f"prices.{model} must be a table with input_per_mtok and output_per_mtok")
            values = []
            for name in ("input_per_mtok", "output_per_mtok"):
                values.append(finite(f"prices.{model}.{name}", entry.get(name, 0.0)))
            out[str(model)] = (values[0], values[1])
            set_cache = tuple(None if entry.get(name) is None else finite(f"prices.{model}.{name}", entry[name])
                              for name in CACHE_FIELDS)
            if any(v is not None for v in set_cache):
                cache[str(model)] = (set_cache[0], set_cache[1], set_cache[2])
        return cls(out, cache)

    def to_dict(self) -> dict[str, dict[str, float]]:
        """The ``[prices]`` table as configured (cache prices only where set)."""
        out: dict[str, dict[str, float]] = {}
        for model, (i, o) in sorted(self.per_model.items()):
            entry = {"input_per_mtok": i, "output_per_mtok": o}
            for name, value in zip(CACHE_FIELDS, self.cache_per_model.get(model, (None, None, None)), strict=True):
                if value is not None:
                    entry[name] = value
            out[model] = entry
        return out

    def price(self, model: str | None) -> ModelPrice | None:
        """The prices of ``model`` (a dated name priced as its prefix), or None when it has none."""
        if not model:
            return None
        # "claude-sonnet-4-5-20250929" is priced like "claude-sonnet-4-5"
        name = model if model in self.per_model else next((m for m in self.per_model if model.startswith(m)), None)
        if name is None:
            return None
        i, o = self.per_model[name]
        defaults = default_cache_prices(name, i)
        configured = self.cache_per_model.get(name, (None, None, None))
        write, write_1h, read = (d if c is None else c for c, d in zip(configured, defaults, strict=True))
        return ModelPrice(i, o, write, write_1h, read)

    def cost(self, model: str | None, tokens_in: int, tokens_out: int) -> float | None:
        """The cost in USD of tokens with no cache use, or None when the model has no price."""
        price = self.price(model)
        if price is None:
            return None
        return (tokens_in * price.input + tokens_out * price.output) / 1_000_000

    def cost_of(self, model: str | None, usage: Usage) -> float | None:
        """The cost in USD of one answer's usage: uncached input, cache writes and reads, output (None: no price)."""
        price = self.price(model)
        if price is None:
            return None
        write_5m = usage.cache_write - usage.cache_write_1h
        return (usage.uncached * price.input + write_5m * price.cache_write + usage.cache_write_1h
                * price.cache_write_1h + usage.cache_read * price.cache_read + usage.output * price.output) / 1_000_000


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
