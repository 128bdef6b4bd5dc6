"""Modal and full screens: request inspector, add key, event history, help."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.timer import Timer
from textual.widgets import Button, DataTable, Footer, Input, Label, Static

from pooltui.core.events import Event, StateChange
from pooltui.core.snapshot import KeySnapshot, LearnedSnapshot
from pooltui.tui import format as fmt
from pooltui.tui.widgets import FittedLine


class InspectorScreen(ModalScreen[None]):
    """The engine's trace of one request: candidates, exclusions and why, each attempt, waits, fallback."""

    BINDINGS = [Binding("escape,q,i", "dismiss", "Close", id="inspector.close")]
    DEFAULT_CSS = """
    InspectorScreen { align: center middle; }
    InspectorScreen > Vertical { width: 90%; height: 80%; border: thick $accent; background: $surface; }
    InspectorScreen #trace-title { padding: 0 1; text-style: bold; }
    InspectorScreen VerticalScroll { padding: 0 1; }
    InspectorScreen #trace-hint { dock: bottom; color: $text-muted; }
    """

    def __init__(self, title: str, body: str) -> None:
        super().__init__()
        self._title, self._body = title, body

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self._title, id="trace-title")
            with VerticalScroll():
                yield Static(Text(self._body), id="trace-body")
            yield Label(" esc close", id="trace-hint")


class AddKeyScreen(ModalScreen[tuple[str, str] | None]):
    """Label and a password input for a new key of the current provider."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="addkey.cancel")]
    DEFAULT_CSS = """
    AddKeyScreen { align: center middle; }
    AddKeyScreen > Vertical { width: 64; height: auto; border: thick $accent; background: $surface; padding: 1 2; }
    AddKeyScreen Input { margin-bottom: 1; }
    AddKeyScreen Horizontal { height: auto; align-horizontal: right; }
    """

    def __init__(self, provider: str) -> None:
        super().__init__()
        self.provider = provider

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Add a key to [b]{self.provider}[/b] (verified before it joins the pool)")
            yield Input(placeholder="label, e.g. secondary", id="label")
            yield Input(placeholder="API key", password=True, id="secret")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Add", variant="primary", id="add")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "label":
            self.query_one("#secret", Input).focus()
        else:
            self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "add":
            self._submit()
        else:
            self.dismiss(None)

    def _submit(self) -> None:
        label = self.query_one("#label", Input).value.strip()
        secret = self.query_one("#secret", Input).value.strip()
        if not label or not secret:
            self.notify("a label and a key are both needed", severity="warning")
            return
        self.dismiss((label, secret))

    def action_cancel(self) -> None:
        self.dismiss(None)


class HistoryScreen(Screen[None]):
    """Past events: from the SQLite history when there is one, else the engine's recent ring. The title stays
    in view, a filter narrows the rows (any field), and reasons are shown whole."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back", id="history.back"),
                Binding("slash", "focus_filter", "Filter", id="history.filter", key_display="/")]
    DEFAULT_CSS = """
    HistoryScreen #history-title { dock: top; width: 100%; background: $primary-background; text-style: bold; }
    HistoryScreen #history-filter { dock: top; }
    """

    def __init__(self, rows: list[dict], source: str) -> None:
        super().__init__()
        self._rows, self._source = rows, source

    def compose(self) -> ComposeResult:
        yield Label(f" Event history ({self._source}): {len(self._rows)} events, newest last", id="history-title")
        yield Input(placeholder="filter: key, provider, event, status, action or reason", id="history-filter")
        yield DataTable(cursor_type="row", id="history-table")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("time", "provider", "key", "event", "status", "action", "reason")
        self._show("")
        table.focus()

    @staticmethod
    def _text(r: dict) -> str:
        return " ".join(str(r.get(f) or "") for f in ("provider", "key", "kind", "status", "action", "reason"))

    def _show(self, needle: str) -> None:
        table = self.query_one(DataTable)
        table.clear()
        shown = [r for r in self._rows if needle.lower() in self._text(r).lower()] if needle else self._rows
        for r in shown:
            table.add_row(fmt.clock_text(r["ts"]), r["provider"], r["key"] or "-", r["kind"],
                          str(r["status"] or "-"), r["action"] or "", r["reason"] or "")
        if shown:
            table.move_cursor(row=len(shown) - 1)
        title = f" Event history ({self._source}): {len(self._rows)} events, newest last"
        if needle:
            title += f" · {len(shown)} match “{needle}”"
        self.query_one("#history-title", Label).update(title)

    def on_input_changed(self, message: Input.Changed) -> None:
        self._show(message.value)

    def on_input_submitted(self, message: Input.Submitted) -> None:
        self.query_one(DataTable).focus()

    def action_focus_filter(self) -> None:
        self.query_one("#history-filter", Input).focus()


