"""One owner per fact (issue 25, item 2): the proxy and its session share one series and incident tracker per
client; a command from an attached monitor names its provider and never changes what the session shows."""

from __future__ import annotations

import asyncio
import time

import pytest

from pooltui.core.events import Event, EventKind
from pooltui.proxy.app import PoolProxy
from pooltui.session.attached import RemoteSession, fetch_state
from pooltui.session.local import MonitorSession, config_session
from pooltui.store.config import load_config
from pooltui.store.history import History
from tests.conftest import config_on_simulator
from tests.test_proxy import ProxyThread, proxied  # noqa: F401  (a fixture)

pytestmark = pytest.mark.asyncio


async def test_the_attached_monitor_sees_the_sessions_incidents(serve, tmp_path) -> None:
    path, store, _ = config_on_simulator(serve, tmp_path)
    history = History(tmp_path / "data" / "history.db")
    now = time.time()
    history.add_events([Event(now - 20 + i, "main", f"k{i % 2}", EventKind.RATE_LIMITED, 429, "slow", "cooled 1.0 s")
                        for i in range(10)])  # the session opens with the incident under way
    session, _ = config_session(load_config(path), store, history, "main")
    with ProxyThread(session.clients, session=session) as px:
        attached = (await fetch_state(px.service.url, px.proxy.admin_token))["providers"]["main"]
    mine = session.view()
    assert mine["incident"] is not None and "10 × 429 on 2 keys" in mine["incident"]["summary"]
    assert attached["incident"] is not None
    assert (attached["incident"]["since"], attached["incident"]["summary"]) == (mine["incident"]["since"],
                                                                              mine["incident"]["summary"])
    theirs, ours = attached["timeline"], mine["timeline"]  # read a moment apart: aligned on the buckets' times
    shift = int(ours["end"] // ours["bucket_s"]) - int(theirs["end"] // theirs["bucket_s"])
    assert shift in (0, 1), shift  # (a 10 s boundary between the two reads moves the buckets by one)
    limited = theirs["keys"]["k0"]["limited"]
    assert sum(limited) == 5 and limited[shift:] == ours["keys"]["k0"]["limited"][:len(limited) - shift]
    assert PoolProxy(session.clients, session=session).series is session.series  # one series per client


async def test_a_command_names_its_provider_and_the_session_keeps_showing_its_own(proxied) -> None:  # noqa: F811
    _, clients = proxied
    session = MonitorSession(clients, autostart_traffic=False)
    assert session.current == "oai"
    with ProxyThread(clients, session=session) as px:
        remote = RemoteSession(px.service.url, px.proxy.admin_token, poll_s=0.1)
        await remote.start()
        try:
            assert remote.switch_provider() == "ant" and remote.view()["provider"] == "ant"
            remote.toggle_key("good")
            ant = clients["ant"].primary.pool
            for _ in range(100):
                if ant.key("good").state.value == "disabled":
                    break
                await asyncio.sleep(0.02)
        finally:
            await remote.stop()
    assert ant.key("good").state.value == "disabled"
    assert clients["oai"].primary.pool.key("good0").state.value == "ok"
    assert session.current == "oai" and session.view()["provider"] == "oai"  # not steered by the proxy
    assert remote.show("oai") == "oai"
    assert session.show("ant") == "ant" and session.view()["provider"] == "ant"  # told, it shows it
    with pytest.raises(ValueError, match="unknown provider"):
        session.show("nowhere")
