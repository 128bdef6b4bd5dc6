"""The monitor's panels. Each renders a snapshot it is handed; none talks to the engine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Label, Sparkline, Static
from textual_plotext import PlotextPlot

from pooltui.core.events import Event, EventKind
from pooltui.core.snapshot import KeySnapshot
from pooltui.session.story import EventStory, StoryRow
from pooltui.session.timeline import TimelineView
from pooltui.session.views import SeriesView
from pooltui.tui import format as fmt

KEY_COLUMNS = (  # (key, title, width)
    ("next", " ", 1), ("pos", "#", 2), ("label", "key", 12), ("masked", "secret", 14), ("state", "state", 26),
    ("requests", "req", 5), ("ok", "ok", 5), ("rate_limited", "429", 4), ("invalid", "401/3", 5),
    ("quota", "quota", 5), ("server_errors", "5xx", 4), ("remaining", "remain", 9), ("learned", "learned", 11),
    ("budget", "budget", 22), ("tokens", "tokens", 6),
    ("cost", "cost", 7), ("p50", "p50", 5), ("last", "last used", 9),
)
CELL_PADDING = 2  # a DataTable cell's padding, one each side


def row_at_cursor(table: DataTable) -> str | None:
    """The key of the row under a table's cursor (None when the table is empty)."""
    if not table.row_count:
        return None
    try:
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    except Exception:
        return None


def fit_columns(columns: tuple[tuple[str, str, int], ...], drop_order: tuple[str, ...], width: int,
                flex: tuple[str, int] | None = None) -> list[tuple[str, str, int]]:
    """The columns that fit ``width``, dropping those of ``drop_order`` first to last; ``flex`` (a column and
    its least width) takes what is left over."""
    shown = list(columns)
    used = lambda cols: sum(w + CELL_PADDING for _, _, w in cols)  # noqa: E731
    for name in drop_order:
        if used(shown) <= width:
            break
        shown = [c for c in shown if c[0] != name]
    if flex is not None:
        name, least = flex
        spare = width - used([c for c in shown if c[0] != name]) - CELL_PADDING
        shown = [(k, t, max(least, spare)) if k == name else (k, t, w) for k, t, w in shown]
    return shown


class FittedTable(DataTable):
    """A table whose columns follow the room it has: the least important go first as it narrows."""

    COLUMNS: tuple[tuple[str, str, int], ...] = ()
    DROP_ORDER: tuple[str, ...] = ()
    FLEX: tuple[str, int] | None = None

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.shown: list[tuple[str, str, int]] = []

    def on_mount(self) -> None:
        self._fit(self.size.width or 200)

    def on_resize(self) -> None:
        self._fit(self.size.width)

    def columns_now(self) -> tuple[tuple[str, str, int], ...]:
        """The columns as they are titled now (a subclass may mark one)."""
        return self.COLUMNS

    def fitted(self, width: int, columns: tuple[tuple[str, str, int], ...] | None = None) -> list[tuple[str, str, int]]:
        """The columns shown at ``width``."""
        return fit_columns(columns or self.columns_now(), self.DROP_ORDER, max(20, width - 1), self.FLEX)

    def _fit(self, width: int) -> None:
        shown = self.fitted(width)
        if shown == self.shown:
            return
        self.shown = shown
        keep = row_at_cursor(self)
        self.clear(columns=True)
        for key, title, w in shown:
            self.add_column(title, key=key, width=w)
        self.refill()
        if keep is not None and keep in self.rows:
            self.move_cursor(row=self.get_row_index(keep), animate=False)

    def refill(self) -> None:
        """Put the rows back after the columns changed."""

    def pick(self, cells: dict[str, object]) -> list[object]:
        """The cells of the columns shown, in their order."""
        return [cells[key] for key, _, _ in self.shown]


LABEL_WIDTH = next(w for key, _, w in KEY_COLUMNS if key == "label")


