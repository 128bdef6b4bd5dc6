"""Pilot tests: every keyboard action changes the engine (and the config) as it should."""

from __future__ import annotations

import pytest
from textual import events

from pooltui.core import Classification, DeadlineSource, KeyState, Outcome
from pooltui.session.local import config_session, demo_session
from pooltui.store.config import ConfigEditor, KeyEntry, ProviderConfig, load_config
from pooltui.store.history import History
from pooltui.store.secrets import SecretStore
from pooltui.tui.app import PoolMonitorApp
from pooltui.tui.screens import AddKeyScreen, HelpScreen, HistoryScreen, InspectorScreen
from pooltui.tui.widgets import KeysTable, StatusLine
from tests.conftest import keys, make_scenario, until
from tests.tui import scripted

pytestmark = pytest.mark.asyncio


@pytest.fixture
def configured(serve, tmp_path):
    """Two configured providers pointing at a simulator on loopback, keys in the (in-memory) keyring."""
    sc = make_scenario(
        {"name": "main", "keys": [*keys("k", 3), {"label": "gone", "secret": "sk-test-gone-000000001",
                                                  "revoke_after": 0},
                                  {"label": "spare", "secret": "sk-test-spare-00000000001"}]},
        {"name": "other", "keys": keys("o", 2)},
    )
    server = serve(sc)
    store = SecretStore(tmp_path / "data")
    path = tmp_path / "config.toml"
    with ConfigEditor(path) as cfg:
        for spec in sc.providers:
            p = cfg.providers[spec.name] = ProviderConfig(spec.name, "openai", server.base_url(spec.name))
            for k in spec.keys:
                if k.label == "spare":  # the simulator knows it; the config does not (yet)
                    continue
                p.keys.append(KeyEntry(k.label, store.put(spec.name, k.label, k.secret)))
    history = History(tmp_path / "data" / "history.db")
    session, problems = config_session(load_config(path), store, history, "main")
    assert problems == []
    return session, path, server


async def paste(pilot, text: str, *then: str) -> None:
    """``text`` pasted into the focused input (one event, as a terminal delivers a paste; how a key is given),
    then the keys ``then``. Typed key by key, a key of 25 characters was ~60 presses, each waiting for the
    whole process to go idle (up to 2 s a press on a loaded machine): the test hit its 60 s timeout."""
    paste_event = events.Paste(text)
    paste_event.set_sender(pilot.app)
    pilot.app.post_message(paste_event)
    await pilot.pause()
    await pilot.press(*then)


def labels_in_pool(session) -> list[str]:
    return [k.label for k in session.pool.keys]


async def test_disable_takes_the_key_out_of_rotation_at_once_and_is_saved(configured) -> None:
    session, path, _ = configured
    app = PoolMonitorApp(session, start_session=False)
    async with app.run_test() as pilot:
        assert app.query_one(KeysTable).selected == "k0"
        await pilot.press("d")
        assert session.pool.key("k0").state is KeyState.DISABLED
        assert "k0" not in {session.pool.pick().label for _ in range(8)}
        assert load_config(path).provider("main").key("k0").disabled
        await pilot.press("d")
        assert session.pool.key("k0").state is KeyState.OK
        assert not load_config(path).provider("main").key("k0").disabled


async def test_reorder_changes_the_next_pick_and_is_saved(configured) -> None:
    session, path, _ = configured
    session.pool.set_strategy("failover")
    app = PoolMonitorApp(session, start_session=False)
    async with app.run_test() as pilot:
        await pilot.press("down", "down")
        assert app.query_one(KeysTable).selected == "k2"
        await pilot.press("K", "K")
        assert labels_in_pool(session) == ["k2", "k0", "k1", "gone"]
        assert session.pool.peek() == "k2"
        assert app.query_one(KeysTable).selected == "k2"  # the selection follows the key
        assert load_config(path).provider("main").credential_pool == ["k2", "k0", "k1", "gone"]
        await pilot.press("J")
        assert labels_in_pool(session)[:2] == ["k0", "k2"]


async def test_strategy_cycles_and_is_saved(configured) -> None:
    session, path, _ = configured
    app = PoolMonitorApp(session, start_session=False)
    async with app.run_test() as pilot:
        await pilot.press("s")
        assert session.pool.strategy == "random"
        assert load_config(path).provider("main").strategy == "random"


