"""A stream's end as its caller gets it (proxy/app.py's relay, client/after_answer.py): its last chunk and the
answer's end leave together when the upstream's answer is complete as it is read, and the stream's closing
accounting (usage, cost, listeners, the key's streams and tokens) and the access line come after the caller's
end, not before it; all of it is still done, in order, before the proxy serves anything else."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

from pooltui.client.pool_client import PoolStream, UsageRecord
from pooltui.proxy.logs import ACCESS
from tests.odd_upstream import SECRET, OddUpstream, head
from tests.test_proxy import ProxyThread, proxied  # noqa: F401  (the fixture)
from tests.test_proxy_direct import _Reader, _request

SLOW_S = 0.6  # what one slow step takes: longer than a whole stream on loopback, even on a loaded machine


def _whole_stream(port: int) -> tuple[float, bytes]:
    """A stream asked for on a raw connection: how long until its end (``0\\r\\n\\r\\n``) came, and its body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        t0 = time.perf_counter()
        sock.sendall(_request(port, 6, stream=True))
        status, _, body = _Reader(sock).response()
        took = time.perf_counter() - t0
    assert status == b"HTTP/1.1 200 OK"
    return took, body


def _until(done, timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_streams_end_does_not_wait_for_its_access_line_which_has_its_tokens(proxied) -> None:  # noqa: F811
    _, clients = proxied
    logged: list[logging.LogRecord] = []

    class Slow(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            time.sleep(SLOW_S)
            logged.append(record)

    access, handler = logging.getLogger(ACCESS), Slow(logging.INFO)
    level = access.level
    access.setLevel(logging.INFO)
    access.addHandler(handler)
    try:
        with ProxyThread({"oai": clients["oai"]}) as px:
            took, _ = _whole_stream(px.service.port)
            assert took < SLOW_S * 0.75, f"the stream's end waited {took:.2f} s for its access line"
            _until(lambda: bool(logged))
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    [line] = logged
    fields = line.fields  # type: ignore[attr-defined]
    assert fields["status"] == 200 and fields["tokens_out"] == 6 and fields["tokens_in"] > 0


def _events(*texts: str) -> bytes:
    """OpenAI stream events for ``texts``, then one with the usage and ``[DONE]``."""
    return b"".join(b'data: {"choices":[{"index":0,"delta":{"content":"%s"}}]}\n\n' % t.encode() for t in texts) + \
        b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\ndata: [DONE]\n\n'


def _chunked(body: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(body), body)


CHUNKED = b"transfer-encoding: chunked\r\n"


async def _whole_at_once(writer: asyncio.StreamWriter) -> None:
    """A stream written whole in one write, its chunked end too."""
    writer.write(head(extra=CHUNKED) + _chunked(_events("a", "b")) + b"0\r\n\r\n")


async def _in_two_reads(writer: asyncio.StreamWriter) -> None:
    """A stream's first event, then (a moment later) the rest and its end in one write."""
    first, _, rest = _events("a", "b").partition(b"\n\n")
    writer.write(head(extra=CHUNKED) + _chunked(first + b"\n\n"))
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(_chunked(rest) + b"0\r\n\r\n")


async def _end_apart(writer: asyncio.StreamWriter) -> None:
    """A stream's events, then (a moment later) its chunked end alone."""
    writer.write(head(extra=CHUNKED) + _chunked(_events("a", "b")))
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(b"0\r\n\r\n")


@pytest.mark.parametrize("answer", [_whole_at_once, _end_apart])
def test_a_streams_end_does_not_wait_for_its_closing_accounting(answer) -> None:
    """Its end with its last chunk, or alone once the upstream's has come: the caller has it before the stream's
    tail is recorded, and its key's stream is closed and its tokens added all the same."""
    tails: list[UsageRecord] = []

    def slow_tail(record: UsageRecord) -> None:
        if not record.requests and (record.tokens_in or record.tokens_out):  # the stream's end, with its tokens
            time.sleep(SLOW_S)  # blocks the proxy's event loop, as a slow bookkeeping step would
            tails.append(record)

    with OddUpstream(answer) as up:
        client = up.client()
        client.usage_listeners.append(slow_tail)
        with ProxyThread({"odd": client}) as px:
            took, body = _whole_stream(px.service.port)
            assert body == _events("a", "b")
            assert took < SLOW_S * 0.75, f"the stream's end waited {took:.2f} s for its closing accounting"
            _until(lambda: bool(tails))
    assert [(t.key, t.tokens_in, t.tokens_out) for t in tails] == [("k0", 3, 2)]
    key = client.primary.pool.key("k0")
    assert key.streams == 0 and (key.stats.tokens_in, key.stats.tokens_out) == (3, 2)


@pytest.mark.parametrize(("answer", "reads"), [(_whole_at_once, 1), (_in_two_reads, 2)])
def test_a_pool_stream_knows_its_last_chunk_when_it_reads_it(answer, reads: int) -> None:
    """Whole in one read, the first chunk is the last; read in two, only the second is."""
    async def read(client) -> list[tuple[bytes, bool]]:
        stream = await client.open_stream(client.chat_builder("hi", stream=True))
        assert isinstance(stream, PoolStream)
        return [(chunk, stream.at_end) async for chunk in stream]

    with OddUpstream(answer) as up:
        seen = asyncio.run(read(up.client()))
    assert [end for _, end in seen] == [False] * (reads - 1) + [True]
    assert b"".join(chunk for chunk, _ in seen) == _events("a", "b")


def test_a_stream_read_whole_at_once_ends_before_its_opening_is_recorded() -> None:
    """The last chunk known as the last: the answer's end leaves with it, before the records of the stream's
    opening (which wait for its first chunk to have gone) are made."""
    ended: list = []

    def slow(record) -> None:
        time.sleep(SLOW_S)
        ended.append(record)

    with OddUpstream(_whole_at_once) as up:
        client = up.client()
        client.request_listeners.append(slow)
        with ProxyThread({"odd": client}) as px:
            took, body = _whole_stream(px.service.port)
            assert took < SLOW_S * 0.75, f"the stream's end waited {took:.2f} s for its opening's records"
            _until(lambda: bool(ended))
    assert body == _events("a", "b") and [r.outcome for r in ended] == ["ok"]


TAIL = SECRET[:12].encode()  # the stream's last bytes could begin a known key: the scrubber holds them back


async def _tail_like_a_key(writer: asyncio.StreamWriter) -> None:
    writer.write(head(extra=CHUNKED) + _chunked(_events("a") + b": " + TAIL) + b"0\r\n\r\n")


async def _tail_like_a_key_end_apart(writer: asyncio.StreamWriter) -> None:
    writer.write(head(extra=CHUNKED) + _chunked(_events("a") + b": " + TAIL))
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(b"0\r\n\r\n")


@pytest.mark.parametrize("answer", [_tail_like_a_key, _tail_like_a_key_end_apart])
def test_what_the_scrubber_held_back_at_the_end_still_reaches_the_caller(answer) -> None:
    """Not a whole key after all: the held bytes go with the stream's end, whichever way it comes."""
    with OddUpstream(answer) as up, ProxyThread({"odd": up.client()}) as px:
        _, body = _whole_stream(px.service.port)
    assert body == _events("a") + b": " + TAIL
