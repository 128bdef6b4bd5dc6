"""Every key is counted once, wherever it serves: a provider that is one client's fallback and has its own
client too has one pool, so /metrics, /pooltui/state and the simulator's own /_sim/stats agree per key
after a run that used the primary and, in the primary's outage, the fallback."""

from __future__ import annotations

import asyncio

import httpx
import openai
from prometheus_client.parser import text_string_to_metric_families

from pooltui.proxy.app import PoolProxy
from pooltui.proxy.metrics import render
from pooltui.session.local import config_session
from pooltui.store.config import ConfigEditor, KeyEntry, ProviderConfig, load_config
from pooltui.store.secrets import SecretStore
from tests.conftest import keys, make_scenario
from tests.test_proxy import ProxyThread


def configured(serve, tmp_path, order: tuple[str, str] = ("main", "backup"), **backup_key):
    """``main`` (two keys) falling back to ``backup`` (one key, with ``backup_key``'s fields), both
    openai-style, on one simulator; the config names them in ``order``."""
    sc = make_scenario({"name": "main", "keys": keys("k", 2)},
                       {"name": "backup", "window_s": 60, "keys": keys("b", 1, **backup_key)})
    server = serve(sc)
    store = SecretStore(tmp_path / "data")
    path = tmp_path / "config.toml"
    with ConfigEditor(path) as cfg:
        for spec in sorted(sc.providers, key=lambda spec: order.index(spec.name)):
            p = cfg.providers[spec.name] = ProviderConfig(spec.name, "openai", server.base_url(spec.name))
            p.keys += [KeyEntry(k.label, store.put(spec.name, k.label, k.secret)) for k in spec.keys]
        cfg.provider("main").fallback = ["backup"]
    return path, store, server


def outage(server) -> None:
    httpx.post(f"{server.url}/_sim/outage/main", params={"status": "529"}).raise_for_status()


def sim_requests(server) -> dict[tuple[str, str], int]:
    return {(provider, label): sum(by_status.values())
            for provider, per_key in server.state.stats().items() for label, by_status in per_key.items()}


def metric_requests(text: str) -> dict[tuple[str, str], int]:
    family = next(f for f in text_string_to_metric_families(text) if f.name == "pooltui_key_requests")
    return {(s.labels["provider"], s.labels["key"]): int(s.value) for s in family.samples
            if s.name == "pooltui_key_requests_total"}


def state_requests(state: dict) -> list[tuple[str, str, int]]:
    """Every place /pooltui/state shows a key's requests: its own provider's panel and others' fallbacks."""
    out = []
    for name, view in state["providers"].items():
        out += [(name, k["label"], k["requests"]) for k in view["keys"]]
        for fb in view["fallbacks"]:
            out += [(fb["name"], k["label"], k["requests"]) for k in fb["keys"]]
    return out


def test_metrics_state_and_the_simulator_agree_per_key_after_a_fallback(serve, tmp_path) -> None:
    path, store, server = configured(serve, tmp_path)
    session, problems = config_session(load_config(path), store, None, "main")
    assert problems == [] and list(session.clients) == ["main", "backup"]
    with ProxyThread(session.clients) as px:
        sdk = openai.OpenAI(base_url=f"{px.service.url}/v1", api_key="caller", max_retries=0)

        def ask() -> str:
            raw = sdk.chat.completions.with_raw_response.create(
                model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
            return raw.headers["x-pooltui-served-by"]

        served = [ask() for _ in range(3)]
        outage(server)
        served += [ask() for _ in range(6)]
        admin = {"authorization": f"Bearer {px.proxy.admin_token}"}
        metrics = metric_requests(httpx.get(f"{px.service.url}/metrics", headers=admin).text)
        state = httpx.get(f"{px.service.url}/pooltui/state", headers=admin).json()
    sim = sim_requests(server)
    assert served.count("backup/b0") == 6 and sim[("backup", "b0")] == 6 and sim[("main", "k0")] > 1
    assert metrics == sim
    shown = state_requests(state)
    assert sorted({(p, k) for p, k, _ in shown}) == sorted(sim)
    for provider, label, requests in shown:
        assert requests == sim[(provider, label)], (provider, label)


def test_metrics_count_the_fallbacks_keys_when_the_fallback_comes_first_in_the_config(serve, tmp_path) -> None:
    """The config names ``backup`` first, so its own client comes first: /metrics still reports the keys of
    the one pool that served ``main``'s requests in its outage (it read an unused copy: b0 0, served 4)."""
    path, store, server = configured(serve, tmp_path, order=("backup", "main"))
    session, _ = config_session(load_config(path), store, None)
    assert list(session.clients) == ["backup", "main"]
    outage(server)

    async def run() -> list[str]:
        client = session.clients["main"]
        try:
            return [f"{r.provider}/{r.key}" for r in [await client.chat("hi") for _ in range(4)]]
        finally:
            for c in session.clients.values():
                await c.aclose()

    assert asyncio.run(run()) == ["backup/b0"] * 4
    metrics = metric_requests(render(PoolProxy(session.clients)).decode())
    assert metrics == sim_requests(server) and metrics[("backup", "b0")] == 4


def test_a_shared_fallback_pools_events_reach_both_views_and_the_history_once(serve, tmp_path) -> None:
    """``backup``'s pool is shared by ``main`` (its fallback) and ``backup``'s own client: the event of its
    key (spent by its one request a minute, so cooled at once) shows in main's view, reaches the session's
    listeners once and is written to the history once; the key's state is written by the pool's owner."""
    from pooltui.store.history import History

    path, store, server = configured(serve, tmp_path, rpm=1)
    history = History(tmp_path / "data" / "history.db")
    session, _ = config_session(load_config(path), store, history, "main")
    main, backup = session.clients["main"], session.clients["backup"]
    assert main.fallbacks[0].pool is backup.primary.pool  # one pool per provider
    heard = []
    session.listeners.append(heard.append)
    outage(server)

    async def run() -> str:
        try:
            resp = await main.chat("hi")
            return f"{resp.provider}/{resp.key}"
        finally:
            for c in session.clients.values():
                await c.aclose()

    assert asyncio.run(run()) == "backup/b0"
    for recorder in session.recorders:
        recorder.flush()
    assert [e.action for e in session.recent_events() if e.key == "b0"] == [e.action for e in backup.events
                                                                               if e.key == "b0"]
    assert len([e for e in heard if e.key == "b0"]) == 1
    assert len([r for r in history.events(0) if r["key"] == "b0"]) == 1
    assert history.key_statuses("backup")[("backup", "b0")].state == "cooling"
