"""The API routes' whole answers leave straight through the connection's cycle (proxy/direct.py), not through ASGI's
messages: the bytes are uvicorn's (status line, its date and server headers, content length, ``connection: close``
when the caller asked for it, then the close), pipelined requests are answered in order on one connection, and a
body that arrives in pieces is still read whole."""

from __future__ import annotations

import gc
import json
import socket

from tests.test_proxy import ProxyThread, proxied  # noqa: F401  (the fixture)


class _Reader:
    """Responses read one by one off a socket (pipelined ones share its buffer)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def response(self) -> tuple[bytes, dict[bytes, bytes], bytes]:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        status, *lines = head.split(b"\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(b":", 1) for line in lines)}
        if headers.get(b"transfer-encoding") == b"chunked":
            return status, headers, self._chunked()
        length = int(headers[b"content-length"])
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body

    def _chunked(self) -> bytes:
        body = b""
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            size_line, _, self.buf = self.buf.partition(b"\r\n")
            size = int(size_line, 16)
            while len(self.buf) < size + 2:
                self._fill()
            assert size > 0 or self.buf[:2] == b"\r\n", "a chunk framed as HTTP/1.1 says"
            body, self.buf = body + self.buf[:size], self.buf[size + 2:]
            if size == 0:
                return body

    def closed(self) -> bool:
        try:
            self._fill()
        except EOFError:
            return True
        return False


def _request(port: int, max_tokens: int, *extra: str, stream: bool = False) -> bytes:
    body = json.dumps({"model": "m", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hi"}],
                       **({"stream": True} if stream else {})}).encode()
    return (f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
            + "".join(f"{h}\r\n" for h in extra) + f"content-length: {len(body)}\r\n\r\n").encode() + body


def test_pipelined_requests_are_answered_in_order_then_a_close_closes(proxied) -> None:  # noqa: F811
    _, clients = proxied
    with ProxyThread({"oai": clients["oai"]}) as px, \
            socket.create_connection((px.service.host, px.service.port), timeout=10) as sock:
        port = px.service.port
        sock.sendall(_request(port, 3) + _request(port, 7) + _request(port, 5, "connection: close"))
        reader = _Reader(sock)
        answers = [reader.response() for _ in range(3)]
        assert reader.closed()  # the third asked for it: the proxy closes once it is answered
    for (status, headers, body), tokens in zip(answers, (3, 7, 5), strict=True):
        assert status == b"HTTP/1.1 200 OK"
        assert json.loads(body)["usage"]["completion_tokens"] == tokens
        assert headers[b"content-type"] == b"application/json"
        assert headers[b"x-pooltui-served-by"].startswith(b"oai/")
        assert b"date" in headers and headers[b"server"] == b"uvicorn"  # uvicorn's own, as its send writes them
        assert b"transfer-encoding" not in headers
    assert b"connection" not in answers[0][1] and answers[2][1][b"connection"] == b"close"


def test_a_body_sent_in_pieces_is_read_whole(proxied) -> None:  # noqa: F811
    _, clients = proxied
    with ProxyThread({"oai": clients["oai"]}) as px, \
            socket.create_connection((px.service.host, px.service.port), timeout=10) as sock:
        raw = _request(px.service.port, 4)
        head_end = raw.index(b"\r\n\r\n") + 4
        sock.sendall(raw[:head_end + 10])  # the head and the body's first bytes: the rest comes later
        reader = _Reader(sock)
        sock.settimeout(0.3)
        try:
            early = sock.recv(1)
        except TimeoutError:
            early = b""
        assert early == b""  # nothing answered before the body is whole
        sock.settimeout(10)
        sock.sendall(raw[head_end + 10:])
        status, _, body = reader.response()
    assert status == b"HTTP/1.1 200 OK" and json.loads(body)["usage"]["completion_tokens"] == 4


def test_a_stream_is_chunked_as_uvicorn_frames_it_then_the_next_request_is_answered(proxied) -> None:  # noqa: F811
    _, clients = proxied
    with ProxyThread({"oai": clients["oai"]}) as px, \
            socket.create_connection((px.service.host, px.service.port), timeout=10) as sock:
        port = px.service.port
        sock.sendall(_request(port, 6, stream=True) + _request(port, 2, "connection: close"))
        reader = _Reader(sock)
        status, headers, body = reader.response()
        after = reader.response()
        assert reader.closed()
    assert status == b"HTTP/1.1 200 OK" and headers[b"content-type"].startswith(b"text/event-stream")
    assert b"date" in headers and headers[b"server"] == b"uvicorn" and b"connection" not in headers
    assert b"content-length" not in headers
    events = [line[6:] for line in body.split(b"\n") if line.startswith(b"data: ")]
    assert events[-1] == b"[DONE]" and len(events) > 2
    assert "".join(c["delta"].get("content") or "" for e in events[:-1] for c in json.loads(e)["choices"])
    assert after[0] == b"HTTP/1.1 200 OK" and after[1][b"connection"] == b"close"
    assert json.loads(after[2])["usage"]["completion_tokens"] == 2


def test_an_answered_requests_cycle_is_freed_without_the_cycle_collector(proxied) -> None:  # noqa: F811
    """The request's cycle is offered to the API routes by a weak reference: a strong one in the scope, which the
    cycle holds, made each request 10 objects of garbage only the cycle collector frees (13% of the proxy's CPU
    under `bench proxy`). The API routes now take the proxy's own path (proxy/exchange.py): whichever object a
    request is served on, a cycle or an exchange, it is freed without the collector."""
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    from pooltui.proxy.exchange import Exchange

    _, clients = proxied
    with ProxyThread({"oai": clients["oai"]}) as px, \
            socket.create_connection((px.service.host, px.service.port), timeout=10) as sock:
        reader = _Reader(sock)
        gc.collect()
        gc.disable()
        try:
            for _ in range(20):
                sock.sendall(_request(px.service.port, 2))
                assert reader.response()[0] == b"HTTP/1.1 200 OK"
            alive = sum(isinstance(o, RequestResponseCycle | Exchange) for o in gc.get_objects())
        finally:
            gc.enable()
    assert alive <= 2, f"{alive} cycles of 20 answered requests wait for the cycle collector"
