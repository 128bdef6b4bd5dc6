"""Rate-limit header parsing for every provider dialect.

Every parser takes untrusted text and returns ``None`` for anything it cannot read: garbage never
raises, the caller's default applies instead.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from operator import itemgetter
from typing import Any

#: Longest wait any header may ask for; beyond it the value is treated as garbage.
MAX_WAIT_S = 40 * 86400.0

_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|h|m|s)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _sane(seconds: float) -> float | None:
    if math.isnan(seconds) or seconds < 0 or seconds > MAX_WAIT_S:
        return None
    return seconds


def parse_seconds(value: Any) -> float | None:
    """A plain non-negative number of seconds (``"12"``, ``"0.5"``)."""
    try:
        text = str(value).strip()
        if not text or len(text) > 32:
            return None
        return _sane(float(text))
    except (TypeError, ValueError, OverflowError):
        return None


def parse_http_date(value: Any, now: float) -> float | None:
    """An HTTP date (``Wed, 21 Oct 2026 07:28:00 GMT``) as seconds from ``now``."""
    try:
        text = str(value).strip()
        if len(text) > 64:
            return None
        when = parsedate_to_datetime(text)
        if when.tzinfo is None:
            return None
        return _sane(max(0.0, when.timestamp() - now))
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


def parse_retry_after(value: Any, now: float) -> float | None:
    """``Retry-After``: seconds or an HTTP date."""
    secs = parse_seconds(value)
    return secs if secs is not None else parse_http_date(value, now)


def parse_retry_after_ms(value: Any) -> float | None:
    """``retry-after-ms``: milliseconds."""
    ms = parse_seconds(value)
    return None if ms is None else _sane(ms / 1000.0)


def parse_go_duration(value: Any) -> float | None:
    """Go-style durations as OpenAI and Groq send them: ``1s``, ``6m0s``, ``12ms``, ``2m59.56s``."""
    try:
        text = str(value).strip()
    except Exception:
        return None
    if not text or len(text) > 48 or ":" in text:  # a colon: neither a duration nor a number (a timestamp's)
        return None
    if text[-1] == "s" and text[0].isdigit():  # fast paths: "12ms", "1.5s"
        head = text[:-2] if text.endswith("ms") else text[:-1]
        if head.replace(".", "", 1).isdigit():
            return _sane(float(head) / (1000.0 if text.endswith("ms") else 1.0))
    pos, total = 0, 0.0
    for match in _GO_PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        # a bare number is seconds (some gateways send it that way)
        return parse_seconds(text) if pos == 0 else None
    return _sane(total)


#: RFC 3339 texts read, and the moment each names (None: not a timestamp with a zone): a provider states the same
#: reset on every answer until its window turns, so each is read once
_STAMPS: dict[str, float | None] = {}
_STAMPS_KEPT = 1024


def _stamp(text: str) -> float | None:
    """The moment an RFC 3339 text names, in epoch seconds; None for anything else or a time without a zone."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        return when.timestamp() if when.tzinfo is not None else None
    except (TypeError, ValueError, OverflowError):
        return None


def parse_rfc3339(value: Any, now: float) -> float | None:
    """An RFC 3339 timestamp (anthropic's resets) as seconds from ``now``."""
    try:
        text = str(value).strip()
        if len(text) > 40:
            return None
        try:
            stamp = _STAMPS[text]  # one lookup: another thread's clear between two would lose it
        except KeyError:
            if len(_STAMPS) >= _STAMPS_KEPT:
                _STAMPS.clear()
            stamp = _STAMPS[text] = _stamp(text)
        return None if stamp is None else _sane(max(0.0, stamp - now))
    except (TypeError, ValueError, OverflowError):
        return None


def parse_reset(value: Any, now: float) -> float | None:
    """A reset value in whichever form a provider uses: duration, seconds, epoch or timestamp."""
    if value is None:
        return None
    secs = parse_go_duration(value)
    if secs is not None:
        return secs
    stamp = parse_rfc3339(value, now)
    if stamp is not None:
        return stamp
    num = parse_seconds(value)
    if num is None:
        try:
            num = float(str(value).strip())
        except (TypeError, ValueError, OverflowError):
            return None
        if math.isnan(num):
            return None
    if num > 1e12:  # epoch milliseconds
        num = num / 1000.0 - now
    elif num > 1e9:  # epoch seconds
        num -= now
    return _sane(max(0.0, num))


def parse_int(value: Any) -> int | None:
    """A non-negative integer count, or None."""
    try:
        if value is None:
            return None
        text = str(value).strip()
        if text.isdigit() and len(text) <= 18:
            return int(text)
        if not text or len(text) > 20:
            return None
        num = int(float(text))
        return num if num >= 0 else None
    except (TypeError, ValueError, OverflowError):
        return None


def gemini_retry_delay(body: Any) -> float | None:
    """The ``google.rpc.RetryInfo`` ``retryDelay`` in a gemini error body, in seconds."""
    for detail in _details(body):
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            return parse_go_duration(detail.get("retryDelay"))
    return None


def _details(body: Any) -> list[dict]:
    if not isinstance(body, dict):
        return []
    err = body.get("error")
    if isinstance(err, list) and err:  # gemini sometimes wraps the error in a list
        err = err[0]
    details = err.get("details") if isinstance(err, dict) else None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


