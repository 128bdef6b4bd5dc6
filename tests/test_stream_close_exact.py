"""What a stream's end records, field by field: the tail's usage record (model, tokens, cost) once however often
it is closed, the key's tokens and spend, and an error event after data told as a transport event (issue 25,
item 6: survivors in client.pool_client.PoolStream.aclose)."""

from __future__ import annotations

import pytest

from pooltui.client.pool_client import UsageRecord
from pooltui.core import Backoff, EventKind
from pooltui.core.budget import Prices
from pooltui.sim.wiring import client_for_scenario
from tests.conftest import keys, make_scenario

pytestmark = pytest.mark.asyncio
MODEL = "gpt-sim-1"


async def test_a_stream_tail_is_recorded_once_with_its_model_tokens_and_cost(serve) -> None:
    sc = make_scenario({"name": "p", "keys": keys("k", 1)})
    server = serve(sc)
    usage: list[UsageRecord] = []
    async with client_for_scenario(sc, server, seed=3) as client:
        prices = client.prices = Prices({MODEL: (1.0, 2.0)})
        client.usage_listeners.append(usage.append)
        stream = await client.open_stream(client.chat_builder("hello there", stream=True, model=MODEL))
        _ = [chunk async for chunk in stream]
        await stream.aclose()
        await stream.aclose()  # closing twice counts once
        tin, tout = stream.tokens
        key = client.primary.pool.key("k0")
        events = list(client.events)
    cost = prices.cost(MODEL, tin, tout)
    assert tin > 0 and tout > 0 and cost
    tails = [u for u in usage if u.tokens_in or u.tokens_out]
    assert [(u.provider, u.key, u.model, u.requests, u.ok, u.tokens_in, u.tokens_out, u.cost) for u in tails] == [
        ("p", "k0", MODEL, 0, 0, tin, tout, cost)]
    assert (key.stats.tokens_in, key.stats.tokens_out, key.stats.cost) == (tin, tout, cost)
    assert not [e for e in events if e.kind is EventKind.TRANSPORT]  # a clean end is no transport event


async def test_an_error_event_after_data_is_one_transport_event_on_its_key(serve) -> None:
    sc = make_scenario({"name": "p", "dialect": "anthropic", "keys": [
        {"label": "late", "secret": "sk-test-late-0000000000001", "stream_fault": "after-data"}]})
    server = serve(sc)
    async with client_for_scenario(sc, server, "failover", seed=4) as client:
        client.backoff = Backoff(base_s=0.01, max_s=0.02)
        stream = await client.open_stream(client.chat_builder("hi", stream=True))
        _ = [chunk async for chunk in stream]
        await stream.aclose()
        now = client.primary.pool.clock.now()
        events = [e for e in client.events if e.kind is EventKind.TRANSPORT]
    assert [(e.provider, e.key, e.status, e.reason, e.action, e.request_id) for e in events] == [
        ("p", "late", None, "error event mid-stream", "passed to caller in-band", stream.trace.request_id)]
    assert events[0].ts <= now and events[0].ts > now - 60
