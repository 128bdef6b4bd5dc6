"""`pooltui hermes`: Hermes Agent's own pool, live (no proxy needed). Each entry with its masked key,
source, priority, status and a countdown to the reset Hermes will honour, its last error, its request
count, and ▶ on the entry Hermes selects next (an OAuth entry: its expiry, never its token). Keys: r reset,
v re-verify, K/J move, x remove, q quit. When a running Hermes writes back an entry pooltui changed, it says so."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Label

from pooltui.session.hermes_watch import EntryView, HermesWatch
from pooltui.tui import format as fmt
from pooltui.tui.widgets import row_at_cursor

STATUS_STYLE = {"ok": "bold green", "exhausted": "bold yellow", "dead": "bold red"}
COLUMNS = (("next", " ", 1), ("provider", "provider", 14), ("priority", "#", 2), ("label", "label", 16),
           ("key", "key", 16), ("source", "source", 16), ("status", "status", 20), ("code", "code", 4),
           ("requests", "req", 5), ("reason", "reason", 16), ("message", "message", 40))


def key_cell(v: EntryView, now: float) -> Text:
    """The key column: the masked key, its source, or for an OAuth entry its expiry (never the token)."""
    if v.auth_type != "oauth":
        return Text(v.shown)
    if v.expires is None:
        return Text("oauth")
    left = v.expires - now
    if left <= 0:
        return Text(f"oauth expired {fmt.duration(-left)}", style="yellow")
    return Text(f"oauth exp {fmt.duration(left)}")


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]
    DEFAULT_CSS = "ConfirmScreen { align: center middle; } ConfirmScreen > Label { border: thick $error; " \
                  "background: $surface; padding: 1 2; }"

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        yield Label(f"{self.question}  (y / n)")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class HermesApp(App[None]):
    """The watch on one Hermes home."""

    TITLE = "pooltui · Hermes Agent pool"
    BINDINGS = [
        Binding("r", "reset", "Reset", tooltip="Clear the selected entry's status (as hermes auth reset)"),
        Binding("v", "verify", "Verify", tooltip="Re-verify the selected key; a stale exhaustion is cleared"),
        Binding("K", "move(-1)", "Up", tooltip="Move the selected entry up in priority"),
        Binding("J", "move(1)", "Down", tooltip="Move the selected entry down in priority"),
        Binding("x", "remove", "Remove", tooltip="Remove the selected entry from Hermes's pool"),
        Binding("q", "quit", "Quit"),
    ]
    DEFAULT_CSS = """
    #hermes-title { height: 1; width: 100%; background: $primary-background; text-style: bold; padding: 0 1; }
    #hermes-table { height: 1fr; }
    """

    def __init__(self, watch: HermesWatch, refresh_s: float = 0.5) -> None:
        super().__init__()
        self.watch_ = watch
        self.refresh_s = refresh_s
        self.rows: dict[str, EntryView] = {}
        self.rewrite_warning = ""  # the last time Hermes rewrote an entry from its memory

    def compose(self) -> ComposeResult:
        yield Label("", id="hermes-title")
        yield DataTable(cursor_type="row", zebra_stripes=True, id="hermes-table")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, title, width in COLUMNS:
            table.add_column(title, key=key, width=width)
        self.watch_.load(force=True)
        self.refresh_table()
        self.set_interval(self.refresh_s, self.refresh_table, name="countdown")
        self._watch()

    @work(exclusive=True, group="watch", exit_on_error=False)
    async def _watch(self) -> None:
        await self.watch_.watch(self.refresh_table)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("reset", "verify", "move", "remove"):
            if self.watch_.read_only and action != "verify":
                return None
            if self.selected is None:
                return None
        return True

    @property
    def selected(self) -> EntryView | None:
        return self.rows.get(row_at_cursor(self.table) or "")

    @property
    def table(self) -> DataTable:
        """The pool's table, on the main screen even while a confirmation covers it."""
        return self.screen_stack[0].query_one("#hermes-table", DataTable)

    def refresh_table(self) -> None:
        w = self.watch_
        now = w.clock()
        pools = w.pools()
        try:
            table = self.table
        except (NoMatches, IndexError):  # the app is going (a file event after quit)
            return
        keep = self.selected
        rows: dict[str, EntryView] = {}
        table.clear()
        for provider, views in pools.items():
            for v in views:
                row = f"{provider}/{v.id}"
                rows[row] = v
                status = Text(v.status, style=STATUS_STYLE.get(v.status, ""))
                if v.until is not None:
                    status.append(f" {fmt.duration(max(0.0, v.until - now))}", style="bold")
                table.add_row(Text("▶", style="bold cyan") if v.next else " ", fmt.clip_name(provider, 14),
                              str(v.priority), fmt.clip_name(v.label, 16), key_cell(v, now),
                              fmt.clip_name(v.source, 16), status, str(v.error_code or "-"),
                              fmt.number(v.requests), v.reason or "-", v.message or "", key=row)
        self.rows = rows
        if keep is not None and f"{keep.provider}/{keep.id}" in rows:
            table.move_cursor(row=list(rows).index(f"{keep.provider}/{keep.id}"), animate=False)
        strategies = ", ".join(f"{p} {w.strategy(p)}" for p in pools) or "no pool"
        mode = " · read-only" if w.read_only else ""
        title = f" Hermes home {w.home} · {strategies}{mode}"
        for said in w.rewrites():  # once each: Hermes undid what pooltui wrote
            self.rewrite_warning = said
            self.notify(said, severity="warning", timeout=20)
        problem = w.problem or self.rewrite_warning
        self.screen_stack[0].query_one("#hermes-title", Label).update(title + (f" · {problem}" if problem else ""))

    def _act(self, do) -> None:
        try:
            self.notify(do())
        except Exception as exc:
            self.notify(str(exc), severity="error", timeout=8)
        self.watch_.load(force=True)
        self.refresh_table()

    def action_reset(self) -> None:
        v = self.selected
        if v is not None:
            self._act(lambda: self.watch_.reset(v.provider, v.id))

    def action_move(self, delta: int) -> None:
        v = self.selected
        if v is not None:
            self._act(lambda: self.watch_.move(v.provider, v.id, delta))
            self.query_one(DataTable).move_cursor(row=list(self.rows).index(f"{v.provider}/{v.id}"))

    def action_remove(self) -> None:
        v = self.selected
        if v is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._act(lambda: self.watch_.remove(v.provider, v.id))

        self.push_screen(ConfirmScreen(f"Remove {v.label} from Hermes's {v.provider} pool?"), answered)

    @work(exclusive=True, group="verify", exit_on_error=False)
    async def action_verify(self) -> None:
        v = self.selected
        if v is None:
            return
        try:
            said = await self.watch_.verify(v.provider, v.id)
            self.notify(said)
        except Exception as exc:
            self.notify(str(exc), severity="error", timeout=8)
        self.watch_.load(force=True)
        self.refresh_table()
