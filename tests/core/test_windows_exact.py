"""The local sliding window to the unit and the second: its checks, the edge where a unit leaves, room never
below zero, a take of nothing, a full window after one, out-of-order takes in one bucket, partial give-backs,
when it opens. Written from the mutation run's survivors (fake times)."""

from __future__ import annotations

import pytest

from pooltui.core.windows import SlidingWindow

T0 = 1_000.0


def test_a_window_needs_a_limit_and_a_length() -> None:
    with pytest.raises(ValueError, match="limit >= 1 and a length > 0"):
        SlidingWindow(1, 0.0)
    assert SlidingWindow(1, 0.5).window_s == 0.5  # under a second is a length too


def test_a_unit_leaves_exactly_one_window_after_it_came() -> None:
    w = SlidingWindow(1, 60.0)
    assert w.take(T0) and not w.take(T0 + 59.9)
    assert w.room(T0 + 59.9) == 0
    assert w.take(T0 + 60.0)  # at the edge it has left


def test_room_is_never_below_zero() -> None:
    w = SlidingWindow(10, 60.0)
    assert w.take(T0, 25)  # larger than the window, on an empty one: the provider judges it
    assert w.room(T0 + 1) == 0 and w.used(T0 + 1) == 25


def test_one_unit_fills_a_window_of_one_and_nothing_always_fits() -> None:
    w = SlidingWindow(1, 60.0)
    assert w.take(T0) and not w.take(T0 + 1)
    w.settle(T0 + 1, 1, 5)  # used more than held: over the limit now
    assert w.take(T0 + 2, 0) is True


def test_takes_within_one_bucket_leave_with_the_latest() -> None:
    w = SlidingWindow(2, 60.0)
    assert w.take(T0 + 0.02) and w.take(T0 + 0.01)  # one bucket (60/1024 s): one entry, counted from T0 + 0.02
    assert w.opens_in(T0 + 1, 1) == pytest.approx(59.02)


def test_a_partial_give_back_keeps_the_rest_until_it_leaves() -> None:
    w = SlidingWindow(10, 60.0)
    assert w.take(T0, 3)
    w.settle(T0 + 1, 2, 0)  # two of three come back: one unit stays in the entry
    assert w.used(T0 + 1) == 1
    assert w.used(T0 + 61) == 0  # and leaves with it


def test_a_full_window_opens_when_its_oldest_unit_leaves_however_soon() -> None:
    w = SlidingWindow(1, 60.0)
    assert w.take(T0)
    assert w.opens_in(T0 + 10) == pytest.approx(50.0)
    assert w.opens_in(T0 + 59.5) == pytest.approx(0.5)
