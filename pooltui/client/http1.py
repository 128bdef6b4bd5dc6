"""``Http1Sender``: the upstream attempts on a small HTTP/1.1 client of our own (asyncio protocol, httptools to parse
the answer), a fifth of aiohttp's CPU per request (bench: `python -m pooltui.bench upstream`). What it keeps of
aiohttp's behaviour: a keep-alive pool per origin (at most ``max_connections`` open, idle ones closed after
``keepalive_s``), a connect timeout and a read timeout between two reads, the process's TLS context, chunked and
streamed answers, gzip/deflate answers decoded, no redirects, no cookies, no proxy from the environment (aiohttp's
default session does not read one either). A connection reused from the pool that the upstream had closed is
replaced once, before any byte of the answer (a keep-alive race, never the key's fault); one that stays silent
past the read timeout is not (the upstream has the request: sent again it could run twice).

Every failure to get an answer is an ``UpstreamError`` (an ``OSError``, never a ``TimeoutError``: the attempt's
transport failure, not the request's deadline). An attempt opened with a ``deadline_s`` is also abandoned when that
much time has passed (``AttemptDeadline``, a ``TimeoutError``), whatever the reads between; the same timer as the
read timeout's enforces it, and ``Http1Answer.lift_deadline`` lifts it once a stream is handed on.

``Http1Answer.written_s`` says how long after ``open`` began the request was written: 0 on a connection kept
open, the connect (and TLS handshake, and any wait for room at the connection cap) on a new one. The provider
counts a request from its arrival: a learnt limit's pacing counts it from there (core/learned.py)."""

from __future__ import annotations

import asyncio
import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from itertools import chain
from typing import cast
from urllib.parse import urlsplit

import httptools
import httpx

from pooltui.client.upstream_http import (
    CONNECT_TIMEOUT_S,
    READ_TIMEOUT_S,
    ParsedOnce,
    header_names,
    raw_headers,
    tls_context,
)

_PAUSE_ABOVE = 1 << 20  # answer bytes held unread before the socket stops being read
_JOIN_MAX = 64 * 1024  # chunks read at once are handed on as one up to this size (larger ones as they are)
_HOLD_MAX = 64 * 1024  # a body of a stated length up to this size (or JSON of none) wakes its reader once, whole
MAX_HEADERS = 256  # an answer's header lines (a provider sends a few dozen)
MAX_HEAD_BYTES = 64 * 1024  # and their bytes
_OURS = frozenset({"host", "content-length", "transfer-encoding", "connection"})  # framing: ours to write


class UpstreamError(OSError):
    """No complete answer: refused, reset, cut, malformed, or a read or connect timeout."""


class UpstreamTimeout(UpstreamError):
    """The upstream was silent longer than the connect or read timeout (an ``OSError``, not a ``TimeoutError``)."""


class AttemptDeadline(TimeoutError):
    """The attempt's own deadline (``Http1Sender.open``'s ``deadline_s``) passed before its answer was read: the
    request's time is up (not the upstream's fault, not a transport failure to retry on another key)."""


@dataclass(frozen=True, slots=True)
class _Origin:
    """A URL as the client sends to it (parsed once per URL)."""

    key: tuple[str, str, int]
    host: str
    port: int
    tls: bool
    target: str  # path and query
    host_header: str


def _origin_of(url: str) -> _Origin:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == (443 if tls else 80) else f"{shown}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Origin((parts.scheme, host, port), host, port, tls, target, host_header)


