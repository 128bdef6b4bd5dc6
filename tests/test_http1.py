"""Our HTTP/1.1 client for the upstream attempts (client/http1.py, issue 31): what it must keep of aiohttp's
behaviour, against real sockets: a kept connection the upstream closed is replaced once before the answer, the
connection cap holds, answers framed by the connection's end or gzip-encoded are read whole, a header that would
inject a line is refused before anything is sent."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading

import pytest

from pooltui.client.http1 import Http1Sender
from pooltui.client.pool_client import PoolClient, Upstream
from pooltui.core.pool import KeySpec, Pool
from pooltui.providers.profiles import profile_for
from tests.conftest import until
from tests.odd_upstream import OddUpstream, completion, head, read_request

SECRET = "sk-test-http1-00000000000000000000001"


class KeptThenClosed(OddUpstream):
    """Answers the first request of each connection with keep-alive, then closes that connection when its next
    request comes, without a byte of answer (a server that dropped an idle connection just as it was reused)."""

    def __init__(self) -> None:
        super().__init__(self._answer)
        self.connections = 0
        self.ended = 0  # connections that came to their end (either side closed them)

    async def _answer(self, writer: asyncio.StreamWriter) -> None:
        body = completion()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                     % (len(body), body))

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await read_request(reader)
            self.requests += 1
            await self._answer(writer)
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")  # the next request on this connection: dropped unanswered
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.ended += 1
            writer.close()


def _client(port: int) -> PoolClient:
    profile = profile_for("openai", name="odd", base_url=f"http://127.0.0.1:{port}/v1")
    return PoolClient(Upstream(profile, Pool("odd", [KeySpec("k0", SECRET)])), deadline_s=10, max_attempts=1)


def test_a_kept_connection_the_upstream_closed_is_replaced_once_before_the_answer() -> None:
    """Not the key's fault: no transport failure reported, each request answered by its first attempt."""
    with KeptThenClosed() as up:
        async def run() -> PoolClient:
            client = _client(up.port)
            async with client:
                for _ in range(3):
                    assert (await client.chat("hi")).status == 200
            return client

        client = asyncio.run(run())
    assert up.requests == 3 and up.connections == 3  # each reuse found its connection closed and opened another
    for trace in client.traces:
        assert [s.detail["outcome"] for s in trace.steps if s.kind == "attempt"] == ["ok"]


