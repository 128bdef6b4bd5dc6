"""A response's head and its first body bytes in one write: uvicorn writes a response's status line and headers,
then its body, as two writes (two send calls, two segments the caller reads apart). Each request's cycle writes
through ``OneWrite``, which holds the head until the body's first write, the response's end (a HEAD's answer, a
204 or 304: no body is written) or a close, and sends both together. A ``100 Continue`` goes at once (the caller
waits for it before it sends the body)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

_CONTINUE = b"HTTP/1.1 100 "
GATHER_MAX = 64 * 1024  # a larger body goes after its head without being joined to it (no copy of it)


class OneWrite:
    """The connection as one request's response cycle sees it (everything but ``write`` and ``close`` passes
    through to the transport)."""

    __slots__ = ("_done", "_head", "_started", "transport")

    def __init__(self, transport: asyncio.Transport, done: Callable[[], None]) -> None:
        self.transport = transport
        self._done = done  # the cycle's own callback when its response is complete
        self._head: bytes | None = None
        self._started = False

    def completed(self) -> None:
        """The response is complete (its cycle's ``on_response``): a head still held, of an answer without a body,
        goes now."""
        if self._head is not None:
            self.transport.write(self._head)
            self._head = None
        self._done()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self._head
        if head is not None:
            self._head = None
            if len(data) <= GATHER_MAX:
                self.transport.write(head + data)
                return
            self.transport.write(head)
        elif not self._started and bytes(data[:len(_CONTINUE)]) != _CONTINUE:
            self._started = True
            self._head = bytes(data)
            return
        self.transport.write(data)

    def close(self) -> None:
        if self._head is not None:
            self.transport.write(self._head)
            self._head = None
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)
