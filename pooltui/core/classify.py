"""Turn a provider response (status, headers, body) into an outcome for the key that got it.

Five outcomes, from the providers' public docs and their real error bodies: rate limit (wait), quota (park),
invalid (disable), provider transient (back off, don't blame the key), request error (return to the caller).
"""

from __future__ import annotations

import json
import json.scanner
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pooltui.core.accounts import read_org
from pooltui.core.headers import (
    RateLimits,
    lower_headers,
    parse_rate_limits,
    parse_retry_after,
    parse_retry_after_ms,
)
from pooltui.core.health import DeadlineSource, Outcome
from pooltui.core.hints import reset_hint
from pooltui.core.masking import scrub
from pooltui.core.signatures import Signature
from pooltui.core.signatures import match as match_signature

DIALECTS = ("anthropic", "openai", "openrouter", "gemini", "groq", "mistral", "deepseek", "openai-compatible")

_QUOTA_CODES = frozenset(
    {
        "insufficient_quota",
        "credit_balance_exhausted",
        "billing_hard_limit_reached",
        "organization_usage_limit_exceeded",
        "project_spend_limit_exceeded",
        "organization_spend_limit_exceeded",
        "user_spend_limit_exceeded",
        "spend_limit_exceeded",
    }
)
_TRANSIENT_STATUS = frozenset({408, 409, 425, 498, 500, 502, 503, 504, 520, 521, 522, 524, 529})
_PACIFIC = ZoneInfo("America/Los_Angeles")
_USAGE_WALL_S = 1800.0  # a usage wall that names no time: parked 30 min
_HOUR_S = 3600.0  # an hourly usage wall that names no time: back within the hour
#: providers whose limits are per (key, model): a 429 there speaks of the request's model only
PER_MODEL_DIALECTS = frozenset({"openai", "anthropic", "gemini", "groq"})


@dataclass(slots=True)
class Classification:
    """The meaning of one response for the key that received it."""

    outcome: Outcome
    status: int
    reason: str = ""
    retry_after_s: float | None = None
    source: DeadlineSource | None = None
    limits: RateLimits | None = None
    #: a 429 of one model (its message names a model, or the provider limits per model): the pool cools that
    #: (key, model) at once, the whole key only when a second model 429s on it too
    model_scoped: bool = False
    #: a 429 that says a token budget was spent (tokens per minute, input tokens...), not the count of requests
    tokens: bool = False
    #: the fingerprint of the organization the answer's headers name (core/accounts.py), None when unnamed
    org: str | None = None


#: json.loads's own scanner (its default decoder's), called straight: what json.loads gives for a text that starts
#: with a value and has nothing after it, without its wrappers (type and BOM checks, two whitespace scans)
_scan_json: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    json.JSONDecoder())  # type: ignore[arg-type]  # typeshed names its argument's type after itself


def parse_body(body: Any) -> Any:
    """A JSON body from bytes/str/dict; None when it is not JSON."""
    if body is None or isinstance(body, dict | list):
        return body
    try:
        if isinstance(body, bytes | bytearray | memoryview):
            body = bytes(body).decode("utf-8", "replace")
        text = str(body).strip()
        if not text or text[0] not in "{[" or len(text) > 1_000_000:
            return None
        value, end = _scan_json(text, 0)  # stripped: json.loads would refuse anything left after the value
        return value if end == len(text) else None
    except (StopIteration, ValueError, TypeError, RecursionError):
        return None


def _error(body: Any) -> dict:
    """The error object of an error body in any dialect's shape ({} when there is none)."""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]
    if not isinstance(body, dict):
        return {}
    err = body.get("error")
    if isinstance(err, dict):
        return err
    if isinstance(err, str):
        return {"message": err}
    return body


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _full_message(err: dict) -> str:
    """The error's message, whole (up to 4000 characters): hints often sit at its end."""
    for key in ("message", "detail", "msg"):
        text = _text(err.get(key))
        if text:
            return text[:4000]
    return ""


def _err_message(err: dict) -> str:
    """The message as a reason: its first 200 characters."""
    return _full_message(err)[:200]


def _next_month_utc(now: float) -> float:
    day = datetime.fromtimestamp(now, UTC)
    first = (day.replace(day=1, hour=0, minute=0, second=0, microsecond=0) + timedelta(days=32)).replace(day=1)
    return first.timestamp() - now


