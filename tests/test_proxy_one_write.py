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
