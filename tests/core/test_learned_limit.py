"""Learning a key's limit from its 429s (issue 12, the estimator alone): on a simulated key of known limit
and a fake clock, the estimate converges within a stated number of 429s; a raised limit is found again."""

from __future__ import annotations

import math
from collections import deque

import pytest

from pooltui.core.learned import MARGIN, PROBE_WINDOWS, LearnedLimit


class SlidingKey:
    """A provider's key: ``limit`` requests in any ``window_s``; a 429 says when a slot frees."""

    def __init__(self, limit: int, window_s: float, whole_seconds: bool = True) -> None:
        self.limit, self.window_s, self.whole = limit, window_s, whole_seconds
        self.sent: deque[float] = deque()
        self.rejected = 0

    def send(self, now: float) -> float | None:
        """None when accepted, else the retry-after it answers."""
        while self.sent and self.sent[0] <= now - self.window_s:
            self.sent.popleft()
        if len(self.sent) < self.limit:
            self.sent.append(now)
            return None
        self.rejected += 1
        wait = self.sent[0] + self.window_s - now
        return float(math.ceil(wait)) if self.whole else wait


def drive(key: SlidingKey, est: LearnedLimit, start: float, seconds: float, every_s: float = 0.05) -> int:
    """Requests every ``every_s`` while the estimate has room (paced); returns the 429s it cost."""
    before, t = key.rejected, start
    while t < start + seconds:
        if est.opens_in(t) == 0:
            retry = key.send(t)
            if retry is None:
                est.accept(t)
            else:
                est.rate_limited(t, retry)
        t += every_s
    return key.rejected - before


@pytest.mark.parametrize(("limit", "window_s", "whole"), [(8, 5.0, True), (8, 5.0, False), (3, 20.0, True),
                                                          (60, 60.0, True), (1, 2.0, True)])
def test_the_estimate_converges_within_two_429s(limit: int, window_s: float, whole: bool) -> None:
    key, est = SlidingKey(limit, window_s, whole), LearnedLimit()
    cost = drive(key, est, 1000.0, window_s * 6)
    assert est.limit == limit
    assert window_s - 0.01 <= est.window_s <= window_s + (1.0 if whole else 0.01)  # ceil-rounded: up to 1 s long
    assert cost <= 2, cost  # two 429s to learn it; paced after that, none
    assert est.sure > 0
    print(f"\nlimit {limit}/{window_s:g}s: learnt {est.limit}/{est.window_s:.2f}s after {cost} 429s, sure {est.sure}")


def test_paced_by_the_estimate_the_key_gets_no_429_but_a_probe_and_serves_what_it_allows() -> None:
    key, est = SlidingKey(8, 5.0), LearnedLimit()
    drive(key, est, 0.0, 30.0)
    assert drive(key, est, 30.0, 5.0 * PROBE_WINDOWS) <= 1  # one probe at most in a probe period
    accepted = sum(1 for t in est.accepted if 30.0 <= t < 30.0 + 5.0 * PROBE_WINDOWS)
    assert accepted >= 0.85 * 8 * PROBE_WINDOWS  # about the limit each window (a rounded retry-after: 5.4 s)
    print(f"\npaced: {accepted} accepted in {PROBE_WINDOWS} windows of a key allowing 8 each")


def test_a_raised_limit_is_found_again_and_a_lowered_one_at_the_next_429() -> None:
    key, est = SlidingKey(8, 5.0), LearnedLimit()
    drive(key, est, 0.0, 40.0)
    assert est.limit == 8
    key.limit = 12  # the provider raised it
    drive(key, est, 40.0, 5.0 * PROBE_WINDOWS * 6)
    assert est.limit >= 12 - 1 and est.probes >= 3
    key.limit = 4  # and lowered it: the window it holds drains first
    cost = drive(key, est, 400.0, 30.0)
    assert est.limit == 4 and cost <= 4


def test_probing_costs_at_most_one_429_per_probe_period() -> None:
    key, est = SlidingKey(8, 5.0), LearnedLimit()
    drive(key, est, 0.0, 30.0)
    cost = drive(key, est, 30.0, 5.0 * PROBE_WINDOWS * 10)
    assert cost <= 11, cost
    served = 8 * PROBE_WINDOWS * 10
    print(f"\nprobing: {cost} 429s for about {served} requests served ({cost / served:.3f} per request)")


def test_nothing_is_learnt_without_a_retry_after_or_from_an_answer_with_no_history() -> None:
    est = LearnedLimit()
    assert not est.rate_limited(10.0, 2.0)  # nothing accepted yet: nothing to fit
    est.accept(9.0)
    assert not est.rate_limited(10.0, None)
    assert est.limit is None and est.opens_in(10.0) == 0 and est.sure == 0.0


def test_answers_out_of_order_are_kept_in_send_order() -> None:
    est = LearnedLimit()
    for t in (1.0, 3.0, 2.0, 2.5):
        est.accept(t)
    assert list(est.accepted) == [1.0, 2.0, 2.5, 3.0]


