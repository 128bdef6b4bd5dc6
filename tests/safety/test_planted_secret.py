"""Issue 5.3: a pooled secret never leaves in clear, whatever the upstream does.

The simulator's keys here echo the key they were sent in headers, JSON bodies, 4xx/5xx error text and
inside a stream (split over two chunks). One key has a known prefix, one has none (Mistral style). After
traffic through the proxy, every response, endpoint, file and CLI output is searched for the planted keys.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx

from pooltui.core.trace import format_trace
from pooltui.session.local import config_session
from pooltui.store.config import ConfigEditor, KeyEntry, ProviderConfig, load_config
from pooltui.store.history import History
from pooltui.store.secrets import SecretStore
from tests.conftest import make_scenario
from tests.test_proxy import ProxyThread

PREFIXED = "sk-test-echo-prefixed-000000000001"
BARE = "Zq8fR2mKx7VbN4pL0sT6wY1cJ9hD3gA5"  # no prefix at all, like a Mistral key
PLANTED = (PREFIXED, BARE)
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def _cli(*args: str) -> str:
    run = subprocess.run([sys.executable, "-m", "pooltui", *args], capture_output=True, text=True, timeout=60,
                         env=os.environ.copy())
    return f"{run.stdout}\n{run.stderr}"


def test_an_echoing_upstream_never_gets_a_key_out_in_clear(serve, tmp_path) -> None:
    spec = {"name": "oai", "window_s": 60, "keys": [
        {"label": "prefixed", "secret": PREFIXED, "echo_secret": True, "rpm": 3},
        {"label": "bare", "secret": BARE, "echo_secret": True, "revoke_after": 4}]}
    server = serve(make_scenario(spec))
    data = tmp_path / "data"
    store = SecretStore(data, "file")
    config = tmp_path / "config" / "config.toml"
    with ConfigEditor(config) as cfg:
        p = cfg.providers["oai"] = ProviderConfig("oai", "openai", server.base_url("oai"), request_timeout_s=3)
        for k in server.scenario.primary.keys:
            p.keys.append(KeyEntry(k.label, store.put("oai", k.label, k.secret)))
    history = History(data / "history.db")
    session, problems = config_session(load_config(config), store, history)
    assert problems == []
    seen: list[str] = []

    def keep(r: httpx.Response) -> None:
        seen.append(json.dumps(dict(r.headers)) + "\n" + r.text)

    with ProxyThread(session.clients, session=session) as px, httpx.Client(base_url=px.service.url) as http:
        admin = {"x-pooltui-admin-token": px.proxy.admin_token}
        px.proxy.deadline_s = 1.0  # once both keys are out, the pool's 429 (with its message) comes back at once
        for i in range(10):
            if i == 1:  # a 5xx whose error text carries the key
                httpx.post(f"{server.url}/_sim/outage/oai?status=500")
            if i == 2:
                httpx.post(f"{server.url}/_sim/outage/oai?status=off")
            keep(http.post("/v1/chat/completions", json=CHAT, timeout=30))
            with http.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}, timeout=30) as r:
                r.read()
                keep(r)
            keep(http.get("/v1/models"))
        keep(http.get("/pooltui/state", headers=admin))
        keep(http.get("/metrics", headers=admin))
        keep(http.post("/pooltui/command", json={"provider": "oai", "action": "verify"}, headers=admin))
    statuses = {json.loads(s.split("\n", 1)[0]).get("x-pooltui-served-by") for s in seen}
    assert len(statuses) > 1
    for recorder in session.recorders:
        recorder.close()
    history.close()
    echoed = [s for s in seen if "you sent" in s or "request made with key" in s]
    assert len(echoed) >= 5, "the upstream did echo: the test sees what a careless provider sends"
    codes = [int(s) for s in (server.state.stats()["oai"]["prefixed"] | server.state.stats()["oai"]["bare"])]
    assert 429 in codes and 401 in codes and 500 in codes and 200 in codes

    outputs = [
        *seen,
        *(format_trace(t) for c in session.clients.values() for t in c.traces),
        *(repr(e) for c in session.clients.values() for e in c.events),
        json.dumps([k for c in session.clients.values() for k in c.primary.pool.snapshot()]),
        _cli("events", "--json"), _cli("events"), _cli("auth", "list"), _cli("verify", "--json"),
        _cli("traffic", "--provider", "oai", "--requests", "6", "--json", "--trace", "6"),
        _cli("usage", "--json"),
    ]
    files = [f for f in tmp_path.rglob("*") if f.is_file() and f.name != "secrets.json"]
    assert any(f.name == "history.db" for f in files)
    for planted in PLANTED:
        for text in outputs:
            assert planted not in text, f"{planted} leaked in: {text[:300]}"
        for f in files:
            assert planted.encode() not in f.read_bytes(), f"{planted} leaked into {f}"
        assert planted in (data / "secrets.json").read_text()  # its store, the one place it lives
