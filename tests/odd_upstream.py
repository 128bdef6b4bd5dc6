"""A tiny upstream on 127.0.0.1 that answers with exactly the bytes a test writes: the odd answers no simulator
gives (JSON to a stream request, an endless keep-alive prelude, one huge SSE line, 20,000 headers)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable

from pooltui.client.pool_client import DEFAULT_MAX_BODY_BYTES, PoolClient, Upstream
from pooltui.core.pool import KeySpec, Pool
from pooltui.providers.profiles import profile_for

Answer = Callable[[asyncio.StreamWriter], Awaitable[None]]
SECRET = "sk-test-odd-000000000000000000000001"


def completion() -> bytes:
    """A plain chat completion, as an upstream that ignores ``stream: true`` sends it."""
    return json.dumps({"id": "c1", "object": "chat.completion", "created": 0, "model": "m",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": "plain"},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}).encode()


def head(status: str = "200 OK", content_type: str = "text/event-stream", extra: bytes = b"",
         length: int | None = None) -> bytes:
    framing = f"content-length: {length}\r\n" if length is not None else ""
    return (f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n{framing}connection: close\r\n").encode() \
        + extra + b"\r\n"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request, head and body (by its content-length); returns its head."""
    request_head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in request_head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    await reader.readexactly(length)
    return request_head


class OddUpstream:
    """Serves every request (one per connection) with ``answer``; counts the requests it got."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests = 0
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._started.set()
        async with server:
            await self._stop.wait()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await read_request(reader)
            self.requests += 1
            await self.answer(writer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def client(self, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, max_attempts: int = 10) -> PoolClient:
        """A PoolClient with one openai-style provider (one key) on this upstream."""
        profile = profile_for("openai", name="odd", base_url=f"http://127.0.0.1:{self.port}/v1")
        return PoolClient(Upstream(profile, Pool("odd", [KeySpec("k0", SECRET)])), deadline_s=20,
                          max_body_bytes=max_body_bytes, max_attempts=max_attempts)

    def __enter__(self) -> OddUpstream:
        self.thread.start()
        self._started.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(5)
