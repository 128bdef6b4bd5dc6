"""The text a terminal shows: the screen rendered as ``export_screenshot`` renders it, as plain lines."""

from __future__ import annotations

import io
import re

from rich.console import Console
from textual.app import App
from textual.widget import Widget


def screen_lines(app: App) -> list[str]:
    """Every line of the screen as shown (dialogs over the screens below them), trailing spaces kept."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, color_system="truecolor",
                      record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text(styles=False).split("\n")[:height]


def widget_lines(app: App, widget: Widget) -> list[str]:
    """The lines of the screen within ``widget``'s content region (what it shows, as cut by the terminal)."""
    region = widget.content_region
    lines = screen_lines(app)
    return [line[region.x:region.right] for line in lines[region.y:region.bottom]]


#: a latency as ``millis`` writes it: ``300 ms``, ``7.0 s``, ``2 min``
DURATION = r"\d+(\.\d+)? (ms|s|min|h|d)"


def whole(part: str, patterns: dict[str, str]) -> bool:
    """Whether ``part`` (a segment of a line) is one of ``patterns`` in full, for the pattern its start names."""
    for start, pattern in patterns.items():
        if part.startswith(start):
            return re.fullmatch(pattern, part) is not None
    return True  # a part no pattern names: not checked here
