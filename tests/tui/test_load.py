"""The monitor under fast simulated traffic: key presses are still handled and the selection holds."""

from __future__ import annotations

import asyncio
import time

import pytest

from pooltui.core import KeyState
from pooltui.session.local import demo_session
from pooltui.tui.app import PoolMonitorApp
from pooltui.tui.widgets import KeysTable
from tests.conftest import until

pytestmark = pytest.mark.asyncio


async def test_key_handling_under_heavy_traffic() -> None:
    # the simulator in its own process (as `pooltui demo` runs it), traffic as fast as 64 in flight allow
    session = demo_session("bench", rate=1000, seed=5)
    session.traffic_concurrency = 64
    app = PoolMonitorApp(session)
    async with app.run_test(size=(120, 36)) as pilot:
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
        t0 = time.perf_counter()
        await pilot.press("d")
        handled = handled_at[0] - t0
        assert session.pool.key("bench").state is KeyState.DISABLED
        await asyncio.sleep(0.6)  # several refreshes at full load
        assert table.selected == "bench"
        await pilot.press("d")
        assert session.pool.key("bench").state is KeyState.OK
        await pilot.press("s")
        assert session.pool.strategy == "random"
        rate = (session.traffic.result.requests - sent_before) / (time.perf_counter() - t0)
        print(f"\nmonitor under load: {rate:.0f} req/s, key press handled in {handled * 1000:.1f} ms")
