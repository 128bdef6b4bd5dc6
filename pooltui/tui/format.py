"""Text for the monitor's cells and panels: pure functions of engine snapshots (no widgets)."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text

from pooltui.core.snapshot import KeySnapshot, LearnedSnapshot
from pooltui.core.timefmt import clock, duration

STATE_STYLE = {
    "ok": "bold green",
    "cooling": "bold yellow",
    "exhausted": "bold magenta",
    "invalid": "bold red",
    "forbidden": "bold red",
    "disabled": "dim",
}


def state_cell(snap: KeySnapshot, width: int = 10**6) -> Text:
    """``cooling 12s retry-after``: state, live countdown and where the deadline came from, fitted to ``width``:
    the per-model cooldowns go first, then whether it is probing, then the deadline's source; the state and its
    countdown stay."""
    state = snap["state"]
    segments: list[Segment] = [(0, Text(state, style=STATE_STYLE.get(state, "")), " ")]
    if snap.get("probing"):
        segments.append((3, Text("probing", style="dim"), " "))
    if state in ("cooling", "exhausted", "disabled") and snap.get("remaining_s") is not None:
        segments.append((1, Text(duration(snap["remaining_s"]), style="bold"), " "))
    elif state == "exhausted":
        segments.append((1, Text("re-verify", style="dim"), " "))
    source = snap.get("source")
    if source and state != "ok":
        segments.append((2, Text(source, style="dim"), " "))
    for model, left in sorted((snap.get("models") or {}).items()):  # cooling for one model, free for others
        segments.append((4, Text(f"{model} {duration(left)}", style=STATE_STYLE.get("cooling", "")), " · "))
    return fit_segments(segments, width)


def ago(ts: float | None, now: float) -> str:
    return "-" if not ts else f"{duration(now - ts)} ago"


def number(n: int | float | None) -> str:
    """A count in at most 4 characters (``9999``, ``12k``, ``1.2M``, ``34M``, ``1.5G``): a column never cuts it."""
    if n is None:
        return "-"
    if isinstance(n, float):
        return f"{n:.1f}" if n < 100 else number(round(n))
    if n < 10_000:
        return str(n)
    for size, unit in ((1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T")):  # the first unit it fits in 4
        value = n / size
        text = f"{value:.1f}{unit}" if value < 9.95 else f"{value:.0f}{unit}"
        if len(text) <= 4:
            return text
    return text


def remaining(snap: KeySnapshot, *, compact: bool = True) -> str:
    """``283/1000``: requests remaining of the limit (``compact``: each a :func:`number`, at most 9
    characters; else in full)."""
    rem, lim = snap.get("requests_remaining"), snap.get("requests_limit")
    if rem is None:
        return "-"
    show = number if compact else str
    return f"{show(rem)}/{show(lim)}" if lim else show(rem)


def latency_cell(ms: float | None) -> str:
    """A key's p50 in at most 5 characters: ``231ms``, ``1.2s``, ``12s``, ``3.0m``."""
    if ms is None:
        return "-"
    if ms < 999.5:
        return f"{ms:.0f}ms"
    return duration(ms / 1000)


def learned(est: LearnedSnapshot) -> str:
    """``8/5.1s``: a limit learnt from 429s, per its window (at most 9 characters)."""
    w = est["window_s"]
    window = f"{w:.1f}s" if w < 10 else f"{w:.0f}s" if w < 90 else duration(w)
    return f"{number(est['limit'])}/{window}"


def learned_rate(est: LearnedSnapshot | None) -> float:
    """Requests per second a learnt limit allows (for sorting: tightest first)."""
    return est["limit"] / est["window_s"] if est and est["window_s"] else 0.0


def learned_cell(snap: KeySnapshot, width: int = 10**6) -> Text:
    """The keys table's ``learned`` cell: the key's learnt limit and how sure (dim when unsure), or how many
    models have one, or ``-``."""
    est = snap.get("learned")
    if est:  # how sure goes first when there is no room: the limit stays
        sure = Text(f"{est['sure']:.0%}", style="dim" if est["sure"] < 0.5 else "")
        return fit_segments([(0, Text(learned(est)), " "), (1, sure, " ")], width)
    models = snap.get("learned_models") or {}
    if models:
        return Text(f"{len(models)} model{'s' if len(models) > 1 else ''}")
    return Text("-")


def budget_cell(snap: KeySnapshot, width: int = 10**6) -> Text:
    """The keys table's ``budget`` cell: each declared window's use, ``rpm 41/60 · tpm 18k/20k``, the fullest
    first when there is no room for all (the fleet's use where the window is shared), or ``-``."""
    budgets = snap.get("budgets") or {}
    if not budgets:
        return Text("-")
    fullest = sorted(budgets.items(), key=lambda kv: -(kv[1]["fleet_used"] if kv[1]["fleet_used"] is not None
                                                       else kv[1]["used"]) / max(1, kv[1]["limit"]))
    rank = {name: i for i, (name, _) in enumerate(fullest)}
    parts = []
    for name, use in budgets.items():
        used = use["fleet_used"] if use["fleet_used"] is not None else use["used"]
        style = "bold yellow" if used >= use["limit"] else ""
        parts.append((rank[name] + 1, Text(f"{name} {number(used)}/{number(use['limit'])}", style=style), " · "))
    return fit_segments(parts, width)