#: the help's sections, by the prefix of a binding's id, in this order
HELP_SECTIONS = {"key": "Keys (the selected key)", "pool": "Pool", "traffic": "Test traffic", "view": "View",
                 "events": "Events", "keys": "Keys table", "app": "App"}
#: what help says besides the bindings: keys the tables and the palette handle themselves
HELP_MORE = (("enter", "On a key: its detail. On an event: its request (why this key?)"),
             ("click", "On a column's title: sort the keys table by it (again: pool order)"),
             ("ctrl+p", "Command palette: every action, the strategy lab, a strategy by name"))
KEY_NAMES = {"space": "space", "escape": "esc", "question_mark": "?"}


def key_name(binding: Binding) -> str:
    """A binding's key as help shows it: ``+``, ``/``, ``space``, ``esc``."""
    return KEY_NAMES.get(binding.key.split(",")[0]) or binding.key_display or binding.key.split(",")[0]


def help_text(bindings: list) -> Group:
    """Help, made from the app's bindings so it cannot drift from them: each key and what it does, by section,
    the keys the tables handle, then the states."""
    parts: list = [Text.from_markup("[b]pooltui monitor[/b]: the key that gets the next request is marked ▶")]
    sections: dict[str, list[Binding]] = {}
    for binding in bindings:
        if isinstance(binding, Binding):
            sections.setdefault((binding.id or "app").split(".")[0], []).append(binding)
    order = [*(s for s in HELP_SECTIONS if s in sections), *(s for s in sections if s not in HELP_SECTIONS)]
    rows = [(HELP_SECTIONS.get(name, name), [(key_name(b), b.tooltip or b.description) for b in sections[name]])
            for name in order]
    rows.append(("Also", list(HELP_MORE)))
    for title, entries in rows:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True, style="bold", min_width=6)
        grid.add_column()
        for key, what in entries:
            grid.add_row(key, what)
        parts += [Text(""), Text(title, style="bold underline"), grid]
    parts += [Text(""), Text.from_markup(
        "States: [green]ok[/green], [yellow]cooling[/yellow] (countdown, deadline source), [magenta]exhausted"
        "[/magenta] (quota or budget), [red]invalid[/red] (401), [red]forbidden[/red] (403), [dim]disabled[/dim] "
        "(by hand).")]
    return Group(*parts)


class HelpScreen(ModalScreen[None]):
    """Every binding of the app and what it does, in a box that fits the terminal and scrolls."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close", id="help.close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical { width: 84; max-width: 100%; height: 40; max-height: 100%; border: thick $accent;
                            background: $surface; }
    HelpScreen VerticalScroll { height: 1fr; padding: 0 1; }
    HelpScreen #help-hint { color: $text-muted; padding: 0 1; }
    """

    def __init__(self, bindings: list) -> None:
        super().__init__()
        self.bindings = bindings

    def compose(self) -> ComposeResult:
        with Vertical():
            with VerticalScroll(id="help-scroll"):
                yield Static(help_text(self.bindings), id="help-body")
            yield Label("↑ ↓ pgup pgdn scroll · esc close", id="help-hint")

    def on_mount(self) -> None:
        self.query_one("#help-scroll").focus()


