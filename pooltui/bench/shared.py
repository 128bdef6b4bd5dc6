"""``python -m pooltui.bench shared``: pick+report with key states shared through Redis, how fast a state change
reaches another pool (in this process and in another), and proxy requests/s with 1 and 3 proxies on the in-memory
and the Redis store."""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.queues import Queue

from pooltui.bench.common import drive, free_port, ping_body, proxy_process, run, start_sim, wait_port
from pooltui.core.classify import Classification
from pooltui.core.events import Event
from pooltui.core.health import KeyState, Outcome
from pooltui.core.pool import KeySpec, Pool
from pooltui.store.shared_state import SharedKeyStates

Stamps = Queue  # of float (monotonic times) after one "ready"


@dataclass
class SharedResult:
    alone_us: float  # pick+report, no store
    shared_us: float  # pick+report, states shared through Redis
    delays_ms: list[float]  # a change seen by another pool of this process, sorted
    between_ms: list[float]  # a change seen by another process, sorted
    rps: dict[tuple[str, int], float] = field(default_factory=dict)  # (store, proxies) -> median req/s
    rps_runs: dict[tuple[str, int], list[float]] = field(default_factory=dict)


def _bench_pool() -> Pool:
    return Pool("bench", [KeySpec(f"k{i}", f"sk-test-{i:032d}") for i in range(3)], "round-robin", preempt=False)


def _follow_states(url: str, changes: int, out: Stamps) -> None:
    """In another process: share a pool through ``url`` and send the monotonic time (one clock for every
    process of a host) at which each state change of k0 arrived."""

    async def follow() -> None:
        pool, seen = _bench_pool(), asyncio.Event()
        shared = SharedKeyStates(url, "bench-procs")
        shared.attach(pool)

        def arrived(event: Event) -> None:
            if event.key == "k0":
                out.put(time.monotonic())
                seen.set()

        pool.events.subscribe(arrived)
        await shared.start()
        out.put("ready")
        for _ in range(changes):
            await seen.wait()
            seen.clear()
        await shared.stop()

    asyncio.run(follow())


async def _propagation_between_processes(url: str, changes: int) -> list[float]:
    """ms from a state change in this process to its arrival in another process, per change."""
    ctx = multiprocessing.get_context("spawn")
    stamps: Stamps = ctx.Queue()
    child = ctx.Process(target=_follow_states, args=(url, changes, stamps), daemon=True)
    child.start()
    if await asyncio.to_thread(stamps.get, True, 30) != "ready":
        raise RuntimeError("the other process did not start")
    pool = _bench_pool()
    shared = SharedKeyStates(url, "bench-procs")
    shared.attach(pool)
    await shared.start()
    delays = []
    for i in range(changes):
        await asyncio.sleep(0.002)
        t0 = time.monotonic()
        if i % 2 == 0:
            pool.disable("k0")
        else:
            pool.enable("k0")
        delays.append((await asyncio.to_thread(stamps.get, True, 10) - t0) * 1000)
    await shared.stop()
    child.join(10)
    return sorted(delays)


def _cycle_us(pool: Pool, cycles: int) -> float:
    ok = Classification(Outcome.OK, 200)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(cycles):
            key = pool.pick()
            if key is None:
                raise RuntimeError("the pool had no key to pick")
            pool.report(key, ok, 0.01)
        best = min(best, (time.perf_counter() - t0) / cycles * 1e6)
    return best


async def _shared_run(url: str, cycles: int, changes: int) -> SharedResult:
    alone = _cycle_us(_bench_pool(), cycles)
    a, b = _bench_pool(), _bench_pool()
    sa, sb = SharedKeyStates(url, "bench"), SharedKeyStates(url, "bench")
    sa.attach(a)
    sb.attach(b)
    await sa.start()
    await sb.start()
    shared = _cycle_us(a, cycles)
    delays = []
    key_b = b.key("k0")
    for i in range(changes):  # a hand action in one process, seen by the other through Redis
        t0 = time.perf_counter()
        if i % 2 == 0:
            a.disable("k0")
            want = KeyState.DISABLED
        else:
            a.enable("k0")
            want = KeyState.OK
        while key_b.state is not want:
            await asyncio.sleep(0)
        delays.append((time.perf_counter() - t0) * 1000)
    await sa.stop()
    await sb.stop()
    between = await _propagation_between_processes(url, changes)
    return SharedResult(alone, shared, sorted(delays), between)


