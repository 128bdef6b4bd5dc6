"""The monitor on keys of one account: marked in the keys table, warned about once, grouped on a key press
(config written), and "Is pooling helping?" on demand."""

from __future__ import annotations

from pooltui.session.local import config_session
from pooltui.store.config import load_config
from pooltui.store.history import History
from pooltui.tui.app import PoolMonitorApp
from pooltui.tui.screens import InspectorScreen
from pooltui.tui.widgets import KeysTable
from tests.conftest import config_on_simulator, keys


async def test_keys_of_one_account_are_marked_warned_once_and_grouped(serve, tmp_path) -> None:
    path, store, _ = config_on_simulator(serve, tmp_path, 3, keys=[*keys("a", 2, org="acme"), *keys("b", 1)])
    session, _ = config_session(load_config(path), store, History(tmp_path / "data" / "history.db"), "main")
    app = PoolMonitorApp(session, start_session=False)
    async with app.run_test() as pilot:
        for _ in range(6):
            assert (await session.client.chat("hi")).status == 200
        app.check_accounts()
        app.check_accounts()  # once per group, however often it is seen
        await pilot.pause()
        warnings = [n for n in app._notifications if n.title == "keys of one account"]
        assert len(warnings) == 1 and "a0, a1 belong to one account" in warnings[0].message
        table = app.query_one(KeysTable)
        assert table.shared == {"a0", "a1"}
        assert "≡" in str(table.get_cell("a0", "label")) and "≡" not in str(table.get_cell("b0", "label"))
        await pilot.press("A")
        assert {k.label: k.quota_group for k in session.pool.keys} == {"a0": "account-a0", "a1": "account-a0",
                                                                         "b0": None}
        assert [e.quota_group for e in load_config(path).provider("main").keys] == ["account-a0", "account-a0", None]
        assert app.query_one(KeysTable).shared == set()  # grouped: nothing left to warn about
        await app.run_action("advise")
        await pilot.pause()
        assert isinstance(app.screen, InspectorScreen)
        assert app.screen._body.startswith("main: ") and "one account" not in app.screen._title
    await session.client.aclose()


async def test_the_account_check_between_screens_is_quiet(serve, tmp_path) -> None:
    """Its 2 s timer fired while the main screen had no keys table (the app starting or going, a loaded CI) and
    the monitor crashed with NoMatches: a check with no table to mark waits for the next one."""
    path, store, _ = config_on_simulator(serve, tmp_path, 3, keys=[*keys("a", 2, org="acme")])
    session, _ = config_session(load_config(path), store, History(tmp_path / "data" / "history.db"), "main")
    app = PoolMonitorApp(session, start_session=False)
    async with app.run_test() as pilot:
        await pilot.pause()
    app.check_accounts()  # the timer's last tick, the screens gone
    await session.client.aclose()
