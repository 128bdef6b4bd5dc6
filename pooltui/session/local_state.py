"""What a local session holds and shows: its clients, the provider in view, each client's series and recent past,
and who is told of its events (the state part of :class:`~pooltui.session.local.MonitorSession`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pooltui.client.pool_client import PoolClient, Upstream
from pooltui.core.clock import Clock
from pooltui.core.events import Event, EventKind
from pooltui.core.pool import Pool
from pooltui.core.snapshot import KeySnapshot
from pooltui.session.incident import IncidentView
from pooltui.session.views import ClientSeries, PanelView, panel, trace_text

if TYPE_CHECKING:
    from pooltui.store.history import History
    from pooltui.store.secrets import SecretStore


@dataclass
class ConfigLink:
    """Where a config-backed session saves key and order changes."""

    path: Path
    store: SecretStore | None
    history: History | None = None


@dataclass
class SessionState:
    """The clients, the provider in view and what each client's panel shows."""

    clients: dict[str, PoolClient]
    clock: Clock
    current: str = ""
    capacity_alert: dict[str, int] = field(default_factory=dict)
    config: ConfigLink | None = None
    series: dict[str, ClientSeries] = field(default_factory=dict)
    past: dict[str, list[Event]] = field(default_factory=dict)  # client -> its events from the history
    listeners: list[Callable[[Event], None]] = field(default_factory=list)
    log_sinks: list[Callable[[str], None]] = field(default_factory=list)  # where log lines go besides events
    retired: list[PoolClient] = field(default_factory=list)  # removed providers' clients: closed at the end

    def __post_init__(self) -> None:
        if not self.current:
            self.current = next(iter(self.clients), "")
        for name, client in self.clients.items():
            self._watch(name, client)

    # ------------------------------------------------------------------ wiring
    def _watch(self, name: str, client: PoolClient) -> None:
        self.series[name] = ClientSeries(client, self.clock, self._notify, self._incident_ended)

    def _incident_ended(self, incident: IncidentView) -> None:
        """An incident is over: the history keeps its summary (when this session has a history)."""
        if self.config is not None and self.config.history is not None:
            self.config.history.add_incident(dict(incident))

    @property
    def history(self) -> History | None:
        return self.config.history if self.config is not None else None

    def log(self, line: str) -> None:
        """A line for whoever watches this session (an event in the monitor's pane, a headless proxy's
        stderr)."""
        for sink in self.log_sinks:
            sink(line)
        self._notify(Event(self.clock.now(), self.current, None, EventKind.STATE, None, line, "nothing changed"))

    def _notify(self, event: Event) -> None:
        for listener in self.listeners:
            listener(event)

    # ------------------------------------------------------------------ the provider in view
    @property
    def owner(self) -> str:
        """The client that serves the provider in view: itself, or the client it is a fallback of."""
        return self.owner_of(self.current)

    def owner_of(self, provider: str) -> str:
        """The client that serves ``provider``: itself, or the client it is a fallback of."""
        if provider in self.clients:
            return provider
        return next((name for name, c in self.clients.items() if any(up.name == provider for up in c.fallbacks)),
                    next(iter(self.clients)))

    def upstream_of(self, provider: str) -> Upstream:
        """``provider`` as an upstream: a client's primary, or one of its fallbacks."""
        client = self.clients[self.owner_of(provider)]
        return next((up for up in client.upstreams if up.name == provider), client.primary)

    @property
    def client(self) -> PoolClient:
        return self.clients[self.owner]

    @property
    def upstream(self) -> Upstream:
        """The provider in view: a client's primary, or one of its fallbacks."""
        return self.upstream_of(self.current)

    @property
    def pool(self) -> Pool | None:
        return self.upstream.pool

    def require_pool(self, provider: str | None = None) -> Pool:
        """The pool of ``provider`` (default: the one in view); a keyless endpoint is a ValueError."""
        name = provider or self.current
        pool = self.upstream_of(name).pool
        if pool is None:
            raise ValueError(f"{name} has no keys (a keyless endpoint)")
        return pool

    @property
    def providers(self) -> list[str]:
        """Every provider in view, in the order `p` goes through them: each client's own, then the fallbacks
        that have no client of their own (a demo's fallback, say)."""
        names = list(self.clients)
        for client in self.clients.values():
            names += [up.name for up in client.fallbacks if up.name not in names]
        return names

    # ------------------------------------------------------------------ what the panels show
    def view(self, *, timeline: bool = True) -> PanelView:
        """What the panels show now (see :func:`pooltui.session.views.panel`; the timeline only with ``timeline``)."""
        return panel(self.client, self.series[self.owner], self.clock.now(),
                     self.capacity_alert.get(self.current, 1), self.current, timeline=timeline)

    def key(self, label: str) -> KeySnapshot | None:
        """One key of the provider in view, as the keys table shows it (None: not in its pool)."""
        pool = self.pool
        found = pool.snapshot(label) if pool is not None else []
        return found[0] if found else None

    def views(self, *, timeline: bool = True) -> dict[str, PanelView]:
        """Every provider's view (the alert watcher looks at all of them, not only the one in view; the fleet's
        monitor shows their timelines)."""
        now = self.clock.now()
        return {name: panel(c, self.series[name], now, self.capacity_alert.get(name, 1), timeline=timeline)
                for name, c in self.clients.items()}

    def recent_events(self, n: int | None = None) -> list[Event]:
        """The current provider's events: those of this run, after those the history had before it began."""
        events = self.client.events.recent()
        shared = self.series[self.owner].others
        if shared:  # its fallbacks' pools belong to other clients: their keys' events are in those logs
            fallbacks = {up.name for up in self.client.fallbacks}
            events = sorted(events + [e for log in shared for e in log.recent()
                                      if e.key is not None and e.provider in fallbacks], key=lambda e: e.ts)
        events = self.past.get(self.owner, []) + events
        return events if n is None else events[-n:]

    def load_past(self, history: History, minutes: float = 15.0) -> int:
        """Open with the recent past: the last ``minutes`` of events and request counts from the history go
        into the events pane, the timeline and the incident tracker (not into the engine). Returns events."""
        from pooltui.session.views import event_from

        since = self.clock.now() - minutes * 60
        events = [event_from(row) for row in history.events(since, None, 5000)]
        usage = history.usage_rows(since)
        for name, client in self.clients.items():
            providers = {up.name for up in client.upstreams}
            series = self.series[name]
            mine = [e for e in events if e.provider in providers]
            self.past[name] = mine
            tracker, on_end = series.tracker, series.tracker.on_end
            tracker.on_end = None  # an incident that ended before this run is not recorded a second time
            for e in mine:
                tracker.event(e)
                if e.key is not None:
                    series.timeline.event(e, series.name_of(e.provider, e.key))
            tracker.settle()
            tracker.on_end = on_end
            for bucket, provider, key, requests in usage:
                if provider in providers and key != "-":
                    series.timeline.request(bucket, series.name_of(provider, key), requests)
        return len(events)

    def trace_text(self, request_id: int | None = None) -> tuple[int, str] | None:
        return trace_text(self.client, request_id)
