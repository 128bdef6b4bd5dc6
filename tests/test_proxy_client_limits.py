"""What one client may hold of the proxy (issue 26, item 3): header size and count, a header-read timeout, an
idle timeout, connections per address and in all; idle connections nobody authorised never lock callers out.
Real sockets against a real proxy (in a thread, or as a process with a small open-file limit)."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai

from pooltui.proxy.limits import ClientLimits
from tests.conftest import keys, make_scenario
from tests.test_proxy import ProxyThread, proxied  # noqa: F401 (a fixture)

TOKEN = "proxy-token-for-limits-test"


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def head(port: int, *lines: str) -> bytes:
    return ("GET /healthz HTTP/1.1\r\n" + f"Host: 127.0.0.1:{port}\r\n" + "".join(f"{x}\r\n" for x in lines)).encode()


def answer(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """What the proxy sends until it closes the connection (raises socket.timeout when it does not)."""
    sock.settimeout(timeout)
    got = b""
    while chunk := sock.recv(65536):
        got += chunk
    return got


def send_all(sock: socket.socket, data: bytes) -> None:
    """Send ``data``; the proxy may close the connection before it has all of it."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def test_headers_over_the_size_or_count_limit_get_431_before_they_are_held(proxied) -> None:  # noqa: F811
    _server, clients = proxied
    with ProxyThread(clients) as px:
        port = px.service.port
        with connect(port) as s:  # one 8 MiB header: refused once 64 KiB have arrived
            send_all(s, head(port) + b"x-big: " + b"a" * (8 * 2**20) + b"\r\n\r\n")
            got = answer(s)
        assert got.startswith(b"HTTP/1.1 431") and b"over 64 KiB" in got
        with connect(port) as s:  # 300 small headers
            s.sendall(head(port, *(f"x-h{i}: v" for i in range(300))) + b"\r\n")
            got = answer(s)
        assert got.startswith(b"HTTP/1.1 431") and b"more than 256 request headers" in got
        with connect(port) as s:  # an ordinary request still passes
            s.sendall(head(port, "connection: close", *(f"x-h{i}: v" for i in range(40))) + b"\r\n")
            assert answer(s).startswith(b"HTTP/1.1 200")


def test_a_request_head_sent_too_slowly_gets_408(proxied) -> None:  # noqa: F811
    _server, clients = proxied
    with ProxyThread(clients, client_limits=ClientLimits(header_timeout_s=0.5)) as px:
        with connect(px.service.port) as s:
            s.sendall(head(px.service.port, "x-slow: 1"))  # never the blank line that ends the head
            started = time.monotonic()
            got = answer(s)
        assert got.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 3


def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(proxied) -> None:  # noqa: F811
    _server, clients = proxied
    with ProxyThread(clients, client_limits=ClientLimits(idle_timeout_s=0.5)) as px, connect(px.service.port) as s:
        started = time.monotonic()
        assert answer(s) == b"" and time.monotonic() - started < 3


def test_past_the_per_address_cap_the_oldest_unauthorised_idle_connection_makes_room(proxied) -> None:  # noqa: F811
    _server, clients = proxied
    with ProxyThread(clients, token=TOKEN, client_limits=ClientLimits(max_per_address=4)) as px:
        port = px.service.port
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"x-api-key": TOKEN}) as caller:
            assert caller.get("/v1/models").status_code == 200  # its connection is now authorised
            idle = [connect(port) for _ in range(3)]  # the address holds 4
            newcomer = connect(port)  # the 5th: the oldest idle unauthorised one is closed for it
            assert answer(idle[0], 3) == b""
            for s in idle[1:]:
                s.settimeout(0.2)
                try:
                    assert s.recv(1) != b""  # still open (nothing to read)
                except TimeoutError:
                    pass
            assert caller.get("/v1/models").status_code == 200  # the authorised connection was kept
            newcomer.sendall(head(port, "connection: close") + b"\r\n")
            assert answer(newcomer).startswith(b"HTTP/1.1 200")
            for s in idle[1:]:
                s.close()


def test_idle_connections_without_the_token_cannot_lock_out_an_authorised_caller(serve, tmp_path: Path) -> None:
    server = serve(make_scenario({"name": "main", "keys": keys("k", 1)}))
    config = tmp_path / "config.toml"
    config.write_text(f'[providers.main]\nkind = "openai"\nbase_url = "{server.base_url("main")}"\n'
                      '[[providers.main.keys]]\nlabel = "k0"\nsecret = "env:POOLTUI_LIMITS_KEY"\n')
    env = {**os.environ, "POOLTUI_LIMITS_KEY": keys("k", 1)[0]["secret"], "POOLTUI_DATA_DIR": str(tmp_path / "d")}

    def small_fd_limit() -> None:  # what a default `ulimit -n` of a few hundred gives
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    proc = subprocess.Popen([sys.executable, "-m", "pooltui", "--config", str(config), "proxy", "--port", "0",
                             "--token", TOKEN], env=env, stderr=subprocess.PIPE, text=True, preexec_fn=small_fd_limit)
    held: list[socket.socket] = []
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("pooltui proxy on "), line
        url = line.split()[-1]
        port = int(url.rsplit(":", 1)[1])
        for _ in range(400):  # more idle connections than the proxy has file descriptors
            held.append(connect(port))
        time.sleep(0.3)
        sdk = openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0, timeout=10)
        for _ in range(3):
            reply = sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
            assert reply.choices[0].message.content
    finally:
        for s in held:
            s.close()
        proc.terminate()
        proc.wait(10)
