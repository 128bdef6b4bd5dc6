"""Every branch of the classification, checked whole: outcome, status, reason, the wait and where it came
from, and that the rate-limit headers travel with the answer (PROVIDERS.md's table, case by case)."""

from __future__ import annotations

import json

import pytest

from pooltui.core import classify
from pooltui.core.classify import _QUOTA_CODES

NOW = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC (07:13:20 in Los Angeles)
H = {"x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "20s"}
INFLIGHT = "openrouter_in_flight_budget"
SPEND = {"error_code": "enforced_spend_limit_reached"}
PER_DAY = [{"violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]
PER_MINUTE = [{"violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}]}]
LONG = "x" * 300 + " Please try again in 12s."


def e(message: str | None = None, **fields) -> dict:
    return {"error": {**fields, **({"message": message} if message is not None else {})}}


CASES = [  # name, dialect, status, body, headers -> outcome, reason, wait, source, limits kept
    ("ok", "openai", 200, {}, H, ("ok", "", None, None, True)),
    ("invalid", "openai", 401, e("Incorrect API key provided"), H,
     ("invalid", "Incorrect API key provided", None, None, True)),
    ("restricted", "openai", 401, e("You have insufficient permissions for this operation."), H,
     ("forbidden", "restricted key: You have insufficient permissions for this operation.", None, None, True)),
    ("scopes", "openai", 401, e("Missing scopes: model.request"), H,
     ("forbidden", "restricted key: Missing scopes: model.request", None, None, True)),
    ("gemini key reason", "gemini", 400, e("bad", details=[{"reason": "API_KEY_INVALID"}]), H,
     ("invalid", "bad", None, None, True)),
    ("gemini key text", "gemini", 400, e("API key not valid. Please pass a valid API key."), {},
     ("invalid", "API key not valid. Please pass a valid API key.", None, None, False)),
    ("gemini location", "gemini", 400, e("User location is not supported for the API use."), H,
     ("forbidden", "User location is not supported for the API use.", None, None, True)),
    ("gemini other 400", "gemini", 400, e("Invalid JSON payload"), {},
     ("request_error", "Invalid JSON payload", None, None, False)),
    ("location is gemini's", "openai", 400, e("User location is not supported for the API use."), {},
     ("request_error", "User location is not supported for the API use.", None, None, False)),
    ("403", "openai", 403, e("Project does not have access"), H,
     ("forbidden", "Project does not have access", None, None, True)),
    ("in-flight budget", "openrouter", 402, e("Too many in flight", code=INFLIGHT), {"retry-after": "3", **H},
     ("rate_limited", "Too many in flight", 3.0, "retry-after", True)),
    ("in-flight reset", "openrouter", 402, e("Too many in flight", code=INFLIGHT), H,
     ("rate_limited", "Too many in flight", 20.0, "reset-header", True)),
    ("in-flight code", "openrouter", 402, e("in flight", code="key_in_flight_cap"), {},
     ("rate_limited", "in flight", None, None, False)),
    ("402", "openrouter", 402, e("Insufficient credits"), H, ("quota", "Insufficient credits", None, None, True)),
    ("402 with its reset", "openrouter", 402, e("Insufficient credits", reset_at=NOW + 3600), {},
     ("quota", "Insufficient credits", 3600.0, "known-reset", False)),
    ("in-flight, told in words", "openrouter", 402, e("Too many in flight, try again in 4s", code=INFLIGHT), {},
     ("rate_limited", "Too many in flight, try again in 4s", 4.0, "body", False)),
    ("in-flight, reset in the body", "openrouter", 402, e("Too many", code=INFLIGHT, reset_at=NOW + 6), {},
     ("rate_limited", "Too many", 6.0, "body", False)),
    ("usage wall, reset in the body", "openai", 429, e("weekly usage limit", reset_at=NOW + 7200), {},
     ("quota", "weekly usage limit", 7200.0, "known-reset", False)),
    ("5xx, told in words", "openai", 503, e("Overloaded. Please try again in 7s."), {},
     ("transient", "Overloaded. Please try again in 7s.", 7.0, "body", False)),
    ("5xx, reset in the body", "openai", 502, e("bad gateway", reset_at=NOW + 9), {},
     ("transient", "bad gateway", 9.0, "body", False)),
    ("300 is no success", "openai", 300, None, H, ("request_error", "HTTP 300", None, None, True)),
    ("299 is", "openai", 299, None, H, ("ok", "", None, None, True)),
    ("anthropic credit", "anthropic", 400, e("Your credit balance is too low to access the Anthropic API."), {},
     ("quota", "Your credit balance is too low to access the Anthropic API.", None, None, False)),
    ("anthropic limits", "anthropic", 400, e("You have reached your specified API usage limits."), {},
     ("quota", "You have reached your specified API usage limits.", None, None, False)),
    ("credit words elsewhere", "openai", 400, e("Your credit balance is too low"), {},
     ("request_error", "Your credit balance is too low", None, None, False)),
    ("quota type", "openai", 429, e("You exceeded your current quota", type="insufficient_quota"), H,
     ("quota", "You exceeded your current quota", None, None, True)),
    ("quota type as status", "gemini", 429, e("out", status="insufficient_quota"), {},
     ("quota", "out", None, None, False)),
    ("usage wall", "openai", 429, e("you have reached your weekly usage limit"), H,
     ("quota", "you have reached your weekly usage limit", 1800.0, "known-reset", True)),
    ("usage wall with time", "openai", 429, e("you have reached your session usage limit, try again in 3 hours"), {},
     ("quota", "you have reached your session usage limit, try again in 3 hours", 10800.0, "known-reset", False)),
    ("spend limit", "openai", 429, e("spend limit", details=SPEND), H,
     ("quota", "spend limit", 812800.0, "known-reset", True)),  # to 2026-10-01 00:00 UTC
    ("spend limit, retry", "openai", 429, e("spend limit", details=SPEND), {"retry-after": "4"},
     ("rate_limited", "spend limit", 4.0, "retry-after", False)),
    ("spend limit, retry-ms", "openai", 429, e("spend limit", details=SPEND), {"retry-after-ms": "4000"},
     ("rate_limited", "spend limit", 4.0, "retry-after", False)),
    ("gemini per day", "gemini", 429, e("quota", details=PER_DAY), {},
     ("quota", "quota", 60400.0, "known-reset", False)),  # to midnight in Los Angeles
    ("gemini per minute", "gemini", 429, e("quota", details=PER_MINUTE), {},
     ("rate_limited", "quota", None, None, False)),
    ("per day is gemini's", "openai", 429, e("quota", details=PER_DAY), {},
     ("rate_limited", "quota", None, None, False)),
    ("retry-after-ms", "openai", 429, e("slow down"), {"retry-after-ms": "1500", **H},
     ("rate_limited", "slow down", 1.5, "retry-after", True)),
    ("retry-after 0", "openai", 429, e("slow down"), {"retry-after": "0", **H},
     ("rate_limited", "slow down", 20.0, "reset-header", True)),
    ("body", "openai", 429, e("Rate limit reached. Please try again in 10.78s."), {},
     ("rate_limited", "Rate limit reached. Please try again in 10.78s.", 10.78, "body", False)),
    ("nothing said", "openai", 429, e("slow down"), {}, ("rate_limited", "slow down", None, None, False)),
    ("503", "openai", 503, e("overloaded"), {"retry-after": "7", **H},
     ("transient", "overloaded", 7.0, "retry-after", True)),
    ("5xx ignores reset headers", "openai", 503, e("overloaded"), H, ("transient", "overloaded", None, None, True)),
    ("529", "anthropic", 529, e("Overloaded", type="overloaded_error"), {},
     ("transient", "Overloaded", None, None, False)),
    ("500", "openai", 500, None, {}, ("transient", "HTTP 500", None, None, False)),
    ("599", "openai", 599, None, {}, ("transient", "HTTP 599", None, None, False)),
    ("408", "openai", 408, None, {}, ("transient", "HTTP 408", None, None, False)),
    ("404", "openai", 404, e("no such model"), H, ("request_error", "no such model", None, None, True)),
    ("string error", "openai", 404, {"error": "boom"}, {}, ("request_error", "boom", None, None, False)),
    ("list body", "gemini", 404, [{"error": {"message": "listed"}}], {},
     ("request_error", "listed", None, None, False)),
    ("detail", "openai", 422, {"detail": "bad field"}, {}, ("request_error", "bad field", None, None, False)),
    ("msg", "openai", 422, {"msg": "bad msg"}, {}, ("request_error", "bad msg", None, None, False)),
    ("no message", "openai", 418, None, {}, ("request_error", "HTTP 418", None, None, False)),
    ("hint at the end", "openai", 429, e(LONG), {}, ("rate_limited", LONG[:200], 12.0, "body", False)),
]


@pytest.mark.parametrize("name, dialect, status, body, headers, expected", CASES, ids=[c[0] for c in CASES])
def test_classification(name, dialect, status, body, headers, expected) -> None:
    r = classify(dialect, status, headers, json.dumps(body) if body is not None else b"", NOW)
    wait = None if r.retry_after_s is None else round(r.retry_after_s, 2)
    got = (r.outcome.value, r.reason, wait, r.source.value if r.source else None, r.limits is not None)
    assert got == expected and r.status == status


@pytest.mark.parametrize("code", sorted(_QUOTA_CODES))
def test_every_quota_code_parks(code: str) -> None:
    r = classify("openai", 429, {}, json.dumps(e("no more", code=code)), NOW)
    assert (r.outcome.value, r.status, r.reason) == ("quota", 429, "no more")


def test_an_echoed_key_never_reaches_the_reason() -> None:
    from pooltui.core.masking import remember

    remember("sk-echo-0123456789abcdef0123")
    r = classify("openai", 401, {}, json.dumps(e("Incorrect API key provided: sk-echo-0123456789abcdef0123")), NOW)
    assert "0123456789abcdef" not in r.reason and r.reason.startswith("Incorrect API key provided: ")


def test_a_response_that_cannot_be_read_is_still_classified() -> None:
    """A status that is not a number used to raise out of classify (its fallback converted it again)."""
    r = classify("openai", "abc", {}, b"", NOW)  # type: ignore[arg-type]
    assert (r.outcome.value, r.status, r.reason) == ("transient", 0, "unclassifiable response (ValueError)")
