"""Headers, stream events and usage read field by field, per dialect: each value lands where it belongs."""

from __future__ import annotations

import httpx
import pytest

from pooltui.core.headers import RateLimits, lower_headers, parse_int, parse_rate_limits
from pooltui.core.sse import SSEScanner
from pooltui.core.usage import usage_from_body

NOW = 1_790_000_000.0


def test_openai_headers_each_in_its_field() -> None:
    h = {"x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": "42",
         "x-ratelimit-reset-requests": "6s", "x-ratelimit-limit-tokens": "9000",
         "x-ratelimit-remaining-tokens": "8000", "x-ratelimit-reset-tokens": "1m0s"}
    assert parse_rate_limits("openai", h, NOW) == RateLimits(100, 42, 6.0, 9000, 8000, 60.0)
    assert parse_rate_limits("groq", h, NOW) == RateLimits(100, 42, 6.0, 9000, 8000, 60.0)


def test_anthropic_headers_each_in_its_field() -> None:
    h = {"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "49",
         "anthropic-ratelimit-requests-reset": "2026-09-21T14:13:30Z", "anthropic-ratelimit-tokens-limit": "4000",
         "anthropic-ratelimit-tokens-remaining": "3000", "anthropic-ratelimit-tokens-reset": "2026-09-21T14:14:20Z"}
    assert parse_rate_limits("anthropic", h, NOW) == RateLimits(50, 49, 10.0, 4000, 3000, 60.0)
    assert parse_rate_limits("openai", h, NOW) is None  # another dialect's names say nothing here


def test_mistral_headers_each_in_its_field() -> None:
    h = {"x-ratelimit-limit-req-minute": "60", "x-ratelimit-remaining-req-minute": "59",
         "x-ratelimit-limit-tokens-minute": "500", "x-ratelimit-remaining-tokens-minute": "400"}
    assert parse_rate_limits("mistral", h, NOW) == RateLimits(60, 59, None, 500, 400, None)


def test_only_a_reset_still_counts_and_nothing_is_none() -> None:
    assert parse_rate_limits("openai", {"x-ratelimit-reset-tokens": "3s"}, NOW) == RateLimits(tokens_reset_s=3.0)
    assert parse_rate_limits("openai", {}, NOW) is None
    assert parse_rate_limits("openai", {"x-ratelimit-limit-tokens": "5"}, NOW) is None  # a limit alone: empty


def test_reset_of_the_spent_budget_first() -> None:
    assert RateLimits(requests_remaining=0, requests_reset_s=5, tokens_reset_s=9).reset_s() == 5
    assert RateLimits(requests_remaining=3, tokens_remaining=0, requests_reset_s=5, tokens_reset_s=9).reset_s() == 9
    assert RateLimits(tokens_remaining=0, requests_reset_s=5, tokens_reset_s=2).reset_s() == 2
    assert RateLimits(requests_remaining=1, requests_reset_s=5, tokens_reset_s=2).reset_s() == 5
    assert RateLimits().reset_s() is None
    both = RateLimits(requests_remaining=25, requests_limit=100, tokens_remaining=10, tokens_limit=20)
    assert both.headroom() == 0.25
    assert RateLimits(requests_remaining=250, requests_limit=100).headroom() == 1.0
    assert RateLimits(requests_remaining=-5, requests_limit=100).headroom() == 0.0
    assert RateLimits(requests_remaining=5, requests_limit=0).headroom() == 1.0


@pytest.mark.parametrize("value, parsed", [("12", 12), (" 7 ", 7), ("0", 0), ("1.5", 1), ("1e3", 1000), ("nan", None),
                                           ("-3", None), ("abc", None), (None, None), ("", None), ("9" * 30, None)])
def test_parse_int(value, parsed) -> None:
    assert parse_int(value) == parsed


def test_lower_headers_keeps_only_what_classify_reads_from_httpx() -> None:
    h = httpx.Headers([("X-RateLimit-Remaining-Requests", "4"), ("Retry-After", "2"), ("Retry-After-Ms", "900"),
                       ("Set-Cookie", "s=1"), ("Content-Type", "application/json")])
    assert lower_headers(h) == {"x-ratelimit-remaining-requests": "4", "retry-after": "2", "retry-after-ms": "900"}
    assert lower_headers({"Retry-After": "3", "X-Other": "y"}) == {"retry-after": "3", "x-other": "y"}
    assert lower_headers([("A", "1")]) == {"a": "1"}
    assert lower_headers(5) == {} and lower_headers(None) == {}


def scan(*chunks: bytes) -> SSEScanner:
    s = SSEScanner()
    for c in chunks:
        s.feed(c)
    return s


def test_first_data_event_and_usage_across_split_chunks() -> None:
    s = scan(b": keep-alive\n\nevent: ping\ndata: {}\n\n")
    assert not s.saw_data and s.error is None and not s.done
    s.feed(b'data: {"choices":[]}\r\n')
    assert not s.saw_data  # not dispatched before its blank line
    s.feed(b'\r\ndata: {"usage": {"prompt_tokens": 3, "completion_tokens": 5}}\n\ndata: [DONE]\n\n')
    assert (s.saw_data, s.tokens_in, s.tokens_out, s.done, s.error) == (True, 3, 5, True, None)


def test_anthropic_usage_grows_and_message_stop_ends() -> None:
    s = scan(b'event: message_start\ndata: {"message": {"usage": {"input_tokens": 9, "output_tokens": 1}}}\n\n',
             b'event: message_delta\ndata: {"usage": {"output_tokens": 30}}\n\n')
    assert (s.tokens_in, s.tokens_out, s.done) == (9, 30, False)
    s.feed(b'event: message_stop\ndata: {"type": "message_stop"}\n\n')
    assert s.done


def test_an_error_before_any_data_is_kept_and_is_not_data() -> None:
    s = scan(b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error"}}\n\n')
    assert (s.saw_data, s.error) == (False, {"type": "error", "error": {"type": "overloaded_error"}})
    t = scan(b'data: {"error": {"message": "bad", "code": 400}}\n\n')
    assert t.error == {"error": {"message": "bad", "code": 400}} and not t.saw_data
    u = scan(b'data: {"x": 1}\n\n', b'data: {"error": {"message": "late"}}\n\n')
    assert u.saw_data and u.error == {"error": {"message": "late"}}
    v = scan(b'event: error\ndata: not json\n\n')
    assert v.error is None and v.saw_data  # unreadable: relayed as data, not taken for an error


def test_usage_in_every_dialect() -> None:
    assert usage_from_body({"usage": {"input_tokens": 4}}) == (4, 0)
    assert usage_from_body({"usage": {"output_tokens": 6}}) == (0, 6)
    assert usage_from_body({"usage": {"prompt_tokens": 2, "completion_tokens": 8}}) == (2, 8)
    assert usage_from_body({"usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 7}}) == (5, 7)
    assert usage_from_body({"message": {"usage": {"input_tokens": 3, "output_tokens": 1}}}) == (3, 1)
    assert usage_from_body({"usage": {"prompt_tokens": -1, "completion_tokens": True}}) == (0, 0)
    assert usage_from_body({"usage": "x", "usageMetadata": {"promptTokenCount": 1}}) == (1, 0)
    assert usage_from_body({"message": "text"}) == (0, 0)
