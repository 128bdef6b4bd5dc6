"""``python -m pooltui.bench dispatch``: requests/s through ``PoolClient`` beside raw aiohttp and httpx.

Targets (issue 1): >= 0.85x httpx on the same (aiohttp) transport and >= 3x httpx on its default transport."""

from __future__ import annotations

import os
import statistics

from pooltui.bench.common import BENCH_SECRET, drive, free_port, ping_body, run, start_sim


async def _raw_aiohttp(url: str, headers: dict[str, str], n: int, concurrency: int) -> float:
    import aiohttp

    body = ping_body()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def raw() -> None:
            async with session.post(url, json=body, headers=headers) as r:
                await r.json()

        await drive(raw, 200, concurrency)
        return await drive(raw, n, concurrency)


async def _httpx(url: str, headers: dict[str, str], n: int, concurrency: int) -> dict[str, float]:
    import httpx
    from httpx_aiohttp import AiohttpTransport

    body = ping_body()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    out: dict[str, float] = {}
    for name, client in (
        ("httpx-default", httpx.AsyncClient(limits=limits, timeout=30)),
        ("httpx-aiohttp", httpx.AsyncClient(transport=AiohttpTransport(limits=limits), limits=limits, timeout=30)),
    ):
        async with client:
            async def via_httpx(c: httpx.AsyncClient = client) -> None:
                r = await c.post(url, json=body, headers=headers)
                r.json()

            await drive(via_httpx, 200, concurrency)
            out[name] = await drive(via_httpx, n, concurrency)
    return out


async def _pool_client(base: str, n: int, concurrency: int) -> float:
    from pooltui.client.pool_client import PoolClient, Upstream, default_http_client
    from pooltui.core.pool import KeySpec, Pool
    from pooltui.providers.profiles import profile_for

    pool = Pool("bench", [KeySpec("bench", BENCH_SECRET)])
    up = Upstream(profile_for("openai", name="bench", base_url=base + "/v1"), pool)
    async with PoolClient(up, http=default_http_client(max_connections=concurrency), own_http=True) as pc:
        build = pc.chat_builder("ping", max_tokens=16, model="gpt-sim-1")

        async def via_pool() -> None:
            r = await pc.send(build)
            r.json()

        await drive(via_pool, 200, concurrency)
        return await drive(via_pool, n, concurrency)


async def _dispatch_round(base: str, n: int, concurrency: int) -> dict[str, float]:
    url = base + "/v1/chat/completions"
    headers = {"authorization": f"Bearer {BENCH_SECRET}"}
    out = {"aiohttp": await _raw_aiohttp(url, headers, n, concurrency)}
    out.update(await _httpx(url, headers, n, concurrency))
    out["PoolClient"] = await _pool_client(base, n, concurrency)
    return out


def bench_dispatch(n: int, concurrency: int, rounds: int) -> dict[str, object]:
    port = free_port()
    sim = start_sim(port)
    try:
        samples: dict[str, list[float]] = {}
        for _ in range(rounds):
            for k, v in run(_dispatch_round(f"http://127.0.0.1:{port}", n, concurrency)).items():
                samples.setdefault(k, []).append(v)
    finally:
        sim.stop()
    med = {k: statistics.median(v) for k, v in samples.items()}
    print(f"dispatch: requests/s at concurrency {concurrency}, {n} requests x {rounds} rounds (median), "
          f"simulator in its own process on loopback, one key, client on {os.cpu_count()} cores")
    for k, v in med.items():
        print(f"  {k:14} {v:8.0f} req/s   (rounds: {', '.join(f'{x:.0f}' for x in samples[k])})")
    same = med["PoolClient"] / med["httpx-aiohttp"]
    default = med["PoolClient"] / med["httpx-default"]
    print(f"  PoolClient / httpx-aiohttp = {same:.2f}x (target >= 0.9)")
    print(f"  PoolClient / httpx-default = {default:.2f}x (target >= 3)")
    print(f"  PoolClient / raw aiohttp   = {med['PoolClient'] / med['aiohttp']:.2f}x")
    return {"median_rps": med, "ratio_same_transport": same, "ratio_default_transport": default}
