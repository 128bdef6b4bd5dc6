"""``python -m pooltui.bench monitor``: key-press latency of the monitor under heavy demo traffic, and q to exit."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

from pooltui.session.local import MonitorSession, demo_session
from pooltui.session.traffic import TrafficGenerator
from pooltui.tui.app import PoolMonitorApp


@dataclass(frozen=True)
class MonitorResult:
    rps: float  # test traffic achieved
    delays_ms: list[float]  # per key press, until handled
    quit_ms: float  # from q handled until the app has exited and the session stopped


class _TimedApp(PoolMonitorApp):
    """The monitor, noting when the strategy key and q are handled."""

    def __init__(self, session: MonitorSession) -> None:
        super().__init__(session)
        self.pressed: list[float] = []
        self.delays: list[float] = []
        self.quit_at: list[float] = []

    def action_cycle_strategy(self) -> None:
        self.delays.append(time.perf_counter() - self.pressed[-1])
        super().action_cycle_strategy()

    async def action_quit(self) -> None:
        self.quit_at.append(time.perf_counter())  # the key press handled (its own latency is measured above)
        await super().action_quit()


def _traffic(session: MonitorSession) -> TrafficGenerator:
    if session.traffic is None:
        raise RuntimeError("the demo session has no test traffic")
    return session.traffic


async def _monitor_run(rate: float, seconds: float, presses: int) -> MonitorResult:
    session = demo_session("bench", rate=rate, seed=1)
    session.traffic_concurrency = 64
    app = _TimedApp(session)
    async with app.run_test(size=(120, 36)) as pilot:
        deadline = time.monotonic() + 30
        while not app.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the monitor did not start within 30 s")
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        sent0, t0 = _traffic(session).result.requests, time.perf_counter()
        for _ in range(presses):
            await asyncio.sleep(seconds / presses)
            app.pressed.append(time.perf_counter())
            await pilot.press("s")
        rps = (_traffic(session).result.requests - sent0) / (time.perf_counter() - t0)
        asyncio.get_running_loop().call_later(0.01, lambda: app.simulate_key("q"))
        while not app.quit_at:
            await asyncio.sleep(0.005)
    quit_ms = (time.perf_counter() - app.quit_at[0]) * 1000
    return MonitorResult(rps, [d * 1000 for d in app.delays], quit_ms)


def bench_monitor(rate: float, seconds: float, presses: int) -> MonitorResult:
    result = asyncio.run(_monitor_run(rate, seconds, presses))
    d = sorted(result.delays_ms)
    print(f"monitor: `pooltui demo` session (simulator in its own process), target {rate:g} req/s, 64 in flight")
    print(f"  traffic achieved   {result.rps:.0f} req/s")
    print(f"  key press handled  p50 {statistics.median(d):.1f} ms, max {d[-1]:.1f} ms over {len(d)} presses "
          "(target < 100 ms)")
    print(f"  q to exit          {result.quit_ms:.0f} ms, traffic running (target < 300 ms)")
    return result
