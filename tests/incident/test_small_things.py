"""What an operator notices (issue 8, item 10): quitting does not wait for test traffic; the history screen
keeps its title, filters and shows whole reasons; masks read the same in the monitor and the CLI; `remain`
clears when a key is back; a key added in the monitor records when it was verified."""

from __future__ import annotations

import asyncio
import time

import pytest

from pooltui.core import Classification, DeadlineSource, FakeClock, KeySpec, Outcome, Pool
from pooltui.core.headers import RateLimits
from pooltui.core.masking import mask
from pooltui.session.local import MonitorSession
from pooltui.sim.wiring import client_for_scenario
from pooltui.tui.app import PoolMonitorApp
from pooltui.tui.screens import HistoryScreen
from pooltui.tui.widgets import KeysTable
from tests.conftest import keys, make_scenario
from tests.tui import scripted

pytestmark = pytest.mark.asyncio


async def test_stopping_drops_test_traffic_instead_of_draining_it(serve) -> None:
    """Quitting used to wait up to 3 s for test requests in flight (a slow provider kept the shell waiting)."""
    spec = {"name": "slow", "latency_ms": [4000, 4000], "keys": keys("k", 2)}
    server = serve(make_scenario(spec))
    client = client_for_scenario(make_scenario(spec), server, "round-robin", seed=1)
    session = MonitorSession({"slow": client}, traffic_rate=50, autostart_traffic=True)
    await session.start()
    await asyncio.sleep(0.3)
    assert session.traffic.inflight > 0
    started = time.perf_counter()
    await session.stop()
    assert time.perf_counter() - started < 2.0  # the requests in flight would take 4 s


async def test_the_history_screen_keeps_its_title_filters_and_shows_whole_reasons() -> None:
    long_reason = "Rate limit reached for gpt-4o in organization org-abc on requests per min (RPM): Limit 500, " \
                  "Used 500, Requested 1. Please try again in 120ms. Visit the docs to learn more."
    rows = [{"ts": 1_790_000_000.0 + i, "provider": "p", "key": f"k{i % 3}", "kind": "rate_limited", "status": 429,
             "action": "cooled", "reason": long_reason} for i in range(120)]
    rows.append({"ts": 1_790_000_200.0, "provider": "p", "key": "k9", "kind": "invalid", "status": 401,
                 "action": "marked invalid", "reason": "bad key"})
    session = scripted.steady()
    session.history_rows = lambda: (rows, "history, last 24 h")  # type: ignore[method-assign]
    app = PoolMonitorApp(session, start_session=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("h")
        assert isinstance(app.screen, HistoryScreen)
        table = app.screen.query_one("#history-table")
        assert table.row_count == 121 and str(table.get_cell_at((0, 6))) == long_reason  # whole
        title = app.screen.query_one("#history-title")
        assert title.region.y == 0 and "121 events" in str(title.render())  # docked: always in view
        await pilot.press("slash", *"k9")
        assert table.row_count == 1 and "1 match “k9”" in str(title.render())
        await pilot.press("enter", "escape")
        assert not isinstance(app.screen, HistoryScreen)


async def test_a_mask_reads_the_same_in_the_monitor_as_in_the_cli() -> None:
    """The secret column cut 'sk-or-v1-…abcd' (14 characters) to 13."""
    secret = "sk-or-v1-test-long-fake-key-000000000000WXYZ"
    session = scripted.steady()
    session.pool.add_key(KeySpec("router", secret))
    app = PoolMonitorApp(session, start_session=False)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        screen = "\n".join(strip.text for strip in app.screen._compositor.render_strips())
        assert mask(secret) == "sk-or-v1-…WXYZ" and mask(secret) in screen
        assert str(app.query_one(KeysTable).get_cell("router", "masked")) == mask(secret)


async def test_remain_clears_when_a_key_is_back() -> None:
    p = Pool("p", [KeySpec("k0", "sk-test-" + "0" * 30)], clock=FakeClock())
    k0 = p.pick()
    spent = Classification(Outcome.OK, 200, limits=RateLimits(requests_limit=10, requests_remaining=0,
                                                               requests_reset_s=5.0))
    p.report(k0, spent)
    snap = p.snapshot()[0]
    assert (snap["state"], snap["requests_remaining"], snap["requests_limit"]) == ("cooling", 0, 10)
    p.clock.advance(5.0)
    snap = p.snapshot()[0]
    assert (snap["state"], snap["requests_remaining"], snap["requests_limit"]) == ("ok", None, 10)
    p.report(p.pick(), Classification(Outcome.RATE_LIMITED, 429, "slow", 2.0, DeadlineSource.RETRY_AFTER))
    p.reset()
    assert p.key("k0").allow is None


async def test_a_key_added_in_the_monitor_records_when_it_was_verified(tmp_path, serve) -> None:
    from pooltui.session.local import ConfigLink
    from pooltui.store.config import ConfigEditor, ProviderConfig
    from pooltui.store.history import History
    from pooltui.store.secrets import SecretStore

    spec = {"name": "main", "keys": keys("k", 2)}
    server = serve(make_scenario(spec))
    client = client_for_scenario(make_scenario(spec), server, "round-robin", seed=1)
    path = tmp_path / "config.toml"
    with ConfigEditor(path) as cfg:
        cfg.providers["main"] = ProviderConfig("main", "openai", server.base_url("main"))
    history = History(tmp_path / "h.db")
    session = MonitorSession({"main": client}, autostart_traffic=False,
                             config=ConfigLink(path, SecretStore(tmp_path / "data"), history))
    session.pool.remove_key("k1")
    result = await session.add_key("k1", server.scenario.primary.keys[1].secret)
    assert result.result == "valid"
    status = history.key_statuses("main")[("main", "k1")]
    assert status.verify_result == "valid" and status.verified_at is not None
    await client.aclose()
