"""The API routes' request and answer without Starlette's Request and Response objects: the caller's headers
kept as the bytes that came (a value decoded only where it is read), its body read once, the answer's header lines
encoded once when it is sent.
What goes on the wire is what Starlette's ``Response`` and ``StreamingResponse`` would send."""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, overload

from starlette.datastructures import URL
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope

from pooltui.proxy.direct import body_now, cycle_of
from pooltui.proxy.guard import connection_named
from pooltui.proxy.limits import trust


class BodySource(Protocol):
    """Where a caller's body comes from, and who marks its connection as authorised."""

    async def read(self, limit: int | None) -> bytes | None:
        """The whole body; None once more than ``limit`` bytes have come."""

    def trust(self) -> None:
        """Mark the connection that carried this request as authorised."""


class FirstValues:
    """A request's header values by lower-case name, the first of repeated ones (what a dict of its lines in
    reverse gives), each decoded from latin-1 only when it is read."""

    __slots__ = ("_first",)

    def __init__(self, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self._first = dict(reversed(raw_headers))

    @overload
    def get(self, name: str) -> str | None: ...

    @overload
    def get(self, name: str, default: str) -> str: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name`` (lower-case), decoded; ``default`` when there is none."""
        value = self._first.get(name.encode("latin-1"))
        return default if value is None else value.decode("latin-1")

    def __getitem__(self, name: str) -> str:
        return self._first[name.encode("latin-1")].decode("latin-1")

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.encode("latin-1") in self._first


class Caller:
    """A caller's request as the proxy reads it: method, path (percent-decoded), raw path, query string, headers
    (``raw_headers``: every line as it came, names lowercased as ASGI servers give them; ``headers``: by name, the
    first of repeated ones; ``items``: every line decoded, in order) and the body, read once and kept. From the
    proxy's own protocol (an ``Exchange``, proxy/exchange.py) or from ASGI (``of_scope``)."""

    __slots__ = ("_body", "_source", "headers", "method", "path", "query_string", "raw_headers", "raw_path")

    def __init__(self, method: str, path: str, raw_path: bytes, query_string: bytes,
                 raw_headers: list[tuple[bytes, bytes]], source: BodySource) -> None:
        self.method = method
        self.path = path
        self.raw_path = raw_path
        self.query_string = query_string
        self.raw_headers = raw_headers
        self.headers = FirstValues(raw_headers)
        self._source = source
        self._body: bytes | None = None

    @property
    def items(self) -> list[tuple[str, str]]:
        """Every header line, decoded, in order."""
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.raw_headers]

    @classmethod
    def of_scope(cls, scope: Scope, receive: Receive) -> Caller:
        """The caller of an ASGI request."""
        return cls(scope["method"], scope["path"], scope.get("raw_path") or scope["path"].encode(),
                   scope.get("query_string", b""), scope["headers"], _Received(scope, receive))

    def forwarded(self, drop: frozenset[bytes]) -> dict[str, str]:
        """The header lines that go on upstream, decoded: those named in ``drop`` (lower-case) and those its
        ``Connection`` lines name left out; a repeated one's last value at its first place (as a dict of the lines
        gives); ``accept-encoding: identity`` at the end."""
        out = {k.decode("latin-1"): v.decode("latin-1") for k, v in self.raw_headers if k not in drop}
        if b"connection" in self.headers._first:  # hop-by-hop by declaration: dropped too
            named = connection_named(self.items)
            out = {k: v for k, v in out.items() if k not in named}
        out["accept-encoding"] = "identity"
        return out

    @property
    def url(self) -> URL:
        """Starlette's URL of the request (built on demand: it costs more than the fields)."""
        host = self.headers.get("host", "").encode("latin-1")
        return URL(scope={"type": "http", "scheme": "http", "server": None, "root_path": "", "path": self.path,
                          "query_string": self.query_string, "headers": [(b"host", host)]})

    def trust(self) -> None:
        """Mark the connection that carried this request as authorised (never evicted for a newcomer)."""
        self._source.trust()

    async def body(self, limit: int | None = None) -> bytes | None:
        """The whole body (kept: read again, it is the same bytes); None past ``limit`` bytes, declared or sent
        (then it is never held whole beyond the limit). A caller gone mid-body raises ``ClientDisconnect``."""
        if self._body is not None:
            return None if limit is not None and len(self._body) > limit else self._body
        if limit is not None:
            declared = self.headers._first.get(b"content-length", b"")
            if declared.isdigit() and int(declared) > limit:
                return None
        whole = await self._source.read(limit)
        if whole is not None:
            self._body = whole
        return whole


class _Received:
    """An ASGI request's body: straight from the connection's cycle when all of it is there, else from
    ``receive``."""

    __slots__ = ("receive", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive

    def trust(self) -> None:
        trust(self.scope)

    async def read(self, limit: int | None) -> bytes | None:
        cycle = cycle_of(self.scope)
        if cycle is not None and (whole := body_now(cycle)) is not None:  # all of it here: no ASGI message
            return None if limit is not None and len(whole) > limit else whole
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
        return bytes(buf) if buf is not None else bytes(first or b"")


@dataclass(slots=True, eq=False)
class Reply:
    """An answer to send: status, header lines and either a body or, for a stream, its chunks (``body_iterator``).
    The header lines: ``lines``, already bytes (an upstream's, relayed: names lowercased, no framing), then
    ``headers`` (names lowercased). ``media_type``: the content type when neither names one."""

    status_code: int
    headers: dict[str, str]
    body: bytes = b""
    media_type: str | None = None
    body_iterator: AsyncIterable[bytes] | None = None
    lines: list[tuple[bytes, bytes]] = field(default_factory=list)
    #: a stream's end hook (the observer's log line and spans), called by the relay once its end has been written
    on_end: Callable[[], None] | None = None

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
