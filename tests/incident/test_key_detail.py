"""Enter on a key opens its detail screen: state and why, timeline, last errors, resets and their source,
per-model cooldowns, header limits, latency, tokens and cost; the key actions work there (issue 8, item 5)."""

from __future__ import annotations

import pytest

from pooltui.core import KeyState
from pooltui.tui.app import PoolMonitorApp
from pooltui.tui.screens import KeyDetailScreen
from pooltui.tui.widgets import KeysTable
from tests.tui import scripted

pytestmark = pytest.mark.asyncio


def body(app) -> str:
    return str(app.screen.query_one("#detail-body").render())


async def test_the_detail_screen_tells_everything_about_a_key_and_acts_on_it() -> None:
    session = scripted.peak()
    app = PoolMonitorApp(session, start_session=False)
    async with app.run_test(size=(160, 45)) as pilot:
        keys = app.query_one(KeysTable)
        keys.focus()
        keys.select("primary")
        await pilot.press("enter")
        assert isinstance(app.screen, KeyDetailScreen) and app.screen.label == "primary"
        text = body(app)
        for part in ("secret sk-ant-…", "fingerprint", "cooling", "deadline from retry-after",
                     "per-model cooldowns", "what the provider's headers said", "latency p50",
                     "tokens", "state timeline", "cooled", "last errors", "429 rate_limited"):
            assert part in text, part
        assert "× 429" in text
        await pilot.press("r")  # reset this key's cooldown
        assert session.pool.key("primary").state is KeyState.OK
        await pilot.press("d")
        assert session.pool.key("primary").state is KeyState.DISABLED
        await pilot.pause()
        assert "disabled" in str(app.screen.query_one("#detail-title").render())
        await pilot.press("d")
        assert session.pool.key("primary").state is KeyState.OK
        await pilot.press("J")
        assert [k.label for k in session.pool.keys][1] == "primary"
        await pilot.press("escape")
        assert not isinstance(app.screen, KeyDetailScreen)
