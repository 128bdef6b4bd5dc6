"""Nothing on screen changes meaning when cut: at 80x24 and 160x45, segments drop whole, numbers stay whole."""

from __future__ import annotations

import re
import time

import pytest

from pooltui.tui.app import PoolMonitorApp
from tests.tui import scripted
from tests.tui.screen_text import DURATION, screen_lines, whole, widget_lines

SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 45)], ids=["80x24", "160x45"])
STATES = pytest.mark.parametrize("state", ["storm", "peak", "outage"])

STATUS_PARTS = {
    "keys": r"keys \d+/\d+ usable(, \d+ paced)?",
    "ok ": r"ok \d+\.\d% of \d+/min",
    "callers p95": rf"callers p95 {DURATION}",
    "traffic": r"traffic (off|[\d.]+/s)",
    "⚠ OUTAGE": r"⚠ OUTAGE \S+ since \d\d:\d\d:\d\d( · .*)?",
}
TRAFFIC_PARTS = {
    "header limits": r"header limits (\d+×\d+|Σ\d+)",
    "callers": rf"callers p50 {DURATION} p95 {DURATION}",
    "waits": rf"waits p95 {DURATION}, slowest {DURATION}",
    "fallback": r"fallback \S+ in use",
}


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def app_for(state: str) -> PoolMonitorApp:
    return PoolMonitorApp(getattr(scripted, state)(), start_session=False)


@SIZES
@STATES
async def test_status_line_keeps_usable_keys_and_ok_whole(state: str, size: tuple[int, int]) -> None:
    """With an alert up, the status line still says how many keys are usable and the callers' ok%, each whole;
    what drops for room drops whole."""
    app = app_for(state)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        line = screen_lines(app)[0].strip()
        parts = line.split(" │ ")
        assert re.search(r"keys \d+/\d+ usable", line), line
        assert re.search(r"ok \d+\.\d% of \d+/min", line), line
        assert all(whole(part, STATUS_PARTS) for part in parts), line
        if state == "outage":
            assert line.startswith("⚠ OUTAGE sim-anthropic since "), line  # alerts first


@SIZES
@STATES
async def test_traffic_summary_never_ends_in_a_cut_number(state: str, size: tuple[int, int]) -> None:
    app = app_for(state)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        summary = widget_lines(app, app.query_one("#traffic-summary"))[0].strip()
        assert summary, "the traffic summary shows something"
        parts = summary.split(" · ")
        assert all(whole(part, TRAFFIC_PARTS) for part in parts), summary
        assert re.search(rf"callers p50 {DURATION} p95 {DURATION}", summary), summary  # what callers felt stays
