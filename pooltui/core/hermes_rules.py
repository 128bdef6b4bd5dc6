"""Hermes Agent's own credential-pool rules (hermes-agent 0.19, ``agent/credential_pool.py`` and its retry
loop), as data and a small model: what the importer and the watch read Hermes's states with, and what the
strategy lab's ``hermes-fill-first`` / ``hermes-round-robin`` emulate. Pure: no I/O, clock passed in.

Each rule names the place in hermes-agent 0.19's ``agent/credential_pool.py`` it comes from (``cp:LINE``);
``tests/hermes/test_rules_against_hermes.py`` runs Hermes's own code and these on the same inputs:

- TTL (cp:121-123, cp:289-295): an exhausted entry with no reset is benched 5 min after a 401, 1 h after a
  429 or anything else. There is no shorter rule for a pool's only key: a sole key is benched the full hour.
- Bench end (cp:376-384): ``last_error_reset_at`` (epoch s or ms, or ISO-8601: cp:298-325) wins over the TTL;
  else ``last_status_at`` + TTL; an exhausted entry with neither is not benched at all.
- Reset read in the error (cp:351-373, cp:328-348): ``reset_at`` / ``resets_at`` / ``retry_until``, else a
  delay in the message ("retry after 20s", "resets in 2hr 5min", ``quotaResetDelay``).
- Dead (cp:78-85, cp:627-648, cp:650-670): a 401 whose reason is a terminal auth reason marks the entry
  ``dead``; a dead entry never comes back by a TTL (cp:1575-1603).
- Select (cp:1515-1633, cp:1649-1686): it skips an api-key entry with no key (cp:1530), a dead entry and one
  still benched (cp:1605-1608); an expired bench is cleared to ``ok`` with the other status fields null
  (cp:1609-1621). ``fill_first`` takes the first available entry in priority order (cp:1684-1686);
  ``round_robin`` (with more than one available) moves the entry it selects to the end and renumbers
  priorities (cp:1674-1682); ``least_used`` takes the fewest requests and counts one (cp:1666-1672).
- Reset (cp:1822-1844; ``hermes auth reset`` is ``hermes_cli/auth_commands.py:502-506``): the six status
  fields set to null on every entry that has a status, a status time or an error code.

The retry loop (``run_agent``): a request stays on the pool's current entry until an error. A 429 is
retried once on the same entry after a backoff (the provider's ``retry-after``, capped at 600 s, else 2 s
doubling with jitter); a second 429 marks the entry exhausted and rotates; a 401/403 at once. A request
gives up after 3 retries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

TTL_401_S, TTL_429_S, TTL_DEFAULT_S = 300.0, 3600.0, 3600.0
MAX_RETRIES = 3
RETRY_AFTER_CAP_S = 600.0
#: 401 reasons Hermes takes as permanent: the entry is marked ``dead`` (cp:78-85)
TERMINAL_AUTH_REASONS = frozenset({"token_invalidated", "token_revoked", "invalid_token", "invalid_grant",
                                   "unauthorized_client", "refresh_token_reused"})
#: the fields ``hermes auth reset`` sets to null (cp:1822-1844); an expired bench sets ``ok`` (cp:1609-1621)
STATUS_FIELDS = ("last_status", "last_status_at", "last_error_code", "last_error_reason", "last_error_message",
                 "last_error_reset_at")

_DELAY = re.compile(r"quotaResetDelay[:\s\"]+(\d+(?:\.\d+)?)(ms|s)", re.IGNORECASE)
_SECONDS = re.compile(r"retry\s+(?:after\s+)?(\d+(?:\.\d+)?)\s*(?:sec|secs|seconds|s\b)", re.IGNORECASE)
_HR_MIN = re.compile(r"resets?\s+in\s+(\d+)\s*hr\s+(\d+)\s*min", re.IGNORECASE)
_HR = re.compile(r"resets?\s+in\s+(\d+)\s*hr\b", re.IGNORECASE)
_MIN = re.compile(r"resets?\s+in\s+(\d+)\s*min\b", re.IGNORECASE)


def exhausted_ttl(status: int | None) -> float:
    """How long Hermes benches an entry after ``status`` when the error says no reset (cp:289-295)."""
    return TTL_401_S if status == 401 else TTL_429_S if status == 429 else TTL_DEFAULT_S


def parse_timestamp(value: Any) -> float | None:
    """A reset time as Hermes parses it: epoch seconds or milliseconds (number or string), or ISO-8601
    (cp:298-325). None when it is none of those, or not positive."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        numeric = float(value)
        if numeric <= 0:
            return None
        return numeric / 1000.0 if numeric > 1e12 else numeric
    if isinstance(value, str):
        raw = value.strip()
        if not raw:
            return None
        try:
            numeric = float(raw)
        except ValueError:
            try:
                return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
            except ValueError:
                return None
        return numeric / 1000.0 if numeric > 1e12 else numeric
    return None


