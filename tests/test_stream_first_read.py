"""A stream's first read holding more than its first event: the first event is judged and goes on to the caller
before the rest of that read is scanned; the rest is scanned right after (its usage and an error after data
counted as before), also when the caller closes the stream without reading on."""

from __future__ import annotations

import asyncio
import json

import pytest

from pooltui.client.pool_client import UsageRecord
from pooltui.core import EventKind
from tests.odd_upstream import OddUpstream, head
from tests.test_stream_close_exact import MODEL, opened, pool_of

pytestmark = pytest.mark.asyncio


def event(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


DELTA = event({"id": "c1", "object": "chat.completion.chunk", "model": MODEL,
               "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]})
USAGE = event({"id": "c1", "object": "chat.completion.chunk", "model": MODEL, "choices": [],
               "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}})


async def all_at_once(writer: asyncio.StreamWriter) -> None:
    writer.write(head() + DELTA * 3 + USAGE + b"data: [DONE]\n\n")


async def usage_then_silence(writer: asyncio.StreamWriter) -> None:
    writer.write(head() + DELTA + USAGE)
    await writer.drain()
    await asyncio.sleep(0.5)
    writer.write(b"data: [DONE]\n\n")


async def error_after_data(writer: asyncio.StreamWriter) -> None:
    writer.write(head() + DELTA + event({"error": {"type": "server_error", "message": "went away"}}))


async def test_a_stream_read_whole_at_once_counts_its_usage_whether_relayed_or_closed_at_once() -> None:
    with OddUpstream(all_at_once) as up:
        usage: list[UsageRecord] = []
        async with up.client() as client:
            client.usage_listeners.append(usage.append)
            relayed = await opened(client)
            it = aiter(relayed)
            chunks = [await anext(it)]
            assert relayed.tokens == (11, 5)  # asked while the first chunk is with its caller: read on demand
            chunks += [chunk async for chunk in it]
            closed = await opened(client)
            await closed.aclose()  # the caller left before any chunk was relayed
            key = pool_of(client).key("k0")
    assert b"".join(chunks) == DELTA * 3 + USAGE + b"data: [DONE]\n\n"
    assert relayed.tokens == closed.tokens == (11, 5)
    assert [(u.tokens_in, u.tokens_out) for u in usage if u.tokens_in or u.tokens_out] == [(11, 5), (11, 5)]
    assert (key.stats.tokens_in, key.stats.tokens_out) == (22, 10)


async def test_the_rest_of_the_first_read_is_scanned_once_the_first_chunk_has_gone_on() -> None:
    with OddUpstream(usage_then_silence) as up:
        async with up.client() as client:
            stream = await opened(client)
            scanner = stream._scanner
            assert (scanner.saw_data, scanner.tokens_out) == (True, 0)  # judged on its first event: not read further
            chunks = aiter(stream)
            assert await anext(chunks) == DELTA + USAGE
            waiting = asyncio.ensure_future(anext(chunks))  # the stream reads on; the upstream says nothing yet
            await asyncio.sleep(0.1)
            assert not waiting.done() and (scanner.tokens_in, scanner.tokens_out) == (11, 5)
            assert await waiting == b"data: [DONE]\n\n"
            await stream.aclose()


async def test_an_error_after_data_in_the_first_read_keeps_the_stream_and_is_told_at_its_end() -> None:
    with OddUpstream(error_after_data) as up:
        async with up.client(max_attempts=1) as client:
            stream = await opened(client)  # committed: its first event was data
            _ = [chunk async for chunk in stream]
            events = [e for e in client.events if e.kind is EventKind.TRANSPORT]
    assert [(e.key, e.reason) for e in events] == [("k0", "error event mid-stream")]
