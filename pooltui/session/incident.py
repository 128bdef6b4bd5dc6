"""What is wrong now, and the incident it belongs to. No UI in here.

:func:`alerts_of` reads a panel view and names each problem with a severity: capacity below the threshold,
an outage (the provider's breaker open), the fallback serving, callers' requests failing, callers waiting for a
key (how long, how many).
:class:`IncidentTracker` follows one provider's trouble (429s, errors, failures, fallback, outage) from its
first sign until :attr:`IncidentTracker.quiet_s` seconds pass without any, counting as it goes, so the
monitor can say in one line "since 02:17: 212 × 429 on 4 keys, 0 requests failed, fallback served 0" and the
history can keep that line when the incident ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NotRequired, TypedDict

from pooltui.core.clock import Clock
from pooltui.core.errors import no_keys
from pooltui.core.events import Event, EventKind
from pooltui.core.timefmt import clock, duration

AMBER, RED = "amber", "red"
SLOW_WAIT_S = 1.0  # a caller kept this long waiting for a key is trouble (amber)...
SLOW_WAIT_RED_S = 10.0  # ... and this long, red
#: events that are trouble by themselves
_TROUBLE = frozenset({EventKind.RATE_LIMITED, EventKind.SERVER_ERROR, EventKind.TRANSPORT, EventKind.INVALID,
                      EventKind.FORBIDDEN, EventKind.QUOTA, EventKind.EXHAUSTED_POOL, EventKind.FALLBACK})


class IncidentView(TypedDict):
    """One incident of one provider, as plain data (the panel view carries it; history keeps its summary)."""

    provider: str
    since: float
    last: float  # the last sign of trouble
    ended: float | None
    limited: int  # 429s sent upstream
    limited_keys: list[str]
    errors: int  # 5xx, transport, invalid, forbidden, quota answers upstream
    failed: int  # callers' requests that failed
    fallback_served: int
    slowest_wait: NotRequired[float]  # the longest a caller waited for a key during it, seconds
    summary: str


@dataclass(frozen=True)
class Alert:
    """One thing wrong now: ``kind`` names it (one bell per new kind), ``text`` says it on the status line."""

    kind: str
    severity: str  # "amber" or "red"
    text: str


def alerts_of(view, now: float, error_rate_amber: float = 0.01, error_rate_red: float = 0.10) -> list[Alert]:
    """Everything wrong with one provider's view, worst first."""
    out: list[Alert] = []
    usable, total = view["usable"], view["total"]
    if not total and view.get("keyless") is False:  # a keyed provider with no keys: it refuses every request
        out.append(Alert("no_keys", RED, f"NO KEYS {no_keys(view['provider'])}"))
    if total and usable + view.get("paced", 0) < view["capacity_alert"]:  # a key paced by its learnt limit is fine
        wait = view["next_ready_in"]
        out.append(Alert("capacity", RED if usable == 0 else AMBER,
                         f"CAPACITY {usable}/{total} usable" + (f", next in {duration(wait)}" if wait is not None
                                                                 else "")))
    outage = view.get("outage")
    if outage:
        out.append(Alert("outage", RED, f"OUTAGE {outage['provider']} since {clock(outage['since'], date=False)}"))
    if view.get("fallback"):
        out.append(Alert("fallback", AMBER,
                         f"FALLBACK ACTIVE {view['fallback']} served {view.get('fallback_served', 0)} in 1 min"))
    callers = view.get("callers") or {}
    requests, errors = callers.get("requests", 0), callers.get("errors", 0)
    if requests and errors / requests >= error_rate_amber:
        rate = errors / requests
        out.append(Alert("errors", RED if rate >= error_rate_red else AMBER,
                         f"FAILING {rate:.0%} of requests ({errors}/{requests} in 1 min)"))
    wait = view.get("wait") or {}
    slowest = max(wait.get("p95_s") or 0.0, wait.get("longest_now_s") or 0.0)
    if slowest >= SLOW_WAIT_S:  # what callers feel: how long they wait, how many wait now
        text = f"CALLERS WAIT p95 {wait.get('p95_s') or 0.0:.1f} s"
        if view["queued"]:
            text += f", {view['queued']} waiting (longest {wait.get('longest_now_s') or 0.0:.1f} s)"
        out.append(Alert("queue", RED if slowest >= SLOW_WAIT_RED_S else AMBER, text))
    elif view["queued"]:
        out.append(Alert("queue", AMBER, f"QUEUE {view['queued']}"))
    out.sort(key=lambda a: a.severity != RED)
    return out


