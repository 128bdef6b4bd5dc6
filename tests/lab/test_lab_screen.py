"""The strategy lab in the monitor (issue 11, item 4): from the command palette, a comparison runs in a
worker and fills the table and the charts; a snapshot of the screen with a known comparison."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from textual.app import App

from pooltui.session.lab import RunResult, simulated_run
from pooltui.session.workload import seeded_workload
from pooltui.sim.scenario import load_scenario
from pooltui.tui.app import PoolMonitorApp
from pooltui.tui.lab_screen import LabScreen
from tests.tui import scripted


def known_results() -> list[RunResult]:
    """Two strategies' runs with fixed numbers (the shape of a peak-hour comparison)."""
    rr = RunResult("round-robin", 120, 101, 19, Counter({"a": 19}), [900.0 + 40 * i for i in range(101)],
                   Counter({200: 101, 429: 150}), {"primary": 63, "secondary": 62, "tertiary": 63, "spare": 63},
                   0, 1800, None, [30, 2, 0, 0, 0, 12, 16, 8, 0, 0, 14, 15, 4], [0, 4, 0, 0, 0, 20, 24, 9, 0, 0,
                                                                                   18, 22, 3])
    hermes = RunResult("hermes-fill-first", 120, 38, 82, Counter({"no credential available": 82}),
                       [2900.0 + 20 * i for i in range(38)], Counter({200: 38, 429: 36}),
                       {"primary": 20, "secondary": 18, "tertiary": 18, "spare": 18}, 0, 674, None,
                       [8, 0, 0, 0, 0, 30, 0, 0, 0, 0, 0, 0, 0], [5, 11, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0])
    return [rr, hermes]


class LabApp(App):
    def on_mount(self) -> None:
        self.push_screen(LabScreen("peak-hour", ["round-robin", "hermes-fill-first"], 120, results=known_results()))


@pytest.mark.parametrize("size", [(100, 30), (160, 45)], ids=["100x30", "160x45"])
def test_lab_screen_snapshot(snap_compare, size: tuple[int, int]) -> None:
    assert snap_compare(LabApp(), terminal_size=size)


@pytest.mark.asyncio
async def test_the_palette_opens_the_lab_and_a_worker_fills_it() -> None:
    app = PoolMonitorApp(scripted.peak(), start_session=False)
    async with app.run_test(size=(160, 45)) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Strategy lab: peak-hour" in titles and "Strategy lab: quota-day" in titles
        app.push_screen(LabScreen("steady", ["failover", "hermes-round-robin"], requests=30))
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, LabScreen)
        deadline = time.monotonic() + 60
        while len(screen.results) < 2 or screen.running:
            assert time.monotonic() < deadline, "the comparison did not finish"
            await asyncio.sleep(0.1)
        await pilot.pause()
        table = screen.query_one("#lab-table")
        assert table.row_count == 2
        assert [str(table.get_row_at(i)[0]) for i in range(2)] == ["failover", "hermes-round-robin"]
        assert all(r.requests == 30 == r.succeeded + r.failed for r in screen.results)
        # simulated time: each run's figures are exactly a direct simulated run's of the same arrivals (a run on
        # the machine's clock never repeats to the microsecond); was "seconds > 2 x wall", which a loaded CI broke
        sc = load_scenario("steady")
        arrivals = seeded_workload(sc, requests=30, rate=sc.traffic.rate, seed=sc.seed)
        for r in screen.results:
            direct = await asyncio.to_thread(simulated_run, sc, r.strategy, arrivals, sc.traffic.concurrency, sc.seed)
            assert (r.seconds, r.latencies_ms) == (direct.seconds, direct.latencies_ms), r.strategy
        assert "2 strategies compared" in str(screen.query_one("#lab-status").render())
        await pilot.press("escape")
        assert not isinstance(app.screen, LabScreen)


@pytest.mark.asyncio
async def test_the_main_screens_keys_do_nothing_while_another_screen_is_up() -> None:
    """`d` on the lab (or fleet) screen ran the main screen's toggle: it looked for the keys table on a screen
    that has none and failed."""
    session = scripted.peak()
    app = PoolMonitorApp(session, start_session=False)
    async with app.run_test(size=(160, 45)) as pilot:
        states = [k.state for k in session.pool.keys]
        app.push_screen(LabScreen("peak-hour", results=known_results()))
        await pilot.pause()
        for key in ("d", "s", "t", "p", "v"):
            await pilot.press(key)
        await pilot.pause()
        assert isinstance(app.screen, LabScreen) and app.is_running
        assert [k.state for k in session.pool.keys] == states and session.pool.strategy == "round-robin"
        footer = " ".join(str(b.binding.description) for b in app.screen.active_bindings.values() if b.enabled)
        assert "Off/on" not in footer and "Run again" in footer
