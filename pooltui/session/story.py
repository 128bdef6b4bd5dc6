"""The events pane's story: repeated events collapse into one row that counts them; changes stay rows.

Every request of a rate-limit storm emits events, several a second on the ``peak-hour`` demo: too fast to
read. :class:`EventStory` folds an event into the row of its group when the group's last event is less than
``window_s`` old, updating that row in place with a count and time span:

- a key's rate-limit cycle: its 429s, and the "cooling over, back in rotation" between them, are one row
  per key ("primary · 429 ×14 in 10 s · back in rotation");
- rotations and fallbacks of one provider: one row each, counting;
- anything else: the same key, kind, status and reason (numbers in the reason ignored), a key's per-model
  cooldowns before a 429 included (the key serves its other models meanwhile: not a change of its state).

A key coming back with no cycle open, a breaker opening or closing, a key marked invalid or forbidden or
parked, a hand action: always a row of their own. The raw events stay in the engine's ring, the history and
the inspector. No UI in here.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from pooltui.core.events import Event, EventKind, StateChange
from pooltui.core.timefmt import duration

_NUMBERS = re.compile(r"\d+(?:\.\d+)?")
#: kinds whose events change a key's or a provider's state: never folded into a count
_CHANGE_KINDS = frozenset({EventKind.STATE, EventKind.INVALID, EventKind.FORBIDDEN, EventKind.QUOTA})


def is_recovery(event: Event) -> bool:
    """A key back from a cooldown: part of its rate-limit cycle when one is open."""
    return event.kind is EventKind.STATE and event.change is StateChange.RECOVERED


def is_model_cooldown(event: Event) -> bool:
    """One model of a key cooling before a 429 (its budget for that model spent): the key serves on."""
    return event.kind is EventKind.STATE and event.change is StateChange.MODEL_COOLED


def is_change(event: Event) -> bool:
    """A state change (its own row) rather than one more of the same."""
    return event.kind in _CHANGE_KINDS and not is_model_cooldown(event)


def group_of(event: Event) -> tuple:
    """What makes two events "the same" for the story."""
    kind = event.kind
    if kind is EventKind.RATE_LIMITED or is_recovery(event):
        return event.provider, event.key, "rate-limit cycle"
    if kind is EventKind.ROTATED or kind is EventKind.FALLBACK:
        return event.provider, None, kind
    return event.provider, event.key, kind, event.status, _NUMBERS.sub("#", event.reason)


@dataclass(slots=True)
class StoryRow:
    """One row of the story: a single event, or a run of the same event (``count`` of them, ``first`` to
    ``last``), with ``latest`` the newest event folded in (a recovery between 429s, say)."""

    id: int
    first: Event
    last: Event
    latest: Event
    count: int = 1

    @property
    def span_s(self) -> float:
        return self.last.ts - self.first.ts

    @property
    def kind(self) -> str:
        return str(self.first.kind)

    @property
    def who(self) -> str:
        e = self.first
        if e.kind is EventKind.ROTATED or e.kind is EventKind.FALLBACK:
            return e.provider
        return e.key or e.provider

    def summary(self) -> str:
        """``×14 in 10 s`` for a run, empty for a single event."""
        if self.count == 1:
            return ""
        return f"×{self.count} in {duration(self.span_s, spaced=True)}"

    def text(self) -> str:
        """The row in one line: ``primary · 429 ×14 in 10 s · cooled 2.1 s (retry-after)``."""
        e = self.last
        parts = [self.who, f"{e.status or e.kind}" + (f" {self.summary()}" if self.count > 1 else "")]
        if self.latest.action:
            parts.append(self.latest.action)
        return " · ".join(parts)

    def matches(self, text: str) -> bool:
        """Case-insensitive search over key, provider, kind, status, action and reason."""
        e, latest = self.last, self.latest
        hay = f"{e.provider} {e.key or ''} {e.kind} {e.status or ''} {e.action} {e.reason} {latest.action}".lower()
        return text.lower() in hay


class EventStory:
    """Events in, rows out: ``add`` says which row changed and whether it is new."""

    def __init__(self, window_s: float = 10.0, max_rows: int = 200) -> None:
        self.window_s = window_s
        self.max_rows = max_rows
        self.rows: OrderedDict[int, StoryRow] = OrderedDict()
        self._open: dict[tuple, StoryRow] = {}  # group -> its latest row, while it may still grow
        self._next = 0
        self.events_seen = 0

    def add(self, event: Event) -> tuple[StoryRow, bool]:
        """Fold ``event`` into the story: (its row, True when the row is new)."""
        self.events_seen += 1
        recovery = is_recovery(event)
        group = group_of(event) if recovery or not is_change(event) else None
        if group is not None:
            row = self._open.get(group)
            if row is not None and row.id in self.rows and event.ts - row.latest.ts <= self.window_s:
                row.latest = event
                if not recovery:
                    row.last = event
                    row.count += 1
                return row, False
            if recovery:
                group = None  # back with no cycle open: a change of its own
        self._next += 1
        row = StoryRow(self._next, event, event, event)
        self.rows[row.id] = row
        if group is not None:
            self._open[group] = row
        while len(self.rows) > self.max_rows:
            _, old = self.rows.popitem(last=False)
            group = group_of(old.first)
            if self._open.get(group) is old:
                del self._open[group]
        return row, True

    def extend(self, events: Iterable[Event]) -> list[tuple[StoryRow, bool]]:
        return [self.add(e) for e in events]
