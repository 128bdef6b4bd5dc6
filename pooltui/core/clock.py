"""Injectable clocks: wall time in seconds since the epoch."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Anything with a ``now()`` returning epoch seconds."""

    def now(self) -> float: ...


class SystemClock:
    """The real wall clock."""

    now = staticmethod(time.time)


class FakeClock:
    """A clock that only moves when told to (tests, snapshots)."""

    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class _HasTime(Protocol):
    """An event loop, or anything with its monotonic ``time()``."""

    def time(self) -> float: ...


class LoopClock:
    """Wall time read from an event loop's own clock (``loop.time()``, monotonic), anchored to the epoch when
    made. On a fast-forwarded loop (the strategy lab's simulated time) it is that loop's virtual time, so the
    engine's cooldowns and deadlines follow the simulated minutes rather than the machine's."""

    def __init__(self, loop: _HasTime, start: float | None = None) -> None:
        self.loop = loop
        self._offset = (time.time() if start is None else start) - loop.time()

    def now(self) -> float:
        return self._offset + self.loop.time()
