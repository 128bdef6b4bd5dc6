"""What the monitor shows of one client, as typed plain data: the same shapes whether the monitor renders
a local engine or attaches to a proxy's ``/pooltui/state`` (which serves exactly these). No UI in here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

from pooltui.client.pool_client import PoolClient
from pooltui.core.clock import Clock
from pooltui.core.errors import no_keys
from pooltui.core.events import Event, EventKind, StateChange
from pooltui.core.pool import Pool
from pooltui.core.snapshot import KeySnapshot
from pooltui.core.stats import LATENCY_BUCKETS, CallerWindow, Histogram, RollingCounter, percentile
from pooltui.core.trace import RequestTrace, format_trace
from pooltui.session.incident import SLOW_WAIT_S, IncidentTracker, IncidentView
from pooltui.session.timeline import Timeline, TimelineView


class SeriesView(TypedDict):
    """Per-second counts over the last 60 s, oldest first. ``requests``, ``ok`` and ``errors`` count the same
    callers' requests (ok + errors + the callers' own 4xx = requests); ``limited`` counts 429s upstream."""

    requests: list[int]
    ok: list[int]
    limited: list[int]
    errors: list[int]


class CallerCounts(TypedDict):
    """Callers' requests over the last minute: served, failed (pool gave up or a 5xx), rejected (their 4xx)."""

    requests: int
    ok: int
    errors: int
    rejected: int


class LatencyView(TypedDict):
    """What callers felt over the last minute: latency from arrival to answer (first byte of a stream; waits for
    a key included) and the time spent waiting for a key; ``waiting`` now and the longest of those waits."""

    requests: int  # callers' requests answered in the window
    p50_ms: float | None
    p95_ms: float | None


class WaitView(TypedDict):
    p50_s: float | None
    p95_s: float | None
    slowest_s: float  # the longest wait of a request answered in the window
    waiting: int  # requests waiting for a key now (the real backlog)
    longest_now_s: float  # how long the request waiting longest now has waited


class OutageView(TypedDict):
    provider: str
    since: float
    until: float  # the next probe


class FallbackView(TypedDict):
    """One fallback provider of a client: its pool's keys and whether it is serving now."""

    name: str
    keyless: bool
    keys: list[KeySnapshot]
    usable: int
    total: int
    summary: str
    serving: bool


class AffinityView(TypedDict):
    """Conversations kept on the key that holds their prompt cache (see core/affinity.py), per provider."""

    mode: str  # "prefix", "session" or "off"
    conversations: int  # conversations whose key is remembered now
    hits: int  # requests that stayed on their conversation's key (or one of its cache group)
    moves: int  # conversations that moved on: their key had no room
    new: int  # conversations seen first (or after their cache expired): the strategy chose
    #: the provider's prompt-cache figures, its keys' summed: tokens read from a cache, written to one, the
    #: cacheable input, the hit rate (read / cacheable; None with nothing cacheable), the keys' cost (USD, from
    #: [prices]) and what round-robin without affinity would have cost (an estimate: core/round_robin_cost.py)
    cache_read: int
    cache_write: int
    cacheable: int
    cache_hit_rate: float | None
    cost: float
    cost_round_robin: float


class PanelView(TypedDict):
    """Everything the monitor's panels show for one provider."""

    provider: str
    fallback_of: str | None  # viewed as a fallback of this provider (whose callers' traffic it serves)
    keyless: bool  # a keyless endpoint: no pool, no key actions
    strategy: str | None
    next: str | None  # the key the next request will use
    picks: list[str]  # recent picks, oldest first
    summary: str
    usable: int
    paced: int  # keys resting at a limit learnt from 429s (healthy: back as soon as their window has room)
    total: int
    next_ready_in: float | None  # seconds until a key comes back, when none is usable
    capacity_alert: int  # alert when fewer keys than this are usable (or paced)
    keys: list[KeySnapshot]
    series: SeriesView
    rpm: int
    header_limits: list[int]
    fallback: str | None  # the fallback provider serving now, if any
    fallback_served: int  # callers' requests a fallback served in the last minute
    queued: int
    callers: CallerCounts
    latency: LatencyView  # callers' latency (the keys' own p50 is in the keys table)
    wait: WaitView  # callers' time waiting for a key
    outage: OutageView | None  # the provider's breaker holds requests off it (until its probe is due, or answered)
    incident: IncidentView | None  # trouble now (see pooltui.session.incident)
    last_incident: IncidentView | None
    fallbacks: list[FallbackView]
    timeline: TimelineView  # per key, the last 15 minutes in 10 s buckets
    affinity: AffinityView


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
    change: str | None  # a StateChange: what code matches on (reason and action are for people)


