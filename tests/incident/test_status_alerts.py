"""The status line says what is wrong (outage, fallback, failing requests, queue, capacity), amber or red,
with one bell per new alert; an incident reads in one line and is kept in the history when it ends
(issue 8, items 2 and 3)."""

from __future__ import annotations

import asyncio

import pytest

from pooltui.core import FakeClock
from pooltui.core.events import Event, EventKind, StateChange
from pooltui.core.timefmt import clock as local_time
from pooltui.session.incident import AMBER, RED, IncidentTracker, alerts_of
from pooltui.session.local import ConfigLink, demo_session
from pooltui.session.views import empty_panel
from pooltui.store.history import History
from pooltui.tui.app import PoolMonitorApp
from pooltui.tui.widgets import IncidentLine, StatusLine
from tests.conftest import until
from tests.tui import scripted

T0 = 1_790_000_000.0  # 14:13:20 UTC


def view(**changes):
    v = empty_panel("p")
    v.update({"keyless": False, "usable": 4, "total": 4, "capacity_alert": 1})
    v.update(changes)
    return v


def test_each_problem_is_named_with_its_severity() -> None:
    assert alerts_of(view(), T0) == []
    cases = {
        "capacity": (view(usable=0, next_ready_in=3.0), RED, "CAPACITY 0/4 usable, next in 3.0s"),
        "capacity amber": (view(usable=1, capacity_alert=2), AMBER, "CAPACITY 1/4 usable"),
        "outage": (view(outage={"provider": "p", "since": T0, "until": T0 + 3}), RED, "OUTAGE p since"),
        "fallback": (view(fallback="q", fallback_served=12), AMBER, "FALLBACK ACTIVE q served 12 in 1 min"),
        "errors amber": (view(callers={"requests": 100, "ok": 95, "errors": 5, "rejected": 0}), AMBER,
                         "FAILING 5% of requests (5/100 in 1 min)"),
        "errors red": (view(callers={"requests": 10, "ok": 5, "errors": 5, "rejected": 0}), RED, "FAILING 50%"),
        "queue": (view(queued=16), AMBER, "QUEUE 16"),
    }
    for name, (v, severity, text) in cases.items():
        (alert,) = alerts_of(v, T0)
        assert alert.severity == severity and alert.text.startswith(text), name
    assert alerts_of(view(callers={"requests": 1000, "ok": 999, "errors": 1, "rejected": 0}), T0) == []
    both = alerts_of(view(queued=3, usable=0), T0)
    assert [a.kind for a in both] == ["capacity", "queue"]  # red first


def test_an_incident_counts_until_it_goes_quiet_then_the_history_keeps_it(tmp_path) -> None:
    clock = FakeClock(T0)
    history = History(tmp_path / "h.db")
    tracker = IncidentTracker("p", clock, quiet_s=30, on_end=history.add_incident)
    tracker.event(Event(T0, "p", "k0", EventKind.STATE, None, "cooling over", "back in rotation",
                        change=StateChange.RECOVERED))
    assert tracker.current is None  # not trouble
    for i in range(212):
        clock.advance(0.05)
        tracker.event(Event(clock.now(), "p", f"k{i % 4}", EventKind.RATE_LIMITED, 429, "slow", "cooled"))
    tracker.outcome("ok", "p")
    tracker.outcome("ok", "q")
    tracker.outcome("error", "")
    tracker.event(Event(clock.now(), "p", "k1", EventKind.SERVER_ERROR, 503, "overloaded"))
    inc = tracker.current
    at = local_time(T0, date=False)  # the monitor's local time
    assert inc["summary"] == (f"since {at}: 212 × 429 on 4 keys, 1 upstream errors, 1 request failed, "
                              "fallback served 1")
    clock.advance(29.9)
    assert tracker.settle() is None and tracker.current is inc
    clock.advance(0.2)
    ended = tracker.settle()
    assert ended is inc and tracker.current is None and tracker.last is inc
    assert ended["summary"].startswith(f"{at}-{local_time(T0 + 10.6, date=False)} (11 s): 212 × 429 on 4 keys")
    (row,) = history.incidents(T0 - 1)
    assert (row["provider"], row["limited"], row["limited_keys"], row["failed"], row["fallback_served"]) == (
        "p", 212, 4, 1, 1)
    assert row["summary"] == ended["summary"]
    clock.advance(1)
    tracker.event(Event(clock.now(), "p", "k0", EventKind.RATE_LIMITED, 429, "slow", "cooled"))
    assert tracker.current is not inc and tracker.current["limited"] == 1  # a new incident


