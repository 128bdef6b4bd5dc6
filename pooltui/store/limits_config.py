"""Declared limits in the config (issue 27): per key, per provider as a default, per model where given.

```toml
[providers.anthropic.limits]               # every key of the provider, unless the key says otherwise
rpm = 50
itpm = 30000

[providers.anthropic.limits.models."claude-sonnet-4-5"]   # requests of that model, on every key
itpm = 80000

[[providers.anthropic.keys]]
label = "primary"
rpm = 1000                                 # this key's own, over the provider's
```

Each field is a whole number >= 1 (checked like every other field: one line naming it, exit code 2).
"""

from __future__ import annotations

from typing import Any

from pooltui.core import validate
from pooltui.core.windows import KeyLimits

LIMIT_FIELDS = ("rpm", "rpd", "tpm", "itpm", "otpm", "max_concurrency")
_MAX = 10**12


def pop_limits(data: dict[str, Any], where: str) -> KeyLimits | None:
    """Take the declared limit fields out of a table (a key's, a provider's ``limits``); None when none is set."""
    values: dict[str, int] = {}
    for name in LIMIT_FIELDS:
        if name in data:
            values[name] = validate.whole(f"{where}{name}", data.pop(name), 1, _MAX)
    return KeyLimits(**values) if values else None


def parse_provider_limits(provider: str, raw: Any) -> tuple[KeyLimits | None, dict[str, KeyLimits]]:
    """A provider's ``[providers.NAME.limits]`` table: its default limits and its limits per model."""
    if raw is None:
        return None, {}
    if not isinstance(raw, dict):
        raise ValueError(f"provider {provider}: limits must be a table (rpm, rpd, tpm, itpm, otpm, max_concurrency)")
    data = dict(raw)
    models_raw = data.pop("models", {})
    default = pop_limits(data, f"provider {provider}: limits.")
    if data:
        raise ValueError(f"provider {provider}: limits.{next(iter(data))}: unknown field "
                         f"(known: {', '.join(LIMIT_FIELDS)}, models)")
    if not isinstance(models_raw, dict):
        raise ValueError(f"provider {provider}: limits.models must be a table of models")
    models: dict[str, KeyLimits] = {}
    for model, table in models_raw.items():
        name = validate.model_name(model)
        if not isinstance(table, dict):
            raise ValueError(f"provider {provider}: limits.models.{name} must be a table")
        fields = dict(table)
        limits = pop_limits(fields, f"provider {provider}: limits.models.{name}.")
        if fields:
            raise ValueError(f"provider {provider}: limits.models.{name}.{next(iter(fields))}: unknown field "
                             f"(known: {', '.join(LIMIT_FIELDS)})")
        if limits is not None:
            models[name] = limits
    return default, models


def limits_table(default: KeyLimits | None, models: dict[str, KeyLimits]) -> dict[str, Any]:
    """The ``limits`` table as written back to the config (empty when nothing is declared)."""
    out: dict[str, Any] = dict(default.as_dict()) if default is not None else {}
    if models:
        out["models"] = {m: lim.as_dict() for m, lim in models.items()}
    return out


def key_limits(own: KeyLimits | None, default: KeyLimits | None, models: dict[str, KeyLimits]
               ) -> tuple[KeyLimits | None, tuple[tuple[str, KeyLimits], ...]]:
    """What one key declares: its own limits over the provider's, and each model's over those."""
    merged = own.over(default) if own is not None else default
    return merged, tuple((m, lim.over(merged)) for m, lim in models.items())
