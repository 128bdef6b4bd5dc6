"""The API routes are served from the proxy's own protocol on an ``Exchange`` (proxy/exchange.py): no uvicorn cycle
or ASGI scope for them, the access guard still checked, a caller that goes mid-body ends its request, a chunked
body is read whole, an unforeseen error is a 500 in the caller's dialect, and a request in flight when the server
stops is answered before the connection closes."""

from __future__ import annotations

import gc
import json
import logging
import socket
import time

import pytest
from starlette.routing import Match
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from pooltui.proxy.app import ApiEndpoint, ApiRoutes, _routes
from pooltui.proxy.exchange import Exchange
from pooltui.proxy.guard import AccessGuard, AccessPolicy
from pooltui.proxy.limits import ClientLimits
from pooltui.proxy.observe import Observer
from pooltui.sim.server import ThreadedServer
from pooltui.sim.wiring import client_for_scenario
from tests.conftest import make_scenario
from tests.safety.helpers import client_on
from tests.safety.test_bounded_requests import UPSTREAM
from tests.test_proxy import OAI_KEYS, ProxyThread, proxied  # noqa: F401  (the fixture)
from tests.test_proxy_client_limits import TOKEN, answer, connect
from tests.test_proxy_direct import _Reader, _request


def _counts(port: int) -> tuple[int, int]:
    """uvicorn cycles of requests to ``port`` (the simulator runs in this process too), and exchanges."""
    objects = gc.get_objects()
    return (sum(isinstance(o, RequestResponseCycle) and o.scope["server"][1] == port for o in objects),
            sum(isinstance(o, Exchange) for o in objects))


def test_api_requests_make_no_uvicorn_cycle_and_their_exchanges_are_freed(proxied) -> None:  # noqa: F811
    """Plain and streamed API requests on a kept-alive connection: each on an Exchange (no RequestResponseCycle,
    none left for the cycle collector), while /healthz still goes uvicorn's way."""
    _, clients = proxied
    with ProxyThread({"oai": clients["oai"]}) as px, \
            socket.create_connection((px.service.host, px.service.port), timeout=10) as sock:
        reader = _Reader(sock)
        port = px.service.port
        gc.collect()
        gc.disable()
        try:
            for i in range(20):
                sock.sendall(_request(port, 2, stream=i % 2 == 1))
                assert reader.response()[0] == b"HTTP/1.1 200 OK"
            cycles, exchanges = _counts(port)
            sock.sendall(f"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n".encode())
            status, _, body = reader.response()
            after_health = _counts(port)[0]
        finally:
            gc.enable()
    assert cycles == 0, f"{cycles} uvicorn cycles made for API requests"
    assert exchanges <= 2, f"{exchanges} exchanges of 20 answered requests wait for the cycle collector"
    assert status == b"HTTP/1.1 200 OK" and json.loads(body) == {"ok": True} and after_health >= 1


def test_which_requests_the_front_serves_follows_the_starlette_routes(proxied) -> None:  # noqa: F811
    """The front takes what the Starlette app gives an ApiEndpoint (a POST to any /v1 path it does not route
    elsewhere, a GET of /v1/messages), and leaves the rest: models, probes, control endpoints, HEAD, OPTIONS."""
    _, clients = proxied
    with ProxyThread({"oai": clients["oai"]}) as px:
        routes = _routes(px.proxy).routes
        policy = AccessPolicy.build(8787, "127.0.0.1")
        front = ApiRoutes(px.proxy, AccessGuard(lambda *a: None, policy), routes)  # type: ignore[arg-type]
        ok = [(b"host", b"127.0.0.1:8787"), (b"content-type", b"application/json")]
        served = {(m, p): front.api(m, p, ok) for m, p in [
            ("POST", "/v1/chat/completions"), ("POST", "/v1/messages"), ("POST", "/v1/moderations"),
            ("GET", "/v1/messages"), ("DELETE", "/v1/files/f1"), ("GET", "/v1/models"), ("GET", "/v1/models/m"),
            ("POST", "/v1/props"), ("GET", "/healthz"), ("POST", "/pooltui/command"),
            ("HEAD", "/v1/chat/completions"), ("OPTIONS", "/v1/chat/completions")]}
    assert served == {("POST", "/v1/chat/completions"): "openai", ("POST", "/v1/messages"): "anthropic",
                      ("POST", "/v1/moderations"): "openai", ("GET", "/v1/messages"): "openai",
                      ("DELETE", "/v1/files/f1"): "openai", ("GET", "/v1/models"): None, ("GET", "/v1/models/m"): None,
                      ("POST", "/v1/props"): None, ("GET", "/healthz"): None, ("POST", "/pooltui/command"): None,
                      ("HEAD", "/v1/chat/completions"): None, ("OPTIONS", "/v1/chat/completions"): None}
    for (method, path), api in served.items():  # what Starlette itself routes each to
        scope = {"type": "http", "method": method, "path": path, "root_path": ""}
        full = next((r for r in routes if r.matches(scope)[0] is Match.FULL), None)
        endpoint = getattr(full, "endpoint", None)
        assert (endpoint.api if isinstance(endpoint, ApiEndpoint) and method != "HEAD" else None) == api