class KeyDetailScreen(Screen[None]):
    """One key in full: state and why, its timeline, last errors, resets and their source, per-model
    cooldowns, header limits, latency, tokens and cost; the key actions work here too. Refreshed live."""

    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back", id="detail.back"),
        Binding("d", "key('toggle')", "Off/on", id="detail.toggle"),
        Binding("v", "key('verify')", "Verify", id="detail.verify"),
        Binding("r", "key('reset')", "Reset", id="detail.reset"),
        Binding("K", "key('up')", "Up", id="detail.up"),
        Binding("J", "key('down')", "Down", id="detail.down"),
    ]
    DEFAULT_CSS = """
    KeyDetailScreen #detail-title { padding: 0 1; text-style: bold; background: $primary-background; }
    KeyDetailScreen VerticalScroll { padding: 0 1; height: 1fr; }
    KeyDetailScreen #detail-said { display: none; width: 100%; height: auto; padding: 0 1; background: $boost; }
    KeyDetailScreen #detail-said.warning { background: $warning-muted; }
    KeyDetailScreen #detail-said.error { background: $error-muted; }
    """

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label
        self._said_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield FittedLine(id="detail-title")
        with VerticalScroll():
            yield Static("", id="detail-body")
        yield Label("", id="detail-said")
        yield Footer(compact=True, show_command_palette=False)

    def say(self, message: str, *, title: str = "", severity: str = "information",
            timeout: float | None = None) -> None:
        """A notification on this screen: a line of its own above the footer, so no toast covers the detail."""
        said = self.query_one("#detail-said", Label)
        said.update(Text(f"{title}: {message}" if title else message))
        said.set_classes(severity)
        said.display = True
        if self._said_timer is not None:
            self._said_timer.stop()
        self._said_timer = self.set_timer(timeout or self.app.NOTIFICATION_TIMEOUT, self._unsay, name="detail-said")

    def _unsay(self) -> None:
        self.query_one("#detail-said", Label).display = False

    def on_mount(self) -> None:
        self.refresh_detail()
        self.set_interval(0.5, self.refresh_detail, name="detail-refresh")

    def refresh_detail(self) -> None:
        session = self.app.session  # type: ignore[attr-defined]
        snap = session.key(self.label)
        if snap is None:
            self.query_one("#detail-body", Static).update(Text(f"{self.label} is no longer in the pool"))
            return
        events = [e for e in session.recent_events() if e.key == self.label]
        self.query_one("#detail-title", FittedLine).show([
            (2, Text(session.current), ""), (0, Text(f"key {self.label}"), " · "),
            (1, fmt.state_cell(snap, max(12, self.size.width - len(self.label) - 10)), " · ")])
        self.query_one("#detail-body", Static).update(key_detail(snap, events, session.clock.now()))

    def action_key(self, what: str) -> None:
        self.app.key_action(what, self.label)  # type: ignore[attr-defined]
        self.refresh_detail()


def cache_line(snap: KeySnapshot) -> str:
    """A key's prompt-cache figures: hit rate, reads and writes; its cost against round-robin without affinity."""
    read, cacheable = snap.get("cache_read", 0), snap.get("cacheable", 0)
    line = (f"prompt cache: hit rate {read / cacheable:.0%}, {fmt.number(read)} tokens read, "
            f"{fmt.number(snap.get('cache_write', 0))} written")
    cost, round_robin = snap.get("cost", 0.0), snap.get("cost_round_robin", 0.0)
    if cost or round_robin:
        line += f"; cost {fmt.cost(cost)}, round-robin without affinity would have cost ~{fmt.cost(round_robin)}"
    return line


