"""The strategy lab's chart as one SVG file (pygal): per strategy, successes and 429s per second, one small
chart under the other on the same axes, for a report or a README. Nothing is fetched: pygal's tooltip
script is left out (``js=()``)."""

from __future__ import annotations

from pathlib import Path

from pooltui.session.lab import RunResult, coincide_note, coinciding

WIDTH, HEIGHT = 900, 170
PLOT_WIDTH = 820  # what is left of WIDTH for the plot once pygal's margins and y labels are drawn
LABEL_FONT = 10  # px; a digit is about 0.6 of it wide
NICE_STEPS = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def chart_svg(results: list[RunResult], title: str) -> str:
    """One SVG document: a title line, then a chart per strategy."""
    import pygal
    from pygal.style import Style

    style = Style(background="white", plot_background="white", colors=("#2e7d32", "#c62828"),
                  font_family="DejaVu Sans, Arial, sans-serif", title_font_size=14, legend_font_size=12,
                  label_font_size=10, major_label_font_size=10)
    seconds = max((len(r.ok_per_s) for r in results), default=1)
    top = max([1, *(n for r in results for n in (*r.ok_per_s, *r.limited_per_s))])
    step = label_step(seconds)
    parts = []
    for i, r in enumerate(results):
        chart = pygal.Line(width=WIDTH, height=HEIGHT, style=style, js=(), show_dots=False, fill=False,
                           range=(0, top), show_minor_x_labels=False, truncate_label=-1,
                           legend_at_bottom=False, truncate_legend=-1, margin=6,
                           title=f"{r.strategy}: {r.succeeded}/{r.requests} served, {r.limited} 429s upstream")
        chart.x_labels = [str(s) for s in range(seconds)]
        chart.x_labels_major = [str(s) for s in range(0, seconds, step)]
        chart.add("served/s", _padded(r.ok_per_s, seconds))
        chart.add("429/s upstream", _padded(r.limited_per_s, seconds), stroke_style={"dasharray": "4, 3"})
        svg = chart.render(is_unicode=True)
        svg = svg[svg.index("<svg"):]
        parts.append(svg.replace("<svg", f'<svg x="0" y="{30 + i * HEIGHT}" width="{WIDTH}" height="{HEIGHT}"', 1))
    note = coincide_note(coinciding(results))
    height = 30 + HEIGHT * len(results) + (24 if note else 0)
    if note:
        parts.append(f'<text x="8" y="{height - 8}" font-family="DejaVu Sans, Arial, sans-serif" font-size="13">'
                     f'{_escape(note)} (the same served and 429s every second)</text>')
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}"><rect width="100%" height="100%" fill="white"/>'
            f'<text x="8" y="20" font-family="DejaVu Sans, Arial, sans-serif" font-size="15">{_escape(title)}'
            f' (x: seconds from the start)</text>')
    return head + "".join(parts) + "</svg>\n"


def label_step(seconds: int) -> int:
    """Seconds between two x labels, from :data:`NICE_STEPS`: the smallest at which the labels do not overlap."""
    widest = max(40.0, len(str(max(0, seconds - 1))) * LABEL_FONT * 0.6 + 12)  # the longest label, a gap
    for step in NICE_STEPS:
        if PLOT_WIDTH / max(1, seconds) * step >= widest:
            return step
    return NICE_STEPS[-1] * (1 + seconds // (NICE_STEPS[-1] * 10))


def write_chart(results: list[RunResult], title: str, path: Path) -> None:
    path.write_text(chart_svg(results, title), encoding="utf-8")


def _padded(values: list[int], n: int) -> list[int]:
    return list(values) + [0] * (n - len(values))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
