"""Reset hints outside headers: in error bodies and in the words of error messages.

One table, used by the classifier (and so by verification and the monitor, which show what it decided):

- body fields ``reset_at`` / ``resets_at`` / ``retry_until`` (top level, under ``error``, or under
  ``error.metadata``): epoch seconds, epoch milliseconds, numeric strings, ISO-8601 with ``Z``;
- OpenRouter's ``error.metadata.headers.X-RateLimit-Reset`` (epoch milliseconds);
- Google's ``google.rpc.RetryInfo`` ``retryDelay`` and ``quotaResetDelay`` in error details metadata;
- message grammars: "Resets in 6hr 29min", "resets in 2 hours 5 minutes", "please retry after 12 seconds",
  "try again in 1m30s", "Please try again in 120ms", and a date in words: "You will regain access on
  2026-04-01 at 00:00 UTC" (Anthropic's spend limit).

An explicit retry ("retry after", "try again in", RetryInfo) wins over a longer reset. A wait of 0 or less,
or one that is not finite, says nothing. Nothing here raises, whatever the body holds.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pooltui.core.headers import MAX_WAIT_S, parse_go_duration, parse_reset

_BODY_FIELDS = ("reset_at", "resets_at", "retry_until")
_UNIT = r"(?:milliseconds?|ms|seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d)"
_PART = re.compile(rf"(\d+(?:\.\d+)?)\s*({_UNIT})(?![a-z])", re.I)
_DURATION = rf"(?:\d+(?:\.\d+)?\s*{_UNIT}(?![a-z])(?:\s*,?\s*(?:and\s+)?)?)+"
_PHRASE = re.compile(
    rf"(?P<verb>resets?\s+in|retry\s+after|retry\s+in|try\s+again\s+in|try\s+again\s+after|wait)\s+"
    rf"(?P<dur>{_DURATION})", re.I)


_REGAIN = re.compile(r"regain access on (\d{4})-(\d{2})-(\d{2})(?: at (\d{1,2}):(\d{2}))?\s*(?:UTC)?", re.I)


@dataclass(frozen=True, slots=True)
class Hint:
    """A wait the provider stated somewhere other than the standard headers."""

    seconds: float
    retry: bool  # an explicit "retry after" (True) or a reset of a limit (False)
    where: str  # for the trace and the monitor: "body resets_at", "message 'try again in 20s'"


def _sane(seconds: Any) -> float | None:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return None
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_WAIT_S:
        return None
    return float(seconds)


def duration_words(text: str) -> float | None:
    """``"6hr 29min"``, ``"2 hours 5 minutes"``, ``"1m30s"``, ``"120ms"`` -> seconds."""
    total = 0.0
    found = False
    for number, unit in _PART.findall(text):
        total += float(number) * _factor(unit)
        found = True
    return _sane(total) if found else None


def _factor(unit: str) -> float:
    u = unit.lower()
    if u == "ms" or u.startswith("milli"):
        return 0.001
    return {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}[u[0]]


def message_hints(message: str) -> list[Hint]:
    """Waits stated in words inside an error message."""
    if not message or len(message) > 4000:
        return []
    out = []
    for match in _PHRASE.finditer(message):
        seconds = duration_words(match.group("dur"))
        if seconds is not None:
            verb = match.group("verb").lower()
            out.append(Hint(seconds, not verb.startswith("reset"), f"message '{match.group(0).strip()}'"))
    return out


def date_hints(message: str, now: float) -> list[Hint]:
    """A reset written as a date: "You will regain access on 2026-04-01 at 00:00 UTC"."""
    if not message or len(message) > 4000 or "regain" not in message.lower():
        return []
    match = _REGAIN.search(message)
    if match is None:
        return []
    year, month, day, hour, minute = (int(g) if g else 0 for g in match.groups())
    try:
        at = datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()
    except ValueError:
        return []
    seconds = _sane(at - now)
    return [Hint(seconds, False, f"message '{match.group(0).strip()}'")] if seconds is not None else []


def _containers(body: dict) -> list[tuple[str, dict]]:
    out = [("body", body)]
    err = body.get("error")
    if isinstance(err, list) and err and isinstance(err[0], dict):
        err = err[0]
    if isinstance(err, dict):
        out.append(("error", err))
        meta = err.get("metadata")
        if isinstance(meta, dict):
            out.append(("error.metadata", meta))
    return out


def body_hints(body: Any, now: float) -> list[Hint]:
    """Waits stated in the fields of a JSON error body."""
    if not isinstance(body, dict):
        return []
    out: list[Hint] = []
    containers = _containers(body)
    for where, container in containers:
        for name in _BODY_FIELDS:
            if name in container:
                seconds = _sane(parse_reset(container[name], now))
                if seconds is not None:
                    out.append(Hint(seconds, name == "retry_until", f"{where}.{name}"))
        headers = container.get("headers") if where == "error.metadata" else None
        if isinstance(headers, dict):
            lowered = {str(k).lower(): v for k, v in headers.items()}
            for name in ("retry-after", "x-ratelimit-reset"):
                if name in lowered:
                    seconds = _sane(parse_reset(lowered[name], now))
                    if seconds is not None:
                        out.append(Hint(seconds, name == "retry-after", f"error.metadata.headers.{name}"))
    for detail in _details(containers):
        kind = str(detail.get("@type", ""))
        if kind.endswith("google.rpc.RetryInfo"):
            seconds = _sane(parse_go_duration(detail.get("retryDelay")))
            if seconds is not None:
                out.append(Hint(seconds, True, "RetryInfo.retryDelay"))
        meta = detail.get("metadata")
        if isinstance(meta, dict) and "quotaResetDelay" in meta:
            seconds = _sane(parse_go_duration(meta.get("quotaResetDelay")))
            if seconds is not None:
                out.append(Hint(seconds, False, "quotaResetDelay"))
    return out


def _details(containers: list[tuple[str, dict]]) -> list[dict]:
    for where, container in containers:
        if where == "error":
            details = container.get("details")
            if isinstance(details, list):
                return [d for d in details if isinstance(d, dict)]
    return []


def best(hints: list[Hint]) -> Hint | None:
    """An explicit retry wins over a longer reset; among resets, the latest one (never too early)."""
    retries = [h for h in hints if h.retry]
    if retries:
        return min(retries, key=lambda h: h.seconds)
    resets = [h for h in hints if not h.retry]
    return max(resets, key=lambda h: h.seconds) if resets else None


def reset_hint(body: Any, message: str, now: float) -> Hint | None:
    """The one wait to honour from a body and its message, or None."""
    try:
        return best(body_hints(body, now) + message_hints(message) + date_hints(message, now))
    except Exception:
        return None
