"""The engine's small pure helpers, checked value by value: input validation at the edge, the status of an
error sent as a stream event, the request trace, backoff, budgets' periods, durations and usage counts."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from pooltui.core import validate
from pooltui.core.budget import Budget, Spend, month_start_of, period_starts
from pooltui.core.cooldown import Backoff, CooldownPolicy
from pooltui.core.pool import Exclusion
from pooltui.core.sse import stream_error_status
from pooltui.core.timefmt import clock, duration
from pooltui.core.trace import RequestTrace, format_trace
from pooltui.core.usage import usage_from_body


@pytest.mark.parametrize("value, minimum, strict, ok", [
    (0, 0.0, False, True), (0, 0.0, True, False), (0.5, 0.0, True, True), (-1, 0.0, False, False),
    (-1, None, False, True), (True, 0.0, False, False), ("1", 0.0, False, False), (float("nan"), 0.0, False, False),
    (float("inf"), 0.0, False, False),
])
def test_finite(value, minimum, strict, ok) -> None:
    if ok:
        assert validate.finite("x", value, minimum, strict=strict) == float(value)
    else:
        with pytest.raises(ValueError, match=r"^x must be"):
            validate.finite("x", value, minimum, strict=strict)


def test_finite_says_the_bound() -> None:
    with pytest.raises(ValueError, match=r"x must be a number > 0, not 0"):
        validate.finite("x", 0, strict=True)
    with pytest.raises(ValueError, match=r"x must be a number >= 2, not 1"):
        validate.finite("x", 1, 2)


def test_whole() -> None:
    assert validate.whole("n", 3, 3) == 3
    for bad in (2, 1.0, True, "3"):
        with pytest.raises(ValueError, match="n must be a whole number >= 3"):
            validate.whole("n", bad, 3)


def test_labels_and_names() -> None:
    assert validate.label("  a.b@c+d_e-1 ") == "a.b@c+d_e-1"
    assert validate.label("x" * 64) == "x" * 64
    for bad in ("", "-a", "a b", "x" * 65, None, "a/b", "é"):
        with pytest.raises(ValueError, match="bad key label"):
            validate.label(bad)
    with pytest.raises(ValueError, match="bad provider name"):
        validate.provider_name("no such")
    assert validate.env_name("_A1") == "_A1"
    for bad in ("1A", "A-B", "", None):
        with pytest.raises(ValueError, match="bad environment variable name"):
            validate.env_name(bad)


def test_secret() -> None:
    assert validate.secret("  sk-abc  ") == "sk-abc"
    assert validate.secret("k" * 4096) == "k" * 4096
    cases = {None: "must be text", "  ": "empty key", "k" * 4097: "longer than 4096 bytes",
             "sk-a b": "whitespace", "sk-a\x00b": "control character"}
    for bad, why in cases.items():
        with pytest.raises(ValueError, match=why):
            validate.secret(bad)


def test_base_url() -> None:
    assert validate.base_url(" https://api.example.com/v1/ ") == "https://api.example.com/v1"
    assert validate.base_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    cases = {"ftp://h": "http\\(s\\)://host", "https://": "http\\(s\\)://host", 5: "must be text",
             "https://u:p@h": "user-info", "https://h:99999": "bad port", "https://h:0": "bad port",
             "https://h/?a=1": "query or fragment", "https://h/#x": "query or fragment", "https://h?": "query",
             "https://h/a b": "whitespace", "https://h/\r\nX: y": "control"}
    for bad, why in cases.items():
        with pytest.raises(ValueError, match=why):
            validate.base_url(bad)


@pytest.mark.parametrize("event, status", [
    ({"error": {"type": "overloaded_error"}}, 529), ({"error": {"type": "rate_limit_error"}}, 429),
    ({"error": {"type": "authentication_error"}}, 401), ({"error": {"type": "permission_error"}}, 403),
    ({"error": {"type": "api_error"}}, 500), ({"error": {"type": "server_error"}}, 500),
    ({"error": {"code": "insufficient_quota"}}, 429), ({"error": {"code": "rate_limit_exceeded"}}, 429),
    ({"error": {"type": "invalid_request_error"}}, 400), ({"error": {"type": "not_found_error"}}, 404),
    ({"error": {"type": "request_too_large"}}, 413), ({"error": {"code": "context_length_exceeded"}}, 400),
    ({"error": {"code": 418}}, 418), ({"error": {"code": "402"}}, 402), ({"error": {"code": 99}}, 500),
    ({"error": {"code": "600"}}, 500), ({"error": {"code": True}}, 500), ({"error": "boom"}, 500),
    ("text", 500), ({"error": {"type": "weird", "code": "rate_limit_exceeded"}}, 429),
])
def test_stream_error_status(event, status) -> None:
    assert stream_error_status(event) == status


def test_trace_records_scrubbed_steps_and_reads_as_text() -> None:
    from pooltui.core.masking import remember

    remember("sk-trace-secret-000000000001")
    t = RequestTrace(7, 100.0, "failover")
    t.add(100.0, "pick", "p", "k0", candidates=2, excluded=(Exclusion("k1", "cooling", 130.0, "retry-after", "429"),),
          excluded_total=3)
    t.add(100.0125, "attempt", "p", "k0", status=429, outcome="rate_limited", latency_ms=12.5,
          reason="echoed sk-trace-secret-000000000001")
    t.add(100.02, "wait", "p", seconds=1.234, reason="all cooling")
    t.add(100.03, "backoff", "p", seconds=0.5, reason="503")
    t.add(100.04, "fallback", "q", reason="p exhausted", **{"from": "p"})
    t.add(100.05, "error", "p", reason="gave up")
    t.result, t.served_by = "ok", "q/k9"
    assert "sk-trace-secret" not in t.steps[1].detail["reason"]
    d = t.as_dict()
    assert (d["request_id"], d["started"], d["strategy"], d["result"], d["served_by"]) == (7, 100.0, "failover", "ok",
                                                                                           "q/k9")
    assert d["steps"][0] == {"ts": 100.0, "kind": "pick", "provider": "p", "key": "k0", "candidates": 2,
                             "excluded": [{"label": "k1", "state": "cooling", "until": 130.0, "reason": "429"}],
                             "excluded_total": 3}
    assert d["steps"][2]["seconds"] == 1.234
    assert format_trace(t).splitlines() == [
        "request #7  strategy=failover  result=ok",
        "  +    0.0ms pick [p] k0  from 2 available; excluded: k1 cooling 30s, +2 more",
        f"  +   12.5ms attempt [p] k0 -> 429 rate_limited in 12.5ms {t.steps[1].detail['reason']}",
        "  +   20.0ms wait 1.23s [p]: all cooling",
        "  +   30.0ms backoff 0.50s [p] after 503",
        "  +   40.0ms fallback p -> q: p exhausted",
        "  +   50.0ms error [p] gave up",
    ]


def test_backoff_is_equal_jitter_under_a_ceiling_that_doubles() -> None:
    b = Backoff(base_s=1.0, factor=2.0, max_s=5.0, min_s=0.05)
    rng = random.Random(3)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0)):
        delays = [b.delay(attempt, rng) for _ in range(200)]
        assert min(delays) >= ceiling / 2 and max(delays) <= ceiling
        assert max(delays) > ceiling * 0.9 and min(delays) < ceiling * 0.6
    assert Backoff(base_s=0.0).delay(1) == 0.05
    assert Backoff(base_s=1.0).delay(0, random.Random(1)) <= 1.0


def test_default_cooldown_escalates_except_for_a_sole_key() -> None:
    c = CooldownPolicy(base_s=10, factor=3, max_s=50)
    assert [c.default_for(n, 3) for n in (1, 2, 3)] == [10, 30, 50]
    assert c.default_for(5, 1) == 10


def test_budget_periods_are_utc_days_and_months() -> None:
    now = datetime(2026, 12, 31, 23, 59, tzinfo=UTC).timestamp()
    day, month, next_day, next_month = period_starts(now)
    assert (day, month) == ("2026-12-31", "2026-12")
    assert next_day == next_month == datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    assert month_start_of(now) == datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    s = Spend()
    s.add(now, 10, 0.5)
    assert s.over(Budget(tokens_day=10), now) == ("daily token budget", next_day)
    assert s.over(Budget(tokens_day=11), now) is None
    assert s.over(Budget(cost_month=0.5), now) == ("monthly cost budget", next_month)
    s.add(next_day, 1, 0.0)  # a new day and month: counters start again
    assert (s.tokens_day, s.tokens_month, s.cost_day, s.day) == (1, 1, 0.0, "2027-01-01")


@pytest.mark.parametrize("seconds, plain, spaced", [
    (None, "-", "-"), (-3, "0.0s", "0.0 s"), (9.94, "9.9s", "9.9 s"), (10, "10s", "10 s"), (89, "89s", "89 s"),
    (90, "2m", "2 min"), (5399, "90m", "90 min"), (5400, "1.5h", "1.5 h"), (2 * 86400 - 1, "48.0h", "48.0 h"),
    (2 * 86400, "2d", "2 d"),
])
def test_duration(seconds, plain, spaced) -> None:
    assert duration(seconds) == plain and duration(seconds, spaced=True) == spaced


def test_duration_whole_and_clock() -> None:
    assert duration(3.4, whole=True) == "3s"
    ts = datetime(2026, 9, 21, 14, 13, 20, tzinfo=UTC).timestamp()
    assert clock(ts, utc=True) == "2026-09-21 14:13:20 UTC"
    assert clock(ts, utc=True, date=False) == "14:13:20 UTC"
    assert clock(None) == clock(0) == "-"


@pytest.mark.parametrize("body, tokens", [
    ({"usage": {"prompt_tokens": 3, "completion_tokens": 4}}, (3, 4)),
    ({"usage": {"input_tokens": 5, "output_tokens": 6}}, (5, 6)),
    ({"usage": {"prompt_tokens": "7", "completion_tokens": None}}, (0, 0)),
    ({"usage": None}, (0, 0)), ([], (0, 0)), (None, (0, 0)),
])
def test_usage_from_body(body, tokens) -> None:
    assert usage_from_body(body) == tokens


def test_trace_lines_when_details_are_missing() -> None:
    t = RequestTrace(1, 0.0, "failover")
    t.add(0.0, "pick", "p", "k0")  # no candidates, no exclusions given
    t.add(0.0, "pick", "p", None, excluded=(Exclusion("k1", "cooling", -5.0, None, ""),
                                            Exclusion("k2", "held", None, None, "recovery probe in flight")),
          excluded_total=3)
    t.add(0.0, "attempt", "p", "k0", status=200, outcome="ok")
    t.add(0.0, "wait", "p")
    t.add(0.0, "backoff", "p")
    t.add(0.0, "spill", "p", "k2", reason="k0 has 2 in flight (soft cap 2)")
    t.add(0.0, "skip", "p", "k0")
    t.add(0.0, "skip", "p", reason="q: outage suspected")
    assert format_trace(t).splitlines()[1:] == [
        "  +    0.0ms pick [p] k0  from None available",
        "  +    0.0ms pick [p] nothing: no key available; excluded: k1 cooling 0s, k2 held (recovery probe in "
        "flight), +1 more",
        "  +    0.0ms attempt [p] k0 -> 200 ok in 0.0ms",
        "  +    0.0ms wait 0.00s [p]: ",
        "  +    0.0ms backoff 0.00s [p] after ",
        "  +    0.0ms spill [p] k2: k0 has 2 in flight (soft cap 2)",
        "  +    0.0ms skip [p] k0: ",
        "  +    0.0ms skip [p] q: outage suspected",
    ]
