"""The two senders of an attempt (client/upstream_http.py): aiohttp directly (the default) and a plugged httpx
client give the same answer; an upstream that goes silent is a transport failure of that attempt, not an error
out of the client."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import pytest

from pooltui.client.http1 import Http1Sender
from pooltui.client.pool_client import PoolClient, PoolUnavailableError, Upstream
from pooltui.client.upstream_http import AiohttpSender, HttpxSender, Sender
from pooltui.core.cooldown import Backoff
from pooltui.core.pool import KeySpec, Pool
from pooltui.providers.profiles import profile_for
from tests.conftest import keys, make_scenario
from tests.odd_upstream import OddUpstream

SECRET_HEADER = "authorization"


async def _exchange(sender: Sender, url: str, secret: str) -> tuple[int, httpx.Headers, bytes]:
    body = json.dumps({"model": "gpt-sim-1", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})
    answer = await sender.open("POST", url, body.encode(), {SECRET_HEADER: f"Bearer {secret}",
                                                             "content-type": "application/json"}, None)
    try:
        content = b"".join([chunk async for chunk in answer.aiter_bytes()])
    finally:
        await answer.aclose()
    return answer.status_code, answer.headers, content


def test_both_senders_give_the_same_answer(serve) -> None:
    sc = make_scenario({"name": "oai", "dialect": "openai", "keys": keys("k", 1)})
    server = serve(sc)
    url = server.base_url("oai") + "/chat/completions"
    secret = sc.providers[0].keys[0].secret

    async def every() -> list[tuple[int, httpx.Headers, bytes]]:
        fast, ours = AiohttpSender(), Http1Sender()
        async with httpx.AsyncClient() as http:
            try:
                return [await _exchange(fast, url, secret), await _exchange(HttpxSender(http), url, secret),
                        await _exchange(ours, url, secret), await _exchange(ours, url, secret)]  # kept alive
            finally:
                await fast.aclose()
                await ours.aclose()

    import uvloop  # the proxy's loop: ours must serve on it as on asyncio's

    for run in (asyncio.run, uvloop.run):
        (s1, h1, b1), *others = run(every())
        assert s1 == 200 and all(s == 200 for s, _, _ in others)
        for _, h2, b2 in others:
            assert json.loads(b1)["choices"][0]["message"]["role"] == json.loads(b2)["choices"][0]["message"]["role"]
            assert set(h1.keys()) == set(h2.keys()) and h1["content-type"] == h2["content-type"]
        assert len({h["x-request-id"] for _, h, _ in [(s1, h1, b1), *others]}) == 4  # four requests, each answered


_SILENCES_OVER = threading.Semaphore(0)


async def _silent(writer: asyncio.StreamWriter) -> None:
    try:
        await asyncio.sleep(1.5)  # headers never come (the client's read timeout is 0.3 s)
    finally:
        _SILENCES_OVER.release()


@pytest.mark.parametrize("make", [AiohttpSender, Http1Sender], ids=["aiohttp", "http1"])
def test_a_silent_upstream_is_a_transport_failure_after_the_read_timeout(make: type[AiohttpSender | Http1Sender]
                                                                         ) -> None:
    """aiohttp's read timeout is a TimeoutError too: it must count as the attempt's transport failure (the key
    reported, the next attempt made), not escape the client as if the request's deadline had passed."""
    with OddUpstream(_silent) as up:
        profile = profile_for("openai", name="odd", base_url=f"http://127.0.0.1:{up.port}/v1")

        async def run() -> PoolClient:
            client = PoolClient(Upstream(profile, Pool("odd", [KeySpec("k0", "sk-test-silent-0000000000000001")])),
                                sender=make(read_s=0.3), deadline_s=4, max_attempts=2,
                                backoff=Backoff(base_s=0.05, max_s=0.1, max_retries=1))
            async with client:
                with pytest.raises(PoolUnavailableError):
                    await client.chat("hi")
            return client

        client = asyncio.run(run())
        for _ in range(up.requests):  # each silence ends before the upstream stops (no handler left pending)
            assert _SILENCES_OVER.acquire(timeout=10)
    attempts = [s for s in client.traces[-1].steps if s.kind == "attempt"]
    assert attempts and all(s.detail["outcome"] == "transport" for s in attempts)
    assert "Timeout" in attempts[0].detail["reason"]


def test_every_client_shares_one_tls_context_built_once() -> None:
    """Building a TLS context loads the certificate store: the sender and the httpx transport of every client use
    the process's one context, never one each (two per client before)."""
    from pooltui.client.upstream_http import default_http, tls_context

    async def contexts() -> list[object]:
        (http_a, sender_a), (http_b, sender_b) = default_http(), default_http()
        try:
            return [sender_a._ssl, sender_b._ssl, http_a._transport.ssl_context, http_b._transport.ssl_context]
        finally:
            await http_a.aclose()
            await http_b.aclose()

    found = asyncio.run(contexts())
    assert all(ctx is tls_context() for ctx in found)


def test_an_answers_headers_are_what_httpx_would_hold() -> None:
    """``raw_headers`` (the aiohttp answer's headers, built without httpx's per-line checks) reads as
    ``httpx.Headers`` of the same lines: case-insensitive, repeated names kept and joined, bytes kept as sent."""
    from pooltui.client.upstream_http import raw_headers

    raw = [(b"Content-Type", b"application/json"), (b"X-RateLimit-Remaining-Requests", b"9"),
           (b"set-cookie", b"a=1"), (b"Set-Cookie", b"b=2"), (b"X-Note", "caf\u00e9".encode())]
    ours, theirs = raw_headers(raw), httpx.Headers(raw)
    assert ours.raw == theirs.raw
    assert ours.multi_items() == theirs.multi_items()
    assert list(ours.items()) == list(theirs.items())
    assert ours.get_list("set-cookie") == ["a=1", "b=2"] == theirs.get_list("SET-COOKIE")
    assert ours["x-ratelimit-remaining-requests"] == "9" and ours.encoding == theirs.encoding
