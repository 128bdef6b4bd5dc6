"""An answer's head and its read timeout on our HTTP/1.1 client (client/http1.py), against real sockets: the
header caps hold however the head is read (one read, many, after an interim answer); the declared length is what
the headers say; the read timeout (one timer a connection, kept across its answers) follows each wait's own
deadline and goes with its connection."""

from __future__ import annotations

import asyncio
import time

import pytest

from pooltui.client.http1 import MAX_HEAD_BYTES, MAX_HEADERS, Http1Sender, UpstreamError, UpstreamTimeout
from tests.odd_upstream import OddUpstream, completion, read_request


def _lines(n: int, size: int = 1) -> bytes:
    return b"".join(b"x-odd-%d: %s\r\n" % (i, b"v" * size) for i in range(n))


async def _get(port: int, sender: Http1Sender | None = None, timeout_s: float | None = None) -> tuple[int, bytes]:
    own = sender is None
    sender = sender or Http1Sender()
    try:
        answer = await sender.open("POST", f"http://127.0.0.1:{port}/v1/chat/completions", b"{}", {}, timeout_s)
        return answer.status_code, b"".join([c async for c in answer.aiter_bytes()])
    finally:
        if own:
            await sender.aclose()


class Held(OddUpstream):
    """An upstream whose connections last until the client closes them: on leaving, it waits (5 s at most) for
    the client's closes to reach it, so no handler is left pending when its loop stops."""

    def __init__(self) -> None:
        super().__init__(self._unused)
        self.active = 0

    async def _unused(self, writer: asyncio.StreamWriter) -> None:
        return None

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.active += 1
        try:
            await self._serve_one(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self.active -= 1

    def __exit__(self, *exc: object) -> None:
        deadline = time.monotonic() + 5
        while self.active and time.monotonic() < deadline:
            time.sleep(0.01)
        super().__exit__(*exc)


class Pieces(Held):
    """Answers with ``whole`` in ``pieces`` writes, each its own read; then holds the connection until the client
    closes it (a head without its end stays unended)."""

    def __init__(self, whole: bytes, pieces: int) -> None:
        super().__init__()
        self.whole, self.pieces = whole, pieces

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        self.requests += 1
        step = -(-len(self.whole) // self.pieces)
        for at in range(0, len(self.whole), step):
            writer.write(self.whole[at:at + step])
            await writer.drain()
            await asyncio.sleep(0.01)
        await reader.read()  # until the client closes


def _answer_with(extra: bytes, interim: bytes = b"", pieces: int = 1, then_stall: bool = False) -> Pieces:
    body = completion()
    return Pieces(interim + b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % len(body)
                  + extra + (b"" if then_stall else b"\r\n" + body), pieces)


@pytest.mark.parametrize(("case", "extra", "interim", "pieces", "stall"), [
    ("lines, one read", _lines(MAX_HEADERS), b"", 1, False),
    ("bytes, one read", _lines(3, 30 * 1024), b"", 1, False),
    ("bytes, many reads, the head never ending", _lines(5, 20 * 1024), b"", 12, True),
    ("bytes, with an interim answer's", _lines(1, 30 * 1024),
     b"HTTP/1.1 103 Early Hints\r\n" + _lines(1, 40 * 1024) + b"\r\n", 1, False),
], ids=lambda v: v if isinstance(v, str) else "")
def test_the_header_caps_hold_however_the_head_is_read(case: str, extra: bytes, interim: bytes, pieces: int,
                                                       stall: bool) -> None:
    """More than ``MAX_HEADERS`` lines or ``MAX_HEAD_BYTES`` of them fail the answer (an ``UpstreamError`` naming
    the caps), whether the head came in one read or many, never ending, or after an interim answer whose header
    bytes count too; a head that never ends fails as soon as its bytes pass the cap, not at the read timeout."""
    with _answer_with(extra, interim, pieces, stall) as up:
        started = time.monotonic()
        with pytest.raises(UpstreamError, match=f"more than {MAX_HEADERS} headers or {MAX_HEAD_BYTES // 1024} KiB"):
            asyncio.run(_get(up.port, Http1Sender(read_s=8)))
        assert time.monotonic() - started < 6, case  # not the 8 s read timeout


@pytest.mark.parametrize("extra", [_lines(MAX_HEADERS - 3), _lines(2, 30 * 1024), _lines(2, 20 * 1024)],
                         ids=["253 lines", "60 KiB", "40 KiB"])
def test_a_head_within_the_caps_is_read(extra: bytes) -> None:
    with _answer_with(extra, pieces=6) as up:
        assert asyncio.run(_get(up.port)) == (200, completion())


@pytest.mark.parametrize("framing", [
    b"content-length: 17\r\n",
    b"content-length: 0\r\n",
    b"transfer-encoding: chunked\r\n",
    b"",  # ended by the connection's close
], ids=["length", "zero", "chunked", "none"])
def test_the_declared_length_is_what_the_headers_say(framing: bytes) -> None:
    """``declared``, read with the head, is what ``headers.get("content-length")`` gives as a number."""
    body = b"0123456789abcdefg"
    sent = b"11\r\n%s\r\n0\r\n\r\n" % body if b"chunked" in framing else body[:int(framing[16:-2] or 17)]

    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n" + framing + b"\r\n" + sent)

    async def run() -> tuple[int | None, str | None]:
        sender = Http1Sender()
        try:
            got = await sender.open("POST", f"http://127.0.0.1:{up.port}/v1/x", b"{}", {}, None)
            text = got.headers.get("content-length")
            return got.declared, text
        finally:
            await sender.aclose()

    with OddUpstream(answer) as up:
        declared, text = asyncio.run(run())
    assert declared == (int(text) if text is not None else None)
    assert (declared is None) == (framing in (b"", b"transfer-encoding: chunked\r\n"))


class KeptAlive(Held):
    """Answers each request of a connection at once, kept alive; from request ``stall_from`` on, never answers."""

    def __init__(self, stall_from: int) -> None:
        super().__init__()
        self.stall_from = stall_from

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = completion()
        while True:
            await read_request(reader)
            self.requests += 1
            if self.requests >= self.stall_from:
                await reader.read()  # no answer: until the client closes the connection
                return
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                         % (len(body), body))
            await writer.drain()


def test_a_kept_connections_timer_serves_its_answers_and_each_waits_its_own_deadline() -> None:
    """Two answers on one kept connection share its timer (none made per answer); a third, with a read timeout
    shorter than the one the timer was set for, still times out at its own deadline, not the earlier one's."""
    with KeptAlive(stall_from=3) as up:
        async def run() -> tuple[bool, float]:
            sender = Http1Sender(read_s=20)
            try:
                await _get(up.port, sender)
                (conn,) = sender._open
                timer = conn.timer
                await _get(up.port, sender)
                kept = timer is not None and conn.timer is timer and sender._open == {conn}
                started = time.monotonic()
                with pytest.raises(UpstreamTimeout):
                    await _get(up.port, sender, timeout_s=0.3)
                return kept, time.monotonic() - started
            finally:
                await sender.aclose()

        kept, waited = asyncio.run(run())
    assert kept
    # the third answer's 0.3 s (twice: a timeout before any byte on a reused connection is tried once more on a new
    # one), not the 20 s the timer was set for
    assert waited < 5


def test_a_connection_that_closes_takes_its_timer_with_it() -> None:
    """Closed by the client or by the upstream, a connection leaves no timer armed (nothing holds it for the
    read timeout's 60 s)."""
    async def close_after(writer: asyncio.StreamWriter) -> None:
        body = completion()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                     % (len(body), body))

    async def run(port: int, upstream_closes: bool) -> bool:
        sender = Http1Sender(read_s=60)
        try:
            await _get(port, sender)
            (conn,) = sender._open
            armed = conn.timer
            if upstream_closes:
                for _ in range(200):
                    if conn.lost:
                        break
                    await asyncio.sleep(0.01)
            else:
                await sender.aclose()
            return armed is not None and conn.lost and conn.timer is None and armed.cancelled()
        finally:
            await sender.aclose()

    with OddUpstream(close_after) as up:  # one request a connection, then the upstream closes it
        assert asyncio.run(run(up.port, upstream_closes=True))
    with KeptAlive(stall_from=99) as up:
        assert asyncio.run(run(up.port, upstream_closes=False))


