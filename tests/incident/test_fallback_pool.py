"""Every provider in view: the fallback's pool shows under the primary's while it serves, and `p` moves to
the next provider, a fallback included (issue 8, item 4; issue 22, item 5)."""

from __future__ import annotations

import pytest

from pooltui.tui.app import PoolMonitorApp
from pooltui.tui.widgets import FallbackTable, KeysTable, StatusLine
from tests.tui import scripted

pytestmark = pytest.mark.asyncio


async def test_the_fallbacks_keys_show_while_it_serves() -> None:
    session = scripted.outage()
    app = PoolMonitorApp(session, start_session=False)
    async with app.run_test(size=(160, 45)) as pilot:
        table, title = app.query_one(FallbackTable), app.query_one("#fallback-title")
        assert table.display and title.display
        assert "fallback sim-backup · serving now · keys 1/1 usable" in str(title.render())
        assert table.row_count == 1 and str(table.get_cell("backup", "requests")) == "30"
        assert str(table.get_cell("backup", "state")).startswith("ok")
        status = str(app.query_one(StatusLine).render())
        assert "OUTAGE sim-anthropic" in status and "FALLBACK ACTIVE sim-backup served 30" in status
        session.clock.advance(20)  # the fallback has not served for a while
        app.refresh_view()
        await pilot.pause()
        assert not table.display


async def test_p_moves_to_the_next_provider_a_fallback_included() -> None:
    """Two providers (a primary and its fallback): `p` shows the other one, its keys in the keys table and its
    key actions on its pool; `p` again comes back (it used to pin the fallback's pool and stay)."""
    session = scripted.outage()
    app = PoolMonitorApp(session, start_session=False)
    async with app.run_test(size=(160, 45)) as pilot:
        keys = app.query_one(KeysTable)
        assert keys._order == ["main-1", "main-2"] and app.check_action("switch_provider", ()) is True
        await pilot.press("p")
        assert session.current == "sim-backup"
        assert keys._order == ["backup"] and not app.query_one(FallbackTable).display
        assert "sim-backup (fallback of sim-anthropic)" in str(app.query_one(StatusLine).render())
        assert list(app._notifications)[-1].message == "provider: sim-backup (fallback of sim-anthropic)"
        await pilot.press("d")  # key actions act on the pool in view
        backup = session.client.fallbacks[0].pool.key("backup")
        assert backup.state.value == "disabled"
        await pilot.press("p")
        assert session.current == "sim-anthropic" and keys._order == ["main-1", "main-2"]