@pytest.mark.parametrize(("extra", "status"), [
    ({"host": "attacker.example:80"}, 403),
    ({"origin": "https://attacker.example"}, 403),
    ({"content-type": "text/plain"}, 415),
])
def test_the_access_guard_refuses_on_the_api_routes_and_counts_it(proxied, extra, status) -> None:  # noqa: F811
    _, clients = proxied
    with ProxyThread({"oai": clients["oai"]}) as px, \
            socket.create_connection((px.service.host, px.service.port), timeout=10) as sock:
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
        headers = {"host": f"127.0.0.1:{px.service.port}", "content-type": "application/json", **extra}
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\n"
                     + "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
                     + f"content-length: {len(body)}\r\n\r\n".encode() + body)
        got, _, answer = _Reader(sock).response()
        refused = px.proxy.stats.refused
    assert got.startswith(f"HTTP/1.1 {status} ".encode())
    assert json.loads(answer)["error"]["type"] == "permission_error" and refused == 1


def test_a_caller_gone_before_its_body_is_whole_ends_its_request(proxied) -> None:  # noqa: F811
    """The request waits for its body; the caller closes instead: the request's task ends, nothing is sent
    upstream and the connection is dropped."""
    _, clients = proxied
    with ProxyThread({"oai": clients["oai"]}) as px:
        state = px.service.server.server_state
        with socket.create_connection((px.service.host, px.service.port), timeout=10) as sock:
            raw = _request(px.service.port, 3)
            sock.sendall(raw[:raw.index(b"\r\n\r\n") + 14])  # the head and a few bytes of the body
            deadline = time.monotonic() + 5
            while not state.tasks and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(state.tasks) == 1  # the request's task waits for the rest of its body
        deadline = time.monotonic() + 5
        while (state.tasks or state.connections) and time.monotonic() < deadline:
            time.sleep(0.01)
        left = len(state.tasks), len(state.connections)
    assert left == (0, 0)
    assert not [r for r in clients["oai"].traces if r.served_by]  # nothing went upstream


def test_a_chunked_body_sent_in_pieces_is_read_whole(proxied) -> None:  # noqa: F811
    _, clients = proxied
    body = json.dumps({"model": "m", "max_tokens": 6, "messages": [{"role": "user", "content": "hi"}]}).encode()
    with ProxyThread({"oai": clients["oai"]}) as px, \
            socket.create_connection((px.service.host, px.service.port), timeout=10) as sock:
        sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{px.service.port}\r\n"
                     "content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".encode()
                     + b"%x\r\n" % 10 + body[:10] + b"\r\n")
        time.sleep(0.2)
        sock.sendall(b"%x\r\n" % len(body[10:]) + body[10:] + b"\r\n0\r\n\r\n")
        status, _, answer = _Reader(sock).response()
    assert status == b"HTTP/1.1 200 OK" and json.loads(answer)["usage"]["completion_tokens"] == 6


class _Broken(Observer):
    """An observer with a bug: every request's start raises."""

    async def begin(self, request, api):  # type: ignore[no-untyped-def]
        raise ZeroDivisionError("planted")


@pytest.mark.parametrize(("path", "dialect"), [("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic")])
def test_an_unforeseen_exception_is_a_500_in_the_callers_dialect_and_its_traceback_is_logged(
        proxied, path, dialect) -> None:  # noqa: F811
    _, clients = proxied
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    try:
        with ProxyThread(dict(clients), observer=_Broken()) as px, \
                socket.create_connection((px.service.host, px.service.port), timeout=10) as sock:
            logging.getLogger("uvicorn.error").addHandler(handler)  # once uvicorn has set its logging up
            raw = _request(px.service.port, 3).replace(b"/v1/chat/completions", path.encode(), 1)
            sock.sendall(raw)
            reader = _Reader(sock)
            status, headers, body = reader.response()
            closed = reader.closed()
    finally:
        logging.getLogger("uvicorn.error").removeHandler(handler)
    error = json.loads(body)
    assert status == b"HTTP/1.1 500 Internal Server Error" and headers[b"content-type"] == b"application/json"
    if dialect == "anthropic":
        assert error["type"] == "error" and error["error"]["type"] == "api_error"
    else:
        assert error["error"]["code"] == "internal_error"
    assert "internal error (ZeroDivisionError)" in json.dumps(error) and closed
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in records)


