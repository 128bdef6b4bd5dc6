"""What a stream's end records, field by field: the tail's usage record (model, tokens, cost) once however often
it is closed, the key's tokens and spend, and an error event after data told as a transport event (issue 25,
item 6: survivors in client.pool_client.PoolStream.aclose)."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from pooltui.client.pool_client import PoolClient, PoolStream, Upstream, UsageRecord
from pooltui.core import EventKind, Pool
from pooltui.core.budget import Prices
from pooltui.providers.profiles import profile_for
from pooltui.sim.wiring import client_for_scenario
from tests.conftest import keys, make_scenario
from tests.odd_upstream import OddUpstream, head

pytestmark = pytest.mark.asyncio
MODEL = "gpt-sim-1"


async def opened(client: PoolClient, model: str | None = MODEL) -> PoolStream:
    """A chat stream opened through ``client`` (a stream, not a relayed error)."""
    stream = await client.open_stream(client.chat_builder("hi", stream=True, model=model))
    assert isinstance(stream, PoolStream)
    return stream


def pool_of(client: PoolClient) -> Pool:
    assert client.primary.pool is not None
    return client.primary.pool


async def test_a_stream_tail_is_recorded_once_with_its_model_tokens_and_cost(serve) -> None:
    sc = make_scenario({"name": "p", "keys": keys("k", 1)})
    server = serve(sc)
    usage: list[UsageRecord] = []
    async with client_for_scenario(sc, server, seed=3) as client:
        prices = client.prices = Prices({MODEL: (1.0, 2.0)})
        client.usage_listeners.append(usage.append)
        stream = await opened(client)
        _ = [chunk async for chunk in stream]
        await stream.aclose()
        await stream.aclose()  # closing twice counts once
        tin, tout = stream.tokens
        key = pool_of(client).key("k0")
        events = list(client.events)
    cost = prices.cost(MODEL, tin, tout)
    assert tin > 0 and tout > 0 and cost
    tails = [u for u in usage if u.tokens_in or u.tokens_out]
    assert [(u.provider, u.key, u.model, u.requests, u.ok, u.tokens_in, u.tokens_out, u.cost) for u in tails] == [
        ("p", "k0", MODEL, 0, 0, tin, tout, cost)]
    assert (key.stats.tokens_in, key.stats.tokens_out, key.stats.cost) == (tin, tout, cost)
    assert not [e for e in events if e.kind is EventKind.TRANSPORT]  # a clean end is no transport event


async def test_an_error_event_after_data_is_one_transport_event_and_its_input_is_still_priced(serve) -> None:
    sc = make_scenario({"name": "p", "dialect": "anthropic", "keys": [
        {"label": "late", "secret": "sk-test-late-0000000000001", "stream_fault": "after-data"}]})
    server = serve(sc)
    usage: list[UsageRecord] = []
    async with client_for_scenario(sc, server, "failover", seed=4) as client:
        prices = client.prices = Prices({MODEL: (1.0, 2.0)})
        client.usage_listeners.append(usage.append)
        stream = await opened(client)
        _ = [chunk async for chunk in stream]
        await stream.aclose()
        now = pool_of(client).clock.now()
        events = [e for e in client.events if e.kind is EventKind.TRANSPORT]
    assert [(e.provider, e.key, e.status, e.reason, e.action, e.request_id) for e in events] == [
        ("p", "late", None, "error event mid-stream", "passed to caller in-band", stream.trace.request_id)]
    assert events[0].ts <= now and events[0].ts > now - 60
    tin, tout = stream.tokens
    assert [(u.tokens_in, u.tokens_out, u.cost) for u in usage if u.tokens_in or u.tokens_out] == [
        (tin, tout, prices.cost(MODEL, tin, tout))]


async def no_output(writer: asyncio.StreamWriter) -> None:
    chunk = {"id": "c1", "object": "chat.completion.chunk", "model": MODEL,
             "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": "length"}]}
    tail = {"id": "c1", "object": "chat.completion.chunk", "model": MODEL, "choices": [],
            "usage": {"prompt_tokens": 7, "completion_tokens": 0, "total_tokens": 7}}
    writer.write(head() + b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in (chunk, tail))
                 + b"data: [DONE]\n\n")


async def test_a_stream_with_no_output_still_spends_its_input() -> None:
    usage: list[UsageRecord] = []
    with OddUpstream(no_output) as up:
        async with up.client() as client:
            prices = client.prices = Prices({MODEL: (1.0, 2.0)})
            client.usage_listeners.append(usage.append)
            stream = await opened(client)
            _ = [chunk async for chunk in stream]
            await stream.aclose()
            spent = pool_of(client).key("k0").stats.cost
    cost = prices.cost(MODEL, 7, 0)
    assert stream.tokens == (7, 0) and cost
    assert [(u.tokens_in, u.tokens_out, u.cost) for u in usage if u.tokens_in or u.tokens_out] == [(7, 0, cost)]
    assert spent == cost


async def test_a_keyless_local_stream_closes_and_records_its_usage() -> None:
    usage: list[UsageRecord] = []
    with OddUpstream(no_output) as up:
        profile = profile_for("openai", name="local", base_url=f"http://127.0.0.1:{up.port}/v1")
        async with PoolClient(Upstream(profile, None), deadline_s=20) as client:
            client.usage_listeners.append(usage.append)
            stream = await opened(client)
            _ = [chunk async for chunk in stream]
            await stream.aclose()  # no pool, no key: nothing to release, nothing raised
    assert stream.key is None and stream.tokens == (7, 0)
    assert [(u.provider, u.key, u.tokens_in) for u in usage if u.tokens_in] == [("local", "-", 7)]


async def test_a_stream_left_unclosed_settles_its_own_end_not_on_another_requests_list(serve) -> None:
    """A relay that drops its stream without closing it leaves the close to the garbage collector, whose aclose
    runs in whatever request's context is current then: the stream's end is still settled (its key's stream
    count back to 0), at once, not put on that other request's list (which may have been settled already)."""
    import gc

    from pooltui.client.after_answer import answer_first, settle_after

    sc = make_scenario({"name": "p", "keys": keys("k", 1)})
    server = serve(sc)
    async with client_for_scenario(sc, server, seed=5) as client:
        held: list[object] = []

        async def request_a() -> None:
            mine = answer_first()
            stream = await opened(client)
            chunks = aiter(stream)
            await anext(chunks)  # its first chunk relayed...
            settle_after(mine, logging.getLogger("test"))  # ...and what it deferred settled, as the proxy does
            held.extend((stream, chunks))  # then the relay is dropped without closing the stream

        await asyncio.create_task(request_a())
        key = pool_of(client).key("k0")
        assert key.streams == 1

        async def request_b() -> list:
            other = answer_first()
            held.clear()
            gc.collect()  # the stream's generator finalised while this request runs
            for _ in range(20):
                await asyncio.sleep(0.01)  # the finaliser's aclose task runs (in a copy of this context)
            return other

        other = await asyncio.create_task(request_b())
        assert other == [], other
        assert key.streams == 0, "the stream's end was not settled"
