"""The fleet's sends per key, so a learnt limit is fitted from the whole fleet's traffic (issue 27).

A 429 says how many requests the provider's window held; with several processes on one key most of them were
sent by the others (core/learned.py: ``FleetSends``). One Redis stream per (provider, key label or
``label@model``, key fingerprint): each process appends the send times of its requests as they go out, and of
those refused since (a 429 is not counted by the provider), one entry per sync listing those since the last
(XADD, capped at :data:`MAX_SENDS` entries, ``MAXLEN ~``; an entry per send cost a command per request), and
reads what the others appended since its last read (XREAD, not blocking, every log in one call). A log is
synced every :data:`EVERY_S` while its key is sent on, and at the next round (20 ms) when a fit waits for it,
in the background round of the shared windows (store/shared_windows.py): a pick or a report never waits on
Redis. A stream rather than a sorted set: its ids are Redis's own and only grow, so "since the last read"
misses nothing a process appended late. A fit waits until the others' sends before its 429 have been read
(:data:`TOLD_S`).

Every entry read is checked like network input: a time that is not a whole number of ms within
:data:`RETENTION_S`, or in the future, drops the entry (counted; the process says so once).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Sequence
from typing import Any

MAX_SENDS = 2048  # entries a stream keeps (about), and sends of the others kept here
RETENTION_S = 600.0  # sends older than this say nothing a fit reads (learned.STALE_S)
ACTIVE_S = 60.0  # a log is read while this process sent on its key within this long
FUTURE_S = 1.0  # a send time later than Redis's clock by more than this is planted
#: a send is told at its process's next sync (within EVERY_S and a round of 20 ms): what was sent this long before
#: a read started has been read (a fit waits for it)
EVERY_S = 0.1  # a log is synced this often while its key is sent on (at once when a fit waits for it)
TOLD_S = EVERY_S + 0.05
MAX_LISTENERS = 64  # pools of one process listening to one log (one per pool built on the key)
PER_ENTRY = 256  # sends one entry lists at most (a process appends one entry per log per round, not per send)


class SharedSends:
    """One key's log (a ``FleetSends``): this process's sends and refusals go out, the others' come in."""

    __slots__ = ("active_until", "last_id", "listeners", "name", "offset_s", "on_urgent", "pending", "read_at",
                 "seen", "synced_at", "urgent", "withdrawn")

    def __init__(self, name: str, on_urgent: Callable[[], None] = lambda: None) -> None:
        self.name = name
        self.on_urgent = on_urgent  # asks the background for a round within a tick (it sleeps while nothing is due)
        self.pending: list[float] = []  # this process's sends not appended yet (local time)
        self.withdrawn: list[float] = []  # this process's sends refused since, not appended yet
        self.seen: list[float] = []  # the others' sends not refused, as read (local time), oldest first
        self.last_id: str | None = None  # the stream id read up to (None: not read yet)
        self.active_until = 0.0  # local time until which the log is read
        self.read_at = float("-inf")  # local time the latest read started
        self.offset_s: float | None = None  # Redis's clock minus ours, as the log's first read saw it
        self.listeners: list[Callable[[], None]] = []  # called after each read (pools fit their waiting 429s)
        self.synced_at = float("-inf")  # local time of the latest sync (append and read)
        self.urgent = False  # a fit waits for the others' sends: sync at the next round

    def add(self, at: float) -> None:
        self.pending.append(at)
        if at + ACTIVE_S > self.active_until:
            self.active_until = at + ACTIVE_S

    def refused(self, at: float) -> None:
        self.withdrawn.append(at)

    def others(self) -> Sequence[float]:
        return self.seen

    def known_until(self) -> float:
        if not self.urgent:  # a fit waits for the next read: it is not left for the slower cadence
            self.urgent = True
            self.on_urgent()
        return self.read_at - TOLD_S

    def due(self, now: float, early: float = 0.0) -> bool:
        """Whether this round syncs the log: a fit waits for it, or :data:`EVERY_S` (less ``early``) passed since
        the last sync (while the process sends on the key); a round trip every 20 ms per process cost the proxy's
        loop."""
        return (self.urgent or now - self.synced_at >= EVERY_S - early) and (
            bool(self.pending or self.withdrawn) or now < self.active_until)

    def when_read(self, callback: Callable[[], None]) -> None:
        if len(self.listeners) < MAX_LISTENERS:
            self.listeners.append(callback)

    def read(self, now: float) -> None:
        """The others' sends were read up to ``now``: the pools that wait for them are told."""
        self.read_at = now
        for listener in self.listeners:
            listener()

    def heard(self, at: float, now: float) -> None:
        """Another process's send at ``at`` (local time), read now."""
        seen = self.seen
        if seen and at < seen[-1]:
            insort(seen, at)
        else:
            seen.append(at)
        if len(seen) > 2 * MAX_SENDS or seen[0] < now - RETENTION_S:
            del seen[:max(len(seen) - MAX_SENDS, bisect_right(seen, now - RETENTION_S))]

    def unheard(self, at: float) -> None:
        """Another process's send at ``at`` was refused: the nearest send known (within 2 ms) goes."""
        seen = self.seen
        i = bisect_left(seen, at - 0.002)
        if i < len(seen) and seen[i] <= at + 0.002:
            del seen[i]


def send_times(fields: Any, own_tag: str, redis_ms: int) -> tuple[list[int], list[int]]:
    """The send times in Redis ms of an entry another process appended, and those of its sends refused since
    (both empty: this process's own). Raises ValueError for an entry that is not one: malformed, more than
    :data:`PER_ENTRY` times, a time outside the retention or in the future."""
    if not isinstance(fields, dict):
        raise ValueError("an entry that is not a field map")
    tag = fields.get("p")
    if not isinstance(tag, str):
        raise ValueError("an entry without its process")
    sent, refused = (_times(fields.get(name, ""), redis_ms) for name in ("t", "r"))
    return ([], []) if tag == own_tag else (sent, refused)


def _times(listed: Any, redis_ms: int) -> list[int]:
    if not isinstance(listed, str) or len(listed) > PER_ENTRY * 16:
        raise ValueError("an entry whose times are not a list")
    times = listed.split(",") if listed else []
    if len(times) > PER_ENTRY or not all(t.isdigit() and len(t) <= 15 for t in times):
        raise ValueError("an entry whose times are not whole ms")
    out = [int(t) for t in times]
    if not all(redis_ms - RETENTION_S * 1000 <= ms <= redis_ms + FUTURE_S * 1000 for ms in out):
        raise ValueError("a send time outside the retention or in the future")
    return out
