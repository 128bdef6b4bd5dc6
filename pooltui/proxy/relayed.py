"""A pool stream as its caller gets it: each chunk translated to the caller's dialect (a fallback that speaks
another), every known secret scrubbed out (one split across two chunks too), and an upstream that breaks
mid-way told in-band. The proxy's own connections relay it straight (``chunks`` and ``out``, proxy/app.py's
``_relay``: no async generator of its own per chunk, its end written with its last chunk); any other server
iterates it as an async iterable."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from pooltui.client.pool_client import PoolStream
from pooltui.core.masking import SECRETS, StreamScrubber
from pooltui.proxy.dialects import ANTHROPIC

__all__ = ["RelayedStream", "sse_error"]


def sse_error(api: str, message: str) -> bytes:
    """An error sent in-band, after a stream's first byte has gone back."""
    if api == ANTHROPIC:
        data = {"type": "error", "error": {"type": "api_error", "message": message}}
        return f"event: error\ndata: {json.dumps(data)}\n\n".encode()
    return f"data: {json.dumps({'error': {'message': message, 'type': 'server_error'}})}\n\n".encode()


class RelayedStream:
    """``stream``'s chunks for a caller of dialect ``api``, through ``translator`` (None: the same dialect)."""

    __slots__ = ("_api", "_scrubber", "_translator", "stream")

    def __init__(self, stream: PoolStream, api: str, translator: Any | None) -> None:
        self.stream = stream
        self._api = api
        self._translator = translator
        self._scrubber = StreamScrubber(SECRETS)  # a secret split across two chunks is still caught

    def chunks(self) -> AsyncIterator[bytes]:
        """The upstream's chunks, as the pool stream gives them (each goes through ``out``)."""
        return aiter(self.stream)

    def out(self, chunk: bytes) -> bytes:
        """What of ``chunk`` goes to the caller now (the end of it may wait for the next: a secret may straddle)."""
        translator = self._translator
        return self._scrubber.feed(chunk if translator is None else translator.feed(chunk))

    def last(self) -> bytes:
        """What goes after the upstream's last chunk: the translator's closing events, what the scrubber held."""
        scrubber, translator = self._scrubber, self._translator
        out = scrubber.feed(translator.close()) if translator is not None else b""
        return out + scrubber.flush()

    def broke(self, exc: BaseException) -> bytes:
        """What goes after an upstream that broke mid-way: what the scrubber held, then the error in-band."""
        why = self.stream.interrupted or type(exc).__name__
        return self._scrubber.flush() + sse_error(self._api, f"pooltui: upstream stream broke: {why}")

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._relay()

    async def _relay(self) -> AsyncIterator[bytes]:
        """The caller's chunks, for a server that iterates (Starlette's ``StreamingResponse``, ASGI sends)."""
        try:
            async for chunk in self.stream:
                if out := self.out(chunk):
                    yield out
            if tail := self.last():
                yield tail
        except Exception as exc:
            yield self.broke(exc)
