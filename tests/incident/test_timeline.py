"""The timeline chart: per key requests, 429s and errors in 10 s buckets over 15 minutes; `g` shows 5 min,
15 min, then hides it (issue 8, item 3)."""

from __future__ import annotations

import pytest

from pooltui.core.events import Event, EventKind
from pooltui.session.timeline import BUCKETS, Timeline
from pooltui.tui.app import PoolMonitorApp
from pooltui.tui.widgets import TimelinePanel
from tests.tui import scripted

T0 = 1_790_000_000.0  # a bucket boundary


def test_counts_land_in_their_key_and_bucket() -> None:
    t = Timeline()
    t.request(T0 + 1, "a")
    t.request(T0 + 9.9, "a")
    t.request(T0 + 10, "b")
    t.event(Event(T0 + 11, "p", "b", EventKind.RATE_LIMITED, 429), "b")
    t.event(Event(T0 + 12, "p", "b", EventKind.SERVER_ERROR, 503), "b")
    t.event(Event(T0 + 12, "p", "b", EventKind.STATE), "b")  # not counted
    v = t.view(T0 + 15)
    assert v["end"] == T0 + 20 and v["bucket_s"] == 10
    a, b = v["keys"]["a"], v["keys"]["b"]
    assert len(a["requests"]) == BUCKETS
    assert a["requests"][-2:] == [2, 0] and b["requests"][-2:] == [0, 1]
    assert b["limited"][-1] == 1 and b["errors"][-1] == 1 and sum(a["limited"]) == 0


def test_old_buckets_fall_off_and_many_keys_sum_as_others() -> None:
    t = Timeline()
    t.request(T0, "old")
    for i in range(10):
        for _ in range(10 - i):
            t.request(T0 + 900, f"k{i}")
    v = t.view(T0 + 900)
    assert "old" not in v["keys"]  # 15 minutes ago: gone
    assert list(v["keys"]) == [f"k{i}" for i in range(8)] + ["others"]
    assert v["keys"]["others"]["requests"][-1] == 2 + 1


@pytest.mark.asyncio
async def test_g_shows_the_chart_for_5_then_15_minutes_then_hides_it() -> None:
    session = scripted.peak(learn=False)  # a 429 storm
    app = PoolMonitorApp(session, start_session=False)
    async with app.run_test(size=(160, 45)) as pilot:
        chart, middle = app.query_one(TimelinePanel), app.query_one("#middle")
        assert not chart.display and middle.display
        await pilot.press("g")
        assert chart.display and not middle.display and "last 5 min" in chart.border_title
        lines = session.view()["timeline"]["keys"]
        assert set(lines) == {"primary", "secondary", "tertiary", "spare"}
        assert sum(lines["primary"]["requests"]) == 60 and sum(lines["primary"]["limited"]) == 10
        await pilot.press("g")
        assert "last 15 min" in chart.border_title
        await pilot.press("g")
        assert not chart.display and middle.display
