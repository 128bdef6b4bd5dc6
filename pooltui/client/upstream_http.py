"""How one attempt goes upstream: ``Sender.open`` sends a request and gives back its answer with the body still to
read. Two senders, one interface: ``AiohttpSender`` (aiohttp directly: the default, several times less work per
request than httpx over the same aiohttp session) and ``HttpxSender`` (any ``httpx.AsyncClient``: what a caller
plugs in, e.g. the in-process simulator's transport).

``default_http()`` builds both over one aiohttp session: the same connection pool, limits, timeouts and TLS
context (httpx's, from the environment's certificates) serve the attempts and everything else that speaks
httpx (verification, the model listing).
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from itertools import chain
from operator import itemgetter
from typing import Generic, Protocol, TypeVar

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from yarl import URL

CONNECT_TIMEOUT_S = 10.0  # to open a connection upstream
READ_TIMEOUT_S = 60.0  # between two reads of an answer
_CHUNK = 64 * 1024


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's one TLS context for upstreams (httpx's: the environment's certificates), shared by every
    client, sender and transport: building one loads the certificate store (milliseconds), so it is built once,
    not once per client and transport."""
    return httpx.create_ssl_context()


T = TypeVar("T")


class ParsedOnce(Generic[T]):
    """A URL's parsed form, parsed once per URL (an upstream has a few: at most 256 kept)."""

    def __init__(self, parse: Callable[[str], T]) -> None:
        self._parse = parse
        self._found: dict[str, T] = {}

    def __call__(self, text: str) -> T:
        found = self._found.get(text)
        if found is None:
            if len(self._found) > 256:
                self._found.clear()
            found = self._found[text] = self._parse(text)
        return found


class Answer(Protocol):
    """An upstream's answer, its body not read yet (``httpx.Response`` is one)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> httpx.Headers: ...

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    def aiter_raw(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Sender(Protocol):
    """Sends one attempt upstream."""

    async def open(self, method: str, url: str, content: bytes | None, headers: Mapping[str, str],
                   timeout_s: float | None) -> Answer:
        """The answer of ``method url``, its body not read yet; ``timeout_s`` (when given) bounds the connect and
        each read instead of the sender's own timeouts."""
        ...


class HttpxSender:
    """Attempts through an ``httpx.AsyncClient`` (its transport, timeouts and default headers)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def open(self, method: str, url: str, content: bytes | None, headers: Mapping[str, str],
                   timeout_s: float | None) -> Answer:
        if timeout_s is None:
            request = self.http.build_request(method, url, content=content, headers=headers)
        else:
            request = self.http.build_request(method, url, content=content, headers=headers, timeout=timeout_s)
        return await self.http.send(request, stream=True)


def raw_headers(raw: Iterable[tuple[bytes, bytes]]) -> httpx.Headers:
    """``httpx.Headers`` of an answer's raw header lines (bytes as they came): what ``httpx.Headers(raw)`` holds,
    without its per-line type checks (half its cost, per attempt) nor its constructor's (two ABC instance checks)."""
    headers = httpx.Headers.__new__(httpx.Headers)
    headers._list = lines = [(k, k.lower(), v) for k, v in raw]
    # what its ``encoding`` would find by decoding every line on the first lookup, found by one scan in C
    headers._encoding = "ascii" if b"".join(chain.from_iterable(lines)).isascii() else None
    return headers


_LOWERED, _VALUE = itemgetter(1), itemgetter(2)


def header_names(headers: httpx.Headers) -> tuple[bytes, ...]:
    """An answer's header names, lowered, in order, as bytes: read off the lines ``httpx.Headers`` keeps
    (``raw_headers`` builds them) without a Python step per line."""
    return tuple(map(_LOWERED, headers._list))


def header_columns(headers: httpx.Headers) -> tuple[tuple[bytes, ...], list[bytes]]:
    """``header_names`` and the values beside them, as bytes."""
    return header_names(headers), list(map(_VALUE, headers._list))


class AiohttpAnswer:
    """An aiohttp answer as an ``Answer``: its headers as ``httpx.Headers`` (case-insensitive, repeated names
    kept), its body decoded as aiohttp reads it (the proxy asks upstreams for no encoding)."""

    __slots__ = ("_resp", "headers", "status_code")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status_code = resp.status
        self.headers = raw_headers(resp.raw_headers)

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        async for chunk in self._resp.content.iter_chunked(_CHUNK):
            yield chunk

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """Chunks as they arrive (a stream's events relayed without waiting for more)."""
        async for chunk in self._resp.content.iter_any():
            yield chunk

    async def aclose(self) -> None:
        self._resp.release()


class AiohttpSender:
    """Attempts straight through an aiohttp session: no redirects followed, no cookies kept, the session's
    connection pool and TLS context. The session is made on first use (it needs a running loop)."""

    def __init__(self, max_connections: int = 256, connect_s: float = CONNECT_TIMEOUT_S,
                 read_s: float = READ_TIMEOUT_S, keepalive_s: float | None = 5.0) -> None:
        self._max_connections = max_connections
        self._keepalive_s = keepalive_s
        self._session: aiohttp.ClientSession | None = None
        self._ssl = tls_context()  # made now (once per process), not on a first request
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_s, sock_read=read_s)
        self._url = ParsedOnce(URL)

    def session(self) -> aiohttp.ClientSession:
        """The session, made now if it is not yet."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=self._keepalive_s,
                                             ssl=self._ssl)
            self._session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def open(self, method: str, url: str, content: bytes | None, headers: Mapping[str, str],
                   timeout_s: float | None) -> Answer:
        own = self._timeout
        timeout = own if timeout_s is None else aiohttp.ClientTimeout(  # what is left of the request's time
            total=None, sock_connect=min(timeout_s, own.sock_connect or timeout_s),
            sock_read=min(timeout_s, own.sock_read or timeout_s))
        resp = await self.session().request(method, self._url(url), data=content, headers=headers,
                                            allow_redirects=False, compress=False, timeout=timeout)
        return AiohttpAnswer(resp)


def default_http(max_connections: int = 256, timeout_s: float = READ_TIMEOUT_S
                 ) -> tuple[httpx.AsyncClient, AiohttpSender]:
    """An httpx client on the aiohttp transport and an ``AiohttpSender``, over one aiohttp session (made on first
    use, closed with the httpx client)."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    sender = AiohttpSender(max_connections, CONNECT_TIMEOUT_S, timeout_s, limits.keepalive_expiry)
    transport = AiohttpTransport(verify=tls_context(), limits=limits, client=sender.session)
    http = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S),
                             limits=limits)
    return http, sender
