"""A body whose status misleads, read field by field for each outcome its signature gives: the wait and where it
came from, the rate-limit headers kept, the model scope (issue 25, item 6: survivors in classify._by_signature)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any

import pytest

from pooltui.core.classify import Classification, classify
from pooltui.core.headers import parse_rate_limits
from pooltui.core.health import DeadlineSource, Outcome

NOW = 1_790_000_000.0
HEADERS = {"x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": "0",
           "x-ratelimit-reset-requests": "30s"}
LIMITS = parse_rate_limits("openai", HEADERS, NOW)
Q, RL, TR = Outcome.QUOTA, Outcome.RATE_LIMITED, Outcome.TRANSIENT
BODY, RESET, RETRY, KNOWN = (DeadlineSource.BODY, DeadlineSource.RESET_HEADER, DeadlineSource.RETRY_AFTER,
                             DeadlineSource.KNOWN_RESET)
FAST = "Request rate increased too quickly"
FULL = "service tier capacity exceeded"


def error(message: str, retry_after_in_body: str | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"message": message}
    if retry_after_in_body is not None:
        err["metadata"] = {"headers": {"retry-after": retry_after_in_body}}
    return {"error": err}


def next_month(now: float) -> float:
    day = datetime.fromtimestamp(now, UTC)
    first = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=UTC)
    return first.timestamp() - now


CASES = [  # dialect, status, headers, body -> outcome, reason's head, wait, source, limits kept, model scoped
    ("openai", 429, HEADERS, error("hourly usage limit hit. Please try again in 90s"),
     Q, "hourly usage wall", 90.0, KNOWN, True, False),  # the message's wait beats the signature's hour
    ("openai", 429, HEADERS, error("hourly usage limit hit"), Q, "hourly usage wall", 3600.0, KNOWN, True, False),
    ("openai", 429, {}, error("100 API calls / month used"), Q, "monthly trial cap", next_month(NOW), KNOWN, False,
     False),
    ("openai", 400, HEADERS, error(FAST), RL, "rate rising too fast", 30.0, RESET, True, True),  # per-model dialect
    ("deepseek", 400, {}, error(FAST, retry_after_in_body="12"), RL, "rate rising too fast", 12.0, BODY, False,
     False),
    ("deepseek", 400, {"retry-after": formatdate(NOW + 20, usegmt=True)}, error(FAST), RL, "rate rising too fast",
     20.0, RETRY, False, False),
    ("deepseek", 400, {}, error(FAST + " for this Model; retry in 7s"), RL, "rate rising too fast", 7.0, BODY,
     False, True),
    ("openai", 429, {**HEADERS, "retry-after": "4"}, error(FULL), TR, "backend at capacity", 4.0, RETRY, True, False),
    ("deepseek", 429, {"retry-after": formatdate(NOW + 20, usegmt=True)}, error(FULL), TR, "backend at capacity",
     20.0, RETRY, False, False),
    ("openai", 429, HEADERS, error(FULL), TR, "backend at capacity", None, None, True, False),  # no key limit's wait
    ("openai", 429, {}, error(FULL, retry_after_in_body="12"), TR, "backend at capacity", 12.0, BODY, False, False),
    ("openai", 429, {}, error(FULL + ", try again in 7s"), TR, "backend at capacity", 7.0, BODY, False, False),
    ("openai", 400, HEADERS, error("This organization has been disabled"), Outcome.FORBIDDEN,
     "organization disabled", None, None, True, False),
]


@pytest.mark.parametrize(("dialect", "status", "headers", "body", "outcome", "name", "wait", "source", "kept",
                          "scoped"), CASES)
def test_each_field_of_a_signature_outcome(dialect: str, status: int, headers: dict[str, str], body: dict[str, Any],
                                           outcome: Outcome, name: str, wait: float | None,
                                           source: DeadlineSource | None, kept: bool, scoped: bool) -> None:
    got = classify(dialect, status, headers, body, NOW)
    reason = f"{name} (HTTP {status}): {body['error']['message']}"
    assert got == Classification(outcome, status, reason, wait, source, LIMITS if kept else None, scoped)
