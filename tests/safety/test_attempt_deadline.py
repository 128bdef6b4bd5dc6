"""The attempt's deadline on our own HTTP/1.1 sender (``Http1Sender.open``'s ``deadline_s``, kept by the answer's
read timer instead of an ``asyncio.timeout`` per attempt): a 504 when the request's time is up, never confused
with a read timeout (a transport failure retried on another key), lifted once a stream is handed on."""

from __future__ import annotations

import asyncio
import time

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from pooltui.client.http1 import Http1Sender
from pooltui.client.pool_client import PoolClient, PoolUnavailableError, Upstream
from pooltui.core import KeySpec, Pool
from pooltui.providers.profiles import profile_for
from pooltui.sim.server import ThreadedServer

EVENT = b'data: {"id":"x","choices":[{"delta":{"content":"hi"}}]}\n\n'
CALLS = {"first": 0}


async def flows(request) -> StreamingResponse:
    """Ten events 0.2 s apart (2 s in all), then the end."""
    async def events():
        for _ in range(10):
            yield EVENT
            await asyncio.sleep(0.2)
        yield b"data: [DONE]\n\n"
    return StreamingResponse(events(), 200, media_type="text/event-stream")


async def pings(request) -> StreamingResponse:
    """A stream's head, then a comment every 0.2 s and never a data event."""
    async def events():
        while True:
            yield b": ping\n\n"
            await asyncio.sleep(0.2)
    return StreamingResponse(events(), 200, media_type="text/event-stream")


async def silent_first(request) -> JSONResponse:
    """The first request gets no answer for a minute; every later one is answered at once."""
    CALLS["first"] += 1
    if CALLS["first"] == 1:
        await asyncio.sleep(60)
    return JSONResponse({"id": "x", "choices": [{"message": {"content": "ok"}}]})


async def stall(request) -> JSONResponse:
    await asyncio.sleep(60)
    return JSONResponse({})


UPSTREAM = Starlette(routes=[Route("/flows/v1/chat/completions", flows, methods=["POST"]),
                             Route("/pings/v1/chat/completions", pings, methods=["POST"]),
                             Route("/first/v1/chat/completions", silent_first, methods=["POST"]),
                             Route("/stall/v1/chat/completions", stall, methods=["POST"])])


@pytest.fixture(scope="module")
def upstream():
    with ThreadedServer(UPSTREAM) as server:
        yield server


def client_on(base_url: str, keys: int = 1, **kw) -> PoolClient:
    profile = profile_for("openai-compatible", name="up", base_url=base_url)
    specs = [KeySpec(f"k{i}", f"sk-test-deadline-00000000000{i}") for i in range(keys)]
    return PoolClient(Upstream(profile, Pool("up", specs)), **kw)


async def test_a_stream_that_flows_past_the_deadline_is_not_cut(upstream) -> None:
    client = client_on(f"{upstream.url}/flows/v1", deadline_s=1.0)
    assert isinstance(client.sender, Http1Sender)
    stream = await client.open_stream(client.chat_builder("hi", stream=True))
    body = b"".join([chunk async for chunk in stream])
    await client.aclose()
    assert stream.interrupted is None, stream.interrupted
    assert body.count(b'"content":"hi"') == 10 and body.endswith(b"data: [DONE]\n\n")


async def test_a_stream_without_a_first_event_ends_at_the_deadline(upstream) -> None:
    """Each read is quick (a comment every 0.2 s), the first data event never comes: the deadline ends it."""
    client = client_on(f"{upstream.url}/pings/v1", deadline_s=1.0)
    t0 = time.perf_counter()
    with pytest.raises(PoolUnavailableError) as err:
        await client.open_stream(client.chat_builder("hi", stream=True))
    took = time.perf_counter() - t0
    await client.aclose()
    assert err.value.kind == "deadline" and took < 5.0, (err.value.kind, took)
    assert client.primary.pool.key("k0").state.value == "ok", "the request's time is up: not the key's fault"


async def test_a_read_timeout_is_retried_on_another_key_not_taken_for_the_deadline(upstream) -> None:
    CALLS["first"] = 0
    client = client_on(f"{upstream.url}/first/v1", keys=2, deadline_s=20.0, sender=Http1Sender(read_s=0.5))
    resp = await client.send(client.chat_builder("hi"))
    await client.aclose()
    assert resp.status == 200
    attempts = [(s.detail.get("outcome"), s.detail.get("reason", "")) for s in client.traces[-1].steps
                if s.kind == "attempt"]
    assert [o for o, _ in attempts] == ["transport", "ok"], attempts
    assert "read timeout" in attempts[0][1]


async def test_a_wait_for_a_free_connection_ends_at_the_deadline(upstream) -> None:
    """One connection allowed, held by a stalled request: the next request's wait for it ends by its deadline."""
    sender = Http1Sender(max_connections=1)
    holder = client_on(f"{upstream.url}/stall/v1", deadline_s=30.0, sender=sender)
    waiter = client_on(f"{upstream.url}/stall/v1", deadline_s=1.0, sender=sender)
    held = asyncio.ensure_future(holder.send(holder.chat_builder("hi")))
    try:
        while not sender._open:
            await asyncio.sleep(0.01)
        t0 = time.perf_counter()
        with pytest.raises(PoolUnavailableError) as err:
            await waiter.send(waiter.chat_builder("hi"))
        took = time.perf_counter() - t0
        assert err.value.kind == "deadline" and took < 5.0, (err.value.kind, took)
    finally:
        held.cancel()
        await asyncio.gather(held, return_exceptions=True)
        await sender.aclose()
        await holder.aclose()
        await waiter.aclose()
