"""Agents' probes never wait in the queue (issue 21, item 5): ``GET /v1/models`` is answered from the proxy's
catalog while every key of the pool cools, at once and with no key spent, in the caller's dialect."""

from __future__ import annotations

import threading
import time

import httpx

from pooltui.sim.wiring import client_for_scenario
from tests.conftest import keys, make_scenario
from tests.test_proxy import ProxyThread

CHAT = {"model": "gpt-sim-1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def sent(server) -> dict:
    return server.state.stats()


def test_models_is_answered_at_once_and_spends_no_key_while_every_key_cools(serve) -> None:
    sc = make_scenario({"name": "oai", "window_s": 2, "keys": keys("k", 2, rpm=1)})
    server = serve(sc)
    client = client_for_scenario(sc, server, seed=5, deadline_s=20)
    with ProxyThread({"oai": client}) as px, httpx.Client(base_url=px.service.url, timeout=30,
                                                          headers={"authorization": "Bearer x"}) as http:
        for _ in range(2):  # each key's one request per 2 s window
            assert http.post("/v1/chat/completions", json=CHAT).status_code == 200
        queued: dict[str, float] = {}

        def storm_request() -> None:  # both keys answer 429 and cool: this one waits in the queue for a reset
            started = time.perf_counter()
            queued["status"] = http.post("/v1/chat/completions", json=CHAT).status_code
            queued["took"] = time.perf_counter() - started

        waiter = threading.Thread(target=storm_request)
        waiter.start()
        deadline = time.monotonic() + 5
        while client.waiting == 0:  # the storm's request is queued: every key is cooling
            assert time.monotonic() < deadline, "the request never queued"
            time.sleep(0.005)
        assert client.primary.pool.usable() == 0
        before = sent(server)
        started = time.perf_counter()
        listing = http.get("/v1/models")
        answered_in = time.perf_counter() - started
        anthropic = http.get("/v1/models", headers={"anthropic-version": "2023-06-01"})
        assert sent(server) == before  # no key spent
        assert client.waiting == 1  # still queued when both were answered
        waiter.join(20)
        assert queued["status"] == 200
        assert answered_in < queued["took"] / 10, (answered_in, queued["took"])
    assert listing.status_code == 200 and listing.json()["object"] == "list"
    ids = [m["id"] for m in listing.json()["data"]]
    assert ids == [client.primary.profile.default_model, "gpt-sim-1"]  # what is known: default, seen in traffic
    assert all(m["object"] == "model" and isinstance(m["created"], int) for m in listing.json()["data"])
    body = anthropic.json()
    assert [m["id"] for m in body["data"]] == ids and body["has_more"] is False
    assert (body["first_id"], body["last_id"]) == (ids[0], ids[-1])
    assert all(m["type"] == "model" and m["display_name"] and m["created_at"].endswith("Z") for m in body["data"])


def test_models_lists_the_upstreams_own_models_once_a_free_key_fetched_them(serve) -> None:
    sc = make_scenario({"name": "ant", "dialect": "anthropic", "keys": keys("k", 1)})
    server = serve(sc)
    client = client_for_scenario(sc, server, seed=6)
    with ProxyThread({"ant": client}) as px, httpx.Client(base_url=px.service.url, timeout=10) as http:
        first = http.get("/v1/models", headers={"anthropic-version": "2023-06-01", "x-api-key": "x"})
        again = http.get("/v1/models", headers={"authorization": "Bearer x"})  # the openai shape, from the cache
    assert [m["id"] for m in first.json()["data"]] == ["claude-sim-1"]  # what the simulator lists
    assert first.json()["data"][0]["display_name"] == "Claude (simulated)"
    assert [m["id"] for m in again.json()["data"]] == ["claude-sim-1"] and again.json()["object"] == "list"
    assert sum(sum(c.values()) for c in server.state.stats()["ant"].values()) == 1  # one fetch, then cached
