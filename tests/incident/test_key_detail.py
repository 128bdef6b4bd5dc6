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


async def opened(app, pilot) -> str:
    """The detail screen's text once it has been filled: the screen fills its body when mounted, which a loaded
    machine may not have done when the key press returns (the body read empty: a flake in the mutation run)."""
    for _ in range(200):
        if isinstance(app.screen, KeyDetailScreen) and (text := body(app)):
            return text
        await pilot.pause(0.05)
    raise AssertionError("the key detail screen was not filled within 10 s")


@pytest.mark.wording
async def test_the_detail_screen_tells_everything_about_a_key_and_acts_on_it() -> None:
    session = scripted.peak(learn=False)  # cooling by the provider's retry-after
    app = PoolMonitorApp(session, start_session=False)
    async with app.run_test(size=(160, 45)) as pilot:
        keys = app.query_one(KeysTable)
        keys.focus()
        keys.select("primary")
        await pilot.press("enter")
        text = await opened(app, pilot)
        assert isinstance(app.screen, KeyDetailScreen) and app.screen.label == "primary"
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


async def test_the_keys_table_and_the_detail_show_each_keys_learned_limit() -> None:
    """peak-hour states no limit on success: each key's limit is learnt from its 429s (issue 12)."""
    session = scripted.peak()
    est = session.pool.key("secondary").learned
    app = PoolMonitorApp(session, start_session=False)
    async with app.run_test(size=(200, 45)) as pilot:
        keys = app.query_one(KeysTable)
        assert "learned" in [title for _, title, _ in keys.shown]
        cell = str(keys.get_cell("secondary", "learned"))
        assert cell == f"{est.limit}/{est.window_s:.1f}s {est.sure:.0%}"
        keys.focus()
        keys.select("secondary")
        await pilot.press("enter")
        text = await opened(app, pilot)
        assert "learned limit (where no header states it)" in text
        assert f"{est.limit} requests per {est.window_s:.1f} s, sure {est.sure:.0%} (from {est.observed} × 429" in text
        assert "picks wait for room in this window instead of collecting a 429" in text


async def test_a_key_whose_headers_state_the_budget_says_no_guess_is_needed() -> None:
    session = scripted.steady()  # successes carry remaining/limit headers
    app = PoolMonitorApp(session, start_session=False)
    async with app.run_test(size=(200, 45)) as pilot:
        keys = app.query_one(KeysTable)
        assert str(keys.get_cell("primary", "learned")) == "-"
        keys.focus()
        keys.select("primary")
        await pilot.press("enter")
        assert "none needed: the provider's headers state the budget" in await opened(app, pilot)


async def test_a_limit_stated_only_with_429s_reads_as_such() -> None:
    """Regression: a provider that states its limit with its 429s only (peak-hour) read 'requests - remaining'."""
    from pooltui.tui.screens import key_detail

    session = scripted.peak()
    snap = dict(session.pool.snapshot()[0], requests_limit=8, requests_remaining=None)
    text = str(key_detail(snap, [], session.clock.now()))
    assert "a limit of 8 requests (with a 429), nothing on its successes" in text
    assert "requests - remaining" not in text
