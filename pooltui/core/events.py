"""Engine events: small immutable records in a bounded ring, fanned out to listeners."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from enum import StrEnum

from pooltui.core.masking import scrub


class EventKind(StrEnum):
    RATE_LIMITED = "rate_limited"
    QUOTA = "quota"
    INVALID = "invalid"
    FORBIDDEN = "forbidden"
    SERVER_ERROR = "server_error"
    TRANSPORT = "transport"
    STATE = "state"
    ROTATED = "rotated"
    FALLBACK = "fallback"
    EXHAUSTED_POOL = "pool_exhausted"


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened to a key or a pool: when, which key, status, why, what was done."""

    ts: float
    provider: str
    key: str | None
    kind: EventKind
    status: int | None = None
    reason: str = ""
    action: str = ""
    request_id: int | None = None


Listener = Callable[[Event], None]


class EventLog:
    """A bounded ring of recent events plus listeners (history, monitor bridge)."""

    def __init__(self, maxlen: int = 1000) -> None:
        self._ring: deque[Event] = deque(maxlen=maxlen)
        self._listeners: list[Listener] = []
        self.total = 0

    def emit(self, event: Event) -> None:
        if event.reason or event.action:
            reason, action = scrub(event.reason), scrub(event.action)
            if reason != event.reason or action != event.action:
                event = replace(event, reason=reason, action=action)
        self._ring.append(event)
        self.total += 1
        for listener in self._listeners:
            with contextlib.suppress(Exception):
                listener(event)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add a listener; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def recent(self, n: int | None = None) -> list[Event]:
        items = list(self._ring)
        return items if n is None else items[-n:]

    def __iter__(self) -> Iterator[Event]:
        return iter(list(self._ring))

    def __len__(self) -> int:
        return len(self._ring)
