"""Issue 5.6: a total deadline per request, an idle-gap limit inside streams, a cap on held answers."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from pooltui.client.pool_client import PoolUnavailableError
from pooltui.sim.server import ThreadedServer
from tests.conftest import until
from tests.safety.helpers import client_on
from tests.test_proxy import ProxyThread

BIG = 50 * 2**20
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


async def trickle(request) -> StreamingResponse:
    async def forever():
        yield b'{"id": "x", "choices": ['
        while True:  # a byte every 0.2 s: each read is quick, the answer never ends
            await asyncio.sleep(0.2)
            yield b" "
    return StreamingResponse(forever(), 200, media_type="application/json")


async def stalls(request) -> StreamingResponse:
    async def events():
        yield b'data: {"id":"x","choices":[{"delta":{"content":"hi"}}]}\n\n'
        await asyncio.sleep(3600)  # then silence
    return StreamingResponse(events(), 200, media_type="text/event-stream")


async def big(request) -> Response:
    return Response(b'{"pad":"' + b"x" * (BIG - 10) + b'"}', 200, media_type="application/json")


async def sized(request) -> StreamingResponse:
    """An answer of ``?bytes=N`` streamed without a content-length, in 64 KiB chunks and the rest."""
    size = int(request.query_params["bytes"])

    async def chunks():
        yield b'{"pad":"' + b"x" * (2**16 - 8)
        left = size - 2**16 - 2
        while left > 0:
            yield b"x" * min(2**16, left)
            left -= 2**16
        yield b'"}'
    return StreamingResponse(chunks(), 200, media_type="application/json")


UPSTREAM = Starlette(routes=[Route("/sized/v1/chat/completions", sized, methods=["POST"]),
                             Route("/trickle/v1/chat/completions", trickle, methods=["POST"]),
                             Route("/stall/v1/chat/completions", stalls, methods=["POST"]),
                             Route("/big/v1/chat/completions", big, methods=["POST"])])


@pytest.fixture(scope="module")
def upstream():
    with ThreadedServer(UPSTREAM) as server:
        yield server


async def test_a_trickling_upstream_cannot_hold_a_request_past_its_deadline(upstream) -> None:
    client = client_on(f"{upstream.url}/trickle/v1", deadline_s=1.5)
    records: list = []
    client.request_listeners.append(records.append)
    t0 = time.perf_counter()
    with pytest.raises(PoolUnavailableError) as err:
        await client.send(client.chat_builder("hi"))
    took = time.perf_counter() - t0
    await client.aclose()
    assert err.value.kind == "deadline" and took < 3.0, took
    assert client.primary.pool.key("k").state.value == "ok", "a slow answer does not blame the key"
    steps = client.traces[-1].steps  # the attempt says it ran out of time, the request ends in an error step
    assert [(s.kind, s.detail.get("outcome")) for s in steps if s.kind in ("attempt", "error")] == \
        [("attempt", "deadline"), ("error", None)]
    assert "deadline reached" in steps[-1].detail["reason"]
    assert [(r.provider, r.outcome) for r in records] == [("up", "error")]  # the request's record names its provider


def test_through_the_proxy_a_trickle_becomes_a_504_in_time(upstream) -> None:
    with ProxyThread({"up": client_on(f"{upstream.url}/trickle/v1", deadline_s=1.5)}) as px:
        t0 = time.perf_counter()
        r = httpx.post(f"{px.service.url}/v1/chat/completions", json=CHAT, timeout=30)
        took = time.perf_counter() - t0
    assert r.status_code == 504 and took < 3.0, (r.status_code, took)
    assert "did not answer in time" in r.json()["error"]["message"]


def test_a_stream_that_goes_silent_ends_after_the_idle_gap(upstream) -> None:
    with ProxyThread({"up": client_on(f"{upstream.url}/stall/v1", stream_idle_s=1.0)}) as px:
        t0 = time.perf_counter()
        with httpx.stream("POST", f"{px.service.url}/v1/chat/completions", json={**CHAT, "stream": True},
                          timeout=30) as r:
            body = r.read().decode()
        took = time.perf_counter() - t0
    assert r.status_code == 200 and took < 3.0, took
    assert '"content":"hi"' in body and "upstream stream broke" in body


def test_a_50_mb_answer_passes_under_the_default_cap_and_a_lower_cap_gives_a_502(upstream) -> None:
    with ProxyThread({"up": client_on(f"{upstream.url}/big/v1")}) as px:
        r = httpx.post(f"{px.service.url}/v1/chat/completions", json=CHAT, timeout=60)
        assert r.status_code == 200 and len(r.content) == BIG
    with ProxyThread({"up": client_on(f"{upstream.url}/big/v1", max_body_bytes=8 * 2**20)}) as px:
        r = httpx.post(f"{px.service.url}/v1/chat/completions", json=CHAT, timeout=60)
        assert r.status_code == 502 and "declares 50.0 MiB (limit 8 MiB)" in r.json()["error"]["message"]
        big_request = httpx.post(f"{px.service.url}/v1/chat/completions", timeout=60,
                                 content=b'{"x":"' + b"y" * (9 * 2**20) + b'"}',
                                 headers={"content-type": "application/json"})
        assert big_request.status_code == 413


def test_an_answer_without_a_length_is_held_up_to_the_cap_exactly(upstream) -> None:
    """No content-length: the bytes that arrive are counted. Exactly the cap passes, one byte more is a 502."""
    with ProxyThread({"up": client_on(f"{upstream.url}/sized/v1", max_body_bytes=2**20)}) as px:
        url = f"{px.service.url}/v1/chat/completions"
        exact = httpx.post(url, json=CHAT, params={"bytes": 2**20}, timeout=30)
        assert exact.status_code == 200 and len(exact.content) == 2**20
        over = httpx.post(url, json=CHAT, params={"bytes": 2**20 + 1}, timeout=30)
        assert over.status_code == 502 and "larger than 1 MiB" in over.json()["error"]["message"]


def test_a_caller_gone_mid_stream_closes_its_upstream_stream_at_once(upstream) -> None:
    """The relay runs without a task per stream watching for a disconnect: the connection says when its caller
    goes, and the upstream stream (silent here for an hour) is closed then, its key's stream count back to 0."""
    client = client_on(f"{upstream.url}/stall/v1", stream_idle_s=3600)
    key = client.primary.pool.key("k")
    with ProxyThread({"up": client}) as px:
        with httpx.stream("POST", f"{px.service.url}/v1/chat/completions", json={**CHAT, "stream": True},
                          timeout=30) as r:
            chunks = r.iter_raw()  # held: a dropped iterator closes the connection
            assert b'"content":"hi"' in next(chunks)
            assert key.streams == 1
        asyncio.run(until(lambda: key.streams == 0, "the upstream stream closed after the caller went",
                          timeout_s=5))
