"""Shared pieces of the safety tests: a recording upstream, a pool client on it, raw HTTP requests."""

from __future__ import annotations

import socket
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pooltui.client.pool_client import PoolClient, Upstream
from pooltui.core import KeySpec, Pool
from pooltui.providers.profiles import profile_for


class Recorder:
    """An upstream that records what reached it and answers 200 JSON with a Connection-named header."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/{rest:path}", self.handle, methods=["GET", "POST"])])

    async def handle(self, request: Request) -> JSONResponse:
        self.seen.append({"path": request.scope.get("raw_path", b"").decode(), "query": request.url.query,
                          "headers": dict(request.headers)})
        return JSONResponse({"id": "x", "object": "list", "data": []},
                            headers={"connection": "x-up-hop", "x-up-hop": "upstream-private", "x-kept": "1"})


def client_on(base_url: str, secret: str = "sk-test-recorder-000000000001", dialect: str = "openai-compatible",
              **kw: Any) -> PoolClient:
    """A PoolClient with one key in front of ``base_url``."""
    profile = profile_for(dialect, name="up", base_url=base_url)
    return PoolClient(Upstream(profile, Pool("up", [KeySpec("k", secret)])), **kw)


def raw_request(port: int, request_line: str, headers: dict[str, str] | None = None,
                body: bytes = b"") -> tuple[int, bytes]:
    """Send one HTTP/1.1 request exactly as written (like ``curl --path-as-is``); (status, body)."""
    hdrs = {"host": f"127.0.0.1:{port}", "connection": "close", **(headers or {})}
    if body:
        hdrs["content-length"] = str(len(body))
    head = request_line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1") + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
