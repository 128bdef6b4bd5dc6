"""``python -m pooltui.bench proxy``: requests/s and added latency through the pooling proxy, as three processes
(simulator, proxy, load generator)."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
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


async def _proxy_round(direct: str, proxied: str, n: int, concurrency: int, sequential: int) -> dict[str, float]:
    import aiohttp

    body = ping_body()
    out: dict[str, float] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def call(base: str, key: str) -> int:
            async with session.post(base + "/chat/completions", json=body,
                                    headers={"authorization": f"Bearer {key}"}) as r:
                await r.read()
                return r.status

        for name, base, key in (("direct", direct, BENCH_SECRET), ("proxy", proxied, "any")):
            if await call(base, key) != 200:
                raise RuntimeError(f"{name} did not answer 200")
            send = partial(call, base, key)
            await drive(send, 300, concurrency)
            out[f"{name}_rps"] = await drive(send, n, concurrency)
            latencies = []
            for _ in range(sequential):
                t0 = time.perf_counter()
                await call(base, key)
                latencies.append((time.perf_counter() - t0) * 1000)
            latencies.sort()
            out[f"{name}_p50_ms"] = statistics.median(latencies)
            out[f"{name}_p95_ms"] = latencies[int(len(latencies) * 0.95)]
    return out


def bench_proxy(n: int, concurrency: int, sequential: int, rounds: int) -> dict[str, float]:
    sim_port, proxy_port = free_port(), free_port()
    sim = start_sim(sim_port)
    proxy = proxy_process(sim_port, proxy_port, tempfile.mkdtemp(prefix="pooltui-bench-"))
    try:
        wait_port(proxy_port, proxy, "the proxy")
        samples: dict[str, list[float]] = {}
        for _ in range(rounds):
            result = run(_proxy_round(f"http://127.0.0.1:{sim_port}/sim-openai/v1",
                                      f"http://127.0.0.1:{proxy_port}/v1", n, concurrency, sequential))
            for k, v in result.items():
                samples.setdefault(k, []).append(v)
    finally:
        stop_process(proxy)
        sim.stop()
    med = {k: statistics.median(v) for k, v in samples.items()}
    added = med["proxy_p50_ms"] - med["direct_p50_ms"]
    print(f"proxy: simulator, proxy and load generator as three processes on {os.cpu_count()} cores; "
          f"{n} requests at concurrency {concurrency}, then {sequential} one at a time; median of {rounds} rounds")
    print(f"  throughput  direct {med['direct_rps']:7.0f} req/s   through the proxy {med['proxy_rps']:7.0f} req/s"
          "  (target >= 1000)")
    print(f"  latency     direct p50 {med['direct_p50_ms']:.2f} ms p95 {med['direct_p95_ms']:.2f} ms   "
          f"proxy p50 {med['proxy_p50_ms']:.2f} ms p95 {med['proxy_p95_ms']:.2f} ms")
    print(f"  added median latency {added:.2f} ms (target < 2)")
    return {**med, "added_ms": added}