def key_detail(snap: KeySnapshot, events: list[Event], now: float) -> Text:
    """The detail screen's body for one key snapshot and its recent events (newest last)."""
    text = Text()

    def head(title: str) -> None:
        text.append(f"\n{title}\n", style="bold underline")

    text.append(f"secret {snap['masked']}  fingerprint {snap['fingerprint']}  quota group "
                f"{snap.get('quota_group') or '-'}\n")
    if snap.get("affinity_hits") or snap.get("affinity_moves"):
        text.append(f"affinity: {snap.get('affinity_hits', 0)} requests stayed (its cache held their conversation), "
                    f"{snap.get('affinity_moves', 0)} conversations moved off (no room)\n")
    if snap.get("cacheable"):
        text.append(cache_line(snap) + "\n")
    head("state")
    text.append_text(fmt.state_cell(snap))
    until = snap.get("until")
    if until:
        source = snap.get("source") or "nowhere said"
        text.append(f"\nuntil {fmt.clock_text(until)} ({fmt.duration(snap.get('remaining_s'))} left), "
                    f"deadline from {_SOURCE_WORDS.get(source, source)}")
    if snap.get("reason"):
        text.append(f"\nbecause: {snap['reason']}")
    if snap.get("probing"):
        text.append("\nheld for its recovery probe: one request is finding out whether it is back")
    if snap.get("inflight"):
        text.append(f"\n{snap['inflight']} request(s) in flight")
    models = snap.get("models") or {}
    head("per-model cooldowns")
    text.append("\n".join(f"{m}: {fmt.duration(left)} left" for m, left in sorted(models.items())) or "none")
    head("what the provider's headers said")
    if snap.get("requests_remaining") is None and snap.get("requests_limit"):
        text.append(f"a limit of {snap['requests_limit']} requests (with a 429), nothing on its successes")
    elif snap.get("requests_limit") or snap.get("requests_remaining") is not None:
        text.append(f"requests {fmt.remaining(snap, compact=False)} remaining")
        if snap.get("tokens_remaining") is not None:
            text.append(f", tokens {snap['tokens_remaining']} remaining")
    else:
        text.append("nothing (this provider sends no rate-limit headers, or none yet)")
    head("learned limit (where no header states it)")
    text.append(learned_text(snap))
    if snap.get("declared"):
        head("declared limits (the config's)")
        text.append(declared_text(snap))
    head("traffic")
    p50 = "-" if snap.get("p50_ms") is None else f"{snap['p50_ms']:.0f} ms"
    p95 = "-" if snap.get("p95_ms") is None else f"{snap['p95_ms']:.0f} ms"
    text.append(f"{snap['requests']} requests, {snap['ok']} ok, {snap['rate_limited']} × 429, "
                f"{snap['invalid'] + snap['forbidden']} × 401/403, {snap['quota']} quota, {snap['server_errors']}"
                f" × 5xx, {snap['transport']} transport; latency p50 {p50}, p95 {p95}; last used "
                f"{fmt.ago(snap.get('last_used'), now)}\n")
    text.append(f"tokens {snap['tokens_in']} in, {snap['tokens_out']} out; cost {fmt.cost(snap.get('cost'))}")
    head("state timeline")
    changes = [e for e in events if str(e.kind) in ("state", "invalid", "forbidden", "quota")
               or e.change in (StateChange.COOLED, StateChange.MODEL_COOLED)]
    for e in changes[-12:]:
        text.append(f"{fmt.clock_text(e.ts)}  {e.kind}: {e.action}" + (f" ({e.reason})" if e.reason else "") + "\n")
    if not changes:
        text.append("no change since the monitor started\n")
    head("last errors")
    errors = [e for e in events if e.status is not None and e.status >= 400]
    for e in errors[-10:]:
        text.append(f"{fmt.clock_text(e.ts)}  {e.status} {e.kind}: {e.reason}\n")
    if not errors:
        text.append("none\n")
    text.append("\nd off/on · v verify · r reset · K/J move · esc back", style="dim")
    return text


_SOURCE_WORDS = {"learned": "its learned limit (the window has room then)",
                 "declared": "its declared limit (the window has room then)",
                 "stated": "the token budget its headers stated (back in full then)"}


