"""The fleet's accepted sends per key, so a learnt limit is fitted from the whole fleet's traffic (issue 27).

A 429 says how many requests the provider's window held; with several processes on one key most of them were
sent by the others (core/learned.py: ``FleetSends``). One Redis stream per (provider, key label or
``label@model``, key fingerprint): each process appends the send time of each of its accepted requests (XADD,
capped at :data:`MAX_SENDS` entries, ``MAXLEN ~``) and reads what the others appended since its last read
(XREAD, not blocking, every log in one call), in the background round of the shared windows
(store/shared_windows.py): a pick or a report never waits on Redis. A stream rather than a sorted set: its ids
are Redis's own and only grow, so "since the last read" misses nothing a process appended late. A process
reads a log only while it sends on the key (a fit needs the others' sends only after its own 429).

Every entry read is checked like network input: a send time that is not a whole number of ms within
:data:`RETENTION_S`, or in the future, is dropped (counted; the process says so once).
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Sequence
from typing import Any

MAX_SENDS = 2048  # entries a stream keeps (about), and sends of the others kept here
RETENTION_S = 600.0  # sends older than this say nothing a fit reads (learned.STALE_S)
ACTIVE_S = 60.0  # a log is read while this process sent on its key within this long
FUTURE_S = 1.0  # a send time later than Redis's clock by more than this is planted


class SharedSends:
    """One key's log (a ``FleetSends``): this process's accepted sends go out, the others' come in."""

    __slots__ = ("active_until", "last_id", "name", "pending", "seen")

    def __init__(self, name: str) -> None:
        self.name = name
        self.pending: list[float] = []  # this process's accepted sends not appended yet (local time)
        self.seen: list[float] = []  # the others' sends as read (local time), oldest first
        self.last_id: str | None = None  # the stream id read up to (None: not read yet)
        self.active_until = 0.0  # local time until which the log is read

    def add(self, at: float) -> None:
        self.pending.append(at)
        self.active_until = max(self.active_until, at + ACTIVE_S)

    def others(self) -> Sequence[float]:
        return self.seen

    def heard(self, at: float, now: float) -> None:
        """Another process's send at ``at`` (local time), read now."""
        seen = self.seen
        if seen and at < seen[-1]:
            insort(seen, at)
        else:
            seen.append(at)
        if len(seen) > 2 * MAX_SENDS or seen[0] < now - RETENTION_S:
            del seen[:max(len(seen) - MAX_SENDS, bisect_right(seen, now - RETENTION_S))]


def send_time(fields: Any, own_tag: str, redis_ms: int) -> int | None:
    """The send time in Redis ms of an entry another process appended (None: this process's own, or not a
    send: malformed, outside the retention, in the future). Raises ValueError for a malformed one."""
    if not isinstance(fields, dict):
        raise ValueError("an entry that is not a field map")
    tag, at = fields.get("p"), fields.get("t")
    if not isinstance(tag, str) or not isinstance(at, str) or not at.isdigit() or len(at) > 15:
        raise ValueError("an entry without its process and time")
    ms = int(at)
    if not redis_ms - RETENTION_S * 1000 <= ms <= redis_ms + FUTURE_S * 1000:
        raise ValueError("a send time outside the retention or in the future")
    return None if tag == own_tag else ms