class TraceView(TypedDict):
    request_id: int
    text: str


class StateView(TypedDict):
    """What ``GET /pooltui/state`` answers."""

    started: float
    providers: dict[str, PanelView]
    events: list[EventView]
    traces: dict[str, list[TraceView]]


NO_AFFINITY: AffinityView = {"mode": "off", "conversations": 0, "hits": 0, "moves": 0, "new": 0, "cache_read": 0,
                              "cache_write": 0, "cacheable": 0, "cache_hit_rate": None, "cost": 0.0,
                              "cost_round_robin": 0.0}


def affinity_view(pool: Pool | None, keys: list[KeySnapshot]) -> AffinityView:
    """The pool's affinity and prompt-cache figures (its keys' counters summed from their snapshot)."""
    if pool is None:
        return NO_AFFINITY.copy()
    read, cacheable = sum(k["cache_read"] for k in keys), sum(k["cacheable"] for k in keys)
    return {"mode": pool.affinity, "conversations": pool.conversations,
            "hits": sum(k["affinity_hits"] for k in keys), "moves": sum(k["affinity_moves"] for k in keys),
            "new": pool.affinity_new, "cache_read": read, "cache_write": sum(k["cache_write"] for k in keys),
            "cacheable": cacheable, "cache_hit_rate": read / cacheable if cacheable else None,
            "cost": sum(k["cost"] for k in keys), "cost_round_robin": sum(k["cost_round_robin"] for k in keys)}


def empty_panel(provider: str) -> PanelView:
    """The view of a provider nothing is known about yet."""
    zeros = [0] * 60
    return {"provider": provider, "fallback_of": None, "keyless": True, "strategy": None, "next": None, "picks": [],
            "summary": "",
            "usable": 0, "paced": 0, "total": 0, "next_ready_in": None, "capacity_alert": 1, "keys": [], "rpm": 0,
            "header_limits": [],
            "series": {"requests": zeros, "ok": zeros, "limited": zeros, "errors": zeros}, "fallback": None,
            "fallback_served": 0, "queued": 0, "callers": {"requests": 0, "ok": 0, "errors": 0, "rejected": 0},
            "latency": {"requests": 0, "p50_ms": None, "p95_ms": None},
            "wait": {"p50_s": None, "p95_s": None, "slowest_s": 0.0, "waiting": 0, "longest_now_s": 0.0},
            "outage": None, "incident": None, "last_incident": None, "fallbacks": [],
            "timeline": no_timeline(), "affinity": NO_AFFINITY.copy()}



