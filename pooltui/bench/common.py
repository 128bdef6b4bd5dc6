"""What several benchmarks share: the simulator and proxy processes they start, and the load they drive."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from pooltui.sim.process import SimProcess, free_port

__all__ = ["BENCH_SECRET", "drive", "free_port", "ping_body", "proxy_process", "run", "start_sim", "stop_process",
           "wait_port"]

BENCH_SECRET = "sk-sim-bench-00000000000000000000000001"

T = TypeVar("T")


def ping_body(max_tokens: int = 16) -> dict[str, object]:
    """The smallest Chat Completions request the benchmarks send."""
    return {"model": "gpt-sim-1", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "ping"}]}


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop where installed, else asyncio."""
    from pooltui.client.loops import runner

    result: T = runner()(coro)
    return result


def start_sim(port: int) -> SimProcess:
    """The no-limit `bench` scenario in its own process, so the client under test has a core to itself."""
    from pooltui.sim.scenario import load_scenario

    return SimProcess(load_scenario("bench"), "bench", port=port).start()


async def drive(send: Callable[[], Awaitable[object]], n: int, concurrency: int) -> float:
    """Send ``n`` requests, ``concurrency`` at a time; returns requests per second."""
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            await send()

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - t0)


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    """Wait (20 s at most) until ``proc`` listens on ``port``; raise if it exits or never does."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not start")


def proxy_process(sim_port: int, proxy_port: int, tmp: str, state_url: str | None = None,
                  args: tuple[str, ...] = (), env: dict[str, str] | None = None, wrap: tuple[str, ...] = (),
                  source: str | None = None) -> subprocess.Popen[bytes]:
    """`pooltui proxy` in its own process over one key of the simulator on ``sim_port`` (config in ``tmp``);
    with ``state_url``, its key states shared through that Redis; ``args`` and ``env`` added to its command line
    and environment (its stderr, the logs, goes nowhere); ``wrap`` runs it under another command (a profiler);
    ``source`` is a directory whose ``pooltui`` package the proxy runs (another checkout)."""
    config = os.path.join(tmp, "config.toml")
    state = f'[state]\nbackend = "redis"\nurl = "{state_url}"\n' if state_url else ""
    with open(config, "w") as fh:
        fh.write(f'{state}[providers.bench]\nkind = "openai"\nbase_url = "http://127.0.0.1:{sim_port}/sim-openai/v1"\n'
                 '[[providers.bench.keys]]\nlabel = "bench"\nsecret = "env:POOLTUI_BENCH_KEY"\n')
    environ = {**os.environ, "POOLTUI_BENCH_KEY": BENCH_SECRET, "POOLTUI_DATA_DIR": tmp,
               "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring", **(env or {})}
    if source:
        environ["PYTHONPATH"] = os.pathsep.join(p for p in (source, environ.get("PYTHONPATH", "")) if p)
    command = [*wrap, sys.executable, "-m", "pooltui", "--config", config, "proxy", "--port", str(proxy_port), *args]
    # `python -m` puts the working directory first on the path: from a checkout's root, its own pooltui would
    # shadow ``source``'s, so the proxy runs from ``source`` itself
    return subprocess.Popen(command, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=source or None)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate ``proc`` and wait for it (5 s)."""
    proc.terminate()
    proc.wait(5)
