"""`pooltui` on the user's own config opens with the last 15 minutes from the history: the events pane, the
timeline and the incident line show what happened before the monitor was opened (issue 8, item 9)."""

from __future__ import annotations

import time

import pytest

from pooltui.core import FakeClock
from pooltui.core.events import Event, EventKind
from pooltui.session.local import config_session
from pooltui.store.config import load_config
from pooltui.store.history import History
from pooltui.tui.app import PoolMonitorApp
from pooltui.tui.widgets import EventsTable, IncidentLine
from tests.conftest import config_on_simulator

pytestmark = pytest.mark.asyncio


async def test_the_monitor_opens_with_the_last_15_minutes(serve, tmp_path) -> None:
    path, store, _ = config_on_simulator(serve, tmp_path)
    history = History(tmp_path / "data" / "history.db")
    now = time.time()
    earlier = [Event(now - 3600, "main", "k0", EventKind.INVALID, 401, "an hour ago", "marked invalid")]
    earlier += [Event(now - 45 + i, "main", f"k{i % 2}", EventKind.RATE_LIMITED, 429, "slow", "cooled 1.0 s")
                for i in range(40)]
    history.add_events(earlier)
    history.add_usage([(int(now - 120) // 60 * 60, "main", "k0", "m", 30, 25, 0, 0, 0.0)])
    session, problems = config_session(load_config(path), store, history, "main")
    assert problems == []
    # the monitor's figures are read at the history's "now": a slow start (a loaded machine: 30 s of quiet ends
    # an incident) must not close the incident the test looks for
    session.clock = FakeClock(now)
    app = PoolMonitorApp(session, start_session=False)
    async with app.run_test(size=(160, 45)):
        table = app.query_one(EventsTable)
        rows = list(table.story.rows.values())
        assert table.story.events_seen == 40  # the last 15 minutes only, not the hour-old event
        assert {r.first.key for r in rows} == {"k0", "k1"} and sum(r.count for r in rows) == 40
        line = app.query_one(IncidentLine)
        assert line.display and "40 × 429 on 2 keys" in str(line.render())
        timeline = session.view()["timeline"]["keys"]
        assert sum(timeline["k0"]["requests"]) == 30 and sum(timeline["k0"]["limited"]) == 20
    assert history.incidents(0) == []  # replaying the past records no incident again