def _next_pacific_midnight(now: float) -> float:
    day = datetime.fromtimestamp(now, _PACIFIC)
    midnight = (day + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.timestamp() - now


def _wait_from_signals(headers: Mapping[str, str], limits: RateLimits | None, body: Any, now: float,
                       message: str = ""):
    """The provider's wait, in this order: retry-after headers, an explicit retry in the body or message, the
    rate-limit reset headers, a reset in the body or message. A wait of 0 or less (a reset already past,
    ``retry-after: 0``) says nothing and never becomes a 0 s cooldown."""
    wait = parse_retry_after_ms(headers.get("retry-after-ms"))
    if wait is not None and wait > 0:
        return wait, DeadlineSource.RETRY_AFTER
    wait = parse_retry_after(headers.get("retry-after"), now) if headers.get("retry-after") is not None else None
    if wait is not None and wait > 0:
        return wait, DeadlineSource.RETRY_AFTER
    hint = reset_hint(body, message, now)
    if hint is not None and hint.retry:
        return hint.seconds, DeadlineSource.BODY
    if limits is not None:
        reset = limits.reset_s()
        if reset is not None and reset > 0:
            return reset, DeadlineSource.RESET_HEADER
    if hint is not None:
        return hint.seconds, DeadlineSource.BODY
    return None, None


def classify(dialect: str, status: int, headers: Any, body: Any, now: float) -> Classification:
    """Classify one response. Never raises, whatever the headers and body hold."""
    try:
        lowered = lower_headers(headers)
        if type(status) is int and 200 <= status < 300:  # the usual answer: its headers only (no body, no reason)
            result = Classification(Outcome.OK, status, model_scoped=dialect in PER_MODEL_DIALECTS)
            if lowered:  # rate limits or an organization named: none of either otherwise
                result.limits = parse_rate_limits(dialect, lowered, now)
                result.org = read_org(lowered)
            return result
        result = _classify(dialect, int(status), lowered, body, now)
        result.org = read_org(lowered)
        if result.reason:
            result.reason = scrub(result.reason)  # an upstream may echo the key it was sent
        return result
    except Exception as exc:
        code = status if isinstance(status, int) and not isinstance(status, bool) else 0
        outcome = Outcome.OK if 200 <= code < 300 else Outcome.TRANSIENT
        return Classification(outcome, code, f"unclassifiable response ({type(exc).__name__})")


def _classify(dialect: str, status: int, headers: Mapping[str, str], body: Any, now: float) -> Classification:
    limits = parse_rate_limits(dialect, headers, now)
    if 200 <= status < 300:  # on a provider that limits per model, its headers speak of the request's model
        return Classification(Outcome.OK, status, limits=limits, model_scoped=dialect in PER_MODEL_DIALECTS)
    data = parse_body(body)
    err = _error(data)
    etype = _text(err.get("type")) or _text(err.get("status"))
    code = _text(err.get("code")) if not isinstance(err.get("code"), int) else ""
    message = _err_message(err) or f"HTTP {status}"
    full = _full_message(err)  # the whole text: the wait is often at its end ("Please try again in 10.78s")
    lowered = full.lower() or message.lower()
    raw_details = err.get("details")
    details = raw_details if isinstance(raw_details, dict) else {}
    signature = match_signature(status, dialect, data, err, full or message)
    if signature is not None:
        return _by_signature(signature, dialect, status, headers, data, limits, now, message, full)

    def quota(reason: str, reset: float | None = None) -> Classification:
        if reset is None:  # the body or the message may say when the quota comes back
            hint = reset_hint(data, full, now)
            reset = hint.seconds if hint is not None else None
        src = DeadlineSource.KNOWN_RESET if reset is not None else None
        return Classification(Outcome.QUOTA, status, reason, reset, src, limits)

    if status == 401:
        if "insufficient permissions" in lowered or "missing scopes" in lowered:
            return Classification(Outcome.FORBIDDEN, status, f"restricted key: {message}", limits=limits)
        return Classification(Outcome.INVALID, status, message, limits=limits)
    if status == 400 and dialect == "gemini":
        reasons = {_text(d.get("reason")) for d in _gemini_details(data)}
        if "API_KEY_INVALID" in reasons or "api key not valid" in lowered:
            return Classification(Outcome.INVALID, status, message, limits=limits)
        if "location is not supported" in lowered:
            return Classification(Outcome.FORBIDDEN, status, message, limits=limits)
    if status == 403:
        return Classification(Outcome.FORBIDDEN, status, message, limits=limits)
    if status == 402:
        if code == "openrouter_in_flight_budget" or "in_flight" in code:
            wait, src = _wait_from_signals(headers, limits, data, now, full)
            return Classification(Outcome.RATE_LIMITED, status, message, wait, src, limits)
        return quota(message)
    if status == 400 and dialect == "anthropic" and (
        "credit balance is too low" in lowered or "specified api usage limits" in lowered
    ):
        return quota(message)
    if status == 429:
        if etype == "insufficient_quota" or code in _QUOTA_CODES:
            return quota(message)
        if "session usage limit" in lowered or "weekly usage limit" in lowered:  # Ollama's hosted usage wall
            hint = reset_hint(data, full, now)
            return quota(message, hint.seconds if hint is not None else _USAGE_WALL_S)
        has_retry = headers.get("retry-after") is not None or headers.get("retry-after-ms") is not None
        if _text(details.get("error_code")) == "enforced_spend_limit_reached" and not has_retry:
            return quota(message, _next_month_utc(now))
        if dialect == "gemini" and any("PerDay" in _text(v.get("quotaId")) for v in _gemini_violations(data)):
            return quota(message, _next_pacific_midnight(now))
        wait, src = _wait_from_signals(headers, limits, data, now, full)
        return Classification(Outcome.RATE_LIMITED, status, message, wait, src, limits,
                              _model_scoped(dialect, lowered), _speaks_of_tokens(etype, lowered, headers, limits))
    if status in _TRANSIENT_STATUS or status >= 500:
        wait, src = _wait_from_signals(headers, None, data, now, full)
        return Classification(Outcome.TRANSIENT, status, message, wait, src, limits)
    return Classification(Outcome.REQUEST_ERROR, status, message, limits=limits)


_TOKEN_WORDS = re.compile(r"tokens? per (?:min|minute|day|hour)|\((?:tpm|itpm|otpm|tpd)\)|input tokens|output tokens"
                          r"|token rate limit")
_TOKEN_HEADERS = ("anthropic-ratelimit-input-tokens-remaining", "anthropic-ratelimit-output-tokens-remaining")


def _speaks_of_tokens(etype: str, lowered: str, headers: Mapping[str, str], limits: RateLimits | None) -> bool:
    """A 429 whose body or headers say a token budget was spent: openai's and groq's ``"type": "tokens"`` and
    "on tokens per min (TPM)", anthropic's "input tokens per minute", or a token budget stated at 0 while the
    request budget still has room."""
    if etype == "tokens" or _TOKEN_WORDS.search(lowered) is not None:
        return True
    if any(headers.get(h) == "0" for h in _TOKEN_HEADERS):
        return True
    return limits is not None and limits.tokens_remaining == 0 and (limits.requests_remaining or 0) > 0


def _model_scoped(dialect: str, lowered: str) -> bool:
    return dialect in PER_MODEL_DIALECTS or "model" in lowered


def _by_signature(sig: Signature, dialect: str, status: int, headers: Mapping[str, str], data: Any,
                  limits: RateLimits | None, now: float, message: str, full: str) -> Classification:
    """What a body whose status misleads really means (signatures.py), its reason naming the signature and
    the status it came with, e.g. "organization disabled (HTTP 400): This organization has been disabled"."""
    reason = f"{sig.name} (HTTP {status}): {message}"
    outcome = sig.outcome
    if outcome is Outcome.QUOTA:
        hint = reset_hint(data, full, now)
        reset: float | None = hint.seconds if hint is not None else \
            {"month": _next_month_utc(now), "hour": _HOUR_S}.get(sig.reset or "")
        src = DeadlineSource.KNOWN_RESET if reset is not None else None
        return Classification(outcome, status, reason, reset, src, limits)
    if outcome is Outcome.RATE_LIMITED:
        wait, src = _wait_from_signals(headers, limits, data, now, full)
        return Classification(outcome, status, reason, wait, src, limits, _model_scoped(dialect, full.lower()),
                              _speaks_of_tokens("", full.lower(), headers, limits))
    if outcome is Outcome.TRANSIENT:
        wait, src = _wait_from_signals(headers, None, data, now, full)
        return Classification(outcome, status, reason, wait, src, limits)
    return Classification(outcome, status, reason, limits=limits)


def _gemini_details(body: Any) -> list[dict]:
    err = _error(body)
    details = err.get("details")
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _gemini_violations(body: Any) -> list[dict]:
    out: list[dict] = []
    for detail in _gemini_details(body):
        violations = detail.get("violations")
        if isinstance(violations, list):
            out.extend(v for v in violations if isinstance(v, dict))
    return out
