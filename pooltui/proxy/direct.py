"""The API routes' request body and whole answer straight through the connection's request cycle (uvicorn's
``RequestResponseCycle``, offered in the scope by the proxy's protocol, proxy/limits.py), without ASGI's message
dicts and awaits: a body that has fully arrived is taken at once, and an answer's status line, headers and body
leave in one write. The bytes on the wire and the cycle's state after are what uvicorn's ``receive`` and ``send``
would give; anything off the common path (a HEAD, a paused writer, an access log, a response already begun) says
no, and the caller goes through ASGI as before."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any, Protocol

from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE, STATUS_LINE, RequestResponseCycle

from pooltui.proxy.one_write import GATHER_MAX, OneWrite

#: the scope key under which the proxy's protocol offers the request's cycle, as a weak reference: the cycle holds
#: the scope, so a strong one made every request a reference cycle, 10 objects left to the cycle collector (about
#: 13% of the proxy's CPU went to collections under `bench proxy`)
CYCLE_KEY = "pooltui.cycle"
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})


class _Event(Protocol):
    def set(self) -> None: ...


class Answering(Protocol):
    """What this module writes an answer through: a uvicorn ``RequestResponseCycle``, or the proxy's own
    ``Exchange`` (proxy/exchange.py), which keeps the same state under the same names."""

    transport: Any
    flow: FlowControl
    keep_alive: bool
    disconnected: bool
    response_started: bool
    response_complete: bool
    waiting_for_100_continue: bool

    @property
    def default_headers(self) -> list[tuple[bytes, bytes]]: ...

    @property
    def message_event(self) -> _Event: ...

    def on_response(self) -> None: ...


def cycle_of(scope: MutableMapping[str, Any]) -> RequestResponseCycle | None:
    """The request's cycle when its connection is the proxy's protocol, else None."""
    ref = scope.get(CYCLE_KEY)
    return None if ref is None else ref()


def body_now(cycle: RequestResponseCycle) -> bytes | None:
    """The whole request body when every byte of it has arrived (as ``receive`` would give it), else None (read it
    through ASGI). A caller already gone raises ``ClientDisconnect``."""
    if cycle.disconnected or cycle.response_complete:
        raise ClientDisconnect()
    if cycle.more_body or cycle.waiting_for_100_continue:
        return None
    body = bytes(cycle.body)
    cycle.body = bytearray()
    return body


def _on_path(cycle: RequestResponseCycle) -> bool:
    """Whether this request's answer may skip uvicorn's ``send``: none begun, its caller still there, no access
    log, a writer not paused (a whole answer is written at once) and not a HEAD."""
    return not (cycle.response_started or cycle.disconnected or cycle.access_log or cycle.flow.write_paused
                or cycle.scope["method"] == "HEAD")


def _head(to: Answering, status: int, headers: list[tuple[bytes, bytes]], framing: bytes,
          length: int | None = None) -> bytes | None:
    """The status line and header lines as uvicorn's ``send`` writes them, ``framing`` last (``None``: a status
    without a body, or ``headers`` carry framing of their own other than a content length of ``length``)."""
    if status < 200 or status in (204, 304):
        return None
    pairs = (*to.default_headers, *headers)
    # uvicorn's checks of each name and value, as one scan of all names and one of all values (a tab, which joins
    # the values, is allowed in a value: it finds what the per-value scans would)
    if HEADER_RE.search(b"".join([name for name, _ in pairs])):
        raise RuntimeError("Invalid HTTP header name.")
    if HEADER_VALUE_RE.search(b"\t".join([value for _, value in pairs])):
        raise RuntimeError("Invalid HTTP header value.")
    lines = [STATUS_LINE[status]]
    for name, value in pairs:
        name = name.lower()
        if name in _FRAMING:
            if name == b"content-length" and length is not None and value == str(length).encode():
                continue  # written below
            return None
        lines += (name, b": ", value, b"\r\n")
    lines.append(framing)
    if not to.keep_alive:
        lines.append(b"connection: close\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def _raw(to: Answering) -> asyncio.Transport:
    """The connection's transport itself (past the cycle's ``OneWrite``: this module writes a head with its body)."""
    transport = to.transport
    return transport.transport if isinstance(transport, OneWrite) else transport


def _complete(to: Answering) -> None:
    """The request's state once its answer is all written, as uvicorn's ``send`` leaves a cycle."""
    to.response_complete = True
    to.message_event.set()
    if not to.keep_alive:
        to.transport.close()
    to.on_response()


def send_whole(cycle: RequestResponseCycle, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bool:
    """The answer in one write, and the cycle completed as uvicorn's ``send`` would leave it; False (nothing
    written) when this request is not on the common path or ``headers`` carry framing of their own
    (transfer-encoding, connection, another content length): the content length is written here."""
    return _on_path(cycle) and write_whole(cycle, status, headers, body)


def write_whole(to: Answering, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bool:
    """``send_whole`` for a request known to be on the common path (its caller there, its writer not paused)."""
    head = _head(to, status, headers, b"content-length: %d\r\n" % len(body), len(body))
    if head is None:
        return False
    to.response_started = True
    to.waiting_for_100_continue = False
    raw = _raw(to)
    if len(body) <= GATHER_MAX:
        raw.write(head + body)
    else:  # not copied into the head's write
        raw.write(head)
        raw.write(body)
    _complete(to)
    return True


class ChunkedAnswer:
    """A streamed answer written chunk by chunk through the cycle, in HTTP/1.1 chunked framing as uvicorn's
    ``send`` writes it; its head leaves with the first chunk (one write), its end with the last one when that is
    known as the last (``last``). ``start`` gives None off the common path (then the stream goes through ASGI)."""

    __slots__ = ("_head", "_raw", "_to")

    def __init__(self, to: Answering, head: bytes) -> None:
        self._to = to
        self._head: bytes | None = head
        self._raw = _raw(to)
        to.response_started = True
        to.waiting_for_100_continue = False

    @classmethod
    def start(cls, cycle: RequestResponseCycle, status: int, headers: list[tuple[bytes, bytes]]
              ) -> ChunkedAnswer | None:
        return cls.begin(cycle, status, headers) if _on_path(cycle) else None

    @classmethod
    def begin(cls, to: Answering, status: int, headers: list[tuple[bytes, bytes]]) -> ChunkedAnswer | None:
        """``start`` for a request known to be on the common path (its writer may be paused: the first chunk
        waits)."""
        head = _head(to, status, headers, b"transfer-encoding: chunked\r\n")
        return None if head is None else cls(to, head)

    async def write(self, chunk: bytes) -> None:
        """One chunk (nothing for an empty one); waits while the caller's side of the connection is full."""
        to = self._to
        if to.flow.write_paused and not to.disconnected:
            await to.flow.drain()
        if to.disconnected or not chunk:
            return
        framed = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        head, self._head = self._head, None
        self._raw.write(framed if head is None else head + framed)

    async def last(self, chunk: bytes) -> None:
        """``chunk`` and the end in one write (waits while the caller's side of the connection is full)."""
        to = self._to
        if to.flow.write_paused and not to.disconnected:
            await to.flow.drain()
        self.end(chunk)

    def end(self, chunk: bytes = b"") -> None:
        """``chunk`` (when not empty) and the last chunk in one write, and the request completed."""
        to = self._to
        if to.disconnected:
            return
        head, self._head = self._head, None
        end = b"%x\r\n%b\r\n0\r\n\r\n" % (len(chunk), chunk) if chunk else b"0\r\n\r\n"
        self._raw.write(end if head is None else head + end)
        _complete(to)
