"""What the monitor shows of one client, as typed plain data: the same shapes whether the monitor renders
a local engine or attaches to a proxy's ``/pooltui/state`` (which serves exactly these). No UI in here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

from pooltui.client.pool_client import PoolClient, UsageRecord
from pooltui.core.clock import Clock
from pooltui.core.events import Event, EventKind
from pooltui.core.snapshot import KeySnapshot
from pooltui.core.stats import RollingCounter
from pooltui.core.trace import format_trace


class SeriesView(TypedDict):
    """Per-second counts over the last 60 s, oldest first."""

    requests: list[int]
    ok: list[int]
    limited: list[int]
    errors: list[int]


class PanelView(TypedDict):
    """Everything the monitor's panels show for one provider."""

    provider: str
    keyless: bool  # a keyless endpoint: no pool, no key actions
    strategy: str | None
    next: str | None  # the key the next request will use
    picks: list[str]  # recent picks, oldest first
    summary: str
    usable: int
    total: int
    next_ready_in: float | None  # seconds until a key comes back, when none is usable
    capacity_alert: int  # alert when fewer keys than this are usable
    keys: list[KeySnapshot]
    series: SeriesView
    rpm: int
    header_limits: list[int]
    fallback: str | None  # the fallback provider serving now, if any
    queued: int


class EventView(TypedDict):
    """One engine event, numbered so an attached monitor takes each once."""

    seq: int
    ts: float
    provider: str
    key: str | None
    kind: str
    status: int | None
    reason: str
    action: str
    request_id: int | None


class TraceView(TypedDict):
    request_id: int
    text: str


class StateView(TypedDict):
    """What ``GET /pooltui/state`` answers."""

    started: float
    providers: dict[str, PanelView]
    events: list[EventView]
    traces: dict[str, list[TraceView]]


def empty_panel(provider: str) -> PanelView:
    """The view of a provider nothing is known about yet."""
    zeros = [0] * 60
    return {"provider": provider, "keyless": True, "strategy": None, "next": None, "picks": [], "summary": "",
            "usable": 0, "total": 0, "next_ready_in": None, "capacity_alert": 1, "keys": [], "rpm": 0,
            "header_limits": [],
            "series": {"requests": zeros, "ok": zeros, "limited": zeros, "errors": zeros}, "fallback": None,
            "queued": 0}


ERROR_KINDS = frozenset({EventKind.SERVER_ERROR, EventKind.TRANSPORT, EventKind.INVALID, EventKind.FORBIDDEN,
                         EventKind.QUOTA, EventKind.EXHAUSTED_POOL})


class ClientSeries:
    """Per-second successes, 429s, errors and fallbacks of everything one client serves."""

    def __init__(self, client: PoolClient, clock: Clock, on_event: Callable[[Event], None] | None = None) -> None:
        self.clock = clock
        self.ok = RollingCounter(60)
        self.limited = RollingCounter(60)
        self.errors = RollingCounter(60)
        self.fallback = RollingCounter(60)
        self._on_event = on_event
        client.events.subscribe(self._event)
        client.usage_listeners.append(self._usage)

    def _event(self, event: Event) -> None:
        now = self.clock.now()
        if event.kind is EventKind.RATE_LIMITED:
            self.limited.add(now)
        elif event.kind in ERROR_KINDS:
            self.errors.add(now)
        elif event.kind is EventKind.FALLBACK:
            self.fallback.add(now)
        if self._on_event is not None:
            self._on_event(event)

    def _usage(self, u: UsageRecord) -> None:
        if u.ok:
            self.ok.add(self.clock.now())


def fallback_active(client: PoolClient, series: ClientSeries, now: float, window_s: int = 10) -> str | None:
    """The fallback provider serving this client's traffic in the last few seconds, if any."""
    if sum(series.fallback.series(now, window_s)) == 0:
        return None
    busiest, best = None, 0
    for up in client.fallbacks:
        if up.pool is not None:
            n = up.pool.per_second.total(now)
            if n > best:
                busiest, best = up.name, n
        elif busiest is None:
            busiest = up.name
    return busiest


def panel(client: PoolClient, series: ClientSeries, now: float, capacity_alert: int = 1) -> PanelView:
    """Everything the monitor's panels show for one client (JSON-safe, no secrets)."""
    pool = client.primary.pool
    keys = pool.snapshot() if pool is not None else []
    limits = [k["requests_limit"] for k in keys if k.get("requests_limit")]
    return {
        "provider": client.primary.name,
        "keyless": pool is None,
        "strategy": pool.strategy if pool is not None else None,
        "next": pool.peek() if pool is not None else None,
        "picks": list(pool.picks) if pool is not None else [],
        "summary": pool.summary() if pool is not None else "no keys (a keyless endpoint)",
        "usable": pool.usable() if pool is not None else 0,
        "total": len(pool) if pool is not None else 0,
        "next_ready_in": pool.next_ready_in() if pool is not None else None,
        "capacity_alert": capacity_alert,
        "keys": keys,
        "series": {
            "requests": pool.per_second.series(now, 60) if pool is not None else [0] * 60,
            "ok": series.ok.series(now, 60),
            "limited": series.limited.series(now, 60),
            "errors": series.errors.series(now, 60),
        },
        "rpm": pool.per_second.total(now) if pool is not None else 0,
        "header_limits": limits,
        "fallback": fallback_active(client, series, now),
        "queued": client.waiting,
    }


def event_dict(event: Event, seq: int) -> EventView:
    return {"seq": seq, "ts": event.ts, "provider": event.provider, "key": event.key, "kind": str(event.kind),
            "status": event.status, "reason": event.reason, "action": event.action, "request_id": event.request_id}


def event_from(d: EventView | dict[str, Any]) -> Event:
    try:
        kind = EventKind(d.get("kind"))
    except ValueError:
        kind = EventKind.STATE
    return Event(float(d.get("ts") or 0.0), str(d.get("provider") or ""), d.get("key"), kind, d.get("status"),
                 str(d.get("reason") or ""), str(d.get("action") or ""), d.get("request_id"))


def trace_text(client: PoolClient, request_id: int | None = None) -> tuple[int, str] | None:
    """The trace of ``request_id`` (else the latest request) as text, or None when nothing was traced."""
    traces = list(client.traces)
    trace = None
    if request_id is not None:
        trace = next((t for t in reversed(traces) if t.request_id == request_id), None)
    if trace is None and traces:
        trace = traces[-1]
    return None if trace is None else (trace.request_id, format_trace(trace))
