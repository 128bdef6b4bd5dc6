"""Callers' latency histograms and window, exactly: a value on a bucket's bound is in that bucket, one above the last
bound (or NaN) only in the count and sum, a negative latency or wait is kept as 0 (what /metrics and the panels
read)."""

from __future__ import annotations

import math

from pooltui.core.stats import LATENCY_BUCKETS, CallerWindow, Histogram


def by_scan(bounds: tuple[float, ...], values: list[float]) -> list[int]:
    """Per-bucket counts as the definition says: the first bound at or above each value."""
    counts = [0] * len(bounds)
    for v in values:
        i = next((i for i, b in enumerate(bounds) if v <= b), None)
        if i is not None:
            counts[i] += 1
    return counts


def test_each_value_lands_in_the_first_bucket_whose_bound_is_at_or_above_it() -> None:
    values = [*LATENCY_BUCKETS, *(b * 0.999 for b in LATENCY_BUCKETS), *(b * 1.001 for b in LATENCY_BUCKETS),
              0.0, -0.0, -1.0, 1e-9, 121.0, 1e9, math.inf, -math.inf, math.nan]
    hist = Histogram(LATENCY_BUCKETS)
    for v in values:
        hist.observe(v)
    assert hist.counts == by_scan(LATENCY_BUCKETS, values)
    assert hist.count == len(values)
    assert hist.counts[0] == 7 and hist.counts[1] == 3  # 0.005 on its bound, below it, 0, -0, -1, 1e-9, -inf
    assert hist.cumulative()[-1] == (120.0, len(values) - 5)  # above 120 s (four) and NaN: counted, no bucket


def test_a_callers_window_keeps_a_negative_or_nan_latency_and_wait_as_zero() -> None:
    window = CallerWindow(60.0)
    for latency, wait in ((0.25, 0.5), (-0.1, -2.0), (math.nan, -0.0), (0.0, 3.0)):
        window.add(100.0, latency, wait)
    samples = window.recent(100.0)
    assert [s[1:] for s in samples] == [(0.25, 0.5), (0.0, 0.0), (0.0, 0.0), (0.0, 3.0)]
    assert all(math.copysign(1.0, x) == 1.0 for s in samples for x in s[1:])  # no -0.0 either