def test_when_a_429_fits_several_limits_the_smallest_is_taken() -> None:
    """Sparse evidence fits several (limit, window) pairs; the estimate takes the most careful one and lets the
    additive increase find more."""
    est = LearnedLimit()
    for t in (0.0, 1.0, 2.0):
        est.accept(t)
    assert est.rate_limited(2.5, 0.5)
    assert (est.limit, est.window_s) == (1, 1.0)
    assert est.votes == pytest.approx({1: 1 / 3, 2: 1 / 3, 3: 1 / 3})  # shared: one 429 explained three ways
    assert est.sure == 0.33  # all three allow one request a second, but one 429 is little to go by


def test_a_429_is_fitted_only_once_the_requests_sent_before_it_are_answered() -> None:
    """Regression: under concurrency the 429 came back before the successes sent ahead of it, and was fitted
    against a window that looked emptier than it was (peak-hour at 1.0x learnt 1 per 0.6 s for 8 per 5 s)."""
    est = LearnedLimit()
    sends = [i * 0.5 for i in range(9)]  # 8 per 5 s allowed: the 9th (at 4.0) is refused, slot frees at 5.0
    for t in sends:
        est.sent(t)
    for t in sends[:2]:
        est.accept(t)  # the first two answers are in; six successes are still on their way
    assert not est.rate_limited(4.0, 1.0 + 0.001)  # held: requests sent before it are unanswered
    assert est.limit is None and est.pending
    for t in sends[2:8]:
        est.accept(t)
    assert (est.limit, round(est.window_s, 3)) == (8, 5.001) and not est.pending and not est.outstanding


def test_a_precise_retry_after_below_a_second_does_not_fit_every_count() -> None:
    """Regression: a retry-after under a second (not rounded) was given a second of slack, so every count fitted
    and the tie went to 1: a key of 8 per 5 s was paced at 1 per 0.8 s."""
    est = LearnedLimit()
    for i in range(8):
        est.accept(i * 0.5)
    assert est.rate_limited(4.2, 0.8)  # the oldest (0.0) leaves the 5 s window at 5.0
    assert (est.limit, round(est.window_s, 3)) == (8, 5.0)


def test_requests_in_flight_hold_their_slots_until_answered() -> None:
    """Regression: with more requests in flight than the window has room for, the opening was read past the
    end of the accepted requests and came out as 'now': the key was used while full."""
    est = LearnedLimit(limit=2, window_s=5.0)
    est.accept(0.0)
    for t in (1.0, 1.1, 1.2):
        est.sent(t)
    assert est.full(1.3)
    assert est.opens_in(1.3) == pytest.approx(1.1 + 5.0 * (1 + MARGIN) - 1.3)  # the second in flight leaves
    est.answered(1.0)
    est.answered(1.1)  # two were cancelled: they no longer hold slots; the accepted one leaves first
    assert est.full(1.3) and est.opens_in(1.3) == pytest.approx(0.0 + 5.0 * (1 + MARGIN) - 1.3)


def test_a_too_generous_estimate_is_dropped_at_the_429_it_did_not_expect() -> None:
    """Regression: an early estimate of 3 per 1.6 s for a key of 8 per 5 s (a higher rate) paced the key into a
    429 every few seconds; each of those 429s fitted 3 per 1.6 s again (the window believed), so it stayed."""
    key, est = SlidingKey(8, 5.0, whole_seconds=False), LearnedLimit.restored(3, 1.6)
    cost = drive(key, est, 0.0, 60.0)
    assert est.limit == 8 and 4.99 <= est.window_s <= 5.05
    assert cost <= 4, cost


def test_a_request_the_provider_may_still_count_holds_its_slot_for_the_pick_as_for_the_wait() -> None:
    """Regression (the restarted replay's flaky 429, tests/lab/test_replay.py): the provider counts a request from
    its arrival, up to the margin after our send; the wait for an opening added the margin, but the pick's check
    (``full``) and ``opens_in`` let a request go as soon as the window alone had passed. A caller that came just
    then (one not waiting: the restarted run's second to fourth request of each key) went 12 to 25 ms after the
    window instead of 40, and a first request that had reached the provider 30 ms late made it a 429."""
    key, est = SlidingKey(4, 2.0, whole_seconds=False), LearnedLimit.restored(4, 2.0)
    late = 0.03  # the first requests of a new process reach the provider late (within the margin: 40 ms)
    assert late < est.margin_s
    for t in (0.0, 0.01, 0.02, 0.03):
        assert not est.full(t)
        est.sent(t)
        assert key.send(t + late) is None
        est.accept(t)
    sent = 0
    for n in range(1, 5000):  # a caller every 0.7 ms (never on an opening exactly), sent when the pick finds room
        t = 0.03 + n * 0.0007  # (these arrive at once)
        assert est.full(t) == (est.opens_in(t) > 0), t  # the pick's check and the wait agree
        if not est.full(t):
            est.sent(t)
            retry = key.send(t)
            assert retry is None, f"a 429 at {t:.3f} s"
            est.accept(t)
            sent += 1
    assert sent == 4  # the window's four again, each the window and its margin after the one it replaces
    assert est.accepted[4] == pytest.approx(0.0 + 2.0 + est.margin_s, abs=0.0007)
