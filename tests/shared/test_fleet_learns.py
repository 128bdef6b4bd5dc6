"""A limit learnt by a fleet is the key's, not a third of it (issue 27): three pools on one Redis share one key
whose answers state no budget (the simulator allows N per W). Each 429 is fitted from the fleet's sends in the
window, not this process's alone: fitted from its own third, each process learnt about N/3, the fleet kept the
smallest, and paced the key at a fraction of what it serves (bench fleet-limits: 90 served against 140 alone)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from pooltui.client.pool_client import PoolClient
from pooltui.providers.profiles import ApiRequest, ProviderProfile
from pooltui.sim.wiring import client_for_scenario
from pooltui.store.shared_sends import PER_ENTRY, send_times
from pooltui.store.shared_state import SharedKeyStates
from tests.conftest import keys, make_scenario

pytestmark = pytest.mark.timeout(90)
LIMIT, WINDOW_S, SECONDS = 8, 2.0, 12.0


def ask(profile: ProviderProfile) -> ApiRequest:
    return ApiRequest("POST", profile.chat_path, {"model": "gpt-4o-mini", "max_tokens": 8,
                                                  "messages": [{"role": "user", "content": "hi"}]})


async def drive(clients: list[PoolClient], rate: float, seconds: float) -> float:
    """Requests at ``rate`` per second (open loop), over the clients in turn; returns the seconds it took."""
    async def one(client: PoolClient) -> Any:
        return await client.send(ask)

    start, tasks, i = time.monotonic(), [], 0
    while (at := i / rate) < seconds:
        await asyncio.sleep(max(0.0, start + at - time.monotonic()))
        tasks.append(asyncio.create_task(one(clients[i % len(clients)])))
        i += 1
    await asyncio.gather(*tasks, return_exceptions=True)
    return time.monotonic() - start


async def test_three_processes_learn_the_keys_whole_limit_together(redis_server, serve) -> None:
    sc = make_scenario({"name": "p", "window_s": WINDOW_S, "success_headers": False, "latency_ms": [5, 20],
                        "keys": keys("k", 1, rpm=LIMIT)})
    server = serve(sc)
    stores, clients = [], []
    try:
        for _ in range(3):
            client = client_for_scenario(sc, server, "round-robin", seed=1, deadline_s=2.0)
            store = SharedKeyStates(redis_server.url, prefix="learns")
            assert client.primary.pool is not None
            store.attach(client.primary.pool)
            await store.start()
            stores.append(store)
            clients.append(await client.__aenter__())
        took = await drive(clients, 1.5 * LIMIT / WINDOW_S, SECONDS)
    finally:
        for client in clients:
            await client.__aexit__(None, None, None)
        for store in stores:
            await store.stop()
    seen = server.state.stats()["p"]["k0"]
    ok, limited = int(seen.get("200", 0)), int(seen.get("429", 0))
    capacity = LIMIT * took / WINDOW_S  # what the key serves in a sliding window over the run (a window's less)
    # the fleet paced by the key's limit, not a third of it: 0.9-1.0 of the capacity alone, 0.84 beside three proxy
    # processes of another test on two busy cores, 0.78 at a load average of 25; fitted from each process's own
    # sends it was 0.4
    assert ok >= 0.7 * capacity, (seen, took)
    # 429s: those that teach the estimates (each process's first, up to two, before the fleet's reaches it; a
    # third on two cores loaded by other runs: 8 of 48 once); the rate over a longer run is bench fleet-limits'
    # (1.02 calls per success over 60 s)
    assert limited <= 3 * len(clients) + 0.03 * ok, seen


@pytest.mark.parametrize("fields", [{"p": "x", "t": "-5"}, {"p": "x", "t": "12.5"}, {"t": "1000"},
                                    {"p": "x", "t": "1"}, {"p": "x", "t": str(10**6 + 5_000)}, "not a map",
                                    {"p": "x", "t": ",".join([str(10**6)] * (PER_ENTRY + 1))},
                                    {"p": "x", "t": f"{10**6},"}, {"p": "x", "t": "", "r": "x"}])
def test_a_planted_send_is_refused(fields) -> None:
    """Sends read from Redis are network input: no time outside the retention or in the future, no odd field."""
    assert send_times({"p": "other", "t": f"{10**6},{10**6 - 5}", "r": ""}, "mine", 10**6) == ([10**6, 10**6 - 5], [])
    assert send_times({"p": "other", "t": "", "r": str(10**6)}, "mine", 10**6) == ([], [10**6])
    assert send_times({"p": "mine", "t": str(10**6)}, "mine", 10**6) == ([], [])  # this process's own: known
    with pytest.raises(ValueError):
        send_times(fields, "mine", 10**6)
