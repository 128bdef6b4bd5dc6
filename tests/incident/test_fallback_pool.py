"""Every provider in view: the fallback's pool shows under the primary's while it serves, and `p` pins it
(issue 8, item 4)."""

from __future__ import annotations

import pytest

from pooltui.tui.app import PoolMonitorApp
from pooltui.tui.widgets import FallbackTable, StatusLine
from tests.tui import scripted

pytestmark = pytest.mark.asyncio


async def test_the_fallbacks_keys_show_while_it_serves_and_p_pins_them() -> None:
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
        assert app.check_action("switch_provider", ()) is True  # one provider, but it has a fallback
        await pilot.press("p")
        assert table.display and "standing by" in str(title.render())
        await pilot.press("p")
        assert not table.display and session.current == "sim-anthropic"