class KeptThenSilent(KeptThenClosed):
    """Answers the first request of each connection with keep-alive, then reads the next one and says nothing (an
    upstream that took the request and hangs: the request may well be running there)."""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                await read_request(reader)
                self.requests += 1
                if self.requests > 1:
                    await reader.read()  # silent until the caller goes
                    return
                await self._answer(writer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.ended += 1
            writer.close()


def test_a_read_timeout_on_a_kept_connection_is_not_sent_again_on_a_new_one() -> None:
    """A silent upstream that had the request is not a connection it had closed: the request is not sent a second
    time (a POST run twice upstream is billed twice), and the caller waits one read timeout, not two."""
    from pooltui.client.http1 import UpstreamTimeout

    with KeptThenSilent() as up:
        async def run() -> float:
            sender = Http1Sender(read_s=0.4)
            url = f"http://127.0.0.1:{up.port}/v1/chat/completions"
            try:
                first = await sender.open("POST", url, b"{}", {}, None)
                assert json.loads(b"".join([c async for c in first.aiter_bytes()]))["id"] == "c1"
                loop = asyncio.get_running_loop()
                started = loop.time()
                with pytest.raises(UpstreamTimeout):
                    await sender.open("POST", url, b"{}", {}, None)  # on the kept connection
                return loop.time() - started
            finally:
                await sender.aclose()

        waited = asyncio.run(run())
    assert up.requests == 2 and up.connections == 1, (up.requests, up.connections)
    assert waited < 0.75, waited  # one read timeout (0.4 s), not two


def test_closing_the_client_closes_the_connections_it_kept_alive() -> None:
    """A client's own sender goes with it: the upstream sees its kept connection end at the client's close."""
    with KeptThenClosed() as up:
        async def run() -> None:
            async with _client(up.port) as client:
                assert (await client.chat("hi")).status == 200
                await asyncio.sleep(0.2)
                assert up.ended == 0  # kept alive for the next request
            await until(lambda: up.ended == 1, "the upstream sees the kept connection end", timeout_s=5)
        asyncio.run(run())


def test_no_more_connections_open_than_the_cap() -> None:
    open_now = peak = 0

    async def slow(writer: asyncio.StreamWriter) -> None:
        nonlocal open_now, peak
        open_now += 1
        peak = max(peak, open_now)
        await asyncio.sleep(0.1)
        body = completion()
        writer.write(head(content_type="application/json", length=len(body)) + body)
        open_now -= 1

    with OddUpstream(slow) as up:
        async def run() -> list[int]:
            sender = Http1Sender(max_connections=2)
            url = f"http://127.0.0.1:{up.port}/v1/chat/completions"

            async def one() -> int:
                answer = await sender.open("POST", url, b"{}", {"content-type": "application/json"}, None)
                body = b"".join([c async for c in answer.aiter_bytes()])
                assert json.loads(body)["object"] == "chat.completion"
                return answer.status_code

            try:
                return await asyncio.gather(*(one() for _ in range(6)))
            finally:
                await sender.aclose()

        assert asyncio.run(run()) == [200] * 6
    assert peak == 2 and up.requests == 6


@pytest.mark.parametrize("framing", ["connection-end", "gzip"])
def test_answers_framed_by_the_connections_end_or_gzipped_are_read_whole(framing: str) -> None:
    body = completion()

    async def answer(writer: asyncio.StreamWriter) -> None:
        if framing == "gzip":
            packed = gzip.compress(body)
            writer.write(head(content_type="application/json", length=len(packed),
                              extra=b"content-encoding: gzip\r\n") + packed)
        else:  # no length, no chunks: the body ends when the connection does
            writer.write(head(content_type="application/json") + body[:20])
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(body[20:])

    with OddUpstream(answer) as up:
        async def run() -> bytes:
            sender = Http1Sender()
            try:
                got = await sender.open("POST", f"http://127.0.0.1:{up.port}/v1/chat/completions", b"{}", {}, None)
                return b"".join([c async for c in got.aiter_bytes()])
            finally:
                await sender.aclose()

        assert asyncio.run(run()) == body


def test_a_header_that_would_inject_a_line_is_refused_before_anything_is_sent() -> None:
    async def never(writer: asyncio.StreamWriter) -> None:
        writer.write(head(length=0))

    with OddUpstream(never) as up:
        async def run() -> None:
            sender = Http1Sender()
            try:
                with pytest.raises(ValueError, match="line break"):
                    await sender.open("POST", f"http://127.0.0.1:{up.port}/v1/x", b"{}",
                                      {"x-note": "a\r\nx-evil: 1"}, None)
            finally:
                await sender.aclose()

        asyncio.run(run())
        assert up.requests == 0


def test_requests_waiting_at_the_cap_take_a_connection_that_comes_back_idle(serve) -> None:
    """One connection allowed, four requests at once on a keep-alive upstream: each waits for the connection the
    one before gives back (a connection returned idle wakes a waiter, not only one that closes)."""
    from tests.conftest import keys, make_scenario

    sc = make_scenario({"name": "oai", "dialect": "openai", "keys": keys("k", 1)})
    server = serve(sc)
    url = server.base_url("oai") + "/chat/completions"
    headers = {"authorization": f"Bearer {sc.providers[0].keys[0].secret}", "content-type": "application/json"}
    body = json.dumps({"model": "gpt-sim-1", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})

    async def run() -> tuple[list[int], int]:
        sender = Http1Sender(max_connections=1)

        async def one() -> int:
            answer = await sender.open("POST", url, body.encode(), headers, None)
            async for _ in answer.aiter_bytes():
                pass
            return answer.status_code

        try:
            statuses = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(4))), 10)
            return statuses, len(sender._open)
        finally:
            await sender.aclose()

    assert asyncio.run(run()) == ([200] * 4, 1)


