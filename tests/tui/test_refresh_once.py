"""A monitor refresh works out each figure once (issue 25, item 2): each pool's usable keys and next recovery
once, each key's latency percentiles once, and the timeline only while its chart is shown."""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Iterator

import httpx
import pytest

from pooltui.client.pool_client import PoolClient, Upstream
from pooltui.core import Classification, FakeClock, KeySpec, Outcome, Pool
from pooltui.core.events import EventLog
from pooltui.core.trace import RequestTrace
from pooltui.providers.profiles import profile_for
from pooltui.session.local import MonitorSession
from pooltui.session.timeline import Timeline, TimelineView
from pooltui.tui.app import PoolMonitorApp

pytestmark = pytest.mark.asyncio

CALLS: Counter[str] = Counter()


class CountingPool(Pool):
    """A real pool that counts the figures a refresh asks of it."""

    def usable(self) -> int:
        CALLS[f"{self.name}.usable"] += 1
        return super().usable()

    def next_ready_in(self, model: str | None = None) -> float | None:
        CALLS[f"{self.name}.next_ready_in"] += 1
        return super().next_ready_in(model)


class CountingLatencies(deque[float]):
    """A key's latency samples, counting each time they are read whole (once per percentile worked out)."""

    def __init__(self, name: str) -> None:
        super().__init__(maxlen=128)
        self.name = name

    def __iter__(self) -> Iterator[float]:
        CALLS[f"{self.name}.latencies"] += 1
        return super().__iter__()


class CountingTimeline(Timeline):
    def view(self, now: float) -> TimelineView:
        CALLS["timeline"] += 1
        return super().view(now)


def counted_session() -> MonitorSession:
    """A session on a primary of two keys (one cooling) and a fallback of one key, every figure counted."""
    clock, events = FakeClock(1_790_000_000.0), EventLog()
    pools = [CountingPool(name, [KeySpec(f"{name}{i}", f"sk-test-{name}-{i:024d}") for i in range(n)], clock=clock,
                          events=events, rng=random.Random(1)) for name, n in (("p", 2), ("fb", 1))]
    for pool in pools:
        for key in pool.keys:
            latencies = CountingLatencies(f"{pool.name}/{key.label}")
            latencies.extend([0.1, 0.2, 0.3])
            key.stats.latencies = latencies
    ups = [Upstream(profile_for("openai", name=pool.name), pool) for pool in pools]
    client = PoolClient(ups[0], ups[1:], http=httpx.AsyncClient(), clock=clock, events=events)
    session = MonitorSession({"p": client}, clock=clock, autostart_traffic=False)
    session.series["p"].timeline = CountingTimeline()
    pool = pools[0]
    cooled = pool.pick(RequestTrace(1, clock.now(), pool.strategy))
    assert cooled is not None
    pool.report(cooled, Classification(Outcome.RATE_LIMITED, 429, retry_after_s=5.0), 0.1)
    return session


async def test_a_refresh_reads_each_figure_once_and_no_hidden_timeline() -> None:
    session = counted_session()
    CALLS.clear()
    view = session.view(timeline=False)
    assert view["usable"] == 1 and view["next_ready_in"] is not None and "1 key cooling" in view["summary"]
    assert view["fallbacks"][0]["usable"] == 1
    assert CALLS == {"p.usable": 1, "p.next_ready_in": 1, "fb.usable": 1, "fb.next_ready_in": 1,
                     "p/p0.latencies": 2, "p/p1.latencies": 2, "fb/fb0.latencies": 2}  # p50 and p95: once each
    CALLS.clear()
    assert session.view()["timeline"]["keys"] and CALLS["timeline"] == 1  # asked for, it is there
    await session.client.aclose()


async def test_the_monitor_builds_the_timeline_only_while_its_chart_shows() -> None:
    session = counted_session()
    app = PoolMonitorApp(session, refresh_s=0.05, start_session=False)

    async def refreshes(n: int) -> None:
        """Wait (bounded) for ``n`` more refreshes of the main screen's own timer."""
        CALLS.clear()
        for _ in range(200):
            await pilot.pause(0.02)
            if CALLS["p.usable"] >= n:
                return
        raise AssertionError(f"only {CALLS['p.usable']} refreshes")

    async with app.run_test(size=(130, 36)) as pilot:
        await refreshes(3)
        assert CALLS["timeline"] == 0
        await pilot.press("g")  # the chart on: each refresh builds it
        await refreshes(3)
        assert CALLS["timeline"] >= 3
        await pilot.press("g", "g")  # 5 -> 15 min -> off
        await refreshes(3)
        assert CALLS["timeline"] == 0
    await session.client.aclose()
