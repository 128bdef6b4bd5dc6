"""``python -m pooltui.bench fleet-limits`` (issue 27): three proxy processes on one config and one Redis, driven
at 1.5x a key's capacity, with the budget windows shared across the fleet and without (``[state]
share_windows = false``: each process paces alone), in one run.

- **requests**: one key of 8 requests per 5 s whose answers state no budget (the limit is learnt from 429s);
- **tokens**: one key of 20,000 tokens per minute (declared ``tpm``) with large prompts.

Figures per case: upstream calls, 429s the simulator answered, calls per success (target with sharing: at most
1.03). Then the proxies' requests/s with the Redis store against the in-memory one (a key with a declared rpm
large enough never to bind, so every pick goes through its window; target: within 10%).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import httpx

from pooltui.bench.common import free_port, run, wait_port
from pooltui.bench.shared import _fleet_rps, _redis_server
from pooltui.sim.process import SimProcess
from pooltui.sim.scenario import load_scenario

PROXIES = 3
SECRET = "sk-sim-fleetlimits-000000000000000000001"
_SCENARIO = """name = "fleet-limits"
seed = 5
[[providers]]
name = "sim-openai"
dialect = "openai"
window_s = {window_s}
latency_ms = [5, 20]
success_headers = false
[[providers.keys]]
label = "k0"
secret = "{secret}"
{limit}
"""
#: (name, simulator window and limit, what the config declares, requests/s at 1.5x capacity, prompt characters)
CASES = (("requests: 8 per 5 s, learnt", "window_s = 5", "rpm = 8", "", 1.5 * 8 / 5, 20),
         ("tokens: tpm 20,000, declared", "window_s = 60", "rpm = 100000\ntpm = 20000", "tpm = 20000", 0.0, 16000))


@dataclass
class Outcome:
    calls: int
    ok: int
    limited: int
    answered_ok: int  # what the callers got: 200s

    @property
    def per_success(self) -> float:
        return self.calls / self.ok if self.ok else float("inf")


def _proxies(config: str, tmp: str) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    path = os.path.join(tmp, "config.toml")
    with open(path, "w") as fh:
        fh.write(config)
    env = {**os.environ, "POOLTUI_FLEET_KEY": SECRET, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    procs, ports = [], []
    for i in range(PROXIES):
        ports.append(free_port())
        data = os.path.join(tmp, f"data{i}")
        procs.append(subprocess.Popen([sys.executable, "-m", "pooltui", "--config", path, "proxy", "--port",
                                       str(ports[-1])], env={**env, "POOLTUI_DATA_DIR": data},
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for port, proc in zip(ports, procs, strict=True):
        for attempt in range(3):  # 20 s each: three Python processes starting on a loaded machine take time
            try:
                wait_port(port, proc, "the proxy")
                break
            except RuntimeError:
                if proc.poll() is not None or attempt == 2:
                    _stop(procs)
                    raise
    return procs, ports


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(10)


def _config(base_url: str, redis_url: str, prefix: str, share: bool, declared: str) -> str:
    return (f'[state]\nbackend = "redis"\nurl = "{redis_url}"\nprefix = "{prefix}"\n'
            f'share_windows = {"true" if share else "false"}\n'
            f'[providers.sim]\nkind = "openai"\nbase_url = "{base_url}"\n'
            f'[[providers.sim.keys]]\nlabel = "k0"\nsecret = "env:POOLTUI_FLEET_KEY"\n{declared}\n')


async def _load(ports: list[int], rate: float, seconds: float, prompt_chars: int) -> int:
    """Requests at ``rate`` per second (open loop: one starts on time whatever the others do), spread over the
    proxies in turn, for ``seconds``; returns how many the callers got a 200 for."""
    body = {"model": "gpt-sim-1", "max_tokens": 16, "messages": [{"role": "user", "content": "x" * prompt_chars}]}
    ok = 0
    async with httpx.AsyncClient(timeout=120.0) as client:
        async def one(port: int) -> None:
            nonlocal ok
            try:
                r = await client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body)
                ok += r.status_code == 200
            except httpx.HTTPError:
                pass

        tasks, start, i = [], time.monotonic(), 0
        while (at := i / rate) < seconds:
            await asyncio.sleep(max(0.0, start + at - time.monotonic()))
            tasks.append(asyncio.create_task(one(ports[i % len(ports)])))
            i += 1
        await asyncio.gather(*tasks)
    return ok


def _case(case: tuple[str, str, str, str, float, int], redis_url: str, share: bool, seconds: float,
          run_no: int) -> Outcome:
    _, window, limit, declared, rate, prompt_chars = case
    tmp = tempfile.mkdtemp(prefix="pooltui-bench-fleet-")
    scenario = os.path.join(tmp, "fleet-limits.toml")
    with open(scenario, "w") as fh:
        fh.write(_SCENARIO.format(window_s=window.split("=")[1].strip(), secret=SECRET, limit=limit))
    sim = SimProcess(load_scenario(scenario), scenario).start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs, ports = _proxies(_config(sim.base_url("sim-openai"), redis_url, f"fleetbench{run_no}", share,
                                        declared), tmp)
        if not rate:  # tokens: 1.5x what the budget allows at this prompt size, as the simulator counts (a token
            rate = 1.5 * 20000 / (prompt_chars / 16 + 12) / 60  # per 16 bytes of body, at most 12 out)
        answered = run(_load(ports, rate, seconds, prompt_chars))
        seen = httpx.get(f"{sim.url}/_sim/stats").json()["sim-openai"]["k0"]
    finally:
        _stop(procs)
        sim.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    calls = sum(seen.values())
    return Outcome(calls, seen.get("200", 0), seen.get("429", 0), answered)


def _rps(redis_url: str | None, requests: int) -> float:
    """Requests/s through three proxies (64 in flight) on a key whose declared rpm never binds."""
    tmp = tempfile.mkdtemp(prefix="pooltui-bench-fleet-")
    sim = SimProcess(load_scenario("bench"), "bench").start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        state = f'[state]\nbackend = "redis"\nurl = "{redis_url}"\nprefix = "fleetrps"\n' if redis_url else ""
        config = (f'{state}[providers.bench]\nkind = "openai"\nbase_url = "{sim.base_url()}"\n'
                  '[[providers.bench.keys]]\nlabel = "bench"\nsecret = "env:POOLTUI_BENCH_KEY"\nrpm = 10000000\n')
        os.environ.setdefault("POOLTUI_BENCH_KEY", "sk-sim-bench-00000000000000000000000001")
        procs, ports = _proxies(config, tmp)
        return run(_fleet_rps(ports, requests, 64))
    finally:
        _stop(procs)
        sim.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def bench_fleet_limits(seconds: float = 60.0, requests: int = 3000, rounds: int = 3) -> None:
    if shutil.which("redis-server") is None:
        print("fleet-limits: needs redis-server on PATH (apt-get install redis-server)")
        return
    proc, url = _redis_server()
    try:
        print(f"fleet-limits: {PROXIES} proxy processes, one Redis, 1.5x the key's capacity for {seconds:g} s "
              "(upstream = what the simulator answered)")
        for n, case in enumerate(CASES):
            for share in (True, False):
                out = _case(case, url, share, seconds, 2 * n + share)
                print(f"  {case[0]:<30} windows {'shared' if share else 'alone '}: {out.calls:4d} upstream calls, "
                      f"{out.ok:4d} 200, {out.limited:4d} 429 -> {out.per_success:.3f} calls per success "
                      f"({out.answered_ok} answered 200){' (target <= 1.03)' if share else ''}")
        runs: dict[str, list[float]] = {"memory": [], "redis": []}
        for i in range(rounds):  # the stores take turns: a busy moment of the machine hits both
            for store in ("memory", "redis")[:: 1 if i % 2 == 0 else -1]:
                runs[store].append(_rps(url if store == "redis" else None, requests))
        mem, red = (sorted(runs[s])[len(runs[s]) // 2] for s in ("memory", "redis"))
        print(f"  requests/s through {PROXIES} proxies, a declared rpm on the key (median of {rounds}): in-memory "
              f"{mem:.0f}, Redis with shared windows {red:.0f} ({red / mem:.2f}x, target >= 0.90x)")
    finally:
        proc.terminate()
        proc.wait(10)


__all__ = ["bench_fleet_limits"]