class _Connection(asyncio.Protocol):
    """One connection upstream; its current answer gets what the parser reads."""

    def __init__(self, pool: Http1Sender, key: tuple[str, str, int]) -> None:
        self.pool = pool
        self.key = key
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.answer: Http1Answer | None = None
        self.lines: list[tuple[bytes, bytes]] = []  # the current answer's header lines as they are parsed
        self.lost = False
        self.idle_since = 0.0
        self.paused = False
        #: the read timeout's one timer, kept across the connection's answers and moved on lazily: an answer's wait
        #: arms it only when none is set or it would fire after that wait's deadline (see ``_check_timeout``)
        self.timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is one without being its subclass

    def data_received(self, data: bytes) -> None:
        answer = self.answer
        if answer is None:  # bytes nobody asked for: this connection cannot be trusted again
            self.close()
            return
        answer.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            cause = exc.__context__ if isinstance(exc.__context__, UpstreamError) else None
            answer.fail(cause or UpstreamError(f"a malformed answer ({exc})"))
            self.close()
            return
        if answer._state == 0 and answer._raw and answer._over_caps():  # a head still coming, already too big
            answer.fail(_too_many_headers())
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._stop_timer()
        if self.answer is not None:
            self.answer.cut(exc)
        self.pool._forget(self)

    def close(self) -> None:
        self.lost = True
        self._stop_timer()
        if self.transport is not None:
            self.transport.close()

    # ------------------------------------------------------------------ the read timeout
    def arm(self, deadline: float, loop: asyncio.AbstractEventLoop) -> None:
        """The timer set to fire by ``deadline`` (a wait began): left as it is when it fires by then already, as
        it does on a kept connection whose earlier answer armed it (no timer made or cancelled per answer)."""
        timer = self.timer
        if timer is not None:
            if timer.when() <= deadline:
                return
            timer.cancel()
        self.timer = loop.call_at(deadline, self._check_timeout)

    def _check_timeout(self) -> None:
        """The timer fired: a wait that has lasted its read timeout fails; one begun since runs on to its own
        deadline (the timer set again for it); with no wait going on, the next wait sets the timer again."""
        self.timer = None
        answer = self.answer
        waiter = answer._waiter if answer is not None else None
        if answer is None or waiter is None or waiter.done():
            return
        loop = waiter.get_loop()
        now = loop.time()
        if now < answer._deadline:
            self.timer = loop.call_at(answer._deadline, self._check_timeout)
            return
        if now >= answer._cap:
            answer.fail(AttemptDeadline("the attempt's deadline passed before its answer was read"))
            return
        answer.fail(UpstreamTimeout(f"read timeout: nothing from the upstream for {answer._read_s:g} s"))

    def _stop_timer(self) -> None:
        timer, self.timer = self.timer, None
        if timer is not None:
            timer.cancel()

    # ------------------------------------------------------------------ httptools
    def on_header(self, name: bytes, value: bytes) -> None:
        # one append a line: the caps (MAX_HEADERS, MAX_HEAD_BYTES) are checked once a read, and when the head ends
        self.lines.append((name, value))

    def on_headers_complete(self) -> None:
        if self.answer is not None:
            self.answer.head_done(self.parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        if self.answer is not None:
            self.answer.feed(body)

    def on_message_complete(self) -> None:
        if self.answer is not None:
            self.answer.complete(self.parser.should_keep_alive())


class Http1Answer:
    """An upstream's answer (an ``Answer``): status and headers now, the body as it comes."""

    __slots__ = ("_cap", "_chunks", "_conn", "_deadline", "_decoder", "_error", "_head_bytes", "_head_only", "_hold",
                 "_informational", "_keep", "_raw", "_read_s", "_state", "_waiter", "declared", "headers", "received",
                 "status_code", "written_s")

    def __init__(self, conn: _Connection, read_s: float, head_only: bool) -> None:
        self._conn: _Connection | None = conn
        self._read_s = read_s
        self._head_only = head_only  # a HEAD: no body follows its head, whatever its length says
        self._raw: list[tuple[bytes, bytes]] = []  # its header lines (the connection's parser appends them)
        self._head_bytes = 0  # the header bytes of the interim answers (1xx) before it
        self._chunks: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._deadline = 0.0  # when the current wait times out (the connection's timer checks it)
        self._cap = _NEVER  # the attempt's deadline (loop time): no wait lasts past it (see lift_deadline)
        self._error: BaseException | None = None
        self._decoder: zlib._Decompress | None = None
        self._state = 0  # 0 head awaited, 1 body coming, 2 complete
        self._keep = False
        self._hold = False  # its reader woken only once its body is whole (see head_done)
        self._informational = False
        self.received = False  # any byte of it (a reused connection cut before one is replaced)
        self.status_code = 0
        self.headers = _NO_HEADERS  # its own once its head has come
        #: the body's length as its one ``content-length`` header states it (what ``headers.get`` would give, as a
        #: number), None when it states none, several, or not a number
        self.declared: int | None = None
        #: seconds from ``Http1Sender.open``'s start to the request's write (0: on a connection kept open, at once)
        self.written_s = 0.0
        conn.answer, conn.lines = self, self._raw  # the connection's parser feeds it now

    # ------------------------------------------------------------------ fed by the connection
    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _over_caps(self) -> bool:
        """More header lines than ``MAX_HEADERS``, or more bytes of them than ``MAX_HEAD_BYTES`` (with the interim
        answers' before it)."""
        raw = self._raw
        return len(raw) > MAX_HEADERS or self._head_bytes + sum(map(len, chain.from_iterable(raw))) > MAX_HEAD_BYTES

    def head_done(self, status: int) -> None:
        raw = self._raw
        if self._over_caps():
            raise _too_many_headers()  # the connection's parse fails with it as the cause
        if 100 <= status < 200:  # an interim answer (103 Early Hints...): the real one follows
            self._informational = True
            self._head_bytes += sum(map(len, chain.from_iterable(raw)))
            raw.clear()
            return
        self.status_code = status
        self.headers = headers = raw_headers(raw)
        names = header_names(headers)  # lowered once by raw_headers: looked up here in C
        if b"content-encoding" in names:
            encoding = b", ".join([v for k, v in raw if k.lower() == b"content-encoding"]).decode(
                "latin-1").strip().lower()  # what ``headers.get`` gives (repeated ones joined), without its lookups
            if encoding in ("gzip", "x-gzip", "deflate"):
                self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS)
        if names.count(b"content-length") == 1:  # several are joined by ``headers.get``: no number then
            length = raw[names.index(b"content-length")][1]
            self.declared = int(length) if length.isdigit() else None
        self._state = 1
        if self._head_only:
            self._state, self._keep = 2, False
        elif (self.declared is not None and self.declared <= _HOLD_MAX) or (
                self.declared is None and _is_json(raw, names)):
            # a small body of a stated length, or JSON of none (read whole by every reader): its reader is woken when
            # all of it is here (or past _HOLD_MAX), not for its head alone (an upstream that writes head and body
            # apart would cost the request's task a wake for nothing)
            self._hold = True
            return
        waiter = self._waiter  # _wake, inlined (as in feed and complete): once per read of an answer
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def feed(self, body: bytes) -> None:
        if self._state != 1:
            return
        if self._decoder is not None:
            try:
                body = self._decoder.decompress(body)
            except zlib.error as exc:
                self.fail(UpstreamError(f"an answer that does not decode ({exc})"))
                return
        if body:
            self._chunks.append(body)
            conn = self._conn
            if conn is not None and not conn.paused and conn.transport is not None \
                    and sum(map(len, self._chunks)) > _PAUSE_ABOVE:
                conn.paused = True
                conn.transport.pause_reading()
        if self._hold and sum(map(len, self._chunks)) > _HOLD_MAX:
            self._hold = False  # more than a small body after all: read as it comes
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if self._hold:  # the rest is awaited whole; this piece starts the read timeout again, as a wake would
                self._deadline = min(waiter.get_loop().time() + self._read_s, self._cap)
            else:
                waiter.set_result(None)

    def complete(self, keep: bool) -> None:
        if self._informational:
            self._informational = False
            return
        if self._state != 1:
            return
        if self._decoder is not None and (tail := self._decoder.flush()):
            self._chunks.append(tail)
        self._state, self._keep = 2, keep
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def cut(self, exc: Exception | None) -> None:
        if self._state == 2:
            return
        if self._state == 1 and exc is None and "content-length" not in self.headers \
                and "chunked" not in self.headers.get("transfer-encoding", "").lower():
            self.complete(False)  # a body without a length ends where the connection does
            return
        self.fail(UpstreamError(f"the upstream closed the connection before the answer was complete"
                                f"{f' ({exc})' if exc else ''}"))

    def fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self._wake()

    # ------------------------------------------------------------------ read by the client
    async def _wait(self) -> None:
        """Until something more comes (or fails), for ``read_s`` at most."""
        if self._error is not None:
            raise self._error
        conn = self._conn
        if conn is None:  # released: nothing more will come
            raise UpstreamError("the answer was closed")
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        deadline = loop.time() + self._read_s
        if deadline > self._cap:
            deadline = self._cap
        self._deadline = deadline
        conn.arm(deadline, loop)
        try:
            await waiter
        finally:
            self._waiter = None
        if self._error is not None:
            raise self._error

    def lift_deadline(self) -> None:
        """No deadline for the rest of this answer (a stream handed on: a long one is not cut; its read timeout and
        the stream's idle limit still hold)."""
        self._cap = _NEVER

    async def head(self) -> None:
        while self._state == 0:
            await self._wait()

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body's chunks as they arrive (decoded when the upstream encoded it)."""
        chunks = self._chunks
        try:
            while True:
                if chunks:
                    chunk = chunks.popleft() if len(chunks) == 1 else _joined(chunks)
                    conn = self._conn
                    if conn is not None and conn.paused and conn.transport is not None and not chunks:
                        conn.paused = False
                        conn.transport.resume_reading()
                    yield chunk
                elif self._state == 2:
                    break
                else:
                    await self._wait()
        finally:
            if self._state == 2 and not chunks:
                self._release()

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        return self.aiter_raw()

    @property
    def ended(self) -> bool:
        """Whether every byte of the body has been read: ``aiter_raw``'s next step ends it, nothing more comes
        (a stream's last chunk is known as the last one when it is read)."""
        return self._state == 2 and not self._chunks

    def whole(self) -> bytes | None:
        """The whole body (decoded) when all of it has already arrived, the connection released as ``aiter_raw``
        leaves it; None when more is to come or reading is paused (read it through ``aiter_raw``)."""
        conn = self._conn
        if self._state != 2 or self._error is not None or (conn is not None and conn.paused):
            return None
        chunks = self._chunks
        body = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._release()
        return body

    async def aclose(self) -> None:
        self._release()

    def _release(self) -> None:
        """The connection back to the pool when the answer was read whole and may be kept; closed otherwise."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        conn.answer = None
        if self._state == 2 and self._keep and not self._chunks and not conn.lost and self._error is None:
            conn.pool._idle_again(conn)
        else:
            conn.close()
            conn.pool._forget(conn)


_NO_HEADERS = httpx.Headers()  # an answer's headers until its head has come (nothing reads them before)
_NEVER = float("inf")
_KEPT, _KEPT_LATER, _NEW = 0, 1, 2  # how an attempt got its connection (Http1Sender._acquire)


def _is_json(raw: list[tuple[bytes, bytes]], names: tuple[bytes, ...]) -> bool:
    """Whether an answer's content type is JSON, as the client judges it (``_is_event_stream``: its one
    ``content-type``, parameters left out)."""
    if names.count(b"content-type") != 1:
        return False
    return raw[names.index(b"content-type")][1].split(b";")[0].strip().lower() == b"application/json"


def _too_many_headers() -> UpstreamError:
    return UpstreamError(f"an answer with more than {MAX_HEADERS} headers or {MAX_HEAD_BYTES // 1024} KiB of them")


def _joined(chunks: deque[bytes]) -> bytes:
    """The chunks that came together, taken as one (up to ``_JOIN_MAX`` bytes): a stream's events read in one go
    are relayed in one write, scanned in one pass, not one by one."""
    parts = [chunks.popleft()]
    size = len(parts[0])
    while chunks and size + len(chunks[0]) <= _JOIN_MAX:
        parts.append(chunk := chunks.popleft())
        size += len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


_LINES_KEPT = 1024  # header lines remembered (the same few each request: a key's auth, a client's own headers)
#: per (name, value) sent: its line ("" for a header of ours) and whether it names the user agent
_LINES: dict[tuple[str, str], tuple[str, bool]] = {}


def _line(name: str, value: str) -> tuple[str, bool]:
    """A request header's line and whether it is the User-Agent; ("", False) for framing, which is ours to write.
    A line break or a colon where none may be is refused (header injection)."""
    lowered = name.lower()
    if lowered in _OURS:
        return "", False
    if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
        raise ValueError(f"header {name!r}: a line break or colon where none may be (header injection)")
    return f"{name}: {value}\r\n", lowered == "user-agent"


class Http1Sender:
    """Attempts on our HTTP/1.1 client (a ``Sender``); see the module's doc."""

    def __init__(self, max_connections: int = 256, connect_s: float = CONNECT_TIMEOUT_S,
                 read_s: float = READ_TIMEOUT_S, keepalive_s: float | None = 5.0) -> None:
        self._max = max_connections
        self._connect_s = connect_s
        self._read_s = read_s
        self._keepalive_s = keepalive_s if keepalive_s is not None else 5.0
        self._ssl = tls_context()
        self._origin = ParsedOnce(_origin_of)
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._room: deque[asyncio.Future[None]] = deque()  # waiting for a connection to close

    @staticmethod
    def _head(method: str, origin: _Origin, content: bytes | None, headers: Mapping[str, str]) -> bytes:
        """The request's head as sent: a header of ours (framing) left out, one that could inject a line refused
        (``ValueError``); each (name, value) line made and checked once while it is remembered (``_LINES``)."""
        lines = [f"{method} {origin.target} HTTP/1.1\r\nHost: {origin.host_header}\r\n"]
        agent = False
        made = _LINES
        for item in headers.items():
            known = made.get(item)
            if known is None:
                known = _line(*item)
                if len(made) >= _LINES_KEPT:
                    made.clear()
                made[item] = known
            line, names_agent = known
            if line:
                lines.append(line)
                agent = agent or names_agent
        if not agent:
            lines.append("User-Agent: pooltui\r\n")
        if content is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(content or b'')}\r\n")
        lines.append("\r\n")
        text = "".join(lines)
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError:
            return text.encode("utf-8")

    async def open(self, method: str, url: str, content: bytes | None, headers: Mapping[str, str],
                   timeout_s: float | None, deadline_s: float | None = None) -> Http1Answer:
        """The answer's head (its body read from the answer). ``deadline_s``: abandon the attempt that many seconds
        from now (``AttemptDeadline``), whether waiting for room, connecting or reading; lifted per answer by
        ``Http1Answer.lift_deadline`` (one timer with the read timeout's, no ``asyncio.timeout`` per attempt)."""
        origin = self._origin(url)
        head = self._head(method, origin, content, headers)
        connect_s = self._connect_s if timeout_s is None else min(timeout_s, self._connect_s)
        read_s = self._read_s if timeout_s is None else min(timeout_s, self._read_s)
        loop = asyncio.get_running_loop()
        begun = loop.time()
        cap = _NEVER if deadline_s is None else begun + deadline_s
        for tries_left in (1, 0):
            conn, how = await self._acquire(origin, connect_s, cap)
            answer = Http1Answer(conn, read_s, method == "HEAD")  # the connection's answer now
            answer._cap = cap
            if how != _KEPT:  # a connect (or a wait for room) came first: the provider counts it from now
                answer.written_s = loop.time() - begun
            try:
                assert conn.transport is not None
                if content and len(content) > 64 * 1024:
                    conn.transport.writelines((head, content))
                else:
                    conn.transport.write(head + content if content else head)
                while answer._state == 0:  # its head (answer.head(), inlined: one frame less at each wake)
                    await answer._wait()
                return answer
            except UpstreamError as exc:
                answer._release()
                if how != _NEW and not answer.received and tries_left and not isinstance(exc, UpstreamTimeout):
                    continue  # the upstream had closed this idle connection: once more, on a new one
                raise  # (a silent upstream has the request: sent again, it could run twice, after two timeouts)
            except BaseException:
                answer._release()
                raise
        raise AssertionError("unreachable")

    async def _acquire(self, origin: _Origin, connect_s: float, cap: float = _NEVER) -> tuple[_Connection, int]:
        """A connection to ``origin`` and how it came: kept and at once (``_KEPT``), kept after a wait for room
        (``_KEPT_LATER``) or new (``_NEW``); waits for room at the connection cap and connects within
        ``connect_s``, neither past ``cap`` (loop time: then ``AttemptDeadline``)."""
        loop = asyncio.get_running_loop()
        how = _KEPT
        while True:
            kept = self._kept(origin, loop.time())
            if kept is not None:
                return kept, how
            if len(self._open) < self._max or self._close_one_idle():
                break
            room = loop.create_future()  # at the cap: until a connection closes or comes back idle
            self._room.append(room)
            try:
                async with asyncio.timeout_at(None if cap == _NEVER else cap):
                    await room
            except TimeoutError:
                raise AttemptDeadline("the attempt's deadline passed waiting for a connection") from None
            finally:
                if room in self._room:
                    self._room.remove(room)
            how = _KEPT_LATER
        conn = _Connection(self, origin.key)
        self._open.add(conn)
        try:
            async with asyncio.timeout_at(min(loop.time() + connect_s, cap)):
                transport, _ = await loop.create_connection(lambda: conn, origin.host, origin.port,
                                                            ssl=self._ssl if origin.tls else None,
                                                            server_hostname=origin.host if origin.tls else None)
            conn.transport = transport  # uvloop may call connection_made after this returns
        except TimeoutError:
            self._forget(conn)
            if loop.time() >= cap:
                raise AttemptDeadline("the attempt's deadline passed while connecting") from None
            raise UpstreamTimeout(f"connect timeout: {origin.host}:{origin.port} did not answer in {connect_s:g} s") \
                from None
        except OSError as exc:
            self._forget(conn)
            raise UpstreamError(f"cannot connect to {origin.host}:{origin.port}: {exc.strerror or exc}") from None
        except BaseException:
            conn.close()
            self._forget(conn)
            raise
        return conn, _NEW

    def _kept(self, origin: _Origin, now: float) -> _Connection | None:
        """An idle connection to ``origin`` still good for a request (the expired or closed ones closed)."""
        idle = self._idle.get(origin.key)
        while idle:
            conn = idle.pop()
            if not conn.lost and now - conn.idle_since < self._keepalive_s and conn.transport is not None \
                    and not conn.transport.is_closing():
                return conn
            conn.close()
            self._forget(conn)
        return None

    def _close_one_idle(self) -> bool:
        for idle in self._idle.values():
            if idle:
                conn = idle.pop(0)
                conn.close()
                self._forget(conn)
                return True
        return False

    def _idle_again(self, conn: _Connection) -> None:
        conn.idle_since = asyncio.get_running_loop().time()
        self._idle.setdefault(conn.key, []).append(conn)
        if self._room:
            self._make_room()

    def _make_room(self) -> None:
        """Wake one request waiting at the cap."""
        while self._room:
            room = self._room.popleft()
            if not room.done():
                room.set_result(None)
                return

    def _forget(self, conn: _Connection) -> None:
        """A connection closed: out of the pool, room for a waiting one."""
        if conn in self._open:
            self._open.discard(conn)
            idle = self._idle.get(conn.key)
            if idle and conn in idle:
                idle.remove(conn)
            self._make_room()

    async def aclose(self) -> None:
        for conn in list(self._open):
            conn.close()
            self._forget(conn)
        self._idle.clear()
