"""Per-key requests, 429s and errors over the last 15 minutes, in 10-second buckets: the shape of an
incident, for the monitor's timeline chart. No UI in here."""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import NotRequired, TypedDict

from pooltui.core.events import Event, EventKind
from pooltui.core.stats import percentile

BUCKET_S = 10
BUCKETS = 90  # 15 minutes
CALLERS_KEPT = 512  # callers' latencies kept per bucket (the newest) for its p95
KEYS_SHOWN = 8  # more keys than this: the busiest 8, the rest summed as "others"
_ERRORS = frozenset({EventKind.SERVER_ERROR, EventKind.TRANSPORT, EventKind.INVALID, EventKind.FORBIDDEN,
                     EventKind.QUOTA})


class KeyLine(TypedDict):
    requests: list[int]
    limited: list[int]
    errors: list[int]


class TimelineView(TypedDict):
    bucket_s: int
    end: float  # the end of the last bucket (epoch seconds)
    keys: dict[str, KeyLine]  # oldest bucket first, BUCKETS long
    #: per bucket, callers' latency p95 in seconds (arrival to answer, waits included); None: no caller answered
    callers_p95_s: NotRequired[list[float | None]]


class Timeline:
    """Counts per (bucket, key, what); old buckets fall off."""

    def __init__(self) -> None:
        self._buckets: OrderedDict[int, dict[str, list[int]]] = OrderedDict()
        self._callers: OrderedDict[int, deque[float]] = OrderedDict()  # per bucket, callers' latencies (newest)

    def caller(self, ts: float, latency_s: float) -> None:
        """One caller's request answered ``latency_s`` after it arrived."""
        b = int(ts // BUCKET_S)
        samples = self._callers.get(b)
        if samples is None:
            samples = self._callers[b] = deque(maxlen=CALLERS_KEPT)
            while len(self._callers) > BUCKETS or next(iter(self._callers)) <= b - BUCKETS:
                self._callers.popitem(last=False)
        samples.append(latency_s)

    def _cell(self, ts: float, key: str) -> list[int]:
        b = int(ts // BUCKET_S)
        bucket = self._buckets.get(b)
        if bucket is None:
            bucket = self._buckets[b] = {}
            while len(self._buckets) > BUCKETS or next(iter(self._buckets)) <= b - BUCKETS:
                self._buckets.popitem(last=False)
        cell = bucket.get(key)
        if cell is None:
            cell = bucket[key] = [0, 0, 0]
        return cell

    def request(self, ts: float, key: str, n: int = 1) -> None:
        self._cell(ts, key)[0] += n

    def event(self, event: Event, key: str) -> None:
        """Count a 429 or an error of ``key`` (the name the chart shows for the event's key)."""
        if event.kind is EventKind.RATE_LIMITED:
            self._cell(event.ts, key)[1] += 1
        elif event.kind in _ERRORS:
            self._cell(event.ts, key)[2] += 1

    def view(self, now: float) -> TimelineView:
        last = int(now // BUCKET_S)
        first = last - BUCKETS + 1
        totals: dict[str, int] = {}
        for b, bucket in self._buckets.items():
            if b >= first:
                for key, cell in bucket.items():
                    totals[key] = totals.get(key, 0) + sum(cell)
        shown = sorted(totals, key=lambda k: -totals[k])[:KEYS_SHOWN]
        lines: dict[str, KeyLine] = {}
        for key in [*shown, "others"]:
            lines[key] = {"requests": [0] * BUCKETS, "limited": [0] * BUCKETS, "errors": [0] * BUCKETS}
        for b, bucket in self._buckets.items():
            if b < first:
                continue
            i = b - first
            for key, (req, lim, err) in bucket.items():
                line = lines[key if key in lines else "others"]
                line["requests"][i] += req
                line["limited"][i] += lim
                line["errors"][i] += err
        others = lines["others"]
        if not any([*others["requests"], *others["limited"], *others["errors"]]):
            del lines["others"]
        callers: list[float | None] = [None] * BUCKETS
        for b, samples in self._callers.items():
            if b >= first:
                p95 = percentile(list(samples), 0.95)
                callers[b - first] = None if p95 is None else round(p95, 3)
        return {"bucket_s": BUCKET_S, "end": (last + 1) * BUCKET_S, "keys": lines, "callers_p95_s": callers}
