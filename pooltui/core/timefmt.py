"""Durations and clock times as people read them: one place for the monitor, the CLI and the engine's events."""

from __future__ import annotations

import time


def duration(seconds: float | None, *, spaced: bool = False, whole: bool = False) -> str:
    """``1.5s``, ``12s``, ``3m``, ``1.5h``, ``2d`` (``spaced``: ``1.5 s``, ``12 s``, ``3 min``, ``1.5 h``, ``2 d``;
    ``whole``: whole seconds under 90 s too)."""
    if seconds is None:
        return "-"
    s, m, h, d = (" s", " min", " h", " d") if spaced else ("s", "m", "h", "d")
    seconds = max(0.0, seconds)
    if seconds < 10 and not whole:
        return f"{seconds:.1f}{s}"
    if seconds < 90:
        return f"{seconds:.0f}{s}"
    if seconds < 5400:
        return f"{seconds / 60:.0f}{m}"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f}{h}"
    return f"{seconds / 86400:.0f}{d}"


def clock(ts: float | None, *, utc: bool = False, date: bool = True) -> str:
    """``2026-09-21 14:13:20`` in local time (``utc``: with ``UTC``; ``date=False``: the time of day only)."""
    if not ts:
        return "-"
    fmt = ("%Y-%m-%d " if date else "") + "%H:%M:%S" + (" UTC" if utc else "")
    return time.strftime(fmt, time.gmtime(ts) if utc else time.localtime(ts))


def millis(ms: float | None) -> str:
    """A latency as people read it: ``28 ms``, ``340 ms``, ``7.0 s``, ``2 min`` (``-`` for none)."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return duration(ms / 1000, spaced=True)
