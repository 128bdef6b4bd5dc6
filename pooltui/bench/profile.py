"""``python -m pooltui.bench profile``: where the proxy's time goes under the `proxy` benchmark's load, as the
frames with the most self time (py-spy records the proxy process; ``pip install py-spy``)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from functools import partial

from pooltui.bench.common import drive, free_port, ping_body, proxy_process, run, start_sim, wait_port


def leaf_totals(raw: str) -> tuple[Counter[str], int]:
    """Samples per leaf frame (self time) from py-spy's raw (collapsed) output, and the samples in all."""
    leaves: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        leaves[_function(stack.rsplit(";", 1)[-1])] += n
        total += n
    return leaves, total


async def _load(base: str, n: int, concurrency: int) -> None:
    import aiohttp

    body = ping_body()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def call() -> None:
            async with session.post(base + "/chat/completions", json=body,
                                    headers={"authorization": "Bearer any"}) as r:
                await r.read()

        await drive(partial(call), n, concurrency)
        for _ in range(n // 10):  # one at a time too: the serial path
            await call()


def bench_profile(n: int, concurrency: int, top: int, out: str | None, source: str | None = None
                  ) -> list[tuple[str, int]]:
    spy = shutil.which("py-spy")
    if spy is None:
        print("pooltui.bench profile: py-spy is not installed (pip install py-spy)", file=sys.stderr)
        raise SystemExit(2)
    tmp = tempfile.mkdtemp(prefix="pooltui-profile-")
    raw_path = out or os.path.join(tmp, "proxy.raw.txt")
    sim_port, proxy_port = free_port(), free_port()
    sim = start_sim(sim_port)
    wrap = (spy, "record", "--format", "raw", "--rate", "250", "--nonblocking", "-o", raw_path, "--")
    proxy = proxy_process(sim_port, proxy_port, tmp, wrap=wrap, source=source)
    try:
        wait_port(proxy_port, proxy, "the proxy")
        run(_load(f"http://127.0.0.1:{proxy_port}/v1", n, concurrency))
    finally:
        for child in _children(proxy.pid):
            os.kill(child, signal.SIGTERM)  # the proxy under py-spy: py-spy writes its file when it exits
        try:
            proxy.wait(20)
        except subprocess.TimeoutExpired:
            proxy.kill()
        sim.stop()
    return report(raw_path, n, concurrency, top)


def report(raw_path: str, n: int, concurrency: int, top: int) -> list[tuple[str, int]]:
    """Print the ``top`` frames by self time of py-spy's raw output in ``raw_path``."""
    with open(raw_path) as fh:
        leaves, total = leaf_totals(fh.read())
    print(f"profile: the proxy under {n} requests at concurrency {concurrency} then {n // 10} one at a time; "
          f"{total} samples; raw output in {raw_path}")
    print(f"  top {top} frames by self time")
    ranked = leaves.most_common(top)
    for frame, count in ranked:
        print(f"  {count / max(total, 1) * 100:5.1f}%  {frame}")
    return ranked


def _function(frame: str) -> str:
    """``name (file:line)`` as ``name (file)``: a function's self time, whichever of its lines."""
    head, sep, where = frame.rpartition(" (")
    return f"{head} ({where.rsplit(':', 1)[0]})" if sep and where.endswith(")") else frame


def _children(pid: int) -> list[int]:
    """The direct children of ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found