@dataclass(slots=True)
class RateLimits:
    """What the provider's headers said about the key's remaining budget."""

    requests_limit: int | None = None
    requests_remaining: int | None = None
    requests_reset_s: float | None = None
    tokens_limit: int | None = None
    tokens_remaining: int | None = None
    tokens_reset_s: float | None = None

    def is_empty(self) -> bool:
        return self.requests_limit is None and self.requests_remaining is None and self.tokens_remaining is None

    def headroom(self) -> float:
        """Fraction of the budget left (0..1); 1.0 when the headers said nothing."""
        frac = 1.0  # read on every answer that states a budget: comparisons, not min/max over pairs
        remaining, limit = self.requests_remaining, self.requests_limit
        if remaining is not None and limit and remaining / limit < frac:
            frac = remaining / limit
        remaining, limit = self.tokens_remaining, self.tokens_limit
        if remaining is not None and limit and remaining / limit < frac:
            frac = remaining / limit
        return frac if frac > 0.0 else 0.0

    def reset_s(self) -> float | None:
        """The reset of whichever budget is spent (or the later one when neither says)."""
        if self.requests_remaining == 0 and self.requests_reset_s is not None:
            return self.requests_reset_s
        if self.tokens_remaining == 0 and self.tokens_reset_s is not None:
            return self.tokens_reset_s
        resets = [r for r in (self.requests_reset_s, self.tokens_reset_s) if r is not None]
        return max(resets) if resets else None


#: the organization headers (core/accounts.py reads them), kept beside the rate-limit ones
_ORG_SUFFIXES = (b"-organization", b"-organization-id")
_NAME = itemgetter(0)
#: per set of header names (as they came): the positions of the ones classify reads, and their names lowered
_SIGNALS: dict[tuple[bytes, ...], tuple[tuple[int, ...], tuple[str, ...]]] = {}
_SIGNALS_KEPT = 256  # sets remembered (an upstream sends a few)


def _signals(names: tuple[bytes, ...]) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Which of ``names`` classify reads (rate limits, retry-after, organization), and each lowered."""
    at = [i for i, name in enumerate(names) if b"ratelimit" in (lowered := name.lower())
          or lowered.startswith(b"retry-after") or lowered.endswith(_ORG_SUFFIXES)]
    return tuple(at), tuple(names[i].lower().decode("latin-1") for i in at)


def lower_headers(headers: Mapping[str, str] | Any) -> Mapping[str, str]:
    """A mapping whose ``get`` is case-insensitive (httpx.Headers already is)."""
    try:
        raw = getattr(headers, "raw", None)
        if raw is not None and hasattr(headers, "get_list"):  # httpx.Headers: keep only what classify reads
            names = tuple(map(_NAME, raw))
            found = _SIGNALS.get(names)  # which lines those are, worked out once per set of names
            if found is None:
                if len(_SIGNALS) >= _SIGNALS_KEPT:
                    _SIGNALS.clear()
                found = _SIGNALS[names] = _signals(names)
            at, lowered = found
            if not at:
                return {}
            return dict(zip(lowered, [raw[i][1].decode("latin-1") for i in at], strict=True))  # the last one wins
        return {str(k).lower(): v for k, v in dict(headers).items()}
    except (TypeError, ValueError):
        return {}


_ANTHROPIC = ("anthropic-ratelimit-requests-", "anthropic-ratelimit-tokens-")
_ANTHROPIC_INPUT = "anthropic-ratelimit-input-tokens-"
#: openai's six names (requests then tokens: limit, remaining, reset), spelled once
_OPENAI = tuple(f"x-ratelimit-{part}-{what}" for what in ("requests", "tokens")
                for part in ("limit", "remaining", "reset"))


def parse_rate_limits(dialect: str, headers: Mapping[str, str], now: float) -> RateLimits | None:
    """Read the dialect's rate-limit headers; None when there are none."""
    if type(headers) is dict and not any("ratelimit" in name for name in headers):
        return None  # lower-case names (lower_headers), none of them a rate limit: every name below is one
    get = headers.get
    if dialect == "anthropic":
        req, tok = _ANTHROPIC
        if get(tok + "remaining") is None and get(_ANTHROPIC_INPUT + "remaining") is not None:
            tok = _ANTHROPIC_INPUT  # only the input-token window stated (its ITPM binds)
        rl = RateLimits(
            parse_int(get(req + "limit")),
            parse_int(get(req + "remaining")),
            parse_reset(get(req + "reset"), now),
            parse_int(get(tok + "limit")),
            parse_int(get(tok + "remaining")),
            parse_reset(get(tok + "reset"), now),
        )
    elif dialect == "mistral":
        rl = RateLimits(
            parse_int(get("x-ratelimit-limit-req-minute")),
            parse_int(get("x-ratelimit-remaining-req-minute")),
            None,
            parse_int(get("x-ratelimit-limit-tokens-minute")),
            parse_int(get("x-ratelimit-remaining-tokens-minute")),
            None,
        )
    else:
        req_limit, req_left, req_reset, tok_limit, tok_left, tok_reset = _OPENAI
        rl = RateLimits(
            parse_int(get(req_limit)),
            parse_int(get(req_left)),
            parse_reset(get(req_reset), now),
            parse_int(get(tok_limit)),
            parse_int(get(tok_left)),
            parse_reset(get(tok_reset), now),
        )
    return None if rl.is_empty() and rl.reset_s() is None else rl
