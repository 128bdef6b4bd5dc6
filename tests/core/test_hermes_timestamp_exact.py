"""Hermes' reset-time parsing at its edges: the millisecond cut-over, the smallest positive time, a JSON
``true``, a lowercase ``z`` (issue 25, item 6: mutation survivors in core/hermes_rules.parse_timestamp)."""

from __future__ import annotations

import pytest

from pooltui.core.hermes_rules import parse_timestamp

CUT = 1_000_000_000_000  # above this Hermes reads milliseconds (credential_pool.py, cp:298-325)


@pytest.mark.parametrize(("value", "seconds"), [
    (CUT, float(CUT)), (float(CUT), float(CUT)), (str(CUT), float(CUT)),  # at the cut: still seconds
    (CUT + 0.5, (CUT + 0.5) / 1000), (f"{CUT}.5", (CUT + 0.5) / 1000),  # just above it: milliseconds
    (1_790_000_000_000, 1_790_000_000.0), ("1790000000000", 1_790_000_000.0),
    (1, 1.0), (0.5, 0.5),  # any positive number is a time
])
def test_numbers_in_seconds_or_milliseconds(value: float | str, seconds: float) -> None:
    assert parse_timestamp(value) == seconds


@pytest.mark.parametrize("value", [True, False, 0, -1, "", "  ", None, "2026-01-01T00:00:00z", "soon", [1]])
def test_what_is_not_a_time(value: object) -> None:
    assert parse_timestamp(value) is None  # a JSON true is not epoch 1; Hermes only reads an upper-case Z


def test_iso_times_with_a_zone() -> None:
    assert parse_timestamp("2026-01-01T00:00:00Z") == 1_767_225_600.0
    assert parse_timestamp(" 2026-01-01T01:00:00+01:00 ") == 1_767_225_600.0
