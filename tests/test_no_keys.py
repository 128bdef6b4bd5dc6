"""A keyed provider (any kind but ``local``) with no keys never sends a request without credentials: the
client refuses with a clear message, the proxy answers 503 with ``x-should-retry: false`` in the caller's
dialect, ``pooltui traffic --provider`` and the monitor say the same; a key added to the config later serves."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import pytest

from pooltui.client.pool_client import PoolUnavailableError
from pooltui.session.build import build_client, build_pool
from pooltui.session.incident import alerts_of
from pooltui.session.local import config_session
from pooltui.store.config import ConfigEditor, KeyEntry, ProviderConfig, load_config
from pooltui.store.secrets import SecretStore
from tests.conftest import config_on_simulator, keys
from tests.test_cli import run
from tests.test_proxy import ProxyThread

SAYS = "provider 'main' has no keys: add one with `pooltui auth add main --pool LABEL`"
SIM_KEY = keys("k", 1)[0]


def empty_provider(serve, tmp_path: Path, kind: str):
    """A config whose provider ``main`` (of ``kind``) has no keys; the simulator behind it knows one key."""
    dialect = "anthropic" if kind == "anthropic" else "openai"
    path, store, server = config_on_simulator(serve, tmp_path, n_keys=0, keys=[SIM_KEY], dialect=dialect)
    with ConfigEditor(path) as cfg:
        cfg.provider("main").kind = kind
    return path, store, server


def ask(url: str, kind: str) -> httpx.Response:
    if kind == "anthropic":
        return httpx.post(f"{url}/v1/messages", headers={"x-api-key": "caller", "anthropic-version": "2023-06-01"},
                          json={"model": "m", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})
    return httpx.post(f"{url}/v1/chat/completions", headers={"authorization": "Bearer caller"},
                      json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})


@pytest.mark.parametrize("kind", ["openai-compatible", "anthropic"])
def test_the_proxy_refuses_with_503_until_a_key_is_added_to_the_config(serve, tmp_path: Path, kind: str) -> None:
    path, store, server = empty_provider(serve, tmp_path, kind)
    session, _ = config_session(load_config(path), store, None, "main")
    with ProxyThread(session.clients) as px:
        px.loop.call_soon_threadsafe(session.live.start)
        r = ask(px.service.url, kind)
        assert r.status_code == 503 and r.headers["x-should-retry"] == "false"
        error = r.json()["error"]
        assert error["message"] == f"pooltui: {SAYS}"
        if kind == "anthropic":
            assert r.json()["type"] == "error"
        assert server.state.request_seq == 0  # nothing went upstream
        with ConfigEditor(path) as cfg:
            cfg.provider("main").keys.append(KeyEntry("k0", store.put("main", "k0", SIM_KEY["secret"])))
        deadline = time.monotonic() + 3
        while session.live.applied == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        r = ask(px.service.url, kind)
        px.loop.call_soon_threadsafe(session.live.close)
    assert r.status_code == 200 and r.headers["x-pooltui-served-by"] == "main/k0"
    assert server.state.stats()["main"]["k0"] == {"200": 1}


def test_the_client_refuses_without_sending_and_a_fallback_with_keys_serves(serve, tmp_path: Path) -> None:
    path, store, server = empty_provider(serve, tmp_path, "openai-compatible")
    built = build_client(load_config(path), "main", store)

    async def go():
        async with built.client as client:
            with pytest.raises(PoolUnavailableError) as err:
                await client.chat("hi")
            return err.value

    exc = asyncio.run(go())
    assert (str(exc), exc.kind, exc.should_retry, exc.retry_after_s) == (SAYS, "unusable", False, None)
    assert server.state.request_seq == 0
    with ConfigEditor(path) as cfg:
        backup = cfg.providers["backup"] = ProviderConfig("backup", "openai", server.base_url("main"))
        backup.keys.append(KeyEntry("b0", store.put("backup", "b0", SIM_KEY["secret"])))
        cfg.provider("main").fallback = ["backup"]
    built = build_client(load_config(path), "main", store)

    async def served():
        async with built.client as client:
            return await client.chat("hi")

    resp = asyncio.run(served())
    assert (resp.status, resp.provider, resp.key) == (200, "backup", "b0")


def test_local_stays_keyless_and_a_keyed_provider_gets_an_empty_pool(tmp_path: Path) -> None:
    from pooltui.core.events import EventLog

    store = SecretStore(tmp_path / "data")
    assert build_pool(ProviderConfig("ollama", "local"), store, None, EventLog()) is None
    pool = build_pool(ProviderConfig("x", "openai-compatible", "http://127.0.0.1:9/v1"), store, None, EventLog())
    assert pool is not None and len(pool) == 0


def test_traffic_through_a_provider_with_no_keys_is_one_clear_line_exit_2(serve, tmp_path: Path) -> None:
    path, _, _ = empty_provider(serve, tmp_path, "openai-compatible")
    target = Path(os.environ["POOLTUI_CONFIG"])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(path.read_text())
    out = run("traffic", "--provider", "main", "--requests", "2")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == f"pooltui: error: {SAYS}"


def test_the_proxys_banner_says_the_provider_has_no_keys(serve, tmp_path: Path) -> None:
    from pooltui.commands.proxy_cmd import describe
    from pooltui.proxy.app import PoolProxy

    path, store, _ = empty_provider(serve, tmp_path, "openai-compatible")
    session, _ = config_session(load_config(path), store, None, "main")
    lines = describe(PoolProxy(session.clients), "http://127.0.0.1:8787")
    assert f"  warning: {SAYS} (until then its callers get 503)" in lines


def test_the_monitor_says_the_provider_has_no_keys(serve, tmp_path: Path) -> None:
    path, store, _ = empty_provider(serve, tmp_path, "openai-compatible")
    session, _ = config_session(load_config(path), store, None, "main")
    view = session.view()
    assert view["summary"] == SAYS and not view["keyless"]
    alerts = alerts_of(view, session.clock.now())
    assert [(a.kind, a.severity, a.text) for a in alerts] == [("no_keys", "red", f"NO KEYS {SAYS}")]


@pytest.mark.asyncio
async def test_the_monitors_status_line_says_it(serve, tmp_path: Path) -> None:
    from pooltui.tui.app import PoolMonitorApp
    from pooltui.tui.widgets import StatusLine

    path, store, _ = empty_provider(serve, tmp_path, "openai-compatible")
    session, _ = config_session(load_config(path), store, None, "main")
    app = PoolMonitorApp(session, start_session=False)
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.pause()
        status = str(app.query_one(StatusLine).render())
    assert f"NO KEYS {SAYS}" in status
