"""``python -m pooltui.bench proxy``: requests/s at concurrency, added latency one request at a time (p50, p99),
time to the first byte of a stream, and the proxy's memory under that load, through the pooling proxy against
the simulator directly, as three processes (simulator, proxy, load generator)."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial

from pooltui.bench.common import (
    BENCH_SECRET,
    drive,
    free_port,
    ping_body,
    proxy_process,
    run,
    start_sim,
    stop_process,
    wait_port,
)


def _percentile(sorted_ms: list[float], q: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(len(sorted_ms) * q))]


async def _timed(call: Callable[[], Awaitable[float | None]], n: int) -> list[float]:
    """``n`` calls one at a time, in ms each (a call returning a figure of its own gives that instead)."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        own = await call()
        out.append(own if own is not None else (time.perf_counter() - t0) * 1000)
    out.sort()
    return out


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (from /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _proxy_round(direct: str, proxied: str, n: int, concurrency: int, sequential: int, pid: int
                       ) -> dict[str, float]:
    import aiohttp

    body = ping_body()
    streamed = {**ping_body(64), "stream": True}
    out: dict[str, float] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def call(base: str, key: str) -> int:
            async with session.post(base + "/chat/completions", json=body,
                                    headers={"authorization": f"Bearer {key}"}) as r:
                await r.read()
                return r.status

        async def first_byte(base: str, key: str) -> float:
            """ms from sending a stream request to its first byte of body."""
            t0 = time.perf_counter()
            async with session.post(base + "/chat/completions", json=streamed,
                                    headers={"authorization": f"Bearer {key}"}) as r:
                await r.content.readany()
                took = (time.perf_counter() - t0) * 1000
                await r.read()
            return took

        for name, base, key in (("direct", direct, BENCH_SECRET), ("proxy", proxied, "any")):
            if await call(base, key) != 200:
                raise RuntimeError(f"{name} did not answer 200")
            send = partial(call, base, key)
            await drive(send, 300, concurrency)
            cpu = cpu_seconds(pid)
            out[f"{name}_rps"] = await drive(send, n, concurrency)
            if name == "proxy":  # the proxy's own CPU per request: a figure a loaded machine disturbs far less
                out["proxy_cpu_us"] = (cpu_seconds(pid) - cpu) / n * 1e6

            async def serial(send: Callable[[], Awaitable[int]] = send) -> None:
                await send()

            latencies = await _timed(serial, sequential)
            out[f"{name}_p50_ms"] = statistics.median(latencies)
            out[f"{name}_p99_ms"] = _percentile(latencies, 0.99)
            ttfb = await _timed(partial(first_byte, base, key), max(20, sequential // 3))
            out[f"{name}_ttfb_ms"] = statistics.median(ttfb)
    return out


def memory_kib(pid: int) -> dict[str, int]:
    """A process's peak and current resident memory (VmHWM, VmRSS) in KiB, from /proc (empty elsewhere)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            fields = dict(line.split(":", 1) for line in fh if line.startswith(("VmHWM", "VmRSS")))
    except OSError:
        return {}
    return {k: int(v.split()[0]) for k, v in fields.items()}


def bench_proxy(n: int, concurrency: int, sequential: int, rounds: int, source: str | None = None
                ) -> dict[str, float]:
    """``source``: a directory holding another checkout's ``pooltui`` package, run as the proxy (before/after)."""
    sim_port, proxy_port = free_port(), free_port()
    sim = start_sim(sim_port)
    proxy = proxy_process(sim_port, proxy_port, tempfile.mkdtemp(prefix="pooltui-bench-"), source=source)
    samples: dict[str, list[float]] = {}
    try:
        wait_port(proxy_port, proxy, "the proxy")
        for _ in range(rounds):
            result = run(_proxy_round(f"http://127.0.0.1:{sim_port}/sim-openai/v1",
                                      f"http://127.0.0.1:{proxy_port}/v1", n, concurrency, sequential, proxy.pid))
            for k, v in result.items():
                samples.setdefault(k, []).append(v)
        mem = memory_kib(proxy.pid)
    finally:
        stop_process(proxy)
        sim.stop()
    med = {k: statistics.median(v) for k, v in samples.items()}
    added = med["proxy_p50_ms"] - med["direct_p50_ms"]
    added_p99 = med["proxy_p99_ms"] - med["direct_p99_ms"]
    added_ttfb = med["proxy_ttfb_ms"] - med["direct_ttfb_ms"]
    ratio = med["proxy_rps"] / med["direct_rps"]
    print(f"proxy: simulator, proxy and load generator as three processes on {os.cpu_count()} cores; "
          f"{n} requests at concurrency {concurrency}, then {sequential} one at a time; median of {rounds} rounds"
          + (f"; proxy from {source}" if source else ""))
    print(f"  throughput  direct {med['direct_rps']:7.0f} req/s   through the proxy {med['proxy_rps']:7.0f} req/s"
          f"  ({ratio:.2f}x direct; target >= 0.5x); the proxy's CPU {med['proxy_cpu_us']:.0f} µs per request")
    print(f"  latency     direct p50 {med['direct_p50_ms']:.2f} ms p99 {med['direct_p99_ms']:.2f} ms   "
          f"proxy p50 {med['proxy_p50_ms']:.2f} ms p99 {med['proxy_p99_ms']:.2f} ms")
    print(f"  added latency p50 {added:.2f} ms (target <= 0.30)   p99 {added_p99:.2f} ms")
    print(f"  stream first byte  direct {med['direct_ttfb_ms']:.2f} ms   proxy {med['proxy_ttfb_ms']:.2f} ms   "
          f"added {added_ttfb:.2f} ms (target <= 0.3)")
    if mem:
        print(f"  proxy memory  peak {mem.get('VmHWM', 0) / 1024:.0f} MB  now {mem.get('VmRSS', 0) / 1024:.0f} MB"
              " (target <= 80)")
    return {**med, "added_ms": added, "added_p99_ms": added_p99, "added_ttfb_ms": added_ttfb, "rps_ratio": ratio,
            "rss_peak_mb": mem.get("VmHWM", 0) / 1024}