async def test_verify_marks_a_revoked_key_invalid(configured) -> None:
    session, _, _ = configured
    app = PoolMonitorApp(session, start_session=False)
    async with app.run_test() as pilot:
        await pilot.press("V")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert session.pool.key("gone").state is KeyState.INVALID
        assert all(session.pool.key(f"k{i}").state is KeyState.OK for i in range(3))
        kinds = [(e.key, str(e.kind)) for e in session.client.events]
        assert ("gone", "invalid") in kinds and ("k0", "state") in kinds


async def test_add_key_through_the_modal(configured, memory_keyring) -> None:
    session, path, _ = configured
    app = PoolMonitorApp(session, start_session=False)
    secret = "sk-test-spare-00000000001"  # the simulator accepts it; the config does not hold it yet
    async with app.run_test() as pilot:
        await pilot.press("a")
        assert isinstance(app.screen, AddKeyScreen)
        await pilot.click("#label")
        await paste(pilot, "extra", "enter")
        await paste(pilot, secret, "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "extra" in labels_in_pool(session)
        assert memory_keyring.store[("pooltui", "main/extra")] == secret
        assert load_config(path).provider("main").key("extra").secret == "keyring:main/extra"
        # a bad key is refused with a notification, and the app keeps running
        await pilot.press("a")
        await pilot.click("#label")
        await paste(pilot, "bad", "enter")
        await paste(pilot, "sk-test-wrong-000000000", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "bad" not in labels_in_pool(session)
        assert any("not added" in n.message for n in app._notifications)


async def test_reset_switch_history_pause_help_and_inspect(configured) -> None:
    session, _, _ = configured
    for label in ("k0", "k1"):
        key = session.pool.key(label)
        key.inflight += 1
        session.pool.report(key, Classification(Outcome.RATE_LIMITED, 429, "slow", 60.0, DeadlineSource.RETRY_AFTER))
    await session.client.chat("hello")  # one real request, traced
    app = PoolMonitorApp(session, start_session=False)
    async with app.run_test(size=(160, 45)) as pilot:
        assert app.check_action("switch_provider", ()) is True
        assert app.check_action("burst", ()) is None  # greyed out: no traffic running
        await pilot.press("r")
        assert session.pool.key("k0").state is KeyState.OK
        await pilot.press("p")
        assert session.current == "other" and labels_in_pool(session) == ["o0", "o1"]
        await pilot.press("p")
        await pilot.press("h")
        assert isinstance(app.screen, HistoryScreen)
        await pilot.press("escape")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("i")
        assert isinstance(app.screen, InspectorScreen)
        assert "pick [main]" in str(app.screen.query_one("#trace-body").render())
        await pilot.press("escape")
        await pilot.press("space")
        assert app.paused
        before = app.query_one(KeysTable).get_cell("k2", "requests")
        status = str(app.query_one(StatusLine).render())
        assert "PAUSED" in status
        for _ in range(6):
            await session.client.chat("while paused")
        await pilot.pause(0.4)
        assert app.query_one(KeysTable).get_cell("k2", "requests") == before  # display held
        assert str(app.query_one(StatusLine).render()) == status  # the status line too (its counts moved)
        await pilot.press("space")
        await pilot.pause(0.1)
        assert not app.paused


async def test_traffic_start_stop_rate_and_burst(serve) -> None:
    session = demo_session("steady", rate=20, seed=4, in_process=True, autostart=False)
    app = PoolMonitorApp(session)
    async with app.run_test() as pilot:
        await app.workers.wait_for_complete()
        assert not session.traffic_running
        await pilot.press("t")
        assert session.traffic_running
        await pilot.press("plus")
        assert session.traffic_rate == 30
        await pilot.press("minus", "minus")
        assert session.traffic_rate == pytest.approx(13.3)
        sent = session.traffic.result.requests
        await pilot.press("b")
        # waits for what it checks, not a fixed time: the burst's 40 requests, then the traffic stopped
        await until(lambda: session.traffic.result.requests >= sent + 40, "the burst sent")
        await pilot.press("t")
        await until(lambda: not session.traffic_running, "the traffic stopped")


async def test_command_palette_offers_the_actions() -> None:
    app = PoolMonitorApp(scripted.steady(), start_session=False)
    async with app.run_test():
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for wanted in ("Disable or enable the selected key", "Re-verify every key",
                       "Move the selected key up in the pool order", "Event history", "Strategy: headroom"):
            assert wanted in titles
        assert "Inject a burst of 50 requests" not in titles  # not applicable without traffic
