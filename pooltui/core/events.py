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


class StateChange(StrEnum):
    """What an event changed, for code to match on (the reason and action are for people only); None on an
    event that changed nothing (a rotation, a fallback, a 5xx, a 429 on a key already cooling...)."""

    COOLED = "cooled"  # the key cools (a 429, a longer cooldown, a success saying its budget is spent)
    MODEL_COOLED = "model_cooled"  # the key cools for one model only and serves the others
    SCOPED = "scoped"  # a second model is served: a key's cooldown becomes its first model's only
    RECOVERED = "recovered"  # its cooldown ran out: back in rotation
    RELEASED = "released"  # another deadline ran out (a park, a timed disable): back in rotation
    PARKED = "parked"  # quota, billing or budget
    BARRED = "barred"  # marked invalid or forbidden (the kind says which)
    DISABLED = "disabled"
    ENABLED = "enabled"
    RESET = "reset"  # cooldown or parking cleared by hand
    VERIFIED = "verified"  # verified valid (back in rotation if it was out)
    CHECKED = "checked"  # verified, and not valid (still, or now)
    LEARNED = "learned"  # a limit learnt from the key's answers: picks paced by it
    TOKENS_LEARNED = "tokens_learned"  # a token budget learnt from a 429 that says tokens: held like a declared one
    OUTAGE_OPENED = "outage_opened"  # a provider's outage suspected: fallbacks first
    OUTAGE_CLOSED = "outage_closed"  # the provider answered again


#: a key's own deadline ran out: each process's timer ends it (nothing to tell the others)
TIMER_ENDED = frozenset({StateChange.RECOVERED, StateChange.RELEASED})


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened to a key or a pool: when, which key, status, why and what was done (words for
    people), and what it changed (``change``: what code matches on)."""

    ts: float
    provider: str
    key: str | None
    kind: EventKind
    status: int | None = None
    reason: str = ""
    action: str = ""
    request_id: int | None = None
    change: StateChange | None = None


Wording = Callable[[str], str]
_wording: Wording | None = None  # see reworded()


@contextlib.contextmanager
def reworded(wording: Wording) -> Iterator[None]:
    """Meanwhile every event emitted says its reason and action through ``wording``: the proof (in tests) that
    no code reads them, only people."""
    global _wording
    before, _wording = _wording, wording
    try:
        yield
    finally:
        _wording = before


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
            if _wording is not None:
                reason, action = _wording(reason), _wording(action)
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