def test_a_request_in_flight_when_the_server_stops_is_answered_then_the_connection_closes(serve) -> None:
    slow = {"name": "oai", "window_s": 60, "keys": OAI_KEYS[2:], "latency_ms": 1000}
    server = serve(make_scenario(slow))
    client = client_for_scenario(make_scenario(slow), server, "failover", seed=1)
    with ProxyThread({"oai": client}) as px, \
            socket.create_connection((px.service.host, px.service.port), timeout=10) as sock:
        sock.sendall(_request(px.service.port, 4))
        state = px.service.server.server_state
        deadline = time.monotonic() + 5
        while not state.tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        px.service.server.should_exit = True  # what SIGTERM does
        reader = _Reader(sock)
        status, headers, body = reader.response()
        closed = reader.closed()
        px.thread.join(10)
        stopped = not px.thread.is_alive()
    assert status == b"HTTP/1.1 200 OK" and json.loads(body)["usage"]["completion_tokens"] == 4
    assert headers[b"connection"] == b"close" and closed and stopped


def test_a_pipelined_whole_answer_waits_while_the_callers_side_is_full() -> None:
    """Flow control: two pipelined requests for 8 MiB answers from a caller that reads nothing for a while. The
    first answer fills the connection (its writer pauses); the second waits for it to drain rather than piling
    up in the proxy's memory. Then both are read, whole and in order."""
    size = 8 * 2**20
    with ThreadedServer(UPSTREAM) as up, ProxyThread({"up": client_on(f"{up.url}/sized/v1")}) as px, \
            socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        sock.settimeout(20)
        sock.connect((px.service.host, px.service.port))
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
        one = (f"POST /v1/chat/completions?bytes={size} HTTP/1.1\r\nhost: 127.0.0.1:{px.service.port}\r\n"
               f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body
        sock.sendall(one + one)
        deadline = time.monotonic() + 10
        while not px.service.server.server_state.connections and time.monotonic() < deadline:
            time.sleep(0.01)
        conn = next(iter(px.service.server.server_state.connections))
        while time.monotonic() < deadline and not (conn.flow.write_paused and
                                                   sum(px.proxy.stats.requests.values()) == 2):
            time.sleep(0.05)
        time.sleep(0.3)
        buffered = conn.transport.get_write_buffer_size()
        reader = _Reader(sock)
        answers = [reader.response() for _ in range(2)]
    assert sum(px.proxy.stats.requests.values()) == 2, "both upstream answers were in before the check"
    assert buffered < 1.25 * size, f"{buffered} bytes held for a caller that reads nothing"
    assert [(status, len(got)) for status, _, got in answers] == [(b"HTTP/1.1 200 OK", size)] * 2


def test_an_authorised_api_request_marks_its_connection_which_is_then_never_evicted(proxied) -> None:  # noqa: F811
    """A chat completion with the proxy token (the exchange path) marks its connection: with the address at its
    cap, a newcomer evicts the idle unauthorised connection, not the older authorised one, which still serves."""
    _, clients = proxied
    with ProxyThread({"oai": clients["oai"]}, token=TOKEN, client_limits=ClientLimits(max_per_address=2)) as px:
        port = px.service.port
        with socket.create_connection(("127.0.0.1", port), timeout=10) as caller:
            reader = _Reader(caller)
            caller.sendall(_request(port, 2, f"x-api-key: {TOKEN}"))
            assert reader.response()[0] == b"HTTP/1.1 200 OK"
            idle = connect(port)  # the address now holds 2: the caller's and this one
            newcomer = connect(port)  # the idle unauthorised one makes room
            assert answer(idle, 3) == b""  # not the caller's, older but authorised
            caller.sendall(_request(port, 3, f"x-api-key: {TOKEN}"))
            status, _, body = reader.response()
            newcomer.close()
    assert status == b"HTTP/1.1 200 OK" and json.loads(body)["usage"]["completion_tokens"] == 3
