"""Odd upstreams through a real proxy (issue 26, item 4): each answer once, in the caller's dialect, capped."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from tests.odd_upstream import Answer, OddUpstream, completion, head
from tests.test_proxy import ProxyThread

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
MiB = 2**20


def post(px: ProxyThread, body: dict, **kw) -> httpx.Response:
    return httpx.post(f"http://127.0.0.1:{px.service.port}/v1/chat/completions", json=body, timeout=30, **kw)


async def json_to_a_stream(writer: asyncio.StreamWriter) -> None:
    body = completion()
    writer.write(head(content_type="application/json", length=len(body)) + body)


def test_a_stream_request_answered_with_json_is_relayed_once() -> None:
    with OddUpstream(json_to_a_stream) as up, ProxyThread({"odd": up.client()}) as px:
        r = post(px, {**CHAT, "stream": True})
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "plain"
        assert up.requests == 1  # never retried as "stream ended before any data" (each retry is billed)
        sdk = openai.OpenAI(base_url=f"http://127.0.0.1:{px.service.port}/v1", api_key="x", max_retries=0)
        sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert up.requests == 2


async def endless_prelude(writer: asyncio.StreamWriter) -> None:
    writer.write(head())
    for _ in range(320):  # 20 MiB of keep-alive comments before any data
        writer.write(b": keep-alive\n\n" * 4681)
        await writer.drain()
    writer.write(b'data: {"choices": []}\n\n')


def test_the_keep_alive_prelude_of_a_stream_is_capped_by_max_body() -> None:
    with OddUpstream(endless_prelude) as up, ProxyThread({"odd": up.client(max_body_bytes=MiB)}) as px:
        r = post(px, {**CHAT, "stream": True})
        assert r.status_code == 502, r.text[:300]
        error = r.json()["error"]
        assert error["code"] == "upstream_too_large" and "before its first event" in error["message"]
        assert up.requests == 1


async def one_endless_line(writer: asyncio.StreamWriter) -> None:
    writer.write(head() + b'data: {"choices": [{"index": 0, "delta": {"content": "a"}}]}\n\n')
    writer.write(b'data: {"choices": [{"index": 0, "delta": {"content": "')
    for _ in range(320):  # 20 MiB without a newline
        writer.write(b"x" * 65536)
        await writer.drain()


async def one_endless_event(writer: asyncio.StreamWriter) -> None:
    writer.write(head() + b'data: {"choices": [{"index": 0, "delta": {"content": "a"}}]}\n\n')
    for _ in range(320):  # 20 MiB of data lines and never the blank line that ends an event
        writer.write((b"data: " + b"x" * 1017 + b"\n") * 64)
        await writer.drain()


@pytest.mark.parametrize(("answer", "what"), [(one_endless_line, b"line"), (one_endless_event, b"event")])
def test_a_single_sse_line_or_event_is_capped_by_max_body(answer: Answer, what: bytes) -> None:
    with OddUpstream(answer) as up, ProxyThread({"odd": up.client(max_body_bytes=MiB)}) as px:
        with httpx.stream("POST", f"http://127.0.0.1:{px.service.port}/v1/chat/completions",
                          json={**CHAT, "stream": True}, timeout=30) as r:
            assert r.status_code == 200
            got = b"".join(r.iter_raw())
        assert len(got) < 4 * MiB  # ended soon after the cap, not relayed whole
        assert got.rstrip().endswith(b"}") and b"SSE " + what + b" longer than 1 MiB" in got[-300:]
        assert up.requests == 1


async def many_headers(writer: asyncio.StreamWriter) -> None:
    body = completion()
    extra = b"".join(b"x-odd-%d: v\r\n" % i for i in range(20000))
    writer.write(head(content_type="application/json", extra=extra, length=len(body)) + body)


def test_twenty_thousand_response_headers_give_one_error_in_the_callers_dialect() -> None:
    with OddUpstream(many_headers) as up, ProxyThread({"odd": up.client(max_attempts=2)}) as px:
        r = post(px, CHAT)
        assert r.status_code in (502, 503), r.text[:300]
        assert r.headers["content-type"] == "application/json" and "Traceback" not in r.text
        assert isinstance(r.json()["error"]["message"], str)


async def utf8_header(writer: asyncio.StreamWriter) -> None:
    body = completion()
    writer.write(head(content_type="application/json", length=len(body),
                      extra="x-note: caf\u00e9 \u2192 ok\r\n".encode()) + body)


def test_an_upstream_header_in_utf8_is_relayed_byte_for_byte() -> None:
    """A header value outside latin-1 once decoded (an arrow in UTF-8) was a 500: the proxy decoded it as UTF-8
    and could not encode it back; its bytes now go back as they came."""
    with OddUpstream(utf8_header) as up, ProxyThread({"odd": up.client()}) as px:
        r = post(px, CHAT)
        assert r.status_code == 200, r.text[:300]
        assert r.headers.raw and dict(r.headers.raw)[b"x-note"] == "caf\u00e9 \u2192 ok".encode()


async def whole_chunked(writer: asyncio.StreamWriter) -> None:
    """A completion without a content-length, chunked, its head and every chunk in one write (the client finds
    the whole body there with the head)."""
    body = completion()
    writer.write(head(content_type="application/json", extra=b"transfer-encoding: chunked\r\n")
                 + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))


def test_a_whole_answer_arrived_with_its_head_is_still_capped_to_the_byte() -> None:
    """No length declared: the cap counts the bytes, whether they are read as they come or found all there."""
    size = len(completion())
    with OddUpstream(whole_chunked) as up, ProxyThread({"odd": up.client(max_body_bytes=size)}) as px:
        exact = post(px, CHAT)
        assert exact.status_code == 200 and exact.content == completion(), exact.text
    with OddUpstream(whole_chunked) as up, ProxyThread({"odd": up.client(max_body_bytes=size - 1)}) as px:
        over = post(px, CHAT)
        assert over.status_code == 502 and "is larger than" in over.json()["error"]["message"], over.text
        assert up.requests == 1