class KeysTable(FittedTable):
    """One row per key, keyed by label; only changed cells are rewritten, so the cursor never jumps. At 80
    columns it keeps the key, its state with countdown, and its 429, 401/3, quota and 5xx counts."""

    COLUMNS = KEY_COLUMNS
    DROP_ORDER = ("last", "p50", "cost", "budget", "tokens", "remaining", "masked", "learned", "ok", "requests",
                  "pos")

    DEFAULT_CSS = "KeysTable { height: 1fr; }"

    #: what each sortable column sorts by (a key of the snapshot, or a function of it); worst first
    SORTS = {
        "state": lambda s: (s["state"] == "ok", -(s.get("remaining_s") or 0)),
        "requests": lambda s: -s["requests"], "ok": lambda s: -s["ok"], "rate_limited": lambda s: -s["rate_limited"],
        "invalid": lambda s: -(s["invalid"] + s["forbidden"]), "quota": lambda s: -s["quota"],
        "server_errors": lambda s: -s["server_errors"],
        "remaining": lambda s: (s.get("requests_remaining") is None, s.get("requests_remaining") or 0),
        "learned": lambda s: (s.get("learned") is None, fmt.learned_rate(s.get("learned"))),
        "tokens": lambda s: -(s["tokens_in"] + s["tokens_out"]), "cost": lambda s: -(s.get("cost") or 0),
        "p50": lambda s: -(s.get("p50_ms") or 0), "last": lambda s: -(s.get("last_used") or 0),
        "label": lambda s: s["label"],
    }
    #: the mark on a sorted column's title: ▼ most (or worst) first, ▲ least first
    SORT_MARKS = {"label": "▲", "remaining": "▲", "learned": "▲"}

    def __init__(self, **kw) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self._rows: dict[str, dict] = {}
        self._order: list[str] = []
        self.sort_by: str | None = None  # None: pool order
        self.shared: set[str] = set()  # labels of keys found to share an account with another (marked ≡)
        self._last: tuple[Sequence[KeySnapshot], str | None, float] | None = None  # to refill after a resize
        self._budgets = False  # a key declares limits: the budget column is shown (where there is room)

    def refill(self) -> None:
        self._order, self._rows = [], {}
        if self._last is not None:
            self.sync(*self._last)

    def columns_now(self, sort_by: str | None = None) -> tuple[tuple[str, str, int], ...]:
        """The columns with the sorted one's title marked (``429 ▼``), widened to fit its mark."""
        sort_by = sort_by or self.sort_by
        return tuple((key, f"{title} {self.SORT_MARKS.get(key, '▼')}", max(w, len(title) + 2)) if key == sort_by
                     else (key, title, w) for key, title, w in self.COLUMNS if key != "budget" or self._budgets)

    def title_of(self, column: str) -> str:
        """A column's title as its header shows it, unmarked."""
        return next(title for key, title, _ in self.COLUMNS if key == column)

    def _width(self) -> int:
        return self.size.width or 200

    def sortable(self) -> list[str]:
        """The columns ``o`` sorts by, left to right: those shown, and still shown once marked."""
        width, shown = self._width(), {key for key, _, _ in self.shown}
        return [key for key, _, _ in self.COLUMNS if key in self.SORTS and key in shown
                and key in {k for k, _, _ in self.fitted(width, self.columns_now(key))}]

    def next_sort(self) -> str | None:
        """Sort by the next column shown (after the last one: pool order again)."""
        names = self.sortable()
        i = names.index(self.sort_by) + 1 if self.sort_by in names else 0
        self.sort_by = names[i] if i < len(names) else None
        self._fit(self._width())
        return self.sort_by

    def _fit(self, width: int) -> None:
        super()._fit(width)
        if self.sort_by is not None and self.sort_by not in {key for key, _, _ in self.shown}:
            self.sort_by = None  # its column was dropped for room: never sort by what is not shown
            super()._fit(width)

    def on_data_table_header_selected(self, message: DataTable.HeaderSelected) -> None:
        """A click on a column's title sorts by it (again: pool order)."""
        column = message.column_key.value
        if column in self.SORTS:
            self.sort_by = None if self.sort_by == column else column
            self._fit(self._width())
            message.stop()

    @property
    def selected(self) -> str | None:
        return row_at_cursor(self)

    def select(self, label: str) -> None:
        if label in self._order:
            self.move_cursor(row=self._order.index(label))

    def sync(self, snaps: Sequence[KeySnapshot], next_label: str | None, now: float) -> None:
        self._last = (snaps, next_label, now)
        budgets = any(s.get("budgets") for s in snaps)
        if budgets != self._budgets:  # the first key with declared limits (or the last one gone): refit
            self._budgets = budgets
            self._fit(self._width())
        rows = {s["label"]: self._cells(i, s, next_label, now) for i, s in enumerate(snaps)}
        for label in self.shared & rows.keys():  # keys of one account: marked beside the label
            rows[label]["label"] = fmt.clip_name(f"{label} ≡", LABEL_WIDTH)
        if self.sort_by is not None:
            snaps = sorted(snaps, key=self.SORTS[self.sort_by])  # stable: ties keep pool order
        order = [s["label"] for s in snaps]
        if order != self._order:
            keep = self.selected
            cursor = self.cursor_row
            self.clear()
            for label in order:
                self.add_row(*self.pick(rows[label]), key=label)
            self._order = order
            if keep in order:
                self.move_cursor(row=order.index(keep), animate=False)
            elif order:
                self.move_cursor(row=min(cursor, len(order) - 1), animate=False)
        else:
            for label, cells in rows.items():
                old = self._rows.get(label) or {}
                for col, _, _ in self.shown:
                    if cells[col] != old.get(col):
                        self.update_cell(label, col, cells[col])
        self._rows = rows

    @staticmethod
    def _cells(i: int, s: KeySnapshot, next_label: str | None, now: float) -> dict[str, object]:
        marker = Text("▶", style="bold cyan") if s["label"] == next_label else Text(" ")
        width = {key: w for key, _, w in KEY_COLUMNS}
        values = (
            marker, str(i + 1), fmt.clip_name(s["label"], width["label"]), s["masked"],
            fmt.state_cell(s, width["state"]), fmt.number(s["requests"]),
            fmt.number(s["ok"]), fmt.number(s["rate_limited"]), fmt.number(s["invalid"] + s["forbidden"]),
            fmt.number(s["quota"]), fmt.number(s["server_errors"]), fmt.remaining(s),
            fmt.learned_cell(s, width["learned"]), fmt.budget_cell(s, width["budget"]),
            fmt.number(s["tokens_in"] + s["tokens_out"]),
            fmt.cost(s.get("cost")), fmt.latency_cell(s["p50_ms"]), fmt.ago(s["last_used"], now),
        )
        return {key: v for (key, _, _), v in zip(KEY_COLUMNS, values, strict=True)}


