"""The Textual monitor: renders a Session's views a few times a second and sends it commands."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import DataTable

from pooltui.core.errors import message_of
from pooltui.core.strategies import STRATEGIES
from pooltui.session.protocol import LocalControls, Session
from pooltui.tui.lab_screen import LabScreen
from pooltui.tui.main_screen import MainScreen
from pooltui.tui.screens import (
    AddKeyScreen,
    FleetScreen,
    HelpScreen,
    HistoryScreen,
    InspectorScreen,
    KeyDetailScreen,
)
from pooltui.tui.widgets import EventsTable, KeysTable

KEY_ACTIONS = {"toggle_key", "verify_selected", "move_up", "move_down"}
TRAFFIC_ACTIONS = {"rate_up", "rate_down", "burst"}


class PoolMonitorApp(App[None]):
    """pooltui's monitor."""

    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: a subclass elsewhere (the benchmark) finds it
    TITLE = "pooltui"
    BINDINGS = [
        Binding("a", "add_key", "Add", show=False, id="key.add", tooltip="Add a key to this provider's pool"),
        Binding("d", "toggle_key", "Off/on", id="key.toggle", tooltip="Disable or enable the selected key"),
        Binding("v", "verify_selected", "Verify", id="key.verify", tooltip="Re-verify the selected key"),
        Binding("V", "verify_all", "All", show=False, id="key.verify_all", tooltip="Re-verify every key"),
        Binding("K", "move_up", "Up", show=False, id="key.up", tooltip="Move the selected key up in the pool order"),
        Binding("J", "move_down", "Down", show=False, id="key.down",
                tooltip="Move the selected key down in the pool order"),
        Binding("s", "cycle_strategy", "Strat", id="pool.strategy", tooltip="Next rotation strategy"),
        Binding("t", "toggle_traffic", "Traffic", id="traffic.toggle", tooltip="Start or stop test traffic"),
        Binding("plus,equals_sign", "rate_up", "Rate", show=False, id="traffic.rate_up", key_display="+",
                tooltip="Test traffic rate up (x1.5)"),
        Binding("minus", "rate_down", "Rate", show=False, id="traffic.rate_down", key_display="-",
                tooltip="Test traffic rate down (/1.5)"),
        Binding("b", "burst", "Burst", show=False, id="traffic.burst", tooltip="Inject a burst of 50 requests"),
        Binding("r", "reset", "Reset", show=False, id="pool.reset", tooltip="Reset cooldowns"),
        Binding("p", "switch_provider", "Prov", id="pool.provider",
                tooltip="Next provider: each provider and fallback in turn, with its keys"),
        Binding("h", "history", "Hist", show=False, id="view.history", tooltip="Event history"),
        Binding("space", "pause", "Pause", show=False, id="view.pause", tooltip="Pause the display", key_display="␣"),
        Binding("i", "inspect", "Why", id="view.inspect", tooltip="Why this key? (the request's trace)"),
        Binding("slash", "search_events", "Search", id="events.search", key_display="/",
                tooltip="Search the events"),
        Binding("f", "filter_key", "Filter", show=False, id="events.filter_key",
                tooltip="Show only the selected key's events (again: all keys)"),
        Binding("e", "filter_kind", "Kind", show=False, id="events.filter_kind",
                tooltip="Show only one kind of event (cycles)"),
        Binding("g", "timeline", "Chart", id="view.timeline",
                tooltip="Timeline chart per key: 5 min, 15 min, off"),
        Binding("F", "fleet", "Fleet", show=False, id="view.fleet",
                tooltip="The processes sharing this pool through Redis, and the key states they share"),
        Binding("A", "group_accounts", "Group", show=False, id="keys.group_accounts",
                tooltip="Put keys found to share an account in one quota group"),
        Binding("o", "sort_keys", "Sort", show=False, id="keys.sort", tooltip="Sort the keys table by the next column"),
        Binding("escape", "clear_filters", "Clear", id="events.clear", show=False,
                tooltip="Clear the events filters"),
        Binding("question_mark", "help", "Help", id="view.help", key_display="?", tooltip="This help"),
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Quit (test traffic is dropped, not drained)"),
    ]

    def __init__(self, session: Session, *, refresh_s: float = 0.25, start_session: bool = True) -> None:
        super().__init__()
        self.session = session
        self.refresh_s = refresh_s
        self.start_session = start_session
        self.started = not start_session

    # ------------------------------------------------------------------ layout
    def get_default_screen(self) -> MainScreen:
        return MainScreen(self.session, self.refresh_s)

    @property
    def main(self) -> MainScreen:
        """The main screen (panels and refresh timer)."""
        return self.screen_stack[0]  # type: ignore[return-value]

    @property
    def paused(self) -> bool:
        return self.main.paused

    def on_mount(self) -> None:
        self.title = self.session.title
        if self.start_session:
            self._start()
        self._warned_accounts: set[tuple[str, ...]] = set()
        if self.start_session:  # a session given already run (a script, the screenshots) is shown as it was given
            self.set_interval(2.0, self.check_accounts)

    def check_accounts(self) -> None:
        """Keys found to share an account: marked in the keys table, and one warning per group."""
        local = self.local
        groups = local.shared_accounts() if local is not None else []
        try:
            table = self.main.query_one(KeysTable)
        except (NoMatches, IndexError):  # no keys table now (the app starting or going): the next check marks it
            return
        shared = {label for g in groups for label in g}
        if table.shared != shared:
            table.shared = shared
            self.refresh_view()
        for group in map(tuple, groups):
            if group not in self._warned_accounts:
                self._warned_accounts.add(group)
                self.notify(f"{', '.join(group)} belong to one account: pooling them adds no capacity and may look "
                            "like evasion to the provider. Press A to put them in one quota group.",
                            title="keys of one account", severity="warning", timeout=20)

    @work(exit_on_error=False, group="session")
    async def _start(self) -> None:
        try:
            await self.session.start()
            self.started = True
        except Exception as exc:
            self.notify(f"could not start: {exc}", severity="error", timeout=15)
        self.refresh_bindings()

    async def on_unmount(self) -> None:
        if self.start_session:
            await self.session.stop()

    def refresh_view(self) -> None:
        """Refresh every panel now (the main screen also does this on its timer)."""
        self.main.refresh_view()

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        """A toast, except on a key's detail screen: there it is a line of the screen's own, so no toast covers
        the detail."""
        screen = self.screen_stack[-1] if self.screen_stack else None
        if isinstance(screen, KeyDetailScreen) and self._thread_id == threading.get_ident():
            screen.say(message, title=title, severity=severity, timeout=timeout)
            return
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    # ------------------------------------------------------------------ actions
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if not isinstance(self.screen, Screen) or self.screen is not self.screen_stack[0]:
            # another screen is up (lab, fleet, history, a dialog): the main screen's key, traffic and pool
            # actions would act on a table that is not shown
            main_only = {b.action for b in self.BINDINGS if isinstance(b, Binding)} - {"quit", "help"}
            return action not in main_only
        s = self.session
        pool_actions = KEY_ACTIONS | {"add_key", "verify_all", "cycle_strategy", "reset"}
        local = self.local
        if local is None and action == "toggle_traffic" and s.status().attached:
            return True  # pressed, it says why there is no test traffic here
        if local is None and (action in TRAFFIC_ACTIONS or action in ("toggle_traffic", "add_key")):
            return None
        if action in pool_actions and not s.has_pool:
            return None
        if action in KEY_ACTIONS and self.query_one(KeysTable).selected is None:
            return None
        if action in TRAFFIC_ACTIONS and not (local is not None and local.traffic_running):
            return None
        if action == "switch_provider" and len(s.providers) < 2:
            return None
        if action == "fleet" and getattr(getattr(s, "shared", None), "url", None) is None:
            return None
        if action == "group_accounts" and (local is None or not local.shared_accounts()):
            return None
        return True

    def _selected(self) -> str | None:
        return self.query_one(KeysTable).selected

    def action_toggle_key(self) -> None:
        label = self._selected()
        if label is None:
            return
        self._guard(lambda: self.notify(f"{label}: {self.session.toggle_key(label)}"))

    def action_move_up(self) -> None:
        self._move(-1)

    def action_move_down(self) -> None:
        self._move(1)

    def _move(self, delta: int) -> None:
        label = self._selected()
        if label is None:
            return

        def go() -> None:
            self.session.move(label, delta)
            self.refresh_view()
            self.query_one(KeysTable).select(label)

        self._guard(go)

    def action_cycle_strategy(self) -> None:
        self._guard(lambda: self.notify(f"strategy: {self.session.cycle_strategy()}"))

    def set_strategy(self, strategy: str) -> None:
        self._guard(lambda: self.notify(f"strategy: {self.session.set_strategy(strategy)}"))

    @property
    def local(self) -> LocalControls | None:
        """Test traffic and new keys, when the engine runs in this process."""
        return self.session if isinstance(self.session, LocalControls) else None

    def action_toggle_traffic(self) -> None:
        if (local := self.local) is None:
            self.notify("No test traffic from an attached monitor: it would run in the proxy's process, where "
                        "the engine is. Send requests to the proxy, or run `pooltui traffic --provider "
                        f"{self.session.current}` on its machine.", title="test traffic", severity="warning",
                        timeout=10)
            return
        self._guard(lambda: self.notify("traffic on" if local.toggle_traffic() else "traffic off"))
        self.refresh_bindings()

    def action_rate_up(self) -> None:
        if (local := self.local) is not None:
            self.notify(f"traffic rate {local.change_rate(1.5):g}/s")

    def action_rate_down(self) -> None:
        if (local := self.local) is not None:
            self.notify(f"traffic rate {local.change_rate(1 / 1.5):g}/s")

    def action_burst(self) -> None:
        if (local := self.local) is not None:
            local.burst(50)
            self.notify("burst of 50 requests")

    def action_reset(self) -> None:
        self._guard(lambda: self.notify(f"reset {self.session.reset_cooldowns()} key(s)"))

    def action_switch_provider(self) -> None:
        """The next provider in view: the session's providers and their fallbacks, in turn."""
        if len(self.session.providers) < 2:
            return

        def switch() -> None:
            name = self.session.switch_provider()
            of = self.session.view().get("fallback_of")
            self.notify(f"provider: {name}" + (f" (fallback of {of})" if of else ""))

        self._guard(switch)
        self.refresh_view()
        self.refresh_bindings()

    def action_search_events(self) -> None:
        self.main.open_search()

    def action_filter_key(self) -> None:
        table = self.query_one(EventsTable)
        label = self._selected()
        self.main.set_filter(key=None if table.only_key or label is None else label)

    def action_filter_kind(self) -> None:
        table = self.query_one(EventsTable)
        kinds = sorted({row.kind for row in table.story.rows.values()})
        if table.only_kind in kinds:
            i = kinds.index(table.only_kind) + 1
            self.main.set_filter(kind=kinds[i] if i < len(kinds) else None)
        else:
            self.main.set_filter(kind=kinds[0] if kinds else None)

    def action_timeline(self) -> None:
        minutes = self.main.cycle_timeline()
        self.notify(f"timeline: last {minutes} min" if minutes else "timeline off")

    def action_fleet(self) -> None:
        shared = getattr(self.session, "shared", None)  # a Redis store has a URL and a prefix
        url, prefix = getattr(shared, "url", None), getattr(shared, "prefix", None)
        if not isinstance(url, str) or not isinstance(prefix, str):
            self.notify("no shared state: set [state] backend = \"redis\" in the config", severity="warning")
            return
        self.push_screen(FleetScreen(url, prefix))

    def action_clear_filters(self) -> None:
        self.main.clear_filters()

    def action_sort_keys(self) -> None:
        table = self.query_one(KeysTable)
        column = table.next_sort()
        self.notify(f"keys sorted by {table.title_of(column)}" if column else "keys in pool order")
        self.refresh_view()

    def action_pause(self) -> None:
        self.main.paused = not self.main.paused
        self.refresh_view()

    def action_group_accounts(self) -> None:
        if (local := self.local) is None:
            return
        try:
            groups = local.group_shared()
        except (ValueError, OSError) as exc:
            self.notify(message_of(exc), severity="error")
            return
        said = "; ".join(", ".join(g) for g in groups) or "no keys found to share an account"
        self.notify(f"one quota group each: {said}" if groups else said)
        self.check_accounts()

    def action_advise(self) -> None:
        if (local := self.local) is None:
            self.notify("Is pooling helping? Run `pooltui advise` where the proxy runs: its history is there.",
                        severity="warning")
            return
        self.push_screen(InspectorScreen("Is pooling helping?", local.advice()))

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.BINDINGS))

    def action_history(self) -> None:
        rows, source = self.session.history_rows()
        self.push_screen(HistoryScreen(rows, source))

    def action_inspect(self) -> None:
        table = self.query_one(EventsTable)
        event = table.selected_event if self.focused is table else None
        found = self.session.trace_text(event.request_id if event is not None else None)
        if found is None:
            self.notify("no request traced yet", severity="warning")
            return
        request_id, text = found
        origin = f" for {event.kind} on {event.key}" if event is not None and event.request_id == request_id \
            else " (latest)"
        self.push_screen(InspectorScreen(f"Why this key? request #{request_id}{origin}", text))

    def on_data_table_row_selected(self, message: DataTable.RowSelected) -> None:
        if message.data_table.id == "events":
            self.action_inspect()
        elif message.data_table.id == "keys" and message.row_key.value is not None:
            self.push_screen(KeyDetailScreen(str(message.row_key.value)))

    def key_action(self, what: str, label: str) -> None:
        """A key action from the detail screen: toggle, verify, reset, up or down."""
        s = self.session
        if what == "toggle":
            self._guard(lambda: self.notify(f"{label}: {s.toggle_key(label)}"))
        elif what == "verify":
            self._verify([label])
        elif what == "reset":
            self._guard(lambda: self.notify(f"{label}: reset ({s.reset_cooldowns(label)})"))
        elif what in ("up", "down"):
            self._guard(lambda: s.move(label, -1 if what == "up" else 1))

    def action_add_key(self) -> None:
        if self.local is None or not self.session.has_pool:
            return

        def done(result: tuple[str, str] | None) -> None:
            if result is not None:
                self._add_key(*result)

        self.push_screen(AddKeyScreen(self.session.current), done)

    @work(exit_on_error=False, group="keys")
    async def _add_key(self, label: str, secret: str) -> None:
        if (local := self.local) is None:
            return
        try:
            result = await local.add_key(label, secret)
        except Exception as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        self.notify(f"added {label}: {result.result}" + (f" ({result.detail})" if result.detail else ""))
        if self.session.status().demo:
            self.notify("demo: the key lives in this session only", severity="information")

    def action_verify_selected(self) -> None:
        label = self._selected()
        if label is not None:
            self._verify([label])

    def action_verify_all(self) -> None:
        self._verify(None)

    @work(exit_on_error=False, group="keys")
    async def _verify(self, labels: list[str] | None) -> None:
        try:
            results = await self.session.verify(labels)
        except Exception as exc:
            self.notify(f"verify failed: {exc}", severity="error")
            return
        summary = ", ".join(f"{r.label} {r.result}" for r in results)
        bad = any(r.result != "valid" for r in results)
        self.notify(f"verify: {summary}", severity="warning" if bad else "information")

    def _guard(self, fn) -> None:
        """Run a command; a problem becomes a notification, never a traceback."""
        try:
            fn()
        except Exception as exc:
            self.notify(message_of(exc),
                        severity="error", timeout=8)

    def on_worker_state_changed(self, event) -> None:
        worker = event.worker
        if worker.error is not None:
            self.notify(f"{worker.name or 'background task'} failed: {worker.error}", severity="error")

    # ------------------------------------------------------------------ command palette
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for binding in self.BINDINGS:
            if not isinstance(binding, Binding) or binding.action == "quit":
                continue
            if self.check_action(binding.action, ()) is True:
                key = binding.key_display or binding.key
                yield SystemCommand(binding.tooltip or binding.description, f"key: {key}",
                                    lambda a=binding.action: self.run_action(a))
        from pooltui.sim.scenario import builtin_names

        yield SystemCommand("Is pooling helping?", "the history's verdict: per-key or shared limits, whether the "
                            "traffic needed more than one key, the load, the fallback, the spend",
                            lambda: self.run_action("advise"))
        first = getattr(self.session, "lab_scenario", "peak-hour")
        for name in [first, *(n for n in builtin_names() if n != first)]:
            yield SystemCommand(f"Strategy lab: {name}", "compare every rotation strategy on this scenario, each "
                                "against a fresh simulator", lambda n=name: self.push_screen(LabScreen(n)))
        if self.session.has_pool:
            for strategy in STRATEGIES:
                yield SystemCommand(f"Strategy: {strategy}", "rotate keys this way",
                                    lambda s=strategy: self.set_strategy(s))
