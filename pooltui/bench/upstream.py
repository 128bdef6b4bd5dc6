"""``python -m pooltui.bench upstream``: what one upstream attempt costs the client, aiohttp (``AiohttpSender``)
against our HTTP/1.1 client (``Http1Sender``, the attempts' default), through the same ``Sender`` interface, serial
requests to the simulator in its own process: CPU and wall time per request in the client's process, rounds
interleaved (a loaded machine's swings hit both)."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Awaitable, Callable

from pooltui.bench.common import BENCH_SECRET, free_port, ping_body, run, start_sim


async def _rounds(url: str, n: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    from pooltui.client.http1 import Http1Sender
    from pooltui.client.upstream_http import AiohttpSender, Sender

    body = json.dumps(ping_body()).encode()
    headers = {"authorization": f"Bearer {BENCH_SECRET}", "content-type": "application/json",
               "accept-encoding": "identity"}
    aiohttp_sender, http1_sender = AiohttpSender(), Http1Sender()
    senders: dict[str, Sender] = {"aiohttp": aiohttp_sender, "http1": http1_sender}

    def call(sender: Sender) -> Callable[[], Awaitable[None]]:
        async def one() -> None:
            answer = await sender.open("POST", url, body, headers, None)
            async for _ in answer.aiter_bytes():
                pass
            await answer.aclose()
            if answer.status_code != 200:
                raise RuntimeError(f"the simulator answered {answer.status_code}")
        return one

    out: dict[str, list[tuple[float, float]]] = {name: [] for name in senders}
    try:
        for sender in senders.values():  # connections opened, first-use work done
            for _ in range(100):
                await call(sender)()
        for r in range(rounds):
            names = list(senders) if r % 2 == 0 else list(senders)[::-1]
            for name in names:
                one = call(senders[name])
                cpu, wall = time.process_time(), time.perf_counter()
                for _ in range(n):
                    await one()
                out[name].append(((time.process_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6))
    finally:
        await aiohttp_sender.aclose()
        await http1_sender.aclose()
    return out


def bench_upstream(n: int, rounds: int) -> dict[str, tuple[float, float]]:
    port = free_port()
    sim = start_sim(port)
    try:
        found = run(_rounds(f"http://127.0.0.1:{port}/sim-openai/v1/chat/completions", n, rounds))
    finally:
        sim.stop()
    figures = {name: (statistics.median(c for c, _ in v), statistics.median(w for _, w in v))
               for name, v in found.items()}
    print(f"upstream: {n} serial requests to the simulator per round, median of {rounds} rounds, client process only")
    for name, (cpu, wall) in figures.items():
        print(f"  {name:8} CPU {cpu:6.0f} µs/request   wall {wall:6.0f} µs/request")
    return figures
