"""The proxy sends a response's head and body in one write (proxy/one_write.py); a caller that asks for
``100 Continue`` still gets it before it sends its body, and a response is whole and well framed."""

from __future__ import annotations

import json
import socket

from tests.test_proxy import ProxyThread, proxied  # noqa: F401  (the fixture)


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_caller_waiting_for_100_continue_gets_it_then_its_answer(proxied) -> None:  # noqa: F811
    _, clients = proxied
    body = json.dumps({"model": "m", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}).encode()
    with ProxyThread({"oai": clients["oai"]}) as px, \
            socket.create_connection((px.service.host, px.service.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: " + f"127.0.0.1:{px.service.port}".encode()
                     + b"\r\ncontent-type: application/json\r\nexpect: 100-continue\r\n"
                     + f"content-length: {len(body)}\r\n\r\n".encode())
        interim = sock.recv(65536)  # the proxy must say continue before anything else: the body waits for it
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        answer = interim[len(b"HTTP/1.1 100 Continue\r\n\r\n"):] + _read_response(sock)
    head, _, content = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert json.loads(content)["object"] == "chat.completion"


def test_a_head_request_gets_its_head_at_once_and_the_connection_goes_on(proxied) -> None:  # noqa: F811
    """A HEAD's answer has no body to join its head to: the head goes when the answer is complete (it was held
    until the connection closed, so a caller kept waiting, and so did every request pipelined behind it)."""
    _, clients = proxied
    with ProxyThread({"oai": clients["oai"]}) as px, \
            socket.create_connection((px.service.host, px.service.port), timeout=10) as sock:
        host = f"127.0.0.1:{px.service.port}"
        sock.settimeout(5)
        for path in ("/healthz", "/v1/models", "/v1/chat/completions"):
            sock.sendall(f"HEAD {path} HTTP/1.1\r\nhost: {host}\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(65536)  # a timeout here is the bug
            assert head.startswith(b"HTTP/1.1 ") and head.endswith(b"\r\n\r\n"), (path, head)
        sock.sendall(f"GET /healthz HTTP/1.1\r\nhost: {host}\r\n\r\n".encode())
        assert _read_response(sock).startswith(b"HTTP/1.1 200 ")  # the same connection, still in step
