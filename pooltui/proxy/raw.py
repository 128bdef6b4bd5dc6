"""The API routes' request and answer as plain ASGI, without Starlette's Request and Response objects: the
caller's headers decoded once, its body read once, the answer's header lines encoded once when it is sent.
What goes on the wire is what Starlette's ``Response`` and ``StreamingResponse`` would send."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import URL
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope

from pooltui.proxy.direct import body_now, cycle_of


class Caller:
    """A caller's request as the proxy reads it: method, path, headers (``headers``: names lowercased, the first
    of repeated ones; ``items``: every line, in order) and the body, read once and kept."""

    __slots__ = ("_body", "headers", "items", "method", "receive", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self.method: str = scope["method"]
        self.items = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        self.headers: dict[str, str] = dict(reversed(self.items))
        self._body: bytes | None = None

    @property
    def url(self) -> URL:
        """Starlette's URL of the request (built on demand: it costs more than the scope's fields)."""
        return URL(scope=self.scope)

    async def body(self, limit: int | None = None) -> bytes | None:
        """The whole body (kept: read again, it is the same bytes); None past ``limit`` bytes, declared or sent
        (then it is never held whole beyond the limit). A caller gone mid-body raises ``ClientDisconnect``."""
        if self._body is not None:
            return None if limit is not None and len(self._body) > limit else self._body
        if limit is not None:
            declared = self.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                return None
        cycle = cycle_of(self.scope)
        if cycle is not None and (whole := body_now(cycle)) is not None:  # all of it here: no ASGI message
            if limit is not None and len(whole) > limit:
                return None
            self._body = whole
            return whole
        first: bytes | None = None
        buf: bytearray | None = None
        while True:
            message = await self.receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                if first is None:
                    first = chunk
                else:
                    if buf is None:
                        buf = bytearray(first)
                    buf += chunk
                if limit is not None and (len(buf) if buf is not None else len(first)) > limit:
                    return None
                if not message.get("more_body", False):
                    break
            elif message["type"] == "http.disconnect":
                raise ClientDisconnect()
        self._body = bytes(buf) if buf is not None else bytes(first or b"")
        return self._body


@dataclass(slots=True, eq=False)
class Reply:
    """An answer to send: status, header lines and either a body or, for a stream, its chunks (``body_iterator``).
    The header lines: ``lines``, already bytes (an upstream's, relayed: names lowercased, no framing), then
    ``headers`` (names lowercased). ``media_type``: the content type when neither names one."""

    status_code: int
    headers: dict[str, str]
    body: bytes = b""
    media_type: str | None = None
    body_iterator: AsyncIterator[bytes] | None = None
    lines: list[tuple[bytes, bytes]] = field(default_factory=list)

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The header lines as sent: Starlette's ``init_headers`` rules (a body's length unless the status has
        none, the media type with ``charset=utf-8`` for text when no content type is there)."""
        headers = self.headers
        raw = [*self.lines, *[(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]]
        status = self.status_code
        sized = self.body_iterator is None and not (status < 200 or status in (204, 304))
        if sized and "content-length" not in headers:
            raw.append((b"content-length", str(len(self.body)).encode()))
        media = self.media_type
        if media is not None and "content-type" not in headers and all(n != b"content-type" for n, _ in self.lines):
            if media.startswith("text/") and "charset=" not in media.lower():
                media += "; charset=utf-8"
            raw.append((b"content-type", media.encode("latin-1")))
        return raw

    def start(self) -> dict[str, Any]:
        """The ASGI ``http.response.start`` message."""
        return {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers()}
