"""The monitor under fast simulated traffic: key presses are still handled and the selection holds."""

from __future__ import annotations

import time

import pytest
from textual import events

from pooltui.core import KeyState
from pooltui.session.local import demo_session
from pooltui.tui.app import PoolMonitorApp
from pooltui.tui.widgets import KeysTable
from tests.conftest import until

pytestmark = pytest.mark.asyncio


def press(app: PoolMonitorApp, key: str) -> None:
    """``key`` sent as the terminal sends it. Not ``pilot.press``: that waits for the whole process to go idle
    after each key, which it never does under this traffic (1 s a wait, 2 per key, the traffic burning both
    cores all along): the test waits for each key's effect instead."""
    event = events.Key(key, key)
    event.set_sender(app)
    app.post_message(event)


async def test_key_handling_under_heavy_traffic() -> None:
    # the simulator in its own process (as `pooltui demo` runs it), 300 requests a second with up to 64 in flight:
    # six times the demo's rate (1000 a second made the traffic take every core the machine had for as long as the
    # test lasted, and a loaded machine made that long: 20-40 s)
    session = demo_session("bench", rate=300, seed=5)
    session.traffic_concurrency = 64
    app = PoolMonitorApp(session)
    async with app.run_test(size=(120, 36)):
        # traffic flowing: waited for by its count, not for a fixed time (a loaded run sent 1 request in 1.5 s)
        await until(lambda: app.started and session.traffic is not None and session.traffic.result.requests > 100,
                    "traffic flowing")
        sent_before = session.traffic.result.requests
        table = app.query_one(KeysTable)
        assert table.selected == "bench"
        handled_at: list[float] = []
        original = app.action_toggle_key

        def timed() -> None:
            handled_at.append(time.perf_counter())
            original()

        app.action_toggle_key = timed
        synced: list[float] = []
        sync = table.sync

        def counted(*args, **kw) -> None:
            synced.append(time.perf_counter())
            sync(*args, **kw)

        table.sync = counted  # each refresh of the keys table, counted
        t0 = time.perf_counter()
        press(app, "d")
        await until(lambda: session.pool.key("bench").state is KeyState.DISABLED, "d disabled the key")
        handled = handled_at[0] - t0
        seen = len(synced)
        await until(lambda: len(synced) >= seen + 3, "three refreshes at full load")
        assert table.selected == "bench"
        press(app, "d")
        await until(lambda: session.pool.key("bench").state is KeyState.OK, "d enabled the key again")
        press(app, "s")
        await until(lambda: session.pool.strategy != "round-robin", "s moved to the next strategy")
        assert session.pool.strategy == "random"
        rate = (session.traffic.result.requests - sent_before) / (time.perf_counter() - t0)
        print(f"\nmonitor under load: {rate:.0f} req/s, key press handled in {handled * 1000:.1f} ms")