class FallbackTable(FittedTable):
    """A fallback provider's keys and states (read-only), under the primary's while the fallback serves."""

    DEFAULT_CSS = "FallbackTable { height: auto; max-height: 8; }"
    COLUMNS = (("label", "key", 12), ("masked", "secret", 14), ("state", "state", 26), ("requests", "req", 5),
               ("ok", "ok", 5), ("rate_limited", "429", 4), ("invalid", "401/3", 5), ("server_errors", "5xx", 4))
    DROP_ORDER = ("masked", "ok", "requests")

    def __init__(self, **kw) -> None:
        super().__init__(cursor_type="none", zebra_stripes=True, **kw)
        self._keys: list[KeySnapshot] = []

    def refill(self) -> None:
        self.show(self._keys)

    def show(self, keys: list[KeySnapshot]) -> None:
        self._keys = keys
        self.clear()
        for k in keys:
            self.add_row(*self.pick({
                "label": fmt.clip_name(k["label"], 12), "masked": k["masked"], "state": fmt.state_cell(k, 26),
                "requests": fmt.number(k["requests"]), "ok": fmt.number(k["ok"]),
                "rate_limited": fmt.number(k["rate_limited"]), "invalid": fmt.number(k["invalid"] + k["forbidden"]),
                "server_errors": fmt.number(k["server_errors"])}), key=k["label"])


#: the timeline's marks per key: its 429s and its errors
_MARKS: tuple[tuple[Literal["limited", "errors"], str], ...] = (("limited", "●"), ("errors", "✕"))
#: the timeline's line colour per key, in pool order (red is the callers' p95)
KEY_COLORS = ("cyan", "magenta", "yellow", "green", "blue", "white")


