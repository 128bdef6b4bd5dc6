"""The monitor's main screen: it owns the panels and the refresh timer.

The timer belongs to the screen, not the app, so teardown stops it (when the screen is pruned) before the
panels are removed: a tick can never land on a half-dismantled screen.
"""

from __future__ import annotations

from collections import deque
from typing import Literal

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Input

from pooltui.core.events import Event
from pooltui.core.timefmt import millis
from pooltui.session.incident import RED, alerts_of
from pooltui.session.protocol import Session
from pooltui.session.views import PanelView
from pooltui.tui.format import Segment
from pooltui.tui.widgets import (
    STATUS_RANKS,
    TRAFFIC_RANKS,
    EventsTable,
    FallbackTable,
    FittedLine,
    IncidentLine,
    KeysTable,
    RotationPanel,
    StatusLine,
    TimelinePanel,
    TrafficPanel,
)


class MainScreen(Screen[None]):
    """Status line, keys, rotation, traffic and events, refreshed a few times a second from one view."""

    def __init__(self, session: Session, refresh_s: float) -> None:
        super().__init__(id="_default")
        self.session = session
        self.refresh_s = refresh_s
        self.paused = False
        self._frozen = False  # paused and drawn once as paused: nothing more moves
        self.timeline_minutes = 0  # the timeline chart's window (0: hidden; `g` cycles 5, 15, off)
        self._pending: deque[Event] = deque(maxlen=500)
        self._alerting: set[str] = set()  # alert kinds already rung for

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        yield IncidentLine(id="incident")
        yield KeysTable(id="keys")
        yield FittedLine(id="fallback-title")
        yield FallbackTable(id="fallback-keys")
        yield TimelinePanel(id="timeline")
        with Horizontal(id="middle"):
            yield RotationPanel(id="rotation")
            yield TrafficPanel(id="traffic")
        yield FittedLine(id="events-filter")
        yield EventsTable(id="events")
        yield Input(placeholder="search events: key, status, kind, action or reason (enter keeps, esc clears)",
                    id="event-search")
        yield Footer(compact=True, show_command_palette=False)  # ctrl+p still opens it; `?` says so

    def on_mount(self) -> None:
        self.query_one(KeysTable).focus()
        # the recent events, then every new one: listening from here (not from __init__) takes each once, in
        # order, whether the session started before the screen was shown or after
        self._pending.extend(self.session.recent_events(EventsTable.MAX_ROWS))
        self.session.listeners.append(self._pending.append)
        self.refresh_view()
        self.set_interval(self.refresh_s, self.refresh_view, name="refresh")

    # ------------------------------------------------------------------ events: search and filters
    def open_search(self) -> None:
        search = self.query_one("#event-search", Input)
        search.display = True
        search.value = self.query_one(EventsTable).search
        search.focus()

    def on_input_changed(self, message: Input.Changed) -> None:
        if message.input.id == "event-search":
            self.set_filter(search=message.value)

    def on_input_submitted(self, message: Input.Submitted) -> None:
        if message.input.id == "event-search":
            message.input.display = False
            self.query_one(EventsTable).focus()

    def set_filter(self, *, search: str | None = None, key: str | Literal[False] | None = False,
                   kind: str | Literal[False] | None = False) -> None:
        """Change what the events pane shows (``False``: leave that filter as it is)."""
        table = self.query_one(EventsTable)
        if search is not None:
            table.search = search
        if key is not False:
            table.only_key = key
        if kind is not False:
            table.only_kind = kind
        table.refilter()
        parts = [f"key {table.only_key}" if table.only_key else "", f"kind {table.only_kind}" if table.only_kind
                 else "", f"“{table.search}”" if table.search else ""]
        shown = " · ".join(p for p in parts if p)
        label = self.query_one("#events-filter", FittedLine)
        label.display = bool(shown)
        label.show([(0, Text(f"events: {shown}"), ""), (1, Text(f"({table.row_count} rows)"), " "),
                    (2, Text("esc clears"), " · ")] if shown else [])

    def clear_filters(self) -> bool:
        """Drop every filter; False when there was none."""
        table = self.query_one(EventsTable)
        search = self.query_one("#event-search", Input)
        if not (table.search or table.only_key or table.only_kind or search.display):
            return False
        search.value = ""
        search.display = False
        self.set_filter(search="", key=None, kind=None)
        table.focus()
        return True

    def on_unmount(self) -> None:
        if self._pending.append in self.session.listeners:
            self.session.listeners.remove(self._pending.append)

    def refresh_view(self) -> None:
        """One batched refresh of every panel (a few times a second, never per event). Paused, nothing moves:
        the status line says PAUSED and the rest stays as it was."""
        if self.paused and self._frozen:
            return
        view = self.session.view(timeline=bool(self.timeline_minutes))  # the timeline only while its chart shows
        now = self.session.clock.now()
        with self.app.batch_update():
            strategy = view["strategy"]
            if strategy is not None:  # None: a keyless endpoint, no pool
                order = [k["label"] for k in view["keys"]]
                self.query_one(KeysTable).sync(view["keys"], view["next"], now)
                self.query_one(RotationPanel).show(strategy, view["picks"], order, view["next"],
                                                   view["summary"])
            self._render_fallback(view)
            if self.timeline_minutes:
                self.query_one(TimelinePanel).show(view["timeline"], self.timeline_minutes)
            self.query_one(TrafficPanel).show(view["series"], self._traffic_summary(view))
            if self._pending and not self.paused:
                events = list(self._pending)
                self._pending.clear()
                self.query_one(EventsTable).append(events)
            self._render_status(view, now)
        self._frozen = self.paused

    def cycle_timeline(self) -> int:
        """Timeline chart: off -> 5 min -> 15 min -> off (it takes the rotation and traffic panels' place)."""
        self.timeline_minutes = {0: 5, 5: 15}.get(self.timeline_minutes, 0)
        self.query_one(TimelinePanel).display = bool(self.timeline_minutes)
        self.query_one("#middle").display = not self.timeline_minutes
        self._frozen = False
        self.refresh_view()
        return self.timeline_minutes

    def _render_fallback(self, view: PanelView) -> None:
        """The fallback's pool under the primary's while it serves (`p` shows it as the provider in view)."""
        shown = next((f for f in view["fallbacks"] if f["serving"]), None)
        title, table = self.query_one("#fallback-title", FittedLine), self.query_one(FallbackTable)
        title.display = table.display = shown is not None
        if shown is None:
            return
        parts = [(0, f"fallback {shown['name']}", ""), (2, "serving now", " · "),
                 (1, f"keys {shown['usable']}/{shown['total']} usable", " · "), (3, shown["summary"], " · ")]
        title.show([(rank, Text(text, style="bold cyan"), sep) for rank, text, sep in parts])
        table.show(shown["keys"])

    @staticmethod
    def _traffic_summary(view: PanelView) -> list[Segment]:
        """The traffic panel's last line, as segments ranked by :data:`TRAFFIC_RANKS`."""
        segments: list[Segment] = []

        def add(what: str, text: str, style: str = "") -> None:
            segments.append((TRAFFIC_RANKS[what], Text(text, style=style), " · "))

        add("rpm", f"{view['rpm']} rpm sustained", "bold")
        limits = view["header_limits"]
        if limits:
            add("limits", f"header limits {len(limits)}×{limits[0]}" if len(set(limits)) == 1
                else f"header limits Σ{sum(limits)}", "dim")
        if view["fallback"]:
            add("fallback", f"fallback {view['fallback']} in use", "bold cyan")
        latency, wait = view.get("latency"), view.get("wait")
        if latency and latency["requests"]:
            add("callers", f"callers p50 {millis(latency['p50_ms'])} p95 {millis(latency['p95_ms'])}")
        if wait and (wait["p95_s"] or 0) >= 0.05:
            add("waits", f"waits p95 {millis((wait['p95_s'] or 0) * 1000)}, slowest {millis(wait['slowest_s'] * 1000)}",
                "yellow")
        if view["queued"]:
            longest = wait["longest_now_s"] if wait else 0.0
            now_ = f" (longest {millis(longest * 1000)})" if longest else ""
            add("waiting", f"{view['queued']} waiting now{now_}", "yellow")
        return segments

    def _render_status(self, view: PanelView, now: float) -> None:
        s = self.session
        st = s.status()
        status = self.query_one(StatusLine)
        alerts = alerts_of(view, now)
        kinds = {a.kind for a in alerts}
        if kinds - self._alerting:
            self.app.bell()  # once per new alert, not per refresh
        self._alerting = kinds
        segments: list[Segment] = []

        def add(what: str, text: str, style: str = "", sep: str = " │ ") -> None:
            segments.append((STATUS_RANKS[what], Text(text, style=style), sep))

        for i, alert in enumerate(alerts):  # each alert whole, the first marked
            add("alert", ("⚠ " if i == 0 else "") + alert.text, "bold", " · ")
        add("title", st.title, "bold")
        provider = Text(s.current)
        if view.get("fallback_of"):
            provider.append(f" (fallback of {view['fallback_of']})", style="cyan")
        segments.append((STATUS_RANKS["provider"], provider, " │ "))
        usable, total = view["usable"], view["total"]
        strategy = view["strategy"]
        if strategy is not None:  # None: a keyless endpoint, no pool
            add("strategy", strategy)
            paced = view.get("paced", 0)
            add("usable", f"keys {usable}/{total} usable", "bold" if usable + paced < total else "")
            if paced:
                add("paced", f"{paced} paced", sep=", ")
        callers = view["callers"]
        if callers["requests"]:
            add("ok", f"ok {callers['ok'] / callers['requests']:.1%} of {callers['requests']}/min")
        latency = view.get("latency")
        if latency and latency["requests"]:
            add("p95", f"callers p95 {millis(latency['p95_ms'])}")
        if st.traffic == "on":
            add("traffic", f"traffic {st.traffic_rate:g}/s")
        elif st.traffic == "off":
            add("traffic", "traffic off", "dim")
        if st.attached:
            add("attached", "attached", "cyan")
        if st.unencrypted:
            add("unencrypted", "⚠ secrets unencrypted", "bold yellow")
        if st.shared_store:
            add("shared", f"⚠ shared state {st.shared_store}", "bold yellow")
        if self.paused:
            add("paused", "PAUSED (space)", "bold reverse")
        red = any(a.severity == RED for a in alerts)
        status.set_class(red, "alert")
        status.set_class(bool(alerts) and not red, "warn")
        status.show(segments)
        line = self.query_one(IncidentLine)
        incident = view["incident"]
        line.display = incident is not None
        if incident is not None:
            line.show(Text(f"⚑ {incident['summary']}", style="bold"))
