"""A provider-wide breaker: many transient failures at once mean an outage, so go to the fallback."""

from __future__ import annotations

from collections import deque

from pooltui.core.clock import Clock


class OutageBreaker:
    """Opens after ``threshold`` transient failures within ``window_s`` with no success in between;
    while open the provider is skipped (when a fallback exists) for ``open_s``, then one request probes it."""

    def __init__(self, clock: Clock, threshold: int = 6, window_s: float = 5.0, open_s: float = 3.0) -> None:
        self.clock = clock
        self.threshold = threshold
        self.window_s = window_s
        self.open_s = open_s
        self._failures: deque[float] = deque(maxlen=threshold)
        self.open_until: float | None = None
        self.opened_at: float | None = None  # when the current outage was suspected (None while closed)
        self._probing = False
        self.opened = 0  # how many times it opened (for stats)

    @property
    def is_open(self) -> bool:
        return self.open_until is not None

    def holding(self, now: float) -> bool:
        """Requests go to the fallbacks first now: open and its probe not yet due, or the probe is out. Once
        the probe is due the next request tries the provider: nothing is held off it any more."""
        return self.open_until is not None and (now < self.open_until or self._probing)

    @property
    def probing(self) -> bool:
        """A trial request is out and has not been settled yet."""
        return self._probing

    def release_probe(self) -> None:
        """The trial ended without a verdict (no key to try, cancelled, deadline): the next request probes."""
        self._probing = False

    def allow(self) -> bool:
        """May a request try this provider now? (Open: no, until a single probe after ``open_s``.)"""
        if self.open_until is None:
            return True
        if self.clock.now() >= self.open_until and not self._probing:
            self._probing = True
            return True
        return False

    def failure(self) -> bool:
        """Record a transient failure; returns True when this one opened the breaker."""
        now = self.clock.now()
        if self._probing:  # the probe failed: stay open
            self._probing = False
            self.open_until = now + self.open_s
            return False
        self._failures.append(now)
        if (self.open_until is None and len(self._failures) == self.threshold
                and now - self._failures[0] <= self.window_s):
            self.open_until = now + self.open_s
            self.opened_at = now
            self.opened += 1
            return True
        return False

    def success(self) -> bool:
        """Record a success; returns True when it closed the breaker."""
        self._failures.clear()
        was_open = self.open_until is not None
        self.open_until = self.opened_at = None
        self._probing = False
        return was_open
