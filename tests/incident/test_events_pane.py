"""The events pane during a storm: repeats fold into counting rows that update in place; search, filters
by key and kind, and sorting the keys table (issue 8, items 1 and 5)."""

from __future__ import annotations

import pytest

from pooltui.core import Classification, DeadlineSource, Outcome
from pooltui.tui.app import PoolMonitorApp
from pooltui.tui.widgets import EventsTable, KeysTable
from tests.tui import scripted

pytestmark = pytest.mark.asyncio


def limited() -> Classification:
    return Classification(Outcome.RATE_LIMITED, 429, "per-minute rate limit", 0.5, DeadlineSource.RETRY_AFTER)


def rows_text(table: EventsTable) -> list[str]:
    return [row.text() for row in table.story.rows.values() if table.shows(row)]


async def test_a_storm_reads_as_a_few_counting_rows_that_update_in_place() -> None:
    session = scripted.peak(learn=False)  # the storm a pool meets without learned limits
    raw = len(session.recent_events())
    app = PoolMonitorApp(session, start_session=False)
    async with app.run_test(size=(160, 45)) as pilot:
        table = app.query_one(EventsTable)
        assert raw >= 30 and table.row_count <= raw // 3, (raw, table.row_count)
        assert any(row.count > 1 for row in table.story.rows.values())
        pool = session.pool
        before = table.row_count
        runs = {row.first.key: row for row in table.story.rows.values() if row.kind == "rate_limited"}
        key = next(k for k in ("primary", "secondary", "tertiary") if k in runs)
        counted = runs[key].count
        for _ in range(6):  # the same key keeps answering 429 while its run is open
            k = pool.key(key)
            k.inflight += 1
            pool.report(k, limited())
            session.clock.advance(0.1)
        app.refresh_view()
        await pilot.pause()
        assert table.row_count == before
        assert runs[key].count == counted + 6
        assert str(table.get_cell(str(runs[key].id), "count")).startswith(f"×{counted + 6} in ")


async def test_search_filter_by_key_and_kind_then_clear() -> None:
    session = scripted.peak()
    app = PoolMonitorApp(session, start_session=False)
    async with app.run_test(size=(160, 45)) as pilot:
        table = app.query_one(EventsTable)
        session.pool.disable("spare")  # a state change: a row of another kind
        app.refresh_view()
        await pilot.pause()
        everything = table.row_count
        await pilot.press("slash")
        await pilot.press(*"tertiary")
        await pilot.press("enter")
        assert 0 < table.row_count < everything
        assert all("tertiary" in t for t in rows_text(table))
        assert "tertiary" in str(app.query_one("#events-filter").render())
        await pilot.press("escape")
        assert table.row_count == everything
        keys = app.query_one(KeysTable)
        keys.focus()
        keys.select("secondary")
        await pilot.press("f")
        assert table.row_count and all(row.first.key == "secondary" for row in table.story.rows.values()
                                       if table.shows(row))
        await pilot.press("f")
        assert table.row_count == everything
        await pilot.press("e")
        kinds = {row.kind for row in table.story.rows.values() if table.shows(row)}
        assert len(kinds) == 1 and table.row_count < everything
        await pilot.press("escape")
        assert table.row_count == everything


def headers(table: KeysTable) -> list[str]:
    return [str(column.label) for column in table.columns.values()]


async def test_the_keys_table_sorts_by_a_column_and_back_to_pool_order() -> None:
    """`o` goes left to right through the columns shown, names each as its header does, marks the sorted
    one's header (issue 22, item 5), then comes back to pool order."""
    session = scripted.peak(learn=False)  # a storm: keys in several states
    app = PoolMonitorApp(session, start_session=False)
    async with app.run_test(size=(160, 45)) as pilot:
        keys = app.query_one(KeysTable)
        pool_order = list(keys._order)
        assert pool_order == ["primary", "secondary", "tertiary", "spare"]
        unmarked = headers(keys)
        assert not any("▼" in h or "▲" in h for h in unmarked)
        keys.select("tertiary")
        told: list[str] = []
        while True:
            await pilot.press("o")
            told.append(list(app._notifications)[-1].message)
            if keys.sort_by is None:
                break
            marked = [h for h in headers(keys) if h.endswith((" ▼", " ▲"))]
            assert len(marked) == 1 and told[-1] == f"keys sorted by {marked[0][:-2]}", (marked, told[-1])
            assert keys.selected == "tertiary"  # the selection stays on its key
            if keys.sort_by == "state":  # keys not ok first, longest wait first
                snaps = {s["label"]: s for s in session.view()["keys"]}
                states = [snaps[label]["state"] for label in keys._order]
                assert states == sorted(states, key=lambda s: s == "ok") and keys._order[-1] == "spare"
            if keys.sort_by == "rate_limited":
                assert marked == ["429 ▼"]
                counts = [snaps[label]["rate_limited"] for label in keys._order]
                assert counts == sorted(counts, reverse=True)
        names = [t.removeprefix("keys sorted by ") for t in told[:-1]]
        assert names == [h for h in unmarked if h not in (" ", "#", "secret")]  # every title shown, left to right
        assert names[:5] == ["key", "state", "req", "ok", "429"]
        assert told[-1] == "keys in pool order" and keys._order == pool_order and headers(keys) == unmarked


async def test_o_never_sorts_by_a_column_a_narrow_terminal_hides() -> None:
    session = scripted.peak(learn=False)
    app = PoolMonitorApp(session, start_session=False)
    async with app.run_test(size=(160, 45)) as pilot:
        keys = app.query_one(KeysTable)
        while keys.sort_by != "p50":
            await pilot.press("o")
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        shown = {key for key, _, _ in keys.shown}
        assert "p50" not in shown and keys.sort_by is None  # its column went for room: pool order again
        assert not any(h.endswith(("▼", "▲")) for h in headers(keys))
        seen = []
        while True:
            await pilot.press("o")
            if keys.sort_by is None:
                break
            seen.append(keys.sort_by)
            assert keys.sort_by in {key for key, _, _ in keys.shown}
        assert seen == ["label", "state", "rate_limited", "invalid", "quota", "server_errors"]


async def test_events_are_listed_in_time_order() -> None:
    """Every row at the time its run began: a run that went on does not jump ahead of the rows after it
    (issue 22, item 5: the pane read `06:37:43, 06:37:46, 06:37:43`)."""
    session = scripted.peak(learn=False)  # a storm: runs of 429s that fold while other rows follow them
    app = PoolMonitorApp(session, start_session=False)
    async with app.run_test(size=(160, 45)):
        table = app.query_one(EventsTable)
        times = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert len(times) >= 3 and times == sorted(times), times
        assert any(row.count > 1 and row.last.ts > row.first.ts for row in table.story.rows.values())


@pytest.mark.parametrize("settled", [False, True], ids=["at-once", "settled"])
async def test_the_newest_event_stays_in_view_when_the_chart_shrinks_the_pane(settled: bool) -> None:
    """The pane follows the newest event; `g` (the chart) takes rows from it. Its scroll stayed where it was
    (the newest rows hidden), at one offset or another depending on whether the first scroll had run before the
    key: `test_timeline_chart[80x24]` differed under load."""
    app = PoolMonitorApp(scripted.peak(), start_session=False)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(EventsTable)
        if settled:
            await pilot.pause(0.3)
        await pilot.press("g")
        await pilot.pause()
        assert table.cursor_row == table.row_count - 1 and table.max_scroll_y > 0
        assert table.scroll_y == table.max_scroll_y, (table.scroll_y, table.max_scroll_y)
