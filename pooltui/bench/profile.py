"""``python -m pooltui.bench profile``: where the proxy's time goes under the `proxy` benchmark's load, as the
frames with the most self time (``pip install py-spy``). py-spy attaches to the proxy once it has started and
served a warm-up, so the profile holds the requests only: no imports, no start-up."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from functools import partial

from pooltui.bench.common import drive, free_port, ping_body, proxy_process, run, start_sim, stop_process, wait_port


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


WARM_UP = 500  # requests served before py-spy attaches (connections opened, first-use work done)


async def _load(base: str, n: int, concurrency: int, serial: bool = True) -> None:
    import aiohttp

    body = ping_body()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def call() -> None:
            async with session.post(base + "/chat/completions", json=body,
                                    headers={"authorization": "Bearer any"}) as r:
                await r.read()

        await drive(partial(call), n, concurrency)
        for _ in range(n // 10 if serial else 0):  # one at a time too: the serial path
            await call()


def bench_profile(n: int, concurrency: int, top: int, out: str | None, source: str | None = None,
                  mode: str = "text-log", gil: bool = False) -> list[tuple[str, int]]:
    """The proxy's top frames by self time in one of the `proxy` benchmark's modes (``traced``: exporting to
    the local OTLP collector, in a process of its own); with ``gil``, only the thread holding the interpreter lock
    is sampled (a thread waiting for it, which py-spy counts as busy otherwise, is left out)."""
    from pooltui.bench.proxy import MODES, sink_for

    spy = shutil.which("py-spy")
    if spy is None:
        print("pooltui.bench profile: py-spy is not installed (pip install py-spy)", file=sys.stderr)
        raise SystemExit(2)
    tmp = tempfile.mkdtemp(prefix="pooltui-profile-")
    raw_path = out or os.path.join(tmp, "proxy.raw.txt")
    sim_port, proxy_port = free_port(), free_port()
    sim = start_sim(sim_port)
    sink = sink_for((mode,))
    args, env = MODES[mode]
    proxy = proxy_process(sim_port, proxy_port, tmp, args=args, source=source,
                          env={k: v.format(otlp=sink.url if sink else "") for k, v in env.items()})
    recorder: subprocess.Popen[bytes] | None = None
    try:
        wait_port(proxy_port, proxy, "the proxy")
        base = f"http://127.0.0.1:{proxy_port}/v1"
        run(_load(base, WARM_UP, concurrency, serial=False))
        recorder = subprocess.Popen((spy, "record", "--format", "raw", "--rate", "250", "--nonblocking", "-o",
                                     raw_path, "--pid", str(proxy.pid), *(("--gil",) if gil else ())),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # py-spy attached before the load starts
        run(_load(base, n, concurrency))
    finally:
        if recorder is not None:
            recorder.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
            try:
                recorder.wait(20)
            except subprocess.TimeoutExpired:
                recorder.kill()
        stop_process(proxy)
        sim.stop()
        if sink is not None:
            sink.close()
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
