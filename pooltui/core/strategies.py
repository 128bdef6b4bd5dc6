"""Rotation strategy names, with the Hermes Agent spellings accepted as aliases."""

from __future__ import annotations

STRATEGIES = ("round-robin", "random", "failover", "least-used", "headroom")

_ALIASES = {
    "round-robin": "round-robin",
    "round_robin": "round-robin",
    "roundrobin": "round-robin",
    "rr": "round-robin",
    "random": "random",
    "failover": "failover",
    "fill-first": "failover",
    "fill_first": "failover",
    "least-used": "least-used",
    "least_used": "least-used",
    "headroom": "headroom",
}


class UnknownStrategyError(ValueError):
    """A strategy name nobody knows."""


def normalize_strategy(name: str) -> str:
    """The canonical strategy name for ``name`` (an alias or the canonical name itself)."""
    canonical = _ALIASES.get(str(name).strip().lower())
    if canonical is None:
        raise UnknownStrategyError(f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}")
    return canonical
