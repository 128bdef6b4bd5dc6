"""The API routes' request body and whole answer straight through the connection's request cycle (uvicorn's
``RequestResponseCycle``, offered in the scope by the proxy's protocol, proxy/limits.py), without ASGI's message
dicts and awaits: a body that has fully arrived is taken at once, and an answer's status line, headers and body
leave in one write. The bytes on the wire and the cycle's state after are what uvicorn's ``receive`` and ``send``
would give; anything off the common path (a HEAD, a paused writer, an access log, a response already begun) says
no, and the caller goes through ASGI as before."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE, STATUS_LINE, RequestResponseCycle

from pooltui.proxy.one_write import GATHER_MAX, OneWrite

#: the scope key under which the proxy's protocol offers the request's cycle
CYCLE_KEY = "pooltui.cycle"
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})


def cycle_of(scope: MutableMapping[str, Any]) -> RequestResponseCycle | None:
    """The request's cycle when its connection is the proxy's protocol, else None."""
    return scope.get(CYCLE_KEY)


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


def send_whole(cycle: RequestResponseCycle, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bool:
    """The answer in one write, and the cycle completed as uvicorn's ``send`` would leave it; False (nothing
    written) when this request is not on the common path or ``headers`` carry framing of their own
    (transfer-encoding, connection, another content length): the content length is written here."""
    if (cycle.response_started or cycle.disconnected or cycle.access_log or cycle.flow.write_paused
            or cycle.scope["method"] == "HEAD" or status < 200 or status in (204, 304)):
        return False
    pairs = (*cycle.default_headers, *headers)
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
            if name == b"content-length" and value == str(len(body)).encode():
                continue  # written below
            return False
        lines += (name, b": ", value, b"\r\n")
    lines += (b"content-length: ", str(len(body)).encode(), b"\r\n")
    if not cycle.keep_alive:
        lines.append(b"connection: close\r\n")
    lines.append(b"\r\n")
    cycle.response_started = True
    cycle.waiting_for_100_continue = False
    transport = cycle.transport
    raw = transport.transport if isinstance(transport, OneWrite) else transport
    if len(body) <= GATHER_MAX:
        lines.append(body)
        raw.write(b"".join(lines))
    else:  # not copied into the head's write
        raw.write(b"".join(lines))
        raw.write(body)
    cycle.response_complete = True
    cycle.message_event.set()
    if not cycle.keep_alive:
        transport.close()
    cycle.on_response()
    return True
