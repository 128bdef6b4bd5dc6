"""One API request served from the proxy's own protocol (proxy/limits.py), without uvicorn's per-request ASGI scope
dict, ``RequestResponseCycle`` and ``run_asgi`` wrapper: the protocol parses the head, and for a request its front
takes (``Front.api``) it makes an ``Exchange`` and starts a task on ``Front.serve`` at once.

An ``Exchange`` keeps the request's state under the names uvicorn's protocol gives a cycle's (``body``,
``more_body``, ``disconnected``, ``keep_alive``, ``response_complete``, ``message_event``...), so the protocol's own
code feeds its body, marks a disconnect, queues a pipelined request (reading paused while one is in flight), and
at shutdown lets the answer close the connection, as it does for a cycle. The body is read whole
(``Expect: 100-continue`` answered first, the limit kept as it arrives), and the answer is written to the
transport: a whole one in one write (proxy/direct.py's framing, after a paused writer drains), a stream as
chunks; an answer with a status that has no body or with framing headers of its own goes through uvicorn's
``send`` (a cycle made for it only then).

What takes this path is decided in the protocol and the front: HTTP/1.1, no upgrade, no uvicorn access log or
concurrency limit, no root path, and a request the front serves (app.py's ``ApiRoutes``: an API route, past the
access guard). Everything else, a refused request included, goes to uvicorn's cycle and the Starlette app as
before (answered the same way there).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, cast

from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from pooltui.proxy.direct import ChunkedAnswer, write_whole

if TYPE_CHECKING:
    from pooltui.proxy.limits import LimitedHttpToolsProtocol

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Front(Protocol):
    """What the protocol asks of the proxy for a request whose head has arrived."""

    def api(self, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> str | None:
        """The request's dialect when it is served on the exchange path, else None (uvicorn's path)."""

    def serve(self, exchange: Exchange) -> Coroutine[Any, Any, None]:
        """The request served and answered (run as the request's task)."""


class Exchange:
    """One caller request on the proxy's own path: what the protocol parsed, its body as it arrives, and its answer
    written to the connection."""

    __slots__ = ("_conn", "_cycle", "_waiter", "api", "body", "disconnected", "flow", "headers", "keep_alive",
                 "method", "more_body", "path", "query_string", "raw_path", "response_complete", "response_started",
                 "transport", "waiting_for_100_continue")

    access_log = False  # uvicorn's own access log (a server with one sends no request this way)

    def __init__(self, conn: LimitedHttpToolsProtocol, api: str, method: str, path: str, raw_path: bytes,
                 query_string: bytes, keep_alive: bool) -> None:
        self._conn = conn
        self.transport = conn.transport
        self.flow = conn.flow
        self.api = api
        self.method = method
        self.path = path  # percent-decoded, as uvicorn's scope has it
        self.raw_path = raw_path
        self.query_string = query_string
        self.headers = conn.headers  # (lower-cased name, value) bytes, as uvicorn keeps them
        self.keep_alive = keep_alive
        self.waiting_for_100_continue = conn.expect_100_continue
        self.body = bytearray()
        self.more_body = True
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self._waiter: asyncio.Future[None] | None = None
        self._cycle: RequestResponseCycle | None = None

    # ------------------------------------------------------------------ as the protocol sees a cycle
    @property
    def message_event(self) -> Exchange:
        """What the protocol sets when body bytes, the body's end or a disconnect arrive: this exchange."""
        return self

    def set(self) -> None:
        """Something arrived: a read waiting for it goes on."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def default_headers(self) -> list[tuple[bytes, bytes]]:
        """uvicorn's headers for every answer (its date and server lines), as its server keeps them now."""
        return self._conn.server_state.default_headers

    def on_response(self) -> None:
        """The answer is all written: the connection goes on to its next request (or waits idle)."""
        self._conn.on_response_complete()

    # ------------------------------------------------------------------ the request
    def trust(self) -> None:
        """Mark the connection as authorised (never evicted for a newcomer)."""
        self._conn.trust()

    def watch_gone(self, callback: Callable[[], None] | None) -> None:
        """Run ``callback`` if the caller goes before the answer is complete (``None`` to stop)."""
        self._conn.watch_gone(callback)

    async def read(self, limit: int | None = None) -> bytes | None:
        """The whole body once it has arrived (None as soon as more than ``limit`` bytes have); ``100 Continue``
        first when the caller waits for it. A caller gone raises ``ClientDisconnect``."""
        while True:
            if self.disconnected or self.response_complete:
                raise ClientDisconnect()
            if self.waiting_for_100_continue:
                self.waiting_for_100_continue = False
                if not self.transport.is_closing():
                    self.transport.write(_CONTINUE)
            if limit is not None and len(self.body) > limit:
                return None
            if not self.more_body:
                body = bytes(self.body)
                self.body = bytearray()
                return body
            self.flow.resume_reading()  # paused when the body passed uvicorn's high-water mark
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    # ------------------------------------------------------------------ the answer
    async def answer(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """A whole answer: one write (two past ``GATHER_MAX``), after the caller's side drains if it is full."""
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if not write_whole(self, status, headers, body):
            await self.send({"type": "http.response.start", "status": status, "headers": headers})
            await self.send({"type": "http.response.body", "body": body})

    def chunked(self, status: int, headers: list[tuple[bytes, bytes]]) -> ChunkedAnswer | None:
        """A streamed answer's writer (None: send it through ``send``)."""
        return None if self.disconnected else ChunkedAnswer.begin(self, status, headers)

    async def send(self, message: Any) -> None:
        """An ASGI message sent as uvicorn's ``send`` would (a cycle made for the answers ``answer`` and ``chunked``
        leave to it: a status without a body, framing headers of the answer's own)."""
        cycle = self._cycle
        if cycle is None:
            conn = self._conn
            scope = cast(Any, {"method": self.method, "http_version": "1.1"})
            cycle = self._cycle = RequestResponseCycle(
                scope, self.transport, self.flow, conn.logger, conn.access_logger, False, self.default_headers,
                asyncio.Event(), False, self.keep_alive, self._sent)
        cycle.disconnected = self.disconnected
        cycle.keep_alive = self.keep_alive
        self.response_started = True
        self.waiting_for_100_continue = False
        await cycle.send(message)
        self.keep_alive = cycle.keep_alive

    def _sent(self) -> None:
        self._cycle = None
        self.response_complete = True
        self.on_response()

    def fail(self, body: bytes) -> None:
        """An unforeseen error: ``body`` as a 500 when nothing was sent yet, and the connection closes."""
        if not self.response_started and not self.disconnected:
            self.keep_alive = False
            if not write_whole(self, 500, [(b"content-type", b"application/json")], body):
                self.transport.close()
            return
        self.transport.close()

