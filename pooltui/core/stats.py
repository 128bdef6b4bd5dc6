"""Per-key counters and rolling windows; bounded memory however long it runs."""

from __future__ import annotations

from bisect import bisect_left
from collections import deque

from pooltui.core.accounts import CounterSample
from pooltui.core.headers import RateLimits
from pooltui.core.snapshot import KeyCounts


class RollingCounter:
    """Counts per second over the last ``width`` seconds (fixed memory). The current second's count is kept apart
    (``now_count``: the pick adds to it without indexing the buckets) and folded into its bucket when read or when
    the second changes."""

    __slots__ = ("_buckets", "_sec", "now_count", "width")

    def __init__(self, width: int = 60) -> None:
        self.width = width
        self._buckets = [0] * width
        self._sec = 0
        self.now_count = 0  # events in second ``_sec`` not yet in its bucket

    def _roll(self, sec: int) -> None:
        if self.now_count:
            self._buckets[self._sec % self.width] += self.now_count
            self.now_count = 0
        gap = sec - self._sec
        if gap <= 0:
            return
        if gap >= self.width:
            self._buckets = [0] * self.width
        else:
            b, w = self._buckets, self.width
            for s in range(self._sec + 1, sec + 1):
                b[s % w] = 0
        self._sec = sec

    def add(self, now: float, n: int = 1) -> None:
        sec = int(now)
        if sec != self._sec:
            self._roll(sec)
        self._buckets[sec % self.width] += n

    def total(self, now: float) -> int:
        """Events in the last ``width`` seconds."""
        self._roll(int(now))
        return sum(self._buckets)

    def series(self, now: float, n: int | None = None) -> list[int]:
        """Per-second counts, oldest first, ending with the current second."""
        sec = int(now)
        self._roll(sec)
        n = min(n or self.width, self.width)
        return [self._buckets[(sec - i) % self.width] for i in range(n - 1, -1, -1)]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[idx]


class KeyStats:
    """Counters for one key."""

    __slots__ = (
        "cost",
        "counters",
        "forbidden",
        "invalid",
        "last_used",
        "latencies",
        "limits",
        "ok",
        "org",
        "per_second",
        "quota",
        "rate_limited",
        "request_errors",
        "requests",
        "server_errors",
        "tokens_in",
        "tokens_out",
        "transport",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.ok = 0
        self.rate_limited = 0
        self.invalid = 0
        self.forbidden = 0
        self.quota = 0
        self.server_errors = 0
        self.transport = 0
        self.request_errors = 0
        self.tokens_in = 0
        self.tokens_out = 0
        self.cost = 0.0
        self.last_used: float | None = None
        self.latencies: deque[float] = deque(maxlen=128)
        self.per_second = RollingCounter(60)
        self.limits: RateLimits | None = None
        self.org: str | None = None  # the fingerprint of the organization its answers name (core/accounts.py)
        #: the request budget its successes stated, newest last: (time, remaining, limit) for core/accounts.py
        self.counters: deque[CounterSample] = deque(maxlen=64)

    def saw(self, org: str | None, limits: RateLimits | None, now: float) -> None:
        """An answer's organization and request budget (what tells keys of one account)."""
        if org is not None:
            self.org = org
        if limits is not None and limits.requests_remaining is not None and limits.requests_limit:
            self.counters.append(CounterSample(now, limits.requests_remaining, limits.requests_limit))

    def rpm(self, now: float) -> int:
        """Requests sent in the last 60 s."""
        return self.per_second.total(now)

    def p50(self) -> float | None:
        return percentile(list(self.latencies), 0.5)

    def p95(self) -> float | None:
        return percentile(list(self.latencies), 0.95)

    def as_dict(self) -> KeyCounts:
        return {
            "requests": self.requests,
            "ok": self.ok,
            "rate_limited": self.rate_limited,
            "invalid": self.invalid,
            "forbidden": self.forbidden,
            "quota": self.quota,
            "server_errors": self.server_errors,
            "transport": self.transport,
            "request_errors": self.request_errors,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost": round(self.cost, 6),
        }


class CallerWindow:
    """What callers got over the last ``width_s`` seconds: each request's latency from its arrival to its
    answer (waits for a key included) and the time it spent waiting for a key. Bounded: the newest ``cap``."""

    __slots__ = ("_samples", "width_s")

    def __init__(self, width_s: float = 60.0, cap: int = 8192) -> None:
        self.width_s = width_s
        self._samples: deque[tuple[float, float, float]] = deque(maxlen=cap)  # (ended, latency_s, wait_s)

    def add(self, now: float, latency_s: float, wait_s: float) -> None:
        # max(0.0, x) without its two calls (NaN and -0.0 give 0.0 alike)
        self._samples.append((now, latency_s if latency_s > 0.0 else 0.0, wait_s if wait_s > 0.0 else 0.0))

    def recent(self, now: float) -> list[tuple[float, float, float]]:
        """The samples still inside the window (older ones are dropped)."""
        samples, edge = self._samples, now - self.width_s
        while samples and samples[0][0] < edge:
            samples.popleft()
        return list(samples)


class Histogram:
    """Cumulative counts per upper bound (Prometheus buckets) and their sum: fixed memory."""

    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)  # per bucket, not cumulative (made cumulative when read)
        self.count = 0
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.count += 1
        self.total += value
        bounds = self.bounds
        if value <= bounds[-1]:  # in a bucket (above the last, and NaN, only in the count and sum)
            self.counts[bisect_left(bounds, value)] += 1  # the first bound at or above it

    def cumulative(self) -> list[tuple[float, int]]:
        out, running = [], 0
        for bound, n in zip(self.bounds, self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out


#: callers' latency and queue wait buckets, seconds (a few ms of overhead up to a long storm's waits)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
