"""The monitor attached to a running proxy: its traffic shows live, read-only."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from pooltui.remote import AttachError, RemoteSession, fetch_state
from pooltui.traffic import client_for_scenario
from pooltui.tui.app import PoolMonitorApp
from pooltui.tui.screens import InspectorScreen
from pooltui.tui.widgets import EventsTable, KeysTable
from tests.conftest import keys, make_scenario
from tests.test_proxy import ProxyThread

pytestmark = pytest.mark.asyncio


async def test_monitor_shows_a_running_proxys_traffic(serve) -> None:
    spec = {"name": "oai", "window_s": 60, "keys": [*keys("k", 2),
                                                    {"label": "gone", "secret": "sk-test-gone-0001", "invalid": True}]}
    server = serve(make_scenario(spec))
    client = client_for_scenario(make_scenario(spec), server, "round-robin", seed=1)
    with ProxyThread({"oai": client}, token="tok-123") as px:
        with pytest.raises(AttachError, match="wants the proxy token"):
            await fetch_state(px.service.url, None)
        session = RemoteSession(px.service.url, "tok-123", poll_s=0.1)
        app = PoolMonitorApp(session)
        async with app.run_test(size=(130, 36)) as pilot:
            async with httpx.AsyncClient() as http:
                for _ in range(9):
                    r = await http.post(f"{px.service.url}/v1/chat/completions",
                                        json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                                        headers={"authorization": "Bearer tok-123"})
                    assert r.status_code == 200
            await asyncio.sleep(0.6)
            await pilot.pause()
            table = app.query_one(KeysTable)
            assert table.row_count == 3
            assert str(table.get_cell("gone", "state")).startswith("invalid")
            assert int(table.get_cell("k0", "requests")) + int(table.get_cell("k1", "requests")) == 9
            events = app.query_one(EventsTable).events.values()
            assert any(e.key == "gone" and str(e.kind) == "invalid" for e in events)
            assert app.check_action("toggle_key", ()) is None  # read-only: greyed out
            assert app.check_action("cycle_strategy", ()) is None
            await pilot.press("d")
            assert client.primary.pool.key("k0").state.value == "ok"  # nothing changed on the proxy
            await pilot.press("i")
            assert isinstance(app.screen, InspectorScreen)
            assert "pick [oai]" in str(app.screen.query_one("#trace-body").render())
