"""Modal and full screens: request inspector, add key, event history, help."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Input, Label, Static

from pooltui.tui import format as fmt


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

    def action_dismiss(self) -> None:
        self.dismiss(None)


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
    """Past events: from the SQLite history when there is one, else the engine's recent ring."""

    BINDINGS = [Binding("escape,h,q", "app.pop_screen", "Back", id="history.back")]

    def __init__(self, rows: list[dict], source: str) -> None:
        super().__init__()
        self._rows, self._source = rows, source

    def compose(self) -> ComposeResult:
        yield Label(f" Event history ({self._source}): {len(self._rows)} events, newest last", id="history-title")
        table = DataTable(cursor_type="row", id="history-table")
        yield table
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("time", "provider", "key", "event", "status", "action", "reason")
        for r in self._rows:
            table.add_row(fmt.clock_text(r["ts"]), r["provider"], r["key"] or "-", r["kind"],
                          str(r["status"] or "-"), r["action"] or "", (r["reason"] or "")[:100])
        if self._rows:
            table.move_cursor(row=len(self._rows) - 1)
        table.focus()


HELP = """\
[b]pooltui monitor[/b] — the key that gets the next request is marked ▶

[b]Keys[/b]                       [b]Traffic[/b]
 a      add a key              t      start / stop test traffic
 d      disable / enable       + / -  traffic rate up / down
 v      re-verify selected     b      inject a burst
 V      re-verify all keys     r      reset cooldowns
 K / J  move key up / down     [b]View[/b]
 s      next strategy          space  pause the display
 p      next provider          i      inspect a request (why this key?)
 h      event history          ctrl+p command palette
 ?      this help              q      quit

[b]Events[/b]                     [b]Keys table[/b]
 /      search events          o      sort by the next column
 f      only the selected key   (or click a column's title)
 e      only one kind (cycles) esc    clear the events filters

States: [green]ok[/green], [yellow]cooling[/yellow] (countdown, deadline source), [magenta]exhausted[/magenta]
(quota or budget), [red]invalid[/red] (401), [red]forbidden[/red] (403), [dim]disabled[/dim] (by hand).
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close", id="help.close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Static { width: 76; height: auto; border: thick $accent; background: $surface; padding: 1 2; }
    """

    def compose(self) -> ComposeResult:
        yield Static(HELP)

    def action_dismiss(self) -> None:
        self.dismiss(None)
