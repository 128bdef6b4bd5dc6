"""One shared type for what the monitor shows: the local session, the attached session and
``/pooltui/state`` all speak the typed views of ``pooltui.session.views``."""

from __future__ import annotations

import json
from typing import get_type_hints

import httpx
import pytest

from pooltui.core.snapshot import KeySnapshot
from pooltui.session.attached import RemoteSession
from pooltui.session.local import MonitorSession
from pooltui.session.protocol import LocalControls, Session
from pooltui.session.views import EventView, PanelView, SeriesView, StateView
from pooltui.sim.wiring import client_for_scenario
from pooltui.tui.app import PoolMonitorApp
from pooltui.tui.widgets import StatusLine
from tests.conftest import keys, make_scenario, until
from tests.test_proxy import ProxyThread

pytestmark = pytest.mark.asyncio


def fields(typed) -> set[str]:
    return set(get_type_hints(typed))


def proxy_for(serve, capacity_alert: int = 1):
    spec = {"name": "oai", "window_s": 60, "keys": [*keys("k", 2),
                                                    {"label": "gone", "secret": "sk-test-gone-0001", "invalid": True}]}
    server = serve(make_scenario(spec))
    client = client_for_scenario(make_scenario(spec), server, "round-robin", seed=1)
    session = MonitorSession({"oai": client}, autostart_traffic=False, capacity_alert={"oai": capacity_alert})
    return ProxyThread({"oai": client}, session=session), session


async def test_both_sessions_are_sessions_and_only_the_local_one_has_local_controls(serve) -> None:
    _, local = proxy_for(serve)
    remote = RemoteSession("http://127.0.0.1:1")
    assert isinstance(local, Session) and isinstance(remote, Session)
    assert isinstance(local, LocalControls)
    assert not isinstance(remote, LocalControls)  # no stub traffic fields: it has none
    for fake in ("traffic", "traffic_running", "traffic_rate", "config", "demo", "unencrypted", "supports_traffic"):
        assert not hasattr(remote, fake), fake


async def test_state_endpoint_serves_exactly_the_typed_views(serve) -> None:
    px, _ = proxy_for(serve)
    with px:
        async with httpx.AsyncClient() as http:
            for _ in range(3):
                await http.post(f"{px.service.url}/v1/chat/completions",
                                json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
            r = await http.get(f"{px.service.url}/pooltui/state",
                               headers={"x-pooltui-admin-token": px.proxy.admin_token})
    state = json.loads(r.text)
    assert set(state) == fields(StateView)
    panel = state["providers"]["oai"]
    assert set(panel) == fields(PanelView)
    assert set(panel["series"]) == fields(SeriesView)
    assert panel["keys"] and all(set(k) == fields(KeySnapshot) for k in panel["keys"])
    assert state["events"] and all(set(e) == fields(EventView) for e in state["events"])


async def test_local_view_has_the_same_shape(serve) -> None:
    _, local = proxy_for(serve)
    view = local.view()
    assert set(view) == fields(PanelView)
    assert all(set(k) == fields(KeySnapshot) for k in view["keys"])


async def test_attached_monitor_alerts_at_the_proxys_capacity_threshold(serve) -> None:
    """The attached session used to assume a threshold of 1: 2 of 3 usable keys under an alert of 3 said nothing."""
    px, _ = proxy_for(serve, capacity_alert=3)
    with px:
        session = RemoteSession(px.service.url, px.proxy.admin_token, poll_s=0.1)
        app = PoolMonitorApp(session)
        async with app.run_test(size=(130, 36)):
            async with httpx.AsyncClient() as http:  # marks 'gone' invalid: 2 of 3 usable
                for _ in range(3):
                    await http.post(f"{px.service.url}/v1/chat/completions",
                                    json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
            # the session polls the proxy every 0.1 s: waited for until it has heard of the 401, not for a fixed
            # 0.5 s (a loaded machine polled later than that, and the status line had nothing to say yet)
            await until(lambda: session.view()["usable"] == 2, "the attached session heard of the revoked key")
            app.refresh_view()
            assert session.view()["capacity_alert"] == 3
            status = app.query_one(StatusLine)
            assert "CAPACITY 2/3" in str(status.render())
            assert status.has_class("warn")  # amber: keys left, fewer than wanted (red at none)