def test_events_read_together_are_handed_on_as_one_chunk() -> None:
    """A stream's events that came in one read go on in one piece (one scan, one write to the caller), in order."""
    events = [b'data: {"n": %d}\n\n' % i for i in range(12)]

    async def stream(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                     + b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n")

    async def main() -> list[bytes]:
        sender = Http1Sender()
        try:
            answer = await sender.open("POST", f"http://127.0.0.1:{up.port}/v1/chat/completions", b"{}", {}, None)
            return [c async for c in answer.aiter_raw()]
        finally:
            await sender.aclose()

    with OddUpstream(stream) as up:
        assert asyncio.run(main()) == [b"".join(events)]


@pytest.mark.parametrize("gap_s", [0.08, 0.5])
def test_the_read_timeout_is_per_wait_not_for_the_whole_answer(gap_s: float) -> None:
    """A body that trickles in (each piece well within the read timeout, all of them past it) is read whole; a
    silence longer than the read timeout between two pieces fails the answer as a read timeout."""
    from pooltui.client.http1 import UpstreamTimeout

    pieces = [b"data: %d\n\n" % i for i in range(6 if gap_s < 0.25 else 1)]
    over = threading.Event()

    async def answer(writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(head())
            for piece in pieces:
                await writer.drain()
                await asyncio.sleep(gap_s)  # the upstream's pace, not the test waiting on something
                writer.write(piece)
        finally:
            over.set()

    with OddUpstream(answer) as up:
        async def run() -> bytes:
            sender = Http1Sender(read_s=0.25)
            try:
                got = await sender.open("POST", f"http://127.0.0.1:{up.port}/v1/chat/completions", b"{}", {}, None)
                return b"".join([c async for c in got.aiter_bytes()])
            finally:
                await sender.aclose()

        if gap_s < 0.25:
            assert asyncio.run(run()) == b"".join(pieces)  # 0.48 s in all, past the 0.25 s timeout
        else:
            with pytest.raises(UpstreamTimeout):
                asyncio.run(run())
        assert over.wait(5)  # the upstream's answer is over before it stops


def test_a_heads_lines_are_the_same_made_once_or_remembered_and_an_injection_is_refused_every_time() -> None:
    """Each (name, value) line is made and checked once while remembered: the head is the same bytes the first
    time and after, a value that would inject a line is refused however often it comes and whatever clean value
    its name had before, and past the lines remembered it is all the same."""
    from pooltui.client.http1 import _LINES, _LINES_KEPT, _origin_of

    origin = _origin_of("http://127.0.0.1:9/v1/x")
    headers = {"authorization": "Bearer sk-test", "User-Agent": "mine/1", "content-length": "99", "x-note": "clean"}
    expected = (b"POST /v1/x HTTP/1.1\r\nHost: 127.0.0.1:9\r\nauthorization: Bearer sk-test\r\nUser-Agent: mine/1\r\n"
                b"x-note: clean\r\nContent-Length: 2\r\n\r\n")
    for _ in range(2):
        assert Http1Sender._head("POST", origin, b"{}", headers) == expected
        for bad in ({"x-note": "a\r\nx-evil: 1"}, {"x-evil\r\nx": "1"}, {"x-a:b": "1"}):
            with pytest.raises(ValueError, match="line break"):
                Http1Sender._head("POST", origin, b"{}", bad)
    for n in range(_LINES_KEPT + 10):
        Http1Sender._head("GET", origin, None, {f"x-{n}": "v"})
    assert len(_LINES) <= _LINES_KEPT
    assert Http1Sender._head("POST", origin, b"{}", headers) == expected
    assert Http1Sender._head("GET", origin, None, {"accept": "*/*"}) == (
        b"GET /v1/x HTTP/1.1\r\nHost: 127.0.0.1:9\r\naccept: */*\r\nUser-Agent: pooltui\r\n\r\n")