class TimelinePanel(PlotextPlot):
    """Per key, requests (lines), 429s (dots) and errors (crosses) per 10 s over the last 5 or 15 minutes."""

    DEFAULT_CSS = "TimelinePanel { height: 14; max-height: 45%; border: round $primary-darken-2; }"

    def show(self, timeline: TimelineView, minutes: int) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        n = max(1, minutes * 60 // timeline["bucket_s"])
        xs = [-(n - 1 - i) * timeline["bucket_s"] / 60 for i in range(n)]
        self._minutes = minutes
        self.border_title = self.title_for(minutes, self.size.width - 6 if self.size.width else 10**6)
        self._keys = list(timeline["keys"])
        self.border_subtitle = self.legend_for(self._keys, self.size.width - 6 if self.size.width else 10**6)
        for i, line in enumerate(timeline["keys"].values()):
            color = KEY_COLORS[i % len(KEY_COLORS)]  # the legend is the border's subtitle: it shows at any height
            plt.plot(xs, line["requests"][-n:], color=color)
            for what, marker in _MARKS:
                points = [(x, v) for x, v in zip(xs, line[what][-n:], strict=True) if v]
                if points:
                    plt.scatter([p[0] for p in points], [p[1] for p in points], marker=marker, color=color)
        felt = [(x, v) for x, v in zip(xs, (timeline.get("callers_p95_s") or [])[-n:], strict=False) if v is not None]
        if felt:  # what callers waited, on its own axis: seconds, not requests
            plt.plot([p[0] for p in felt], [p[1] for p in felt], yside="right", marker="braille", color="red",
                     label="callers p95")
            # textual-plotext's stub names this argument xside; plotext's ylabel takes yside
            plt.ylabel("callers p95 s", yside="right")  # type: ignore[call-arg]
        plt.xlim(xs[0], 0)
        plt.xlabel("minutes ago")
        self.refresh()


    @staticmethod
    def title_for(minutes: int, width: int) -> Text:
        """The chart's title in ``width`` cells: its parts drop whole, the window stays."""
        parts = [(0, Text(f"timeline · last {minutes} min"), ""), (1, Text("per 10 s"), " · "),
                 (2, Text("lines requests, ● 429, ✕ errors"), ": "), (3, Text("right: callers' p95 s"), "; "),
                 (4, Text("(g)"), " ")]
        return fmt.fit_segments(parts, width)

    @staticmethod
    def legend_for(keys: list[str], width: int) -> Text:
        """Which line is which key, in its colour, in ``width`` cells: keys that do not fit are counted."""
        parts: list[fmt.Segment] = [(i, Text.assemble(("━ ", f"bold {KEY_COLORS[i % len(KEY_COLORS)]}"), key), "  ")
                                    for i, key in enumerate(keys)]
        legend = fmt.fit_segments(parts, width - 5)
        shown = legend.plain.count("━")
        return legend + Text(f"  +{len(keys) - shown}") if shown < len(keys) else legend

    def on_resize(self) -> None:
        minutes = getattr(self, "_minutes", 0)
        if minutes:
            self.border_title = self.title_for(minutes, self.size.width - 6)
            self.border_subtitle = self.legend_for(getattr(self, "_keys", []), self.size.width - 6)


class RotationPanel(Static):
    """Strategy, the last picks as a strip, and the next pick; fitted to its width: the legend wraps by whole
    entries, the summary ends at a word."""

    DEFAULT_CSS = "RotationPanel { height: 100%; padding: 0 1; border: round $primary-darken-2; }"
    LINES = 5  # the middle row's height inside the border

    def __init__(self, *args, **kw) -> None:
        super().__init__("", *args, **kw)
        self._shown: tuple | None = None

    def show(self, strategy: str, picks: list[str], order: list[str], next_label: str | None,
             summary: str) -> None:
        self._shown = (strategy, picks, order, next_label, summary)
        self.update(self.lines(self.content_size.width or 10**6, *self._shown))

    def on_resize(self) -> None:
        if self._shown is not None:
            self.update(self.lines(self.content_size.width or 10**6, *self._shown))

    @classmethod
    def lines(cls, width: int, strategy: str, picks: list[str], order: list[str], next_label: str | None,
              summary: str) -> Text:
        """The panel's text for ``width`` cells: every line whole."""
        pick = f"▶ {next_label}" if next_label else "▶ (random)" if strategy == "random" else "▶ none"
        head = Text.assemble(("strategy ", "dim"), (strategy, "bold"), ("   next ", "dim"), (pick, "bold cyan"))
        if head.cell_len > width:  # the words go first, the strategy and the next pick stay
            head = fmt.ellipsize(Text.assemble((strategy, "bold"), " ", (pick, "bold cyan")), width)
        text = Text()
        text.append_text(head)
        text.append("\nlast picks ", style="dim")
        text.append_text(fmt.pick_strip(picks, order, max(4, min(28, width - 11))))
        for line in fmt.legend_lines(order, width, cls.LINES - 3):
            text.append("\n")
            text.append_text(line)
        text.append("\n")
        text.append_text(fmt.ellipsize(Text(summary, style="dim"), width))
        return text


class TrafficPanel(Vertical):
    """Sparklines of requests/s, successes, 429s and errors; sustained RPM; the fallback in use."""

    DEFAULT_CSS = """
    TrafficPanel { height: 100%; border: round $primary-darken-2; padding: 0 1; }
    TrafficPanel Horizontal { height: 1; }
    TrafficPanel .name { width: 13; }
    TrafficPanel Sparkline { width: 1fr; height: 1; }
    TrafficPanel #traffic-summary { height: 1; }
    """
    ROWS: tuple[tuple[Literal["requests", "ok", "limited", "errors"], str], ...] = (
        ("requests", "req/s"), ("ok", "ok/s"), ("limited", "429/s"), ("errors", "err/s"))

    def compose(self) -> ComposeResult:
        for key, _ in self.ROWS:
            with Horizontal():
                yield Label("", classes="name", id=f"name-{key}")
                yield Sparkline([0], id=f"spark-{key}")
        yield FittedLine(id="traffic-summary")

    def show(self, series: SeriesView, summary: list[fmt.Segment]) -> None:
        for key, name in self.ROWS:
            data = series[key]
            recent = data[-6:-1]  # the last five complete seconds
            per_s = sum(recent) / len(recent) if recent else 0.0
            self.query_one(f"#name-{key}", Label).update(f"{name:6} {per_s:>5.1f}")
            self.query_one(f"#spark-{key}", Sparkline).data = tuple(data) or (0,)
        self.query_one("#traffic-summary", FittedLine).show(summary)


#: the events table's kind column holds the longest kind whole (``pool_exhausted``)
KIND_WIDTH = max(len(kind) for kind in EventKind)
EVENT_STYLE = {"rate_limited": "yellow", "invalid": "red", "forbidden": "red", "quota": "magenta",
               "server_error": "bright_red", "transport": "bright_red", "pool_exhausted": "bold red",
               "fallback": "cyan", "rotated": "dim", "state": "green"}


class EventsTable(FittedTable):
    """The incident's story, newest at the bottom: repeats of one event fold into a row that counts them
    (see :mod:`pooltui.session.story`); changes stay rows. A row shows the time its first event happened, so
    the rows stay in time order while a run goes on. Filter by key, kind or text; Enter inspects."""

    DEFAULT_CSS = "EventsTable { height: 1fr; }"
    MAX_ROWS = 200
    COLUMNS = (("time", "time", 8), ("key", "key", 12), ("status", "status", 6), ("kind", "event", KIND_WIDTH),
               ("count", "count", 12), ("action", "action", 38), ("reason", "reason", 38))
    DROP_ORDER = ("reason", "status")
    FLEX = ("action", 18)

    def __init__(self, window_s: float = 10.0, **kw) -> None:
        super().__init__(cursor_type="row", **kw)
        self.story = EventStory(window_s, self.MAX_ROWS)
        self.search = ""  # shown rows contain this text
        self.only_key: str | None = None
        self.only_kind: str | None = None

    @property
    def events(self) -> dict[str, Event]:
        """The latest event of every row, by row key."""
        return {str(i): row.latest for i, row in self.story.rows.items()}

    def refill(self) -> None:
        self.refilter()

    def shows(self, row: StoryRow) -> bool:
        e = row.first
        return ((self.only_key is None or (e.key or e.provider) == self.only_key)
                and (self.only_kind is None or str(e.kind) == self.only_kind)
                and (not self.search or row.matches(self.search)))

    def _cells(self, row: StoryRow) -> list[object]:
        e = row.last
        width = {key: w for key, _, w in self.shown}
        style = EVENT_STYLE.get(str(e.kind), "")
        count = Text(fmt.count_cell(row.summary(), row.count, row.span_s, width.get("count", 12)),
                     style="bold" if row.count > 1 else "")
        return self.pick({"time": fmt.clock_text(row.first.ts), "key": fmt.clip_name(row.who, width.get("key", 12)),
                          "status": str(e.status or "-"), "kind": Text(str(e.kind), style=style), "count": count,
                          "action": fmt.ellipsize(row.latest.action, width.get("action", 38)),
                          "reason": fmt.ellipsize(e.reason, width.get("reason", 38))})

    def append(self, events: Sequence[Event]) -> None:
        """Fold new events into the story and show what changed (a new row, or a count updated in place)."""
        follow = not self.row_count or self.cursor_row >= self.row_count - 1
        for e in events[-self.MAX_ROWS:]:
            row, new = self.story.add(e)
            if not self.shows(row):
                continue
            key = str(row.id)
            if new:
                self.add_row(*self._cells(row), key=key)
            elif key in self.rows:
                for (col, _, _), cell in zip(self.shown, self._cells(row), strict=True):
                    self.update_cell(key, col, cell)
        self._prune()
        if follow and self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)

    def on_resize(self) -> None:
        """Columns fitted to the width; following the newest row, it stays in view when the pane's height
        changes (the chart taking rows): the scroll stayed put, the newest rows hidden."""
        super().on_resize()
        if self.row_count and self.cursor_row >= self.row_count - 1:
            self.move_cursor(row=self.row_count - 1, animate=False)

    def _prune(self) -> None:
        """Drop the rows the story no longer holds (it keeps the last ``MAX_ROWS``)."""
        while self.row_count and (oldest := next(iter(self.rows)).value) and int(oldest) not in self.story.rows:
            self.remove_row(oldest)

    def refilter(self) -> None:
        """Show again, from the story, only the rows the current filters let through."""
        self.clear()
        for row in self.story.rows.values():
            if self.shows(row):
                self.add_row(*self._cells(row), key=str(row.id))
        if self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)

    @property
    def selected_row(self) -> StoryRow | None:
        key = row_at_cursor(self)
        return self.story.rows.get(int(key)) if key is not None else None

    @property
    def selected_event(self) -> Event | None:
        row = self.selected_row
        return row.last if row is not None else None


