"""When an exhausted Hermes entry serves again, for status times Hermes's own arithmetic cannot take: a
timestamp written as a string (auth.json edited by hand or by another tool) is parsed, a boolean is no time.
pooltui reads these instead of failing; Hermes itself adds the TTL to ``last_status_at`` as given (cp:376-384).
Written from the mutation run's survivors."""

from __future__ import annotations

from pooltui.core.hermes_rules import TTL_429_S, bench_until


def exhausted(at: object, code: object = 429) -> dict[str, object]:
    return {"last_status": "exhausted", "last_status_at": at, "last_error_code": code}


def test_a_status_time_written_as_a_string_is_read() -> None:
    assert bench_until(exhausted("1700000000")) == 1_700_000_000 + TTL_429_S
    assert bench_until(exhausted("2023-11-14T22:13:20Z")) == 1_700_000_000 + TTL_429_S


def test_a_boolean_or_an_unreadable_status_time_benches_nothing() -> None:
    assert bench_until(exhausted(True)) is None
    assert bench_until(exhausted("soon")) is None