class ClientSeries:
    """Per-second counts of what one client serves (callers' requests, successes, failures, 429s upstream,
    fallback service) and its incident tracker. One per client: the session and the proxy serving the same client
    share it (each adds itself to ``listeners``), so they show the same recent past."""

    def __init__(self, client: PoolClient, clock: Clock, on_event: Callable[[Event], None] | None = None,
                 on_incident_end: Callable[[IncidentView], None] | None = None) -> None:
        self.clock = clock
        # callers' requests: each is counted once, in ok, errors or rejected (their sum is the requests)
        self.ok = RollingCounter(60)
        self.errors = RollingCounter(60)
        self.rejected = RollingCounter(60)
        self.limited = RollingCounter(60)
        self.fallback = RollingCounter(60)
        self.fallback_served = RollingCounter(60)
        self.primary = client.primary.name
        self.tracker = IncidentTracker(self.primary, clock, on_end=on_incident_end)
        self.timeline = Timeline()
        #: called with every event of the client (after it was counted): the session's listeners, the proxy's ring
        self.listeners: list[Callable[[Event], None]] = [on_event] if on_event is not None else []
        client.events.subscribe(self._event)
        #: the logs of fallback pools shared with (and owned by) other clients: their keys' events count here too
        self.others = list({id(up.pool.events): up.pool.events for up in client.fallbacks
                            if up.pool is not None and up.pool.events is not client.events}.values())
        self._fallbacks = {up.name for up in client.fallbacks}
        for log in self.others:
            log.subscribe(self._shared_event)
        self.window = CallerWindow(60.0)  # each caller's latency and wait over the last minute
        self.latency_hist = Histogram(LATENCY_BUCKETS)
        self.wait_hist = Histogram(LATENCY_BUCKETS)
        self.client = client
        client.outcome_listeners.append(self._outcome)
        client.usage_listeners.append(self._usage)

    def _event(self, event: Event) -> None:
        self._count(event)
        for listener in self.listeners:
            listener(event)

    def _count(self, event: Event) -> None:
        if event.kind is EventKind.RATE_LIMITED:
            self.limited.add(self.clock.now())
        elif event.kind is EventKind.FALLBACK:
            self.fallback.add(self.clock.now())
        self.tracker.event(event)
        if event.key is not None:
            self.timeline.event(event, self.name_of(event.provider, event.key))

    def _shared_event(self, event: Event) -> None:
        """A key event of a fallback pool owned by another client: counted here, passed on by its owner."""
        if event.key is not None and event.provider in self._fallbacks:
            self._count(event)

    def _outcome(self, outcome: str, served_by: str, trace: RequestTrace) -> None:
        now = self.clock.now()
        latency, wait = now - trace.started, trace.waited_s
        self.window.add(now, latency, wait)
        self.latency_hist.observe(latency)
        self.wait_hist.observe(wait)
        self.timeline.caller(now, latency)
        (self.ok if outcome == "ok" else self.errors if outcome == "error" else self.rejected).add(now)
        fallback = served_by and served_by != self.primary
        if fallback:
            self.fallback_served.add(now)
        if fallback or outcome == "error" or wait >= SLOW_WAIT_S:  # what the tracker counts (it only counts a
            self.tracker.outcome(outcome, served_by, wait)  # plain success, so it is not told of one)

    def requests_series(self, now: float, n: int = 60) -> list[int]:
        """Callers' requests per second (ok, errors and rejected together), oldest first."""
        return [a + b + c for a, b, c in zip(self.ok.series(now, n), self.errors.series(now, n),
                                             self.rejected.series(now, n), strict=True)]

    def felt(self, now: float) -> tuple[LatencyView, WaitView]:
        """Callers' latency and waits over the last minute, and who waits now."""
        return felt(self.window.recent(now), self.client.waiting, self.client.longest_wait(now))

    def name_of(self, provider: str, key: str) -> str:
        """A key as the timeline names it: its label, prefixed by its provider when that is a fallback."""
        return key if provider == self.primary else f"{provider}/{key}"

    def _usage(self, u) -> None:
        if u.requests and u.key != "-":  # one attempt on a key (a stream's tail reports tokens only)
            provider = u.provider
            self.timeline.request(u.ts, u.key if provider == self.primary else f"{provider}/{u.key}")  # name_of

    def callers(self, now: float) -> CallerCounts:
        ok, errors, rejected = self.ok.total(now), self.errors.total(now), self.rejected.total(now)
        return {"requests": ok + errors + rejected, "ok": ok, "errors": errors, "rejected": rejected}


def felt(samples: list[tuple[float, float, float]], waiting: int, longest_now: float) -> tuple[LatencyView, WaitView]:
    """Percentiles of callers' (ended, latency, wait) samples, and who waits now."""
    latencies = [s[1] for s in samples]
    waits = [s[2] for s in samples]
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    w50, w95 = percentile(waits, 0.5), percentile(waits, 0.95)
    latency: LatencyView = {"requests": len(samples), "p50_ms": None if p50 is None else round(p50 * 1000, 1),
                            "p95_ms": None if p95 is None else round(p95 * 1000, 1)}
    wait: WaitView = {"p50_s": None if w50 is None else round(w50, 3), "p95_s": None if w95 is None else round(w95, 3),
                      "slowest_s": round(max(waits, default=0.0), 3), "waiting": waiting,
                      "longest_now_s": round(longest_now, 3)}
    return latency, wait


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


def no_timeline(now: float = 0.0) -> TimelineView:
    """The timeline of a view that does not show it (nothing counted, nothing built)."""
    return {"bucket_s": 10, "end": now, "keys": {}}