class FittedLine(Static):
    """One line of segments that fits its width: segments drop whole, least important first, never cut
    mid-number (:func:`format.fit_segments`); refitted when the width changes."""

    DEFAULT_CSS = "FittedLine { width: 1fr; height: 1; }"

    def __init__(self, *args, **kw) -> None:
        super().__init__("", *args, **kw)
        self.segments: list[fmt.Segment] = []

    def show(self, segments: list[fmt.Segment]) -> None:
        self.segments = segments
        self.refresh()

    def full_text(self) -> Text:
        """Every segment, as a terminal wide enough would show them."""
        return fmt.fit_segments(self.segments, 10**6)

    def render(self) -> Text:
        return fmt.fit_segments(self.segments, self.content_size.width or 10**6)


class StatusLine(FittedLine):
    """What is wrong first (amber or red), then provider, strategy, usable keys, callers' success, traffic.
    Short of room, segments drop whole by :data:`STATUS_RANKS`."""

    DEFAULT_CSS = """
    StatusLine { height: 1; background: $primary-background; color: $text; padding: 0 1; }
    StatusLine.warn { background: $warning; color: $text; text-style: bold; }
    StatusLine.alert { background: $error; color: $text; text-style: bold; }
    """


#: what the status line keeps longest, 0 first: what tells whether callers are hurting
STATUS_RANKS = {"alert": 0, "paused": 1, "usable": 1, "ok": 2, "p95": 3, "paced": 4, "unencrypted": 4, "shared": 4,
                "provider": 5, "attached": 6, "traffic": 7, "strategy": 8, "title": 9}
#: what the traffic panel's summary keeps longest, 0 first
TRAFFIC_RANKS = {"callers": 0, "waiting": 1, "fallback": 1, "waits": 2, "rpm": 3, "limits": 4}


class IncidentLine(Static):
    """The incident in one line, while there is one: prose, so it ends at a word with … when cut."""

    DEFAULT_CSS = """
    IncidentLine { height: 1; padding: 0 1; background: $warning-muted; display: none; }
    """

    def __init__(self, *args, **kw) -> None:
        super().__init__("", *args, **kw)
        self.text = Text()

    def show(self, text: Text) -> None:
        self.text = text
        self.refresh()

    def render(self) -> Text:
        return fmt.ellipsize(self.text, self.content_size.width or 10**6)
