"""The outage breaker: many transient failures at once send traffic to the fallback first."""

from __future__ import annotations

from pooltui.core.breaker import OutageBreaker
from pooltui.core.clock import FakeClock


def test_opens_after_a_burst_of_failures_and_probes_once_after_the_pause() -> None:
    clock = FakeClock()
    b = OutageBreaker(clock, threshold=3, window_s=5, open_s=2)
    assert not b.failure() and not b.failure()
    assert b.failure() and b.is_open and not b.allow()
    clock.advance(2.1)
    assert b.allow() and not b.allow()  # one probe at a time
    b.failure()  # the probe failed: open again
    assert not b.allow()
    clock.advance(2.1)
    assert b.allow()
    assert b.success() and not b.is_open and b.allow()


def test_spread_out_failures_do_not_open_it() -> None:
    clock = FakeClock()
    b = OutageBreaker(clock, threshold=3, window_s=5, open_s=2)
    for _ in range(10):
        b.failure()
        clock.advance(3)
    assert not b.is_open


def test_a_success_clears_the_count() -> None:
    b = OutageBreaker(FakeClock(), threshold=3)
    b.failure()
    b.failure()
    b.success()
    assert not b.failure() and not b.is_open
