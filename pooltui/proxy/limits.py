"""What one client may hold of the proxy: header size and count, time to send its headers, idle time, connections
per address and in all, so that connections nobody authorised cannot crowd out the callers who are.

uvicorn's httptools protocol has none of these (h11's one size limit aside), so the proxy runs a subclass of it:
bytes of a request head are counted as they arrive (431 past the limit, before the head is held whole), a
request's head must be complete ``header_timeout_s`` after its first byte (408), a connection with nothing in
flight closes after ``idle_timeout_s`` (from its start too, not only after a response), and each new connection
past a cap closes the oldest idle connection that never carried an authorised request (the newcomer is
refused only when no such connection is left). A request that passed the caller check marks its connection
(``trust(scope)``, or an ``Exchange``'s ``trust``); the defaults are far above what a busy agent fleet uses.

The protocol also serves the proxy's API routes without uvicorn's per-request ASGI scope and cycle: once a head is
parsed, its front (``Front``, app.py's ``ApiRoutes``) may take the request, which then starts on an ``Exchange``
(proxy/exchange.py says what takes that path); any other request gets uvicorn's scope (made only then) and cycle.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import resource
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast
from weakref import ref

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from pooltui.proxy.direct import CYCLE_KEY
from pooltui.proxy.exchange import Exchange, Front
from pooltui.proxy.one_write import OneWrite

if TYPE_CHECKING:
    from uvicorn._types import ASGI3Application

#: the scope key under which a connection of the limited protocol offers to be marked as authorised
TRUST_KEY = "pooltui.trust"
#: the scope key under which it takes the callback to run if its caller goes before the response is complete
#: (``None`` to stop): a streamed answer is relayed without a task per stream watching for the disconnect
GONE_KEY = "pooltui.on_gone"


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """The proxy's limits per client connection (see README, "Client limits")."""

    max_header_bytes: int = 64 * 1024  # request line and headers of one request (SDK requests send ~1-2 KiB)
    max_headers: int = 256  # header lines of one request (SDK requests send ~20)
    header_timeout_s: float = 30.0  # from a request's first byte to the end of its headers
    #: a connection with no request in flight: longer than any common client keeps one pooled (httpx and node 5 s,
    #: aiohttp 15 s, Go 90 s), so the proxy is never the side that closes a connection a client is about to reuse
    #: (a reused connection the server just closed is an ECONNRESET for the caller); uvicorn's default is 5 s
    idle_timeout_s: float = 120.0
    max_per_address: int = 1024  # open connections from one client address
    max_connections: int | None = None  # open connections in all; None: from the open-file limit

    def connection_cap(self) -> int:
        """The cap on open connections: given, or what the open-file limit leaves after a reserve for upstream
        connections, the history database and the shared store."""
        if self.max_connections is not None:
            return self.max_connections
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return 65536
        return max(16, soft - min(soft // 2, 320))


def raise_open_file_limit() -> int:
    """Raise this process's soft open-file limit to its hard limit (many idle clients need many descriptors)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            pass
    return soft


def trust(scope: MutableMapping[str, Any]) -> None:
    """Mark the connection that carried this request as authorised (it is then never evicted for a newcomer)."""
    mark: Callable[[], None] | None = scope.get(TRUST_KEY)
    if mark is not None:
        mark()


def _error_json(text: str) -> bytes:
    return json.dumps({"error": {"message": f"pooltui proxy: {text}", "type": "invalid_request_error"}}).encode()


def _response(status: bytes, text: str) -> bytes:
    """A whole HTTP response, written before (or instead of) any request reaching the app."""
    body = _error_json(text)
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)


class ConnectionTable:
    """The open connections of one server, oldest first, and how many each client address holds."""

    def __init__(self, cap: int, per_address: int) -> None:
        self.cap = cap
        self.per_address = per_address
        self.open: dict[LimitedHttpToolsProtocol, None] = {}  # insertion order: oldest first
        self.by_address: Counter[str] = Counter()
        self.evicted = 0
        self.refused = 0

    def admit(self, conn: LimitedHttpToolsProtocol) -> bool:
        """Take ``conn`` in, making room by evicting an idle unauthorised connection; False: refuse it."""
        if self.by_address[conn.address] >= self.per_address and not self._evict(
                c for c in self.open if c.address == conn.address):
            self.refused += 1
            return False
        if len(self.open) >= self.cap and not self._evict(self.open):
            self.refused += 1
            return False
        self.open[conn] = None
        self.by_address[conn.address] += 1
        return True

    def _evict(self, candidates: Iterable[LimitedHttpToolsProtocol]) -> bool:
        victim = next((c for c in candidates if c.evictable()), None)
        if victim is None:
            return False
        self.drop(victim)
        victim.transport.close()
        self.evicted += 1
        return True

    def drop(self, conn: LimitedHttpToolsProtocol) -> None:
        if conn in self.open:
            del self.open[conn]
            self.by_address[conn.address] -= 1
            if self.by_address[conn.address] <= 0:
                del self.by_address[conn.address]


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the proxy's client limits (bound per server by :func:`limited_protocol`)."""

    limits: ClassVar[ClientLimits] = ClientLimits()
    table: ClassVar[ConnectionTable]
    #: the proxy's API routes, served on an ``Exchange`` without uvicorn's cycle (proxy/exchange.py); None: none
    front: ClassVar[Front | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.address = ""
        self.trusted = False
        self._in_head = True  # reading a request's line and headers (or waiting for one)
        self._head_bytes = 0  # as received, while the head is incomplete
        self._head_parsed = 0  # request line and header lines, as parsed
        self._head_lines = 0
        self._head_open = False  # a request's head begun and not yet complete (the header timeout runs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._on_gone: Callable[[], None] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.address = self.client[0] if self.client else ""
        if not self.table.admit(self):
            transport.close()
            return
        # idle from the start: a connection that never sends a byte is closed like one idle after a response
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def connection_lost(self, exc: Exception | None) -> None:
        self.table.drop(self)
        self._stop_head_timer()
        super().connection_lost(exc)
        gone, self._on_gone = self._on_gone, None
        if gone is not None:
            gone()

    def watch_gone(self, callback: Callable[[], None] | None) -> None:
        """Run ``callback`` when the caller goes (``None`` to stop)."""
        self._on_gone = callback

    def evictable(self) -> bool:
        """Never authorised and nothing in flight: closing it costs no caller anything."""
        return not self.trusted and (self.cycle is None or self.cycle.response_complete)

    def trust(self) -> None:
        """Mark the connection as authorised: it is never evicted for a newcomer."""
        self.trusted = True

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > self.limits.max_header_bytes and not self.transport.is_closing():
            self._refuse(b"431 Request Header Fields Too Large",
                         f"request headers over {self.limits.max_header_bytes // 1024} KiB")
        elif self._head_open and self._head_timer is None and not self.transport.is_closing():
            # a head still incomplete once these bytes are parsed (one that came whole never needs a timer)
            self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_timeout)

    def _refuse(self, status: bytes, text: str) -> None:
        self._stop_head_timer()
        self.transport.write(_response(status, text))
        self.transport.close()

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self._refuse(b"408 Request Timeout", f"request headers not complete in {self.limits.header_timeout_s:g} s")

    # parser callbacks
    def on_message_begin(self) -> None:
        """uvicorn's, but its ASGI scope is made only for a request that goes its way (``_scope_now``)."""
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self._in_head = self._head_open = True
        self._head_lines = self._head_parsed = 0

    def _scope_now(self) -> None:
        """The request's ASGI scope, as uvicorn's ``on_message_begin`` makes it, with the head parsed so far."""
        url, headers, expect = self.url, self.headers, self.expect_100_continue
        super().on_message_begin()
        self.url, self.headers, self.expect_100_continue = url, headers, expect
        scope = cast(dict[str, Any], self.scope)
        scope["headers"] = headers
        scope[TRUST_KEY] = self.trust  # our keys, beside ASGI's own
        scope[GONE_KEY] = self.watch_gone

    def on_url(self, url: bytes) -> None:
        self._head_parsed += len(url)
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        """Counted against the limits, then kept as uvicorn's ``on_header`` keeps it (inlined: one call per line)."""
        self._head_lines += 1
        self._head_parsed += len(name) + len(value) + 4
        if self._head_lines <= self.limits.max_headers:
            name = name.lower()
            value = value.rstrip(b" \t")  # llhttp keeps trailing whitespace, which RFC 9110 excludes from a value
            if name == b"expect" and value.lower() == b"100-continue":
                self.expect_100_continue = True
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        self._in_head = self._head_open = False
        over = self._head_lines > self.limits.max_headers or self._head_parsed > self.limits.max_header_bytes
        if not over and self.front is not None and self._exchange(self.front):
            return
        self._scope_now()
        if not over:
            super().on_headers_complete()
            if (cycle := self.cycle) is not None:  # its head and first body bytes in one write
                one = OneWrite(self.transport, cycle.on_response)
                cycle.transport, cycle.on_response = one, one.completed  # type: ignore[assignment]
                cast(dict[str, Any], self.scope)[CYCLE_KEY] = ref(cycle)  # the API routes' way past ASGI
            return
        app = self.app
        self.app = _TooManyHeaders(self._head_lines > self.limits.max_headers, self.limits)
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def _exchange(self, front: Front) -> bool:
        """The request started (or queued behind the one in flight) on an ``Exchange`` when it is plain HTTP/1.1
        and the front serves it; False: uvicorn's way."""
        parser = self.parser
        if (self.access_log or self.limit_concurrency is not None or self.root_path
                or parser.get_http_version() != "1.1" or parser.should_upgrade()):
            return False
        method = parser.get_method().decode("ascii")
        url = httptools.parse_url(self.url)
        raw_path = url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        api = front.api(method, path, self.headers)
        if api is None:
            return False
        exchange = Exchange(self, api, method, path, raw_path, url.query or b"", parser.should_keep_alive())
        existing, self.cycle = self.cycle, exchange  # type: ignore[assignment]  # kept under a cycle's names
        if existing is None or existing.response_complete:
            self._start_asgi_task(exchange, None)  # type: ignore[arg-type]
        else:  # pipelined behind the request in flight, as uvicorn queues one
            self.flow.pause_reading()
            self.pipeline.appendleft((exchange, None))  # type: ignore[arg-type]
        return True

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        """uvicorn's, and for an ``Exchange`` the front's ``serve`` as the request's task (no ``run_asgi``)."""
        if not isinstance(cycle, Exchange):
            super()._start_asgi_task(cycle, app)
            return
        assert self.front is not None
        context = contextvars.Context() if self.config.reset_contextvars else None
        task = self.loop.create_task(self.front.serve(cycle), context=context)
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0


class _TooManyHeaders:
    """The ASGI answer to a request whose head is over the limits: 431, and the connection closes."""

    def __init__(self, count: bool, limits: ClientLimits) -> None:
        self.text = (f"more than {limits.max_headers} request headers" if count
                     else f"request headers over {limits.max_header_bytes // 1024} KiB")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = _error_json(self.text)
        await send({"type": "http.response.start", "status": 431,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def limited_protocol(limits: ClientLimits, front: Front | None = None) -> type[LimitedHttpToolsProtocol]:
    """A protocol class for one server: its limits, its own table of open connections, and the front that serves
    the API routes on an ``Exchange`` (None: every request through uvicorn's cycle and the ASGI app)."""
    table = ConnectionTable(limits.connection_cap(), limits.max_per_address)
    return type("PooltuiHttpProtocol", (LimitedHttpToolsProtocol,), {"limits": limits, "table": table,
                                                                     "front": front})
