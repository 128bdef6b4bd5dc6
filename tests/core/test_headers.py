"""Rate-limit header parsing: every dialect's forms, and garbage never raises."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pooltui.core.headers import (
    gemini_retry_delay,
    parse_go_duration,
    parse_rate_limits,
    parse_reset,
    parse_retry_after,
    parse_retry_after_ms,
    parse_rfc3339,
)

NOW = 1_790_000_000.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("12ms", 0.012), ("2m59.56s", 179.56), ("1h2m3s", 3723.0), ("0s", 0.0),
     ("250us", 0.00025), ("7.5", 7.5)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("garbage", ["", "abc", "1x", "m5", "-3s", "5s5", "nan", "inf", "1e400s", "3ms2", None])
def test_go_duration_garbage_is_none(garbage) -> None:
    assert parse_go_duration(garbage) is None


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("12", NOW) == 12.0
    when = datetime.fromtimestamp(NOW + 90, UTC)
    assert parse_retry_after(format_datetime(when, usegmt=True), NOW) == pytest.approx(90.0)
    assert parse_retry_after("Wed, 99 Foo 2026", NOW) is None
    assert parse_retry_after("-5", NOW) is None
    assert parse_retry_after_ms("1500") == 1.5
    assert parse_retry_after_ms("soon") is None


def test_rfc3339_reset() -> None:
    stamp = datetime.fromtimestamp(NOW + 42, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert parse_rfc3339(stamp, NOW) == pytest.approx(42.0)
    assert parse_rfc3339("2026-13-45T99:00:00Z", NOW) is None
    assert parse_rfc3339("2026-01-01T00:00:00", NOW) is None  # no zone: refuse to guess


def test_reset_accepts_epoch_forms() -> None:
    assert parse_reset(str(int(NOW + 30)), NOW) == pytest.approx(30.0)
    assert parse_reset(str(int((NOW + 30) * 1000)), NOW) == pytest.approx(30.0)


def test_gemini_retry_info() -> None:
    body = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "45.8s"}]}}
    assert gemini_retry_delay(body) == pytest.approx(45.8)
    assert gemini_retry_delay({"error": {"details": "nope"}}) is None
    assert gemini_retry_delay(["x"]) is None


def test_dialect_headers() -> None:
    reset = datetime.fromtimestamp(NOW + 20, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    a = parse_rate_limits("anthropic", {"anthropic-ratelimit-requests-limit": "50",
                                        "anthropic-ratelimit-requests-remaining": "0",
                                        "anthropic-ratelimit-requests-reset": reset}, NOW)
    assert (a.requests_limit, a.requests_remaining) == (50, 0)
    assert a.reset_s() == pytest.approx(20.0)
    o = parse_rate_limits("openai", {"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "499",
                                     "x-ratelimit-reset-requests": "120ms", "x-ratelimit-limit-tokens": "1000",
                                     "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s"}, NOW)
    assert o.reset_s() == 360.0 and o.headroom() == 0.0
    m = parse_rate_limits("mistral", {"x-ratelimit-limit-req-minute": "60",
                                      "x-ratelimit-remaining-req-minute": "30"}, NOW)
    assert m.headroom() == 0.5
    assert parse_rate_limits("openai", {"x-ratelimit-limit-requests": "lots"}, NOW) is None


text_or_junk = st.one_of(st.none(), st.text(max_size=40), st.integers(), st.floats(allow_nan=True),
                         st.binary(max_size=20))


@given(value=text_or_junk)
def test_parsers_never_raise(value) -> None:
    for parse in (parse_go_duration, parse_retry_after_ms):
        assert parse(value) is None or parse(value) >= 0
    for parse in (parse_retry_after, parse_rfc3339, parse_reset):
        result = parse(value, NOW)
        assert result is None or result >= 0


@given(headers=st.dictionaries(st.sampled_from([
    "retry-after", "retry-after-ms", "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens", "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-requests-remaining", "x-ratelimit-remaining-req-minute"]), st.text(max_size=30)),
    dialect=st.sampled_from(["anthropic", "openai", "mistral", "groq"]))
def test_rate_limit_headers_never_raise(headers, dialect) -> None:
    rl = parse_rate_limits(dialect, headers, NOW)
    if rl is not None:
        assert 0.0 <= rl.headroom() <= 1.0
