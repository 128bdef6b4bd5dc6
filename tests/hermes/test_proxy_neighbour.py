"""The proxy is a good neighbour for Hermes (issue 9, item 4): the metadata paths Hermes probes before each
prompt are answered by the proxy itself, with no key spent and nothing queued, even in a storm."""

from __future__ import annotations

import httpx

from pooltui.sim.wiring import client_for_scenario
from tests.conftest import keys, make_scenario
from tests.test_proxy import ProxyThread

PROBES = [("GET", "/v1/props"), ("GET", "/props"), ("GET", "/version"), ("GET", "/api/tags"),
          ("POST", "/api/show"), ("GET", "/api/v1/models")]


def test_hermes_probes_are_answered_here_even_while_every_key_cools(serve) -> None:
    sc = make_scenario({"name": "oai", "window_s": 60, "keys": keys("k", 2, rpm=1)})
    server = serve(sc)
    client = client_for_scenario(sc, server, "failover", seed=1)
    pool = client.primary.pool
    stats_url = server.base_url("oai").removesuffix("/oai/v1") + "/_sim/stats"
    with ProxyThread({"oai": client}) as px:
        px.proxy.deadline_s = 30.0  # anything that queued for a key would wait here for ~60 s
        base = px.service.url
        with httpx.Client(timeout=5) as http:  # a probe held in the queue would time out
            for _ in range(2):
                assert http.post(f"{base}/v1/chat/completions", json={
                    "model": "m", "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
            served = httpx.get(stats_url).json()
            picks = sum(k.stats.requests for k in pool.keys)
            assert pool.usable() == 0  # a storm: both keys spent, cooling for about a minute
            for method, path in PROBES:
                r = http.request(method, base + path, json={"model": "m"} if method == "POST" else None)
                assert r.status_code == 404, (path, r.text)
                assert "metadata probe" in r.json()["error"]["message"]
            r = http.get(f"{base}/v1/models/gpt-4o-mini", headers={"authorization": "Bearer x"})
            assert r.status_code == 200 and r.json() == {"id": "gpt-4o-mini", "object": "model", "created": 0,
                                                         "owned_by": "pooltui"}
            r = http.get(f"{base}/v1/models/claude-x", headers={"anthropic-version": "2023-06-01"})
            assert r.json()["type"] == "model" and r.json()["id"] == "claude-x"
        assert httpx.get(stats_url).json() == served  # the simulator saw none of them
        assert sum(k.stats.requests for k in pool.keys) == picks  # and no key was picked for them
        assert all(k.stats.request_errors == 0 for k in pool.keys)