class Apart(Held):
    """Its head in one write, then its body (of a stated length) in ``pieces`` writes ``gap_s`` apart, or never."""

    def __init__(self, body: bytes, pieces: int, gap_s: float, stall: bool = False) -> None:
        super().__init__()
        self.body, self.pieces, self.gap_s, self.stall = body, pieces, gap_s, stall

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        body = self.body
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body))
        step = -(-len(body) // self.pieces)
        for at in range(0, 0 if self.stall else len(body), step):
            await writer.drain()
            await asyncio.sleep(self.gap_s)  # the upstream's pace
            writer.write(body[at:at + step])
        await reader.read()  # until the client closes


async def _opened(port: int, read_s: float) -> tuple[bool, bytes]:
    """Whether the body was all there when ``open`` returned, and the body."""
    sender = Http1Sender(read_s=read_s)
    try:
        answer = await sender.open("POST", f"http://127.0.0.1:{port}/v1/chat/completions", b"{}", {}, None)
        whole = answer.whole()
        return whole is not None, whole if whole is not None else b"".join([c async for c in answer.aiter_bytes()])
    finally:
        await sender.aclose()


def test_a_small_body_written_apart_from_its_head_wakes_its_reader_once_whole() -> None:
    """A body of a stated length (up to 64 KiB) that comes in a read after its head's: ``open`` returns with all
    of it there (one wake of the request's task, not one for the head and one for the body)."""
    with Apart(completion(), 1, 0.05) as up:
        assert asyncio.run(_opened(up.port, 5)) == (True, completion())


def test_a_larger_body_wakes_its_reader_at_its_head() -> None:
    big = b"[" + b"1," * (40 * 1024) + b"1]"  # 80 KiB: read as it comes
    with Apart(big, 2, 0.05) as up:
        assert asyncio.run(_opened(up.port, 5)) == (False, big)


def test_a_held_body_that_trickles_is_timed_per_piece_and_one_that_stalls_times_out() -> None:
    """The read timeout of a held body starts again at each piece, as for a body read as it comes: six pieces 0.1 s
    apart pass a 0.25 s read timeout (0.6 s in all); a body that never comes fails at the read timeout."""
    with Apart(completion(), 6, 0.1) as up:
        assert asyncio.run(_opened(up.port, 0.25)) == (True, completion())
    with Apart(completion(), 1, 0, stall=True) as up, pytest.raises(UpstreamTimeout):
        asyncio.run(_opened(up.port, 0.25))


class ChunkedApart(Held):
    """Its head in one write, then its body chunked in ``pieces`` writes 0.05 s apart."""

    def __init__(self, body: bytes, pieces: int, content_type: bytes) -> None:
        super().__init__()
        self.body, self.pieces, self.content_type = body, pieces, content_type

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ntransfer-encoding: chunked\r\n\r\n" % self.content_type)
        step = -(-len(self.body) // self.pieces)
        for at in range(0, len(self.body), step):
            await writer.drain()
            await asyncio.sleep(0.05)
            piece = self.body[at:at + step]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        writer.write(b"0\r\n\r\n")
        await reader.read()  # until the client closes


@pytest.mark.parametrize(("content_type", "size", "whole"), [
    (b"application/json", 0, True),
    (b"Application/JSON; charset=utf-8", 0, True),
    (b"text/event-stream", 0, False),  # a stream's reader wants its head at once
    (b"application/json", 160 * 1024, False),  # past 64 KiB (at its second of four pieces): read as it comes
], ids=["json", "json with a charset", "event stream", "large json"])
def test_json_without_a_length_wakes_its_reader_once_whole_unless_large(content_type: bytes, size: int,
                                                                         whole: bool) -> None:
    """Chunked JSON (what every reader of it reads whole) is held as a small body of a stated length is: its head
    alone wakes no one; an event stream's head does, and JSON past 64 KiB is read as it comes."""
    body = completion() if not size else b"[" + b"1," * (size // 2) + b"1]"
    with ChunkedApart(body, 4, content_type) as up:
        assert asyncio.run(_opened(up.port, 5)) == (whole, body)
