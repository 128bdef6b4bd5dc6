"""Hermes Agent's own credential-pool rules (hermes-agent 0.19, ``agent/credential_pool.py`` and its retry
loop), as data and a small model: what the importer and the watch read Hermes's states with, and what the
strategy lab's ``hermes-fill-first`` / ``hermes-round-robin`` emulate. Pure: no I/O, clock passed in.

The rules: a request stays on the pool's current entry until an error (no per-request rotation). A 429
is retried once on the same entry after a backoff (the provider's ``retry-after``, capped at 600 s, else
2 s doubling with jitter); a second 429 marks the entry exhausted and rotates. A 401/403 marks it
exhausted and rotates at once. An exhausted entry is benched until the reset Hermes can read in the error
(a ``reset_at`` field, "retry after 20s", "resets in 2hr 5min", ``quotaResetDelay``), else for 1 h (429 and
others) or 5 min (401), and at most 60 s when it is the pool's only entry (unless the failure is billing).
``fill_first`` then takes the first available entry in priority order; ``round_robin`` moves the entry it
selects to the end of that order. A request gives up after 3 retries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TTL_401_S, TTL_429_S, TTL_DEFAULT_S, TTL_SOLE_S = 300.0, 3600.0, 3600.0, 60.0
MAX_RETRIES = 3
RETRY_AFTER_CAP_S = 600.0

_DELAY = re.compile(r"quotaResetDelay[:\s\"]+(\d+(?:\.\d+)?)(ms|s)", re.IGNORECASE)
_SECONDS = re.compile(r"retry\s+(?:after\s+)?(\d+(?:\.\d+)?)\s*(?:sec|secs|seconds|s\b)", re.IGNORECASE)
_HR_MIN = re.compile(r"resets?\s+in\s+(\d+)\s*hr\s+(\d+)\s*min", re.IGNORECASE)
_HR = re.compile(r"resets?\s+in\s+(\d+)\s*hr\b", re.IGNORECASE)
_MIN = re.compile(r"resets?\s+in\s+(\d+)\s*min\b", re.IGNORECASE)


def exhausted_ttl(status: int | None, *, billing: bool = False, sole: bool = False) -> float:
    """How long Hermes benches an entry after ``status`` when the error says no reset."""
    ttl = TTL_401_S if status == 401 else TTL_429_S if status == 429 else TTL_DEFAULT_S
    if sole and not billing:
        ttl = min(ttl, TTL_SOLE_S)
    return ttl


def retry_delay_in(message: str) -> float | None:
    """The reset delay Hermes reads in an error message, in seconds (None: it reads none)."""
    if not message:
        return None
    if m := _DELAY.search(message):
        value = float(m.group(1))
        return value / 1000.0 if m.group(2).lower() == "ms" else value
    if m := _SECONDS.search(message):
        return float(m.group(1))
    if m := _HR_MIN.search(message):
        return int(m.group(1)) * 3600 + int(m.group(2)) * 60
    if m := _HR.search(message):
        return int(m.group(1)) * 3600
    if m := _MIN.search(message):
        return int(m.group(1)) * 60
    return None


def backoff_s(retry: int, jitter: float) -> float:
    """Hermes's wait before retry ``retry`` (1-based) with no retry-after: 2 s doubling to 60 s, plus up to
    half of it as jitter (``jitter`` in [0, 1))."""
    delay = min(2.0 * 2 ** (retry - 1), 60.0)
    return delay + delay * 0.5 * jitter


@dataclass
class HermesEntry:
    label: str
    secret: str
    exhausted_until: float | None = None
    requests: int = 0


class HermesPoolModel:
    """One Hermes credential pool, in memory: the entries in priority order and the current one."""

    def __init__(self, entries: list[HermesEntry], strategy: str = "fill_first") -> None:
        if strategy not in ("fill_first", "round_robin"):
            raise ValueError(f"emulated Hermes strategy must be fill_first or round_robin, not {strategy!r}")
        self.entries = list(entries)
        self.strategy = strategy
        self.current: HermesEntry | None = None

    def available(self, now: float) -> list[HermesEntry]:
        out = []
        for e in self.entries:
            if e.exhausted_until is not None and e.exhausted_until <= now:
                e.exhausted_until = None  # expired: back in the pool
            if e.exhausted_until is None:
                out.append(e)
        return out

    def entry(self, now: float) -> HermesEntry | None:
        """The entry the next request uses: the current one while it is available, else a new selection."""
        if self.current is not None and self.current.exhausted_until is None:
            return self.current
        return self.select(now)

    def select(self, now: float) -> HermesEntry | None:
        available = self.available(now)
        if not available:
            self.current = None
            return None
        entry = available[0]
        if self.strategy == "round_robin" and len(available) > 1:
            self.entries = [e for e in self.entries if e is not entry] + [entry]
        self.current = entry
        return entry

    def exhaust_and_rotate(self, entry: HermesEntry, status: int | None, now: float, message: str = "",
                           reset_at: float | None = None) -> HermesEntry | None:
        """Bench ``entry`` after ``status`` (until a reset read in the error, else its TTL) and select
        the next one."""
        delay = retry_delay_in(message)
        if reset_at is None and delay is not None:
            reset_at = now + delay
        billing = status == 402
        entry.exhausted_until = reset_at if reset_at is not None else now + exhausted_ttl(
            status, billing=billing, sole=len(self.entries) == 1)
        if self.current is entry:
            self.current = None
        return self.select(now)