def declared_text(snap: KeySnapshot) -> str:
    """The key's declared limits and what each window holds now (this process's; the fleet's where shared)."""
    lines = [" · ".join(f"{name} {value}" for name, value in snap["declared"].items())]
    for name, use in (snap.get("budgets") or {}).items():
        fleet = f" (fleet {use['fleet_used']})" if use["fleet_used"] is not None else ""
        lines.append(f"{name}: {use['used']} of {use['limit']} in use{fleet}")
    return "\n".join(lines) + "\npicks wait for room in a full window instead of collecting a 429"


def learned_text(snap: KeySnapshot) -> str:
    """The key's limits learnt from 429s, per key or per model, in words."""
    def one(est: LearnedSnapshot) -> str:
        probes = f"probed for more {est['probes']} times" if est["probes"] else "not probed for more yet"
        return (f"{est['limit']} request{'s' if est['limit'] != 1 else ''} per {est['window_s']:.1f} s, sure "
                f"{est['sure']:.0%} (from {est['observed']} × 429 with retry-after; {probes}); "
                f"{est['in_window']} in the window now")

    own = snap.get("learned")
    lines = [one(own)] if own else []
    lines += [f"{m}: {one(est)}" for m, est in sorted((snap.get("learned_models") or {}).items())]
    if lines:
        return "\n".join(lines) + "\npicks wait for room in this window instead of collecting a 429"
    if snap.get("requests_remaining") is not None:
        return "none needed: the provider's headers state the budget"
    return "nothing yet: learnt from the first 429 that says when a slot frees"


class FleetScreen(Screen[None]):
    """Every process sharing this pool through Redis (host, pid, requests/s, last seen) and the key states
    they share; refreshed each second. Key actions on the main screen reach all of them."""

    BINDINGS = [Binding("escape,q,F", "app.pop_screen", "Back", id="fleet.back")]
    DEFAULT_CSS = "FleetScreen #fleet-title { width: 100%; background: $primary-background; text-style: bold; }"

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__()
        self.url, self.prefix = url, prefix
        self.seen: dict = {"procs": [], "keys": []}

    def compose(self) -> ComposeResult:
        yield Label(" fleet", id="fleet-title")
        yield DataTable(cursor_type="row", id="fleet-procs")
        yield DataTable(cursor_type="row", id="fleet-keys")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#fleet-procs", DataTable).add_columns("host", "pid", "req/s", "last seen", "providers")
        self.query_one("#fleet-keys", DataTable).add_columns("provider", "key", "state", "left", "reason", "from")
        self.reload()
        self.set_interval(1.0, self.reload, name="fleet-refresh")

    @work(exclusive=True, group="fleet", exit_on_error=False)
    async def reload(self) -> None:
        import time

        from pooltui.store.fleet import fleet

        try:
            self.seen = await fleet(self.url, self.prefix)
            problem = ""
        except Exception as exc:
            problem = f" · Redis unreachable ({type(exc).__name__}): showing what was read before"
        now = time.time()
        procs, keys = self.query_one("#fleet-procs", DataTable), self.query_one("#fleet-keys", DataTable)
        procs.clear()
        for p in self.seen["procs"]:
            procs.add_row(p["host"], str(p["pid"]), f"{p['requests_per_s']:.1f}",
                          f"{fmt.duration(now - p['last_seen'])} ago", ", ".join(p["providers"]))
        keys.clear()
        for k in self.seen["keys"]:
            left = fmt.duration(k["until"] - now) if k.get("until") and k["until"] > now else "-"
            keys.add_row(k["provider"], k["key"], k["state"], left, k.get("reason") or "",
                         str(k.get("from", "")).rsplit(":", 1)[0])
        self.query_one("#fleet-title", Label).update(
            f" fleet on {self.url.split('@')[-1]} · {len(self.seen['procs'])} process(es){problem}")
