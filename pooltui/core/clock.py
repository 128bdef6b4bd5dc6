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
