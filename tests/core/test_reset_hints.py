"""Issue 6.3: reset hints in bodies and messages. Real error bodies of eight providers (from their public
docs and issue threads), each fed to the engine: the state it puts the key in, and until when."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pooltui.core import KeySpec, Pool, classify
from pooltui.core.clock import FakeClock
from pooltui.core.hints import body_hints, duration_words, message_hints, reset_hint

NOW = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC

OPENAI_RPM = {"error": {
    "message": "Rate limit reached for gpt-4o in organization org-abc on requests per min (RPM): Limit 500, "
               "Used 500, Requested 1. Please try again in 120ms. Visit https://platform.openai.com/account/"
               "rate-limits to learn more.", "type": "requests", "param": None, "code": "rate_limit_exceeded"}}
OPENAI_TPM = {"error": {
    "message": "Rate limit reached for gpt-4o-mini in organization org-abc on tokens per min (TPM): Limit "
               "200000, Used 199500, Requested 1200. Please try again in 1m30s. Visit https://platform.openai."
               "com/account/rate-limits to learn more.", "type": "tokens", "param": None,
    "code": "rate_limit_exceeded"}}
OPENAI_QUOTA = {"error": {
    "message": "You exceeded your current quota, please check your plan and billing details. For more "
               "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/"
               "api-errors.", "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}}
ANTHROPIC_429 = {"type": "error", "error": {
    "type": "rate_limit_error",
    "message": "This request would exceed the rate limit for your organization (org-abc) of 50,000 input "
               "tokens per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits."},
    "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}
GEMINI_RPM = {"error": {
    "code": 429, "status": "RESOURCE_EXHAUSTED",
    "message": "You exceeded your current quota, please check your plan and billing details.",
    "details": [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            "quotaDimensions": {"location": "global", "model": "gemini-2.0-flash"}, "quotaValue": "15"}]},
        {"@type": "type.googleapis.com/google.rpc.Help", "links": [{"description": "Learn more",
                                                                     "url": "https://ai.google.dev/gemini-api"}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "38s"}]}}
GEMINI_QUOTA_RESET = {"error": {
    "code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Resource has been exhausted (e.g. check quota).",
    "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED",
                 "domain": "googleapis.com", "metadata": {"quotaResetDelay": "1500ms",
                                                          "service": "generativelanguage.googleapis.com"}}]}}
OPENROUTER_DAILY = {"error": {
    "message": "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests "
               "per day", "code": 429,
    "metadata": {"headers": {"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "0",
                             "X-RateLimit-Reset": str(int((NOW + 7200) * 1000))}, "provider_name": None}},
    "user_id": "user_2abc"}
GROQ_TPM = {"error": {
    "message": "Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_01abc` service "
               "tier `on_demand` on tokens per minute (TPM): Limit 6000, Used 5862, Requested 1216. Please try "
               "again in 10.78s. Need more tokens? Upgrade to Dev Tier today at https://console.groq.com/"
               "settings/billing", "type": "tokens", "code": "rate_limit_exceeded"}}
MISTRAL_429 = {"object": "error", "message": "Requests rate limit exceeded", "type": "rate_limited",
               "param": None, "code": "1300"}
DEEPSEEK_402 = {"error": {"message": "Insufficient Balance", "type": "unknown_error", "param": None,
                          "code": "invalid_request_error"}}
OLLAMA_WALL = {"error": "you've reached your session usage limit, please wait or upgrade to continue"}
OLLAMA_WALL_TIMED = {"error": "you (user) have reached your session usage limit, upgrade for higher limits. "
                              "Resets in 2 hours 5 minutes."}
CODEX_STYLE = {"error": {"type": "usage_limit_reached", "message": "The usage limit has been reached",
                         "resets_at": int(NOW + 3 * 3600), "plan_type": "plus"}}

CASES = [
    # provider, dialect, status, headers, body, state, seconds until it may serve again (None: no deadline)
    ("openai rpm", "openai", 429, {}, OPENAI_RPM, "cooling", 1.0),  # 120 ms said: the floor holds it 1 s
    ("openai tpm", "openai", 429, {}, OPENAI_TPM, "cooling", 90.0),
    ("openai quota", "openai", 429, {}, OPENAI_QUOTA, "exhausted", None),
    ("anthropic", "anthropic", 429, {"retry-after": "17"}, ANTHROPIC_429, "cooling", 17.0),
    ("anthropic overloaded", "anthropic", 529, {},
     {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "ok", None),
    ("gemini rpm", "gemini", 429, {}, GEMINI_RPM, "cooling", 38.0),
    ("gemini reset delay", "gemini", 429, {}, GEMINI_QUOTA_RESET, "cooling", 1.5),
    ("openrouter daily", "openrouter", 429, {}, OPENROUTER_DAILY, "exhausted", 7200.0),  # a daily allowance: parked
    ("groq tpm", "groq", 429, {}, GROQ_TPM, "cooling", 10.78),
    ("mistral", "mistral", 429, {}, MISTRAL_429, "cooling", 30.0),  # says nothing: the default cooldown
    ("deepseek balance", "deepseek", 402, {}, DEEPSEEK_402, "exhausted", None),
    ("ollama wall", "openai-compatible", 429, {}, OLLAMA_WALL, "exhausted", 1800.0),
    ("ollama wall timed", "openai-compatible", 429, {}, OLLAMA_WALL_TIMED, "exhausted", 7500.0),
    ("usage limit resets_at", "openai-compatible", 429, {}, CODEX_STYLE, "cooling", 10800.0),
    ("retry-after 0 says nothing", "openai", 429, {"retry-after": "0"}, OPENAI_RPM, "cooling", 1.0),
]


@pytest.mark.parametrize(("name", "dialect", "status", "headers", "body", "state", "seconds"), CASES,
                         ids=[c[0] for c in CASES])
def test_real_error_bodies_give_the_right_state_and_deadline(name, dialect, status, headers, body, state,
                                                             seconds) -> None:
    clock = FakeClock(NOW)
    pool = Pool("p", [KeySpec("a", "sk-test-hint-a-00000000001"), KeySpec("b", "sk-test-hint-b-0000000001")],
                clock=clock)
    key = pool.pick()
    result = classify(dialect, status, headers, body, NOW)
    pool.report(key, result)
    assert key.state.value == state, (name, result)
    if seconds is None:
        assert key.until is None
    else:
        assert key.until is not None and key.until - NOW == pytest.approx(seconds, abs=0.01), (name, result)


@pytest.mark.parametrize(("text", "seconds"), [
    ("Resets in 6hr 29min", 6 * 3600 + 29 * 60), ("resets in 2 hours 5 minutes", 7500), ("resets in 45s", 45),
    ("please retry after 12 seconds", 12), ("try again in 1m30s", 90), ("Please try again in 6ms", 0.006),
    ("Retry after 30s; resets in 4hr", 30), ("try again in 1 day", 86400)])
def test_message_grammars(text: str, seconds: float) -> None:
    hint = reset_hint(None, text, NOW)
    assert hint is not None and hint.seconds == pytest.approx(seconds)


@pytest.mark.parametrize("field", ["reset_at", "resets_at", "retry_until"])
@pytest.mark.parametrize("value", [NOW + 600, (NOW + 600) * 1000, str(int(NOW + 600)), "2026-09-21T14:23:20Z"])
def test_body_reset_fields_in_every_form(field: str, value) -> None:
    for body in ({field: value}, {"error": {field: value}}):
        hint = reset_hint(body, "", NOW)
        assert hint is not None and hint.seconds == pytest.approx(600, abs=1)


@pytest.mark.parametrize("value", [0, -5, NOW - 60, "1970-01-01T00:00:00Z", "nan", float("inf"), None, "soon"])
def test_a_reset_of_zero_or_in_the_past_says_nothing(value) -> None:
    assert body_hints({"reset_at": value}, NOW) == []
    assert message_hints("try again in 0s") == []


@given(st.one_of(st.text(max_size=200), st.dictionaries(st.sampled_from(["reset_at", "resets_at", "retry_until",
                                                                          "error", "details", "metadata"]),
                                                        st.one_of(st.none(), st.integers(), st.floats(),
                                                                  st.text(max_size=30),
                                                                  st.lists(st.dictionaries(st.text(max_size=8),
                                                                                           st.text(max_size=8)),
                                                                           max_size=2)),
                                                        max_size=4)))
def test_the_hint_parser_never_raises_nor_returns_a_bad_delay(value) -> None:
    text = value if isinstance(value, str) else ""
    body = value if isinstance(value, dict) else None
    hint = reset_hint(body, text, NOW)
    for found in [hint, *body_hints(body, NOW), *message_hints(text)]:
        if found is not None:
            assert math.isfinite(found.seconds) and found.seconds > 0
    seconds = duration_words(text)
    assert seconds is None or (math.isfinite(seconds) and seconds > 0)
