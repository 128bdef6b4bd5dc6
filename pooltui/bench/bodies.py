"""``python -m pooltui.bench bodies``: memory (RSS) of the proxy process relaying large answers, and after."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass

from pooltui.bench.common import BENCH_SECRET, free_port, ping_body, proxy_process, run, stop_process, wait_port
from pooltui.sim.process import SimProcess
from pooltui.sim.scenario import load_scenario


@dataclass(frozen=True)
class BodiesResult:
    idle: float  # MiB
    first: float
    after: list[float]
    settled: float


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def _large_answers(url: str, n: int, pid: int) -> list[float]:
    import aiohttp

    body = ping_body(max_tokens=4)
    after: list[float] = []
    async with aiohttp.ClientSession() as session:
        for _ in range(n):
            async with session.post(url, json=body, headers={"authorization": "Bearer any"}) as r:
                async for _chunk in r.content.iter_chunked(1 << 20):
                    pass
                if r.status != 200:
                    raise RuntimeError(f"the proxy answered {r.status}")
            after.append(_rss_mib(pid))
    return after


def bench_bodies(mib: int, n: int) -> BodiesResult:
    """RSS of the proxy process while it relays ``n`` answers of ``mib`` MiB each, and after."""
    sim_port, proxy_port = free_port(), free_port()
    tmp = tempfile.mkdtemp(prefix="pooltui-bench-")
    scenario = os.path.join(tmp, "large.toml")
    with open(scenario, "w") as fh:
        fh.write(f'name = "large"\n[[providers]]\nname = "sim-openai"\ndialect = "openai"\n[[providers.keys]]\n'
                 f'label = "bench"\nsecret = "{BENCH_SECRET}"\nanswer_bytes = {mib * 2**20}\n')
    sim = SimProcess(load_scenario(scenario), scenario, port=sim_port).start()
    proxy = proxy_process(sim_port, proxy_port, tmp)
    try:
        wait_port(proxy_port, proxy, "the proxy")
        url = f"http://127.0.0.1:{proxy_port}/v1/chat/completions"
        idle = _rss_mib(proxy.pid)
        first = run(_large_answers(url, 1, proxy.pid))[0]
        after = run(_large_answers(url, n, proxy.pid))
        time.sleep(2.0)
        settled = _rss_mib(proxy.pid)
    finally:
        stop_process(proxy)
        sim.stop()
    print(f"bodies: the proxy relays {n} answers of {mib} MiB after a first one (RSS of the proxy process)")
    print(f"  idle {idle:.0f} MiB; after the first answer {first:.0f} MiB; after each of {n} more "
          f"{', '.join(f'{a:.0f}' for a in after)} MiB; 2 s later {settled:.0f} MiB")
    return BodiesResult(idle, first, after, settled)