def retry_delay_in(message: str) -> float | None:
    """The reset delay Hermes reads in an error message, in seconds (None: it reads none; cp:328-348)."""
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


def reset_in_error(now: float, message: str = "", reset_at: Any = None) -> float | None:
    """The reset Hermes records from an error: an absolute ``reset_at``, else a delay read in the message."""
    parsed = parse_timestamp(reset_at)
    if parsed is None and message:
        delay = retry_delay_in(message)
        if delay is not None:
            parsed = now + delay
    return parsed


def is_terminal(status: int | None, reason: str | None) -> bool:
    """A failure Hermes marks ``dead`` (cp:627-648): a 401 with a terminal auth reason."""
    return status == 401 and isinstance(reason, str) and reason.strip().lower() in TERMINAL_AUTH_REASONS


def marked(status: int | None, now: float, reason: str | None = None, message: str | None = None,
           reset_at: Any = None) -> dict[str, Any]:
    """The status fields Hermes writes when it marks an entry after ``status`` (cp:650-679)."""
    reason = reason.strip() if isinstance(reason, str) and reason.strip() else None
    message = message.strip() if isinstance(message, str) and message.strip() else None
    return {"last_status": "dead" if is_terminal(status, reason) else "exhausted", "last_status_at": now,
            "last_error_code": status, "last_error_reason": reason, "last_error_message": message,
            "last_error_reset_at": reset_in_error(now, message or "", reset_at)}


def bench_until(entry: Mapping[str, Any]) -> float | None:
    """When Hermes lets an exhausted entry serve again (cp:376-384); None when it is not exhausted or not
    benched (an exhausted entry with no reset and no status time is available at once)."""
    if entry.get("last_status") != "exhausted":
        return None
    reset = parse_timestamp(entry.get("last_error_reset_at"))
    if reset is not None:
        return reset
    at = entry.get("last_status_at")
    at = parse_timestamp(at) if isinstance(at, str) else at
    if at and isinstance(at, int | float) and not isinstance(at, bool):
        code = entry.get("last_error_code")
        return float(at) + exhausted_ttl(code if isinstance(code, int) else None)
    return None


def selectable(entry: Mapping[str, Any], now: float) -> bool:
    """Whether Hermes's select may pick the entry now (cp:1515-1633)."""
    if str(entry.get("auth_type") or "api_key") == "api_key" and not entry.get("access_token"):
        return False  # a borrowed key not hydrated here: Hermes never selects an empty key (cp:1526-1530)
    if entry.get("last_status") == "dead":
        return False
    until = bench_until(entry)
    return until is None or now >= until


def reset_fields(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """What ``hermes auth reset`` writes to an entry (cp:1822-1844): the status fields null, or None when it
    leaves the entry alone."""
    if entry.get("last_status") or entry.get("last_status_at") or entry.get("last_error_code"):
        return dict.fromkeys(STATUS_FIELDS)
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
    dead: bool = False
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
            if e.dead:
                continue
            if e.exhausted_until is not None and e.exhausted_until <= now:
                e.exhausted_until = None  # expired: back in the pool
            if e.exhausted_until is None:
                out.append(e)
        return out

    def entry(self, now: float) -> HermesEntry | None:
        """The entry the next request uses: the current one while it is available, else a new selection."""
        if self.current is not None and self.current.exhausted_until is None and not self.current.dead:
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
                           reset_at: float | None = None, reason: str | None = None) -> HermesEntry | None:
        """Mark ``entry`` after ``status`` as Hermes does (benched until a reset read in the error, else its
        TTL; dead after a terminal 401) and select the next one."""
        fields = marked(status, now, reason, message, reset_at)
        entry.dead = fields["last_status"] == "dead"
        entry.exhausted_until = None if entry.dead else bench_until(fields)
        if self.current is entry:
            self.current = None
        return self.select(now)
