"""The monitor's refresh tick never runs against panels that teardown has already removed."""

from __future__ import annotations

import asyncio

import pytest

from pooltui.tui.app import PoolMonitorApp
from tests.tui import scripted

pytestmark = pytest.mark.asyncio


async def test_refresh_tick_during_teardown_never_raises() -> None:
    # A 1 ms tick lands inside every teardown: before the fix it ran after the panels were pruned
    # and raised NoMatches from run_test's exit (the timer planted back on the app: the first teardown raises).
    # Three, not ten: ten took over the 60 s timeout on two cores loaded by other runs.
    for _ in range(3):
        app = PoolMonitorApp(scripted.storm(), refresh_s=0.001, start_session=False)
        async with app.run_test(size=(100, 30)):
            await asyncio.sleep(0.02)
        assert app.return_code in (None, 0)