def count_cell(summary: str, count: int, span_s: float, width: int = 12) -> str:
    """A folded row's count: ``×14 in 10 s`` when it fits ``width``, else ``×1400 2m`` (never cut)."""
    if len(summary) <= width:
        return summary
    return f"×{number(count)} {duration(span_s)}"


def cost(value: float | None) -> str:
    """A cost in at most 7 characters: ``$0.0123``, ``$12.34``, ``$1234``, ``$12k``."""
    if not value:
        return "-"
    if value < 1:
        return f"${value:.4f}"
    if value < 999.995:
        return f"${value:.2f}"
    return f"${value:.0f}" if value < 99_999.5 else f"${number(round(value))}"


def clock_text(ts: float) -> str:
    return clock(ts, date=False)


LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
PALETTE = ("cyan", "magenta", "yellow", "green", "blue", "red", "bright_cyan", "bright_magenta")


def pick_strip(picks: list[str], order: list[str], width: int = 30) -> Text:
    """The last picks as letters (A = first key in pool order), newest on the right."""
    strip = Text()
    index = {label: i for i, label in enumerate(order)}
    for label in picks[-width:]:
        i = index.get(label)
        letter = LETTERS[i % 26] if i is not None else "?"
        strip.append(letter, style=f"bold {PALETTE[(i or 0) % len(PALETTE)]}")
    return strip


def legend_lines(order: list[str], width: int, most: int) -> list[Text]:
    """The legend (``A=primary  B=secondary``) in at most ``most`` lines of ``width``, wrapped by whole entries;
    entries with no room are counted (``+2``)."""
    entries = [Text.assemble((LETTERS[i % 26], f"bold {PALETTE[i % len(PALETTE)]}"), f"={label}")
               for i, label in enumerate(order)]
    lines: list[Text] = [Text()]
    for i, entry in enumerate(entries):
        line = lines[-1]
        more = Text(f"  +{len(entries) - i}")
        fits = (line.cell_len + (2 if line else 0) + entry.cell_len
                + (0 if i == len(entries) - 1 or len(lines) < most else more.cell_len)) <= width
        if not fits and line and len(lines) < most:
            lines.append(Text())
            line = lines[-1]
            fits = entry.cell_len + (0 if i == len(entries) - 1 or len(lines) < most else more.cell_len) <= width
        if not fits:
            line.append_text(more if line else Text(f"+{len(entries) - i}"))
            break
        if line:
            line.append("  ")
        line.append_text(entry)
    return [line for line in lines if line]


def legend(order: list[str]) -> Text:
    text = Text()
    for i, label in enumerate(order[:8]):
        if i:
            text.append("  ")
        text.append(LETTERS[i % 26], style=f"bold {PALETTE[i % len(PALETTE)]}")
        text.append(f"={label}")
    if len(order) > 8:
        text.append(f"  +{len(order) - 8}")
    return text


# ---------------------------------------------------------------------- fitting text to the room it has
# Nothing on screen changes meaning when cut: segments drop whole, numbers are never cut, prose ends at a word
# with an ellipsis, names end in an ellipsis.

ELLIPSIS = "…"


def _cut_at(text: str, width: int) -> int:
    """Where prose of ``text`` ends to fit ``width`` cells with an ellipsis: at the last word that fits."""
    room, used, end = width - 1, 0, 0
    for char in text:  # the longest prefix within ``room`` cells
        used += cell_len(char)
        if used > room:
            break
        end += 1
    space = text.rfind(" ", 0, end + 1)
    if space > 0:
        end = space
    while end > 0 and text[end - 1] in " ,;:·(│—-":
        end -= 1
    return end


def ellipsize(text: str | Text, width: int) -> Text:
    """Prose fitted to ``width`` cells: whole when it fits, else cut at a word and ended with ``…``."""
    text = Text(text) if isinstance(text, str) else text
    if text.cell_len <= width:
        return text
    if width <= 1:
        return Text(ELLIPSIS[:max(0, width)])
    end = _cut_at(text.plain, width)
    cut = text[:end] if end else Text()
    cut.append(ELLIPSIS, style="dim")
    return cut


def clip_name(name: str, width: int) -> str:
    """A name (a key's label, a provider) fitted to ``width``: whole, or its start and ``…``."""
    if cell_len(name) <= width:
        return name
    return name[:max(0, width - 1)] + ELLIPSIS


#: one segment of a line: its rank (0 matters most), its text, and what separates it from the one before
Segment = tuple[int, Text, str]


def fit_segments(segments: list[Segment], width: int) -> Text:
    """The segments, in their order, that fit ``width`` cells, taken most important first (lowest rank, the
    earlier first among equals): one that does not fit drops whole, and so does everything less important
    (except after one of rank 0, the alerts: a shorter one may still come). The most important one always
    shows: too long, it is prose and ends at a word with ``…``."""

    def joined(parts: list[Segment]) -> Text:
        line = Text()
        for i, (_, text, sep) in enumerate(parts):
            if i:
                line.append(sep)
            line.append_text(text)
        return line

    candidates = [(i, s) for i, s in enumerate(segments) if s[1].cell_len]
    kept: dict[int, Segment] = {}
    for i, segment in sorted(candidates, key=lambda c: (c[1][0], c[0])):
        trial = {**kept, i: segment}
        if not kept or joined([trial[j] for j in sorted(trial)]).cell_len <= width:
            kept = trial
        elif segment[0] > 0:
            break  # past the first rank, nothing less important shows where something more was dropped
    return ellipsize(joined([kept[j] for j in sorted(kept)]), width)