def panel(client: PoolClient, series: ClientSeries, now: float, capacity_alert: int = 1,
          provider: str | None = None, *, timeline: bool = True) -> PanelView:
    """Everything the monitor's panels show for one client (JSON-safe, no secrets): its primary's pool, or
    with ``provider`` one of its fallbacks' pools in view (the callers' figures stay the client's). Each figure
    is worked out once; the timeline only with ``timeline`` (its chart is shown)."""
    shown = next((up for up in client.fallbacks if up.name == provider), client.primary)
    primary = shown is client.primary
    pool = shown.pool
    keys = pool.snapshot() if pool is not None else []
    figures = pool.figures() if pool is not None else None
    limits = [limit for k in keys if (limit := k.get("requests_limit"))]
    breaker = shown.breaker
    outage: OutageView | None = None
    if breaker is not None and breaker.holding(now):  # requests go to the fallbacks first
        outage = {"provider": shown.name, "since": breaker.opened_at or now, "until": breaker.open_until or now}
    usable = figures.usable if figures is not None else 0
    paced = figures.paced if figures is not None else 0
    tracker = series.tracker
    if primary and (outage is not None or client.waiting
                    or (pool is not None and len(pool) and usable + paced < capacity_alert)):
        tracker.touch()  # still wrong, whether or not requests are failing
    tracker.settle(now)
    serving = fallback_active(client, series, now)
    latency, wait = series.felt(now)
    if wait["longest_now_s"] >= SLOW_WAIT_S:
        tracker.touch()  # a caller waiting now is trouble before its answer comes
    fallbacks: list[FallbackView] = []
    for up in client.fallbacks if primary else []:
        fp = up.pool
        ff = fp.figures() if fp is not None else None
        fallbacks.append({"name": up.name, "keyless": fp is None, "keys": fp.snapshot() if fp is not None else [],
                          "usable": ff.usable if ff is not None else 0, "total": len(fp) if fp is not None else 0,
                          "summary": ff.summary if ff is not None else "no keys (a keyless endpoint)",
                          "serving": up.name == serving})
    return {
        "provider": shown.name,
        "fallback_of": None if primary else client.primary.name,
        "keyless": pool is None,
        "strategy": pool.strategy if pool is not None else None,
        "next": pool.peek() if pool is not None else None,
        "picks": list(pool.picks) if pool is not None else [],
        "summary": (figures.summary if len(pool) else no_keys(client.primary.name))
        if pool is not None and figures is not None else "no keys (a keyless endpoint)",
        "usable": usable,
        "paced": paced,
        "total": len(pool) if pool is not None else 0,
        "next_ready_in": figures.next_ready_in if figures is not None else None,
        "capacity_alert": capacity_alert,
        "keys": keys,
        "series": {
            "requests": series.requests_series(now, 60),
            "ok": series.ok.series(now, 60),
            "limited": series.limited.series(now, 60),
            "errors": series.errors.series(now, 60),
        },
        "rpm": pool.per_second.total(now) if pool is not None else 0,
        "header_limits": limits,
        "fallback": serving,
        "fallback_served": series.fallback_served.total(now),
        "queued": client.waiting,
        "callers": series.callers(now),
        "latency": latency,
        "wait": wait,
        "outage": outage,
        "incident": tracker.current.copy() if tracker.current else None,
        "last_incident": tracker.last,
        "fallbacks": fallbacks,
        "timeline": series.timeline.view(now) if timeline else no_timeline(now),
        "affinity": affinity_view(pool, keys),
    }


def event_dict(event: Event, seq: int) -> EventView:
    return {"seq": seq, "ts": event.ts, "provider": event.provider, "key": event.key, "kind": str(event.kind),
            "status": event.status, "reason": event.reason, "action": event.action, "request_id": event.request_id,
            "change": event.change}


def event_from(d: EventView | dict[str, Any]) -> Event:
    try:
        kind = EventKind(str(d.get("kind")))  # a missing kind ("None") is no kind either
    except ValueError:
        kind = EventKind.STATE
    return Event(float(d.get("ts") or 0.0), str(d.get("provider") or ""), d.get("key"), kind, d.get("status"),
                 str(d.get("reason") or ""), str(d.get("action") or ""), d.get("request_id"),
                 change_of(d.get("change")))


def change_of(value: str | None) -> StateChange | None:
    """The :class:`StateChange` an event's dict names (None when it names none or one this version lacks)."""
    try:
        return StateChange(value) if value else None
    except ValueError:
        return None


def trace_text(client: PoolClient, request_id: int | None = None) -> tuple[int, str] | None:
    """The trace of ``request_id`` (else the latest request) as text, or None when nothing was traced."""
    traces = list(client.traces)
    trace = None
    if request_id is not None:
        trace = next((t for t in reversed(traces) if t.request_id == request_id), None)
    if trace is None and traces:
        trace = traces[-1]
    return None if trace is None else (trace.request_id, format_trace(trace))
