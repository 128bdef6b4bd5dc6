"""The floor of ``bench proxy``: the least a Python hop can cost on this machine. A pass-through relay on uvloop
(asyncio Protocol, httptools) with no pooling feature at all: one keep-alive upstream connection per caller
connection, each request's head re-sent with the path under the upstream's prefix, the answer's bytes relayed as
they come. Run as ``python -m pooltui.bench.floor LISTEN_PORT UPSTREAM_PORT PREFIX`` (its own process)."""

from __future__ import annotations

import asyncio
import sys

import httptools


class _Upstream(asyncio.Protocol):
    """The caller's upstream connection: answer bytes go back to the caller as they come."""

    def __init__(self, caller: asyncio.Transport) -> None:
        self.caller = caller
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.caller.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.caller.close()


class _Caller(asyncio.Protocol):
    """One caller connection: requests parsed for their boundaries, re-sent upstream head and body."""

    def __init__(self, upstream_port: int, prefix: bytes) -> None:
        self.upstream_port = upstream_port
        self.prefix = prefix
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.upstream: _Upstream | None = None
        self.pending: list[bytes] = []  # what was read before the upstream connection was open
        self.head: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        _, self.upstream = await loop.create_connection(lambda: _Upstream(self.transport),  # type: ignore[arg-type]
                                                        "127.0.0.1", self.upstream_port)
        for data in self.pending:
            self._send(data)
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()

    def _send(self, data: bytes) -> None:
        if self.upstream is None or self.upstream.transport is None:
            self.pending.append(data)
        else:
            self.upstream.transport.write(data)

    # httptools
    def on_url(self, url: bytes) -> None:
        self.head = [self.parser.get_method(), b" ", self.prefix, url, b" HTTP/1.1\r\n"]

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head += (name, b": ", value, b"\r\n")

    def on_headers_complete(self) -> None:
        self.head.append(b"\r\n")
        self._send(b"".join(self.head))

    def on_body(self, body: bytes) -> None:
        self._send(body)


def main(argv: list[str]) -> None:
    import uvloop

    listen_port, upstream_port, prefix = int(argv[0]), int(argv[1]), argv[2].encode()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Caller(upstream_port, prefix), "127.0.0.1", listen_port)
        await server.serve_forever()

    uvloop.run(serve())


if __name__ == "__main__":
    main(sys.argv[1:])
