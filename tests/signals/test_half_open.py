"""Issue 6.7: the outage breaker's trial request is always settled, whatever ends it."""

from __future__ import annotations

import asyncio

from pooltui.core.breaker import OutageBreaker
from pooltui.sim.wiring import client_for_scenario
from tests.conftest import keys, make_scenario


def _client(serve, **primary):
    sc = make_scenario({"name": "p", "window_s": 60, "keys": keys("k", 2), **primary},
                       {"name": "fb", "keys": keys("f", 1)})
    server = serve(sc)
    client = client_for_scenario(sc, server, seed=1, deadline_s=5)
    breaker = client.primary.breaker = OutageBreaker(client.clock, threshold=1, window_s=5, open_s=0.2)
    breaker.failure()  # an outage was suspected
    assert breaker.is_open
    return client, breaker, server


async def _after_the_pause(client) -> None:
    await asyncio.sleep(0.25)


async def test_a_trial_that_finds_no_key_is_released(serve) -> None:
    client, breaker, _ = _client(serve)
    for key in client.primary.pool.keys:
        client.primary.pool.disable(key.label)
    await _after_the_pause(client)
    resp = await client.chat("trial")
    assert resp.provider == "fb" and not breaker.probing
    for key in client.primary.pool.keys:
        client.primary.pool.enable(key.label)
    await _after_the_pause(client)
    assert (await client.chat("after")).provider == "p", "the provider is tried again, not skipped for good"
    await client.aclose()


async def test_a_trial_429_from_a_limited_pool_closes_it_and_traffic_returns(serve) -> None:
    client, breaker, server = _client(serve, keys=keys("k", 2, rpm=0))
    await _after_the_pause(client)
    resp = await client.chat("trial")  # both keys 429: the provider answers, it is no outage
    assert resp.provider == "fb"
    assert not breaker.is_open and not breaker.probing
    assert sum(server.state.stats()["p"]["k0"].values()) >= 1
    await client.aclose()


async def test_a_cancelled_trial_is_released(serve) -> None:
    client, breaker, _ = _client(serve, latency_ms=3000)
    await _after_the_pause(client)
    task = asyncio.create_task(client.chat("trial"))
    await asyncio.sleep(0.3)
    assert breaker.probing
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not breaker.probing, "a cancelled trial must not keep the provider closed for good"
    await client.aclose()
