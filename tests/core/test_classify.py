"""The classification table of PROVIDERS.md, dialect by dialect; arbitrary input never raises."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pooltui.core import DIALECTS, DeadlineSource, Outcome, classify

NOW = 1_790_000_000.0


def c(dialect: str, status: int, body=None, headers=None):
    return classify(dialect, status, headers or {}, json.dumps(body) if body is not None else b"", NOW)


def test_success_reads_rate_limits() -> None:
    r = c("openai", 200, {}, {"x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": "42"})
    assert r.outcome is Outcome.OK and r.limits.requests_remaining == 42


@pytest.mark.parametrize("dialect", ["anthropic", "openai", "groq", "mistral", "deepseek", "openrouter"])
def test_401_is_invalid(dialect: str) -> None:
    assert c(dialect, 401, {"error": {"message": "bad key"}}).outcome is Outcome.INVALID


def test_openai_restricted_key_is_forbidden_not_invalid() -> None:
    body = {"error": {"message": "You have insufficient permissions for this operation. Missing scopes: model.read"}}
    assert c("openai", 401, body).outcome is Outcome.FORBIDDEN


def test_gemini_invalid_key_is_a_400() -> None:
    body = {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                      "status": "INVALID_ARGUMENT",
                      "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}}
    assert c("gemini", 400, body).outcome is Outcome.INVALID


def test_403_is_forbidden() -> None:
    body = {"type": "error", "error": {"type": "permission_error", "message": "no"}}
    assert c("anthropic", 403, body).outcome is Outcome.FORBIDDEN


@pytest.mark.parametrize("code", ["insufficient_quota", "credit_balance_exhausted", "project_spend_limit_exceeded"])
def test_openai_quota_codes_park_the_key(code: str) -> None:
    r = c("openai", 429, {"error": {"message": "quota", "type": "insufficient_quota", "code": code}},
          {"retry-after": "20"})
    assert r.outcome is Outcome.QUOTA and r.retry_after_s is None  # until re-verified


def test_anthropic_spend_limit_parks_until_the_first_of_next_month() -> None:
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "spend limit",
                                       "details": {"error_code": "enforced_spend_limit_reached"}}}
    r = c("anthropic", 429, body)
    assert r.outcome is Outcome.QUOTA and r.source is DeadlineSource.KNOWN_RESET
    assert 0 < r.retry_after_s <= 31 * 86400


def test_anthropic_credit_balance_400_is_quota() -> None:
    body = {"type": "error", "error": {"type": "invalid_request_error",
                                       "message": "Your credit balance is too low to access the Anthropic API."}}
    assert c("anthropic", 400, body).outcome is Outcome.QUOTA


def test_402_is_quota_and_openrouter_in_flight_budget_is_a_rate_limit() -> None:
    assert c("deepseek", 402, {"error": {"message": "Insufficient Balance"}}).outcome is Outcome.QUOTA
    r = c("openrouter", 402, {"error": {"code": "openrouter_in_flight_budget", "message": "busy"}},
          {"retry-after": "3"})
    assert r.outcome is Outcome.RATE_LIMITED and r.retry_after_s == 3.0


def test_gemini_per_day_quota_waits_for_pacific_midnight() -> None:
    body = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota", "details": [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
         "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "38s"}]}}
    r = c("gemini", 429, body)
    assert r.outcome is Outcome.QUOTA and 0 < r.retry_after_s <= 25 * 3600


def test_gemini_per_minute_limit_uses_retry_info() -> None:
    body = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "38s"}]}}
    r = c("gemini", 429, body)
    assert (r.outcome, r.retry_after_s, r.source) == (Outcome.RATE_LIMITED, 38.0, DeadlineSource.BODY)


def test_rate_limit_wait_prefers_retry_after_ms_then_retry_after_then_reset_headers() -> None:
    h = {"retry-after-ms": "1500", "retry-after": "9", "x-ratelimit-remaining-requests": "0",
         "x-ratelimit-reset-requests": "20s"}
    assert c("openai", 429, {}, h).retry_after_s == 1.5
    del h["retry-after-ms"]
    assert c("openai", 429, {}, h).retry_after_s == 9.0
    del h["retry-after"]
    r = c("openai", 429, {}, h)
    assert (r.retry_after_s, r.source) == (20.0, DeadlineSource.RESET_HEADER)
    r = c("openai", 429, {"error": {"code": "rate_limit_exceeded"}}, {"retry-after": "garbage!"})
    assert r.outcome is Outcome.RATE_LIMITED and r.retry_after_s is None  # garbage ignored: default applies


@pytest.mark.parametrize("status", [500, 502, 503, 504, 529, 498, 408])
def test_provider_transient(status: int) -> None:
    assert c("groq" if status == 498 else "anthropic", status, {"type": "error"}).outcome is Outcome.TRANSIENT


@pytest.mark.parametrize("status", [400, 404, 413, 422])
def test_request_errors_are_returned_not_rotated(status: int) -> None:
    assert c("openai", status, {"error": {"message": "bad request"}}).outcome is Outcome.REQUEST_ERROR


@given(
    dialect=st.sampled_from(DIALECTS),
    status=st.integers(-5, 1000),
    headers=st.dictionaries(st.text(max_size=30), st.text(max_size=40), max_size=6),
    body=st.one_of(st.none(), st.binary(max_size=200), st.text(max_size=200),
                   st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                                lambda ch: st.lists(ch, max_size=4) | st.dictionaries(st.text(max_size=8), ch,
                                                                                      max_size=4),
                                max_leaves=12).map(json.dumps)),
)
def test_classifier_never_raises(dialect, status, headers, body) -> None:
    r = classify(dialect, status, headers, body, NOW)
    assert r.outcome in Outcome
    assert r.retry_after_s is None or r.retry_after_s >= 0
