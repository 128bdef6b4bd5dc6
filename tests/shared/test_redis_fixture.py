"""The tests' own redis-server: a port some other socket took before the server bound it is not mistaken for
the server (an answer there is not ours); it starts on another."""

from __future__ import annotations

import shutil
import socket

import pytest
import redis

from tests.shared.conftest import RedisServer


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_a_taken_port_is_not_taken_for_the_server() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        server = RedisServer()
        server._use(taken)  # as if another socket had taken the free port it picked
        server.start()
        try:
            assert server.port != taken
            assert redis.Redis.from_url(server.url, socket_timeout=5).ping()
        finally:
            server.stop()
