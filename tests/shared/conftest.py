"""A real Redis server on a free loopback port for these tests. Where no `redis-server` is on PATH they skip
with one line saying how to install it; `.ci/run` sets POOLTUI_REQUIRE_REDIS=1, which makes that a failure."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def redis_server():
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed: apt-get install redis-server (Debian/Ubuntu), brew install redis"
        if os.environ.get("POOLTUI_REQUIRE_REDIS"):
            pytest.fail(message)
        pytest.skip(message)
    server = RedisServer()
    server.start()
    yield server
    server.stop()