async def _fleet_rps(ports: list[int], n: int, concurrency: int) -> float:
    import aiohttp

    body = ping_body()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        turn = iter(range(1 << 30))

        async def call() -> None:
            port = ports[next(turn) % len(ports)]  # the load spread over the proxies, as a balancer would
            async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body,
                                    headers={"authorization": "Bearer any"}) as r:
                await r.read()

        await drive(call, 300, concurrency)
        return await drive(call, n, concurrency)


def _proxies_rps(url: str | None, count: int, n: int, concurrency: int) -> float:
    sim_port = free_port()
    sim = start_sim(sim_port)
    ports = [free_port() for _ in range(count)]
    procs = [proxy_process(sim_port, port, tempfile.mkdtemp(prefix="pooltui-bench-"), url) for port in ports]
    try:
        for port, proc in zip(ports, procs, strict=True):
            wait_port(port, proc, "the proxy")
        return run(_fleet_rps(ports, n, concurrency))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(5)
        sim.stop()


def _redis_server() -> tuple[subprocess.Popen[bytes], str]:
    """A throwaway redis-server on a free loopback port, and its URL once it accepts connections."""
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.02)
    return proc, f"redis://127.0.0.1:{port}/0"


def _print(result: SharedResult, cycles: int, requests: int, rounds: int) -> None:
    print(f"shared: key states on a local redis-server; pick+report at 3 keys, best of 3 x {cycles} cycles")
    print(f"  pick+report        alone {result.alone_us:.2f} µs   sharing through Redis "
          f"{result.shared_us:.2f} µs (target < 10)")
    for where, d in (("another pool in this process", result.delays_ms), ("another process", result.between_ms)):
        print(f"  a state change seen by {where}: p50 {d[len(d) // 2]:.2f} ms, p99 {d[int(len(d) * 0.99)]:.2f} ms, "
              f"max {d[-1]:.2f} ms over {len(d)} changes (target p99 < 50 ms)")
    for count in (1, 3):
        mem, red = result.rps[("memory", count)], result.rps[("redis", count)]
        each = " ".join(f"{m:.0f}/{r:.0f}" for m, r in zip(result.rps_runs[("memory", count)],
                                                           result.rps_runs[("redis", count)], strict=True))
        print(f"  {count} prox{'y' if count == 1 else 'ies'} ({requests} requests, 64 in flight, spread evenly; median "
              f"of {rounds} runs): in-memory {mem:.0f} req/s, Redis {red:.0f} req/s ({red / mem:.2f}x, target >= "
              f"0.8x); runs memory/Redis {each}")


def bench_shared(cycles: int, changes: int, requests: int = 3000, rounds: int = 3) -> SharedResult | None:
    if shutil.which("redis-server") is None:
        print("shared: needs redis-server on PATH (apt-get install redis-server)")
        return None
    proc, url = _redis_server()
    try:
        result = asyncio.run(_shared_run(url, cycles, changes))
        for i in range(rounds):  # the stores take turns, first one then the other: a busy moment hits both
            for count in (1, 3):
                for store in ("memory", "redis")[:: 1 if i % 2 == 0 else -1]:
                    result.rps_runs.setdefault((store, count), []).append(
                        _proxies_rps(url if store == "redis" else None, count, requests, 64))
        result.rps = {k: sorted(v)[len(v) // 2] for k, v in result.rps_runs.items()}  # the median run
    finally:
        proc.terminate()
        proc.wait(10)
    _print(result, cycles, requests, rounds)
    return result