@pytest.mark.asyncio
async def test_a_session_keeps_its_incidents_in_the_history(tmp_path) -> None:
    session = scripted.peak(learn=False)  # a 429 storm
    history = History(tmp_path / "h.db")
    session.config = ConfigLink(tmp_path / "config.toml", None, history)
    assert session.view()["incident"]["limited"] >= 30
    session.clock.advance(31)
    v = session.view()
    assert v["incident"] is None and v["last_incident"]["ended"] is not None
    (row,) = history.incidents(0)
    assert row["limited_keys"] == 4 and "× 429 on 4 keys" in row["summary"]


@pytest.mark.asyncio
async def test_an_outage_turns_the_line_red_with_the_fallback_named_and_rings_once_per_alert() -> None:
    session = demo_session("outage", seed=1, in_process=True, rate=40)
    app = PoolMonitorApp(session, refresh_s=0.1)
    bells: list[float] = []
    app.bell = lambda: bells.append(session.clock.now())  # type: ignore[method-assign]
    async with app.run_test(size=(160, 45)) as pilot:
        status, seen = app.query_one(StatusLine), set()
        for _ in range(120):  # the primary fails from 2 s to 8 s of its cycle
            await asyncio.sleep(0.1)
            text = str(status.render())
            if "OUTAGE sim-anthropic" in text:
                seen.add("outage")
                assert status.has_class("alert")
            if "FALLBACK ACTIVE sim-backup" in text:
                seen.add("fallback")
            if {"outage", "fallback"} <= seen:
                break
        assert {"outage", "fallback"} <= seen, str(status.render())
        line = app.query_one(IncidentLine)
        assert line.display and "fallback served" in str(line.render())
        # live traffic can raise a new alert at any refresh (callers queueing, say): hold it still first
        session.stop_traffic()
        for _ in range(100):
            if not session.client.waiting and not session.traffic_running:
                break
            await asyncio.sleep(0.05)
        app.refresh_view()
        await pilot.pause()
        kinds_rung = len(bells)
        for _ in range(10):
            app.refresh_view()
            await pilot.pause()
        assert len(bells) == kinds_rung  # a refresh of the same alerts does not ring again
        assert 1 <= kinds_rung <= 5  # new alerts ring (those of one refresh together)
        v = session.view()
        assert v["fallback_served"] > 0 and v["callers"]["ok"] > 0


@pytest.mark.asyncio
async def test_req_ok_and_err_per_second_count_the_same_requests() -> None:
    """ok/s used to count the fallback's successes while req/s counted only the primary's picks."""
    session = demo_session("outage", seed=1, in_process=True, rate=40)
    await session.start()
    try:  # until the fallback has served a few (was a fixed 6 s)
        await until(lambda: session.view()["fallback_served"] >= 5, "the fallback serving")
    finally:
        await session.stop()
    v = session.view()
    series, callers = v["series"], v["callers"]
    assert v["fallback_served"] > 0
    assert sum(series["requests"]) == callers["requests"] > 0
    assert sum(series["ok"]) + sum(series["errors"]) + callers["rejected"] == sum(series["requests"])


def test_keys_paced_by_their_learned_limit_raise_no_capacity_alarm() -> None:
    """Regression: with learned limits on, a pool working at its learnt capacity rests every key for a moment,
    and the status line rang CAPACITY 0/4 every few seconds of normal service."""
    session = scripted.peak()
    pool = session.pool
    while pool.pick() is not None:  # requests in flight fill every key's learnt window
        pass
    panel = session.view()
    assert panel["usable"] == 0 and panel["paced"] == 4
    assert [a.kind for a in alerts_of(panel, T0)] == []
    assert alerts_of(view(usable=0, paced=0), T0)[0].kind == "capacity"
