"""Sliding windows of declared limits (issue 27): what they hold, when they open, what a settle gives back."""

from __future__ import annotations

import pytest

from pooltui.core.windows import BUCKETS, DAY_S, MINUTE_S, KeyLimits, SlidingWindow, Slots, local_window


def test_a_full_window_takes_nothing_and_opens_when_its_oldest_leave() -> None:
    w = SlidingWindow(3, 10.0)
    assert w.take(0.0) and w.take(1.0) and w.take(2.0)
    assert w.room(2.5) == 0 and not w.take(2.5) and w.used(2.5) == 3
    assert w.opens_in(2.5) == pytest.approx(7.5)
    assert w.opens_in(2.5, 2) == pytest.approx(8.5)
    assert w.room(10.0) == 1 and w.opens_in(10.0) == 0.0
    assert w.take(10.0) and not w.take(10.0)


def test_tokens_fit_by_count_and_a_request_larger_than_the_budget_goes_alone() -> None:
    w = SlidingWindow(1000, 60.0)
    assert w.take(0.0, 600) and not w.take(1.0, 500) and w.room(1.0) == 400
    assert w.take(1.0, 400) and w.room(1.0) == 0
    assert w.opens_in(2.0, 600) == pytest.approx(58.0)
    assert w.opens_in(2.0, 5000) == pytest.approx(59.0)  # larger than the budget: once the window is empty
    assert w.take(61.0, 5000) and not w.take(61.0, 1)


def test_settle_corrects_what_was_held() -> None:
    w = SlidingWindow(1000, 60.0)
    w.take(0.0, 500)
    w.take(10.0, 300)
    w.settle(20.0, 500, 200)  # fewer tokens than held: 300 come back, off the oldest
    assert w.used(20.0) == 500 and w.opens_in(20.0, 700) == pytest.approx(40.0)  # what stays leaves no sooner
    w.settle(30.0, 300, 0)  # never sent: all of it comes back
    assert w.used(30.0) == 200
    w.settle(40.0, 100, 350)  # more than held: the difference counts from now
    assert w.used(40.0) == 450 and w.used(99.0) == 250 and w.used(100.0) == 0


def test_the_local_factory_and_the_protocol() -> None:
    slots: Slots = local_window("openai", "k1", "requests", 5, MINUTE_S)
    assert slots.limit == 5 and slots.window_s == MINUTE_S and slots.room(0.0) == 5
    with pytest.raises(ValueError):
        SlidingWindow(0, 60.0)


def test_declared_limits_merge_over_their_base_and_list_their_windows() -> None:
    provider = KeyLimits(rpm=60, tpm=20_000)
    key = KeyLimits(rpm=30, rpd=1000).over(provider)
    assert key == KeyLimits(rpm=30, rpd=1000, tpm=20_000)
    assert [(w, n, s) for w, n, s, _ in key.windows()] == [
        ("requests", 30, MINUTE_S), ("requests", 1000, DAY_S), ("tokens", 20_000, MINUTE_S)]
    assert key.as_dict() == {"rpm": 30, "rpd": 1000, "tpm": 20_000}
    assert not KeyLimits().is_set() and KeyLimits(max_concurrency=2).is_set()


def test_takes_close_together_share_an_entry_counted_from_the_latest() -> None:
    w = SlidingWindow(1_000_000, 60.0)
    for i in range(20_000):  # one every 3 ms: 20,000 takes in a minute
        assert w.take(i * 0.003)
    assert len(w._entries) <= BUCKETS + 1  # bounded, whatever the rate
    last = 19_999 * 0.003
    assert w.used(last + 60.0 - 0.001) > 0  # the latest take still counts until a window after it
    assert w.used(last + 60.0) == 0