def summary_line(inc: IncidentView) -> str:
    """``since 02:17:05: 212 × 429 on 4 keys, 0 requests failed, fallback served 0`` (with its end once over)."""
    head = f"since {clock(inc['since'], date=False)}"
    if inc["ended"] is not None:
        head = f"{clock(inc['since'], date=False)}-{clock(inc['ended'], date=False)} " \
               f"({duration(inc['ended'] - inc['since'], spaced=True)})"
    keys = len(inc["limited_keys"])
    parts = [f"{inc['limited']} × 429 on {keys} {'key' if keys == 1 else 'keys'}"] if inc["limited"] else []
    if inc["errors"]:
        parts.append(f"{inc['errors']} upstream errors")
    parts.append(f"{inc['failed']} {'request' if inc['failed'] == 1 else 'requests'} failed")
    if inc.get("slowest_wait", 0.0) >= SLOW_WAIT_S:
        parts.append(f"callers waited up to {inc['slowest_wait']:.1f} s")
    parts.append(f"fallback served {inc['fallback_served']}")
    return f"{head}: " + ", ".join(parts)


@dataclass
class IncidentTracker:
    """One provider's current incident (None when all is quiet) and the last one that ended."""

    provider: str
    clock: Clock
    quiet_s: float = 30.0  # an incident ends after this long without trouble
    on_end: Callable[[IncidentView], None] | None = None
    current: IncidentView | None = None
    last: IncidentView | None = None
    _keys: set[str] = field(default_factory=set)

    def _open(self, now: float) -> IncidentView:
        self.settle(now)
        if self.current is None:
            self._keys = set()
            self.current = {"provider": self.provider, "since": now, "last": now, "ended": None, "limited": 0,
                            "limited_keys": [], "errors": 0, "failed": 0, "fallback_served": 0,
                            "slowest_wait": 0.0, "summary": ""}
        self.current["last"] = now
        return self.current

    def event(self, event: Event) -> None:
        """Count an engine event of this provider (only trouble opens or extends an incident)."""
        if event.kind not in _TROUBLE:
            return
        inc = self._open(event.ts)  # the engine's time of the event (a replay from the history keeps its own)
        if event.kind is EventKind.RATE_LIMITED:
            inc["limited"] += 1
            if event.key and event.key not in self._keys:
                self._keys.add(event.key)
                inc["limited_keys"].append(event.key)
        elif event.kind in (EventKind.SERVER_ERROR, EventKind.TRANSPORT, EventKind.INVALID, EventKind.FORBIDDEN,
                            EventKind.QUOTA):
            inc["errors"] += 1
        inc["summary"] = summary_line(inc)

    def outcome(self, outcome: str, served_by: str, wait_s: float = 0.0) -> None:
        """Count a caller's request: failures, fallback service and a caller kept waiting for a key are trouble;
        successes only count."""
        failed = outcome == "error"
        fallback = bool(served_by) and served_by != self.provider
        slow = wait_s >= SLOW_WAIT_S
        if not failed and not fallback and not slow:
            return
        inc = self._open(self.clock.now())
        inc["failed"] += failed
        inc["fallback_served"] += fallback
        inc["slowest_wait"] = max(inc.get("slowest_wait", 0.0), wait_s)
        inc["summary"] = summary_line(inc)

    def touch(self) -> None:
        """Something is still wrong (an outage, a low capacity): the incident goes on."""
        self._open(self.clock.now())

    def settle(self, now: float | None = None) -> IncidentView | None:
        """End the incident once it has been quiet long enough; returns the one that ended, if any."""
        now = self.clock.now() if now is None else now
        inc = self.current
        if inc is None or now - inc["last"] < self.quiet_s:
            return None
        inc["ended"] = inc["last"]
        inc["summary"] = summary_line(inc)
        self.current, self.last = None, inc
        if self.on_end is not None:
            self.on_end(inc)
        return inc
