"""The shape of one key as the pool reports it (``Pool.snapshot``): plain, JSON-safe, no secrets."""

from __future__ import annotations

from typing import TypedDict


class KeyCounts(TypedDict):
    """What one key has served since the pool started (``KeyStats.as_dict``)."""

    requests: int
    ok: int
    rate_limited: int
    invalid: int
    forbidden: int
    quota: int
    server_errors: int
    transport: int
    request_errors: int
    tokens_in: int
    tokens_out: int
    cost: float


class LearnedSnapshot(TypedDict):
    """A limit learnt from 429s (``LearnedLimit.as_dict``): ``limit`` requests per ``window_s``."""

    limit: int
    window_s: float
    sure: float  # 0 to 1
    in_window: int  # accepted requests the window still counts, plus those in flight
    observed: int  # 429s it was fitted from
    probes: int  # times it tried one more


class BudgetUse(TypedDict):
    """One declared window of a key: what this process holds in it now, of its limit."""

    used: int
    limit: int
    #: the whole fleet's use of it (processes sharing the window through Redis), None where not shared
    fleet_used: int | None


class KeySnapshot(KeyCounts):
    """One key: its state and why, its cooldowns, its traffic and what the provider's headers said."""

    label: str
    masked: str
    fingerprint: str
    state: str
    until: float | None
    remaining_s: float | None
    source: str | None
    reason: str
    models: dict[str, float]  # model -> seconds until its per-model cooldown ends
    quota_group: str | None
    affinity_hits: int  # requests that stayed on it: its prompt cache holds their conversation
    affinity_moves: int  # conversations that moved off it: it had no room (cooling, parked, at a limit or cap)
    cache_read: int  # prompt tokens its answers read from its organization's cache,
    cache_write: int  # wrote to it,
    cacheable: int  # and the input the provider's rules let it cache (the hit rate's denominator)
    cost_round_robin: float  # USD its answers would have cost under round-robin without affinity (an estimate)
    inflight: int
    probing: bool
    rpm: int
    p50_ms: float | None
    p95_ms: float | None
    last_used: float | None
    requests_remaining: int | None
    requests_limit: int | None
    tokens_remaining: int | None
    learned: LearnedSnapshot | None  # the key's limit learnt from 429s (no header states it)
    learned_models: dict[str, LearnedSnapshot]  # per model, once the pool serves several
    declared: dict[str, int]  # the limits declared for it (rpm, rpd, tpm, itpm, otpm, max_concurrency)
    #: each declared window ("rpm", "tpm"; "rpm claude-sonnet-4-5" for a model's own) and its use
    budgets: dict[str, BudgetUse]
