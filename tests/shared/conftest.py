"""A real Redis server on a free loopback port for these tests. Where no `redis-server` is on PATH they skip
with one line saying how to install it; `.ci/run` sets POOLTUI_REQUIRE_REDIS=1, which makes that a failure."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pooltui.store.admin_token import read_admin_token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A password-protected redis-server (``requirepass``, as README recommends): ``url`` carries the
    password, ``bare_url`` does not."""

    def __init__(self) -> None:
        self.password = f"pw-{secrets.token_hex(8)}"
        self.proc: subprocess.Popen | None = None
        self.started = False
        self._use(free_port())

    def _use(self, port: int) -> None:
        self.port = port
        self.bare_url = f"redis://127.0.0.1:{port}/0"
        self.url = f"redis://:{self.password}@127.0.0.1:{port}/0"

    def start(self) -> None:
        """Start it on its port (again, after :meth:`stop`); on its first start, a port some other socket took
        between the test picking it and the server binding it makes it try another."""
        for _ in range(1 if self.started else 5):
            if self._start_once():
                self.started = True
                return
            if not self.started:
                self._use(free_port())
        raise RuntimeError(f"redis-server did not start on {self.port}")

    def _start_once(self) -> bool:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--requirepass", self.password],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if self.proc.poll() is not None:  # it exited: the port was taken (an answer there is not ours)
                self.proc = None
                return False
            try:  # the server's own answer, with its password: a socket that merely accepts is not it; one try
                # per round (redis-py's own retries with backoff made a refused connection 3.4 s, a squatter 9.5 s)
                if redis.Redis(host="127.0.0.1", port=self.port, password=self.password, retry=Retry(NoBackoff(), 0),
                               socket_timeout=0.5, socket_connect_timeout=0.5).ping():
                    return True
            except redis.RedisError:
                pass
            time.sleep(0.02)
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None
        return False

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


def ask(port: int, timeout_s: float = 10.0) -> httpx.Response:
    """One chat request through the proxy on ``port`` (waits for it to listen)."""
    for _ in range(200):
        try:
            return httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=timeout_s,
                              json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        except httpx.ConnectError:
            time.sleep(0.05)
    raise AssertionError(f"proxy on {port} never answered")


def start_proxies(n: int, env: dict[str, str], logs=None) -> tuple[list[subprocess.Popen], list[int]]:
    """``n`` `pooltui proxy` processes on the config ``env`` names, each on a port it picks itself (`--port 0`,
    read back from its banner: a port picked here and freed for it could be taken by any other socket before it
    binds, and was under a parallel run); their stderr goes to ``logs``/proxy{i}.log (a temporary folder when
    none is given)."""
    import sys

    folder = Path(logs) if logs is not None else Path(tempfile.mkdtemp(prefix="pooltui-proxies-"))
    procs, paths = [], []
    for i in range(n):
        paths.append(folder / f"proxy{i}.log")
        with paths[-1].open("w") as err:
            procs.append(subprocess.Popen([sys.executable, "-m", "pooltui", "proxy", "--port", "0"], env=env,
                                          stdout=subprocess.DEVNULL, stderr=err))
    ports = [banner_port(proc, path) for proc, path in zip(procs, paths, strict=True)]
    wait_ready(procs, ports)
    return procs, ports


def banner_port(proc: subprocess.Popen, log: Path, timeout_s: float = 45.0) -> int:
    """The port a `pooltui proxy --port 0` bound, from the first line of its banner."""
    found = log_until(log, r"pooltui proxy on http://[^:/]+:(\d+)", timeout_s, proc)
    if found is None:
        if proc.poll() is not None:
            raise AssertionError(f"proxy exited with {proc.returncode} before it listened: {log.read_text()[-500:]}")
        raise AssertionError(f"proxy not listening after {timeout_s:g} s")
    return int(found.group(1))


def log_until(log: Path, pattern: str, timeout_s: float, proc: subprocess.Popen | None = None) -> re.Match | None:
    """The first match of ``pattern`` in the file ``log`` once it is written there (None: not within
    ``timeout_s``, or ``proc`` exited first)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = re.search(pattern, log.read_text())
        if found or time.monotonic() > deadline or (proc is not None and proc.poll() is not None):
            return found
        time.sleep(0.05)


def wait_ready(procs: list[subprocess.Popen], ports: list[int], timeout_s: float = 45.0) -> None:
    """Until every proxy answers its health check: a process that exits fails at once; one still starting is
    waited for (three Python processes importing the app on two busy cores took over 10 s: a fixed 10 s wait
    was this suite's known flake, "proxy never answered")."""
    deadline = time.monotonic() + timeout_s
    for proc, port in zip(procs, ports, strict=True):
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"proxy on {port} exited with {proc.returncode} before it answered")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"proxy on {port} still not answering after {timeout_s:g} s")
            time.sleep(0.05)


def fleet_json(env: dict[str, str]) -> dict:
    """What `pooltui fleet --json` prints on the config ``env`` names, run in this process (click's runner): a
    wait that asks it again and again costs no Python start (~0.7 s of CPU) per ask. The tests that read the
    fleet's text still run the real command."""
    from click.testing import CliRunner

    from pooltui.commands.cli import cli

    result = CliRunner().invoke(cli, ["fleet", "--json"], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def key_states(port: int, env: dict[str, str], provider: str) -> dict[str, str]:
    """Each key's state as the proxy on ``port`` sees it now (its ``/pooltui/state``): label -> state."""
    token = read_admin_token(Path(env["POOLTUI_DATA_DIR"])) or ""
    view = httpx.get(f"http://127.0.0.1:{port}/pooltui/state", headers={"x-pooltui-admin-token": token},
                     timeout=10.0).json()
    return {k["label"]: k["state"] for k in view["providers"][provider]["keys"]}


def wait_until_seen(ports: list[int], env: dict[str, str], provider: str, seen: Callable[[dict[str, str]], bool],
                    timeout_s: float = 20.0) -> None:
    """Until every proxy on ``ports`` sees key states for which ``seen`` holds: a wait on what the processes
    heard from each other, not on a fixed time (which a loaded machine can outlast)."""
    deadline = time.monotonic() + timeout_s
    for port in ports:
        while not seen(states := key_states(port, env, provider)):
            assert time.monotonic() < deadline, f"the proxy on {port} still sees {states}"
            time.sleep(0.02)


def stop_proxies(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(10)
        if p.poll() is None:
            p.kill()


def proxy_env(tmp_path, redis_url: str, base_url: str, keys_toml: str, strategy: str = "round-robin",
              **secrets: str) -> dict[str, str]:
    """The environment of `pooltui` processes on a config whose provider ``oai`` (at ``base_url``) has the
    keys ``keys_toml`` (an inline TOML array's items) and whose state is on the Redis at ``redis_url``."""
    config = tmp_path / "config.toml"
    config.write_text(f"""
[state]
backend = "redis"
url = "{redis_url}"

[providers.oai]
kind = "openai"
base_url = "{base_url}"
strategy = "{strategy}"
keys = [{keys_toml}]
""")
    return {**os.environ, **secrets, "POOLTUI_CONFIG": str(config), "POOLTUI_DATA_DIR": str(tmp_path / "data")}
