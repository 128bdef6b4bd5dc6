"""Benchmarks that print figures: ``python -m pooltui.bench engine|dispatch|monitor|proxy|lab|corpus|...``.

Targets (issue 1): engine under 10 µs per pick+report at 3 keys, growing < 3x from 3 to 1000 keys;
dispatch >= 0.85x httpx on the same (aiohttp) transport and >= 3x httpx on its default transport.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time

from pooltui.core.classify import Classification
from pooltui.core.clock import SystemClock
from pooltui.core.events import Event
from pooltui.core.headers import RateLimits
from pooltui.core.health import KeyState, Outcome
from pooltui.core.pool import KeySpec, Pool
from pooltui.core.strategies import STRATEGIES
from pooltui.core.trace import RequestTrace
from pooltui.sim.process import free_port


def _engine_cycle_us(n_keys: int, strategy: str, cooling: bool, traced: bool, cycles: int,
                     headers: bool = True) -> float:
    """``headers=False``: answers state no budget, so each key's limit is learnt (one learnt per key up front,
    never full: every pick checks it, every answer feeds it)."""
    clock = SystemClock()
    # with the in-flight cap on, traffic mixing two models (per-model state in use) and a third model cooling
    pool = Pool("bench", [KeySpec(f"k{i}", f"sk-test-{i:032d}") for i in range(n_keys)], strategy, clock=clock,
                preempt=False, max_inflight=8)
    far = clock.now() + 3600
    if cooling:
        for k in pool.keys[: max(0, n_keys - max(2, n_keys // 10))]:  # all but 10% (at least 2) cooling
            pool._set_state(k, KeyState.COOLING, far, None, "bench")
    too_fast = Classification(Outcome.RATE_LIMITED, 429, "slow down", 3600.0)
    for model in ("m1", "m2", "m3"):
        first = pool.pick(model=model)
        assert first is not None, "a fresh pool has a key for each model"
        pool.report(first, too_fast if model == "m3" else Classification(Outcome.OK, 200),
                    model=model)
    ok = Classification(Outcome.OK, 200, limits=RateLimits(1000, 900, 1.0, None, None, None))
    if not headers:
        ok = Classification(Outcome.OK, 200)
        for k in pool.keys:
            for est in [k.learned, *(k.learned_models or {}).values()]:
                if est is not None:
                    est.limit, est.window_s = 10**9, 1.0
    pick, report = pool.pick, pool.report
    models = ("m1", "m2")
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        if traced:
            for i in range(cycles):
                trace = RequestTrace(i, 0.0, strategy)
                model = models[i & 1]
                key = pick(trace, None, model)
                assert key is not None  # the in-flight cap is never reached: each pick is reported at once
                report(key, ok, 0.01, model=model)
        else:
            for i in range(cycles):
                model = models[i & 1]
                key = pick(None, None, model)
                assert key is not None  # the in-flight cap is never reached: each pick is reported at once
                report(key, ok, 0.01, model=model)
        best = min(best, (time.perf_counter() - t0) / cycles * 1e6)
    return best


def bench_engine(cycles: int) -> dict:
    results: dict = {}
    print(f"engine: µs per pick+report cycle (best of 3 x {cycles} cycles; traced = with the per-request trace;"
          " two models in turn, a third cooling, in-flight cap 8)")
    print(f"{'strategy':12} {'keys':>5}  {'none cooling':>12} {'traced':>8}  {'most cooling':>12} {'traced':>8}")
    for strategy in STRATEGIES:
        for n in (3, 100, 1000):
            row = {}
            for cooling in (False, True):
                for traced in (False, True):
                    row[(cooling, traced)] = _engine_cycle_us(n, strategy, cooling, traced, cycles)
            results[f"{strategy}/{n}"] = {f"{'cooling' if c else 'free'}{'+trace' if t else ''}": round(v, 3)
                                          for (c, t), v in row.items()}
            print(f"{strategy:12} {n:>5}  {row[(False, False)]:>12.2f} {row[(False, True)]:>8.2f}  "
                  f"{row[(True, False)]:>12.2f} {row[(True, True)]:>8.2f}")
    worst3 = max(max(v.values()) for k, v in results.items() if k.endswith("/3"))
    growth = max(
        max(results[f"{s}/1000"].values()) / max(1e-9, min(results[f"{s}/3"].values())) for s in STRATEGIES)
    growth_same = max(
        results[f"{s}/1000"][col] / results[f"{s}/3"][col] for s in STRATEGIES for col in results[f"{s}/3"])
    print(f"worst at 3 keys: {worst3:.2f} µs (target < 10); worst growth 3 -> 1000 keys, same column: "
          f"{growth_same:.2f}x (target < 3x); across columns {growth:.2f}x")
    print("without rate-limit headers (each key's limit learnt, picks paced by it; none cooling):")
    learned = {}
    for strategy in STRATEGIES:
        for n in (3, 1000):
            plain = _engine_cycle_us(n, strategy, False, False, cycles, headers=False)
            with_trace = _engine_cycle_us(n, strategy, False, True, cycles, headers=False)
            learned[f"{strategy}/{n}"] = {"free": round(plain, 3), "free+trace": round(with_trace, 3)}
            print(f"{strategy:12} {n:>5}  {plain:>12.2f} {with_trace:>8.2f}")
    worst_learned = max(max(v.values()) for k, v in learned.items() if k.endswith("/3"))
    print(f"worst at 3 keys without headers: {worst_learned:.2f} µs (target < 5)")
    results["learned"] = learned
    return results


def _runner():
    from pooltui.client.loops import runner

    return runner()


def _start_sim(port: int):
    """The no-limit `bench` scenario in its own process, so the client under test has a core to itself."""
    from pooltui.sim.process import SimProcess
    from pooltui.sim.scenario import load_scenario

    return SimProcess(load_scenario("bench"), "bench", port=port).start()


async def _drive(send, n: int, concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            await send()

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - t0)


async def _dispatch_round(base: str, n: int, concurrency: int) -> dict[str, float]:
    import aiohttp
    import httpx
    from httpx_aiohttp import AiohttpTransport

    from pooltui.client.pool_client import PoolClient, Upstream, default_http_client
    from pooltui.providers.profiles import profile_for

    secret = "sk-sim-bench-00000000000000000000000001"
    body = {"model": "gpt-sim-1", "max_tokens": 16, "messages": [{"role": "user", "content": "ping"}]}
    url = base + "/v1/chat/completions"
    headers = {"authorization": f"Bearer {secret}"}
    out: dict[str, float] = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as session:
        async def raw() -> None:
            async with session.post(url, json=body, headers=headers) as r:
                await r.json()

        await _drive(raw, 200, concurrency)
        out["aiohttp"] = await _drive(raw, n, concurrency)

    for name, client in (
        ("httpx-default", httpx.AsyncClient(limits=limits, timeout=30)),
        ("httpx-aiohttp", httpx.AsyncClient(transport=AiohttpTransport(limits=limits), limits=limits, timeout=30)),
    ):
        async with client:
            async def via_httpx(c=client) -> None:
                r = await c.post(url, json=body, headers=headers)
                r.json()

            await _drive(via_httpx, 200, concurrency)
            out[name] = await _drive(via_httpx, n, concurrency)

    pool = Pool("bench", [KeySpec("bench", secret)])
    up = Upstream(profile_for("openai", name="bench", base_url=base + "/v1"), pool)
    async with PoolClient(up, http=default_http_client(max_connections=concurrency), own_http=True) as pc:
        build = pc.chat_builder("ping", max_tokens=16, model="gpt-sim-1")

        async def via_pool() -> None:
            r = await pc.send(build)
            r.json()

        await _drive(via_pool, 200, concurrency)
        out["PoolClient"] = await _drive(via_pool, n, concurrency)
    return out


def bench_dispatch(n: int, concurrency: int, rounds: int) -> dict:
    port = free_port()
    sim = _start_sim(port)
    try:
        runner = _runner()
        samples: dict[str, list[float]] = {}
        for _ in range(rounds):
            for k, v in runner(_dispatch_round(f"http://127.0.0.1:{port}", n, concurrency)).items():
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


async def _monitor_run(rate: float, seconds: float, presses: int) -> dict:
    from pooltui.session.local import demo_session
    from pooltui.tui.app import PoolMonitorApp

    session = demo_session("bench", rate=rate, seed=1)
    session.traffic_concurrency = 64
    delays: list[float] = []
    pressed: list[float] = []
    quit_at: list[float] = []

    class TimedApp(PoolMonitorApp):
        """The monitor, timing when its strategy and quit actions are handled."""

        def action_cycle_strategy(self) -> None:
            delays.append(time.perf_counter() - pressed[-1])
            super().action_cycle_strategy()

        async def action_quit(self) -> None:
            quit_at.append(time.perf_counter())  # the key press handled (its own latency is measured above)
            await super().action_quit()

    app = TimedApp(session)
    async with app.run_test(size=(120, 36)) as pilot:
        while not app.started:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        traffic = session.traffic
        assert traffic is not None, "the demo session runs traffic"
        sent0, t0 = traffic.result.requests, time.perf_counter()
        for _ in range(presses):
            await asyncio.sleep(seconds / presses)
            pressed.append(time.perf_counter())
            await pilot.press("s")
        rps = (traffic.result.requests - sent0) / (time.perf_counter() - t0)
        asyncio.get_running_loop().call_later(0.01, lambda: app.simulate_key("q"))
        while not quit_at:
            await asyncio.sleep(0.005)
    quit_ms = (time.perf_counter() - quit_at[0]) * 1000  # until the app has exited and the session stopped
    return {"rps": rps, "delays_ms": [d * 1000 for d in delays], "quit_ms": quit_ms}


def bench_monitor(rate: float, seconds: float, presses: int) -> dict:
    result = asyncio.run(_monitor_run(rate, seconds, presses))
    d = sorted(result["delays_ms"])
    print(f"monitor: `pooltui demo` session (simulator in its own process), target {rate:g} req/s, 64 in flight")
    print(f"  traffic achieved   {result['rps']:.0f} req/s")
    print(f"  key press handled  p50 {statistics.median(d):.1f} ms, max {d[-1]:.1f} ms over {len(d)} presses "
          "(target < 100 ms)")
    print(f"  q to exit          {result['quit_ms']:.0f} ms, traffic running (target < 300 ms)")
    return result


def _wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
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


async def _proxy_round(direct: str, proxied: str, n: int, concurrency: int, sequential: int) -> dict:
    import aiohttp

    body = {"model": "gpt-sim-1", "max_tokens": 16, "messages": [{"role": "user", "content": "ping"}]}
    out: dict = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def call(base: str, key: str) -> int:
            async with session.post(base + "/chat/completions", json=body,
                                    headers={"authorization": f"Bearer {key}"}) as r:
                await r.read()
                return r.status

        for name, base, key in (("direct", direct, _BENCH_SECRET), ("proxy", proxied, "any")):
            assert await call(base, key) == 200, f"{name} did not answer 200"
            await _drive(lambda b=base, k=key: call(b, k), 300, concurrency)
            out[f"{name}_rps"] = await _drive(lambda b=base, k=key: call(b, k), n, concurrency)
            latencies = []
            for _ in range(sequential):
                t0 = time.perf_counter()
                await call(base, key)
                latencies.append((time.perf_counter() - t0) * 1000)
            latencies.sort()
            out[f"{name}_p50_ms"] = statistics.median(latencies)
            out[f"{name}_p95_ms"] = latencies[int(len(latencies) * 0.95)]
    return out


_BENCH_SECRET = "sk-sim-bench-00000000000000000000000001"


def _proxy_process(sim_port: int, proxy_port: int, tmp: str, state_url: str | None = None) -> subprocess.Popen:
    """`pooltui proxy` in its own process over one key of the simulator on ``sim_port`` (config in ``tmp``);
    with ``state_url``, its key states shared through that Redis."""
    import os

    config = os.path.join(tmp, "config.toml")
    state = f'[state]\nbackend = "redis"\nurl = "{state_url}"\n' if state_url else ""
    with open(config, "w") as fh:
        fh.write(f'{state}[providers.bench]\nkind = "openai"\nbase_url = "http://127.0.0.1:{sim_port}/sim-openai/v1"\n'
                 '[[providers.bench.keys]]\nlabel = "bench"\nsecret = "env:POOLTUI_BENCH_KEY"\n')
    env = {**os.environ, "POOLTUI_BENCH_KEY": _BENCH_SECRET, "POOLTUI_DATA_DIR": tmp,
           "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    return subprocess.Popen([sys.executable, "-m", "pooltui", "--config", config, "proxy", "--port", str(proxy_port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def bench_proxy(n: int, concurrency: int, sequential: int, rounds: int) -> dict:
    import os
    import tempfile

    sim_port, proxy_port = free_port(), free_port()
    sim = _start_sim(sim_port)
    proxy = _proxy_process(sim_port, proxy_port, tempfile.mkdtemp(prefix="pooltui-bench-"))
    try:
        _wait_port(proxy_port, proxy, "the proxy")
        runner = _runner()
        samples: dict[str, list[float]] = {}
        for _ in range(rounds):
            result = runner(_proxy_round(f"http://127.0.0.1:{sim_port}/sim-openai/v1",
                                         f"http://127.0.0.1:{proxy_port}/v1", n, concurrency, sequential))
            for k, v in result.items():
                samples.setdefault(k, []).append(v)
    finally:
        proxy.terminate()
        proxy.wait(5)
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


def bench_stream(tokens: int, streams: int) -> dict:
    """µs per chunk for the scanner reading an OpenAI stream whose chunks carry ``"usage":null``."""
    from pooltui.core.sse import SSEScanner
    from pooltui.sim.shapes import sse_events

    chunks = sse_events("openai", "gpt-sim-1", "chatcmpl_bench", 20, tokens)
    t0 = time.perf_counter()
    for _ in range(streams):
        scanner = SSEScanner()
        for chunk in chunks:
            scanner.feed(chunk)
    per_chunk = (time.perf_counter() - t0) / (streams * len(chunks)) * 1e6
    print(f"stream: {streams} OpenAI streams of {len(chunks)} chunks (usage:null in each, usage at the end)")
    print(f"  {per_chunk:.2f} µs per chunk through the SSE scanner")
    return {"us_per_chunk": per_chunk}


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def _large_answers(url: str, n: int, pid: int) -> list[float]:
    import aiohttp

    body = {"model": "gpt-sim-1", "max_tokens": 4, "messages": [{"role": "user", "content": "ping"}]}
    after: list[float] = []
    async with aiohttp.ClientSession() as session:
        for _ in range(n):
            async with session.post(url, json=body, headers={"authorization": "Bearer any"}) as r:
                size = 0
                async for chunk in r.content.iter_chunked(1 << 20):
                    size += len(chunk)
                assert r.status == 200, r.status
            after.append(_rss_mib(pid))
    return after


def bench_bodies(mib: int, n: int) -> dict:
    """RSS of the proxy process while it relays ``n`` answers of ``mib`` MiB each, and after."""
    import os
    import tempfile

    sim_port, proxy_port = free_port(), free_port()
    tmp = tempfile.mkdtemp(prefix="pooltui-bench-")
    scenario = os.path.join(tmp, "large.toml")
    with open(scenario, "w") as fh:
        fh.write(f'name = "large"\n[[providers]]\nname = "sim-openai"\ndialect = "openai"\n[[providers.keys]]\n'
                 f'label = "bench"\nsecret = "{_BENCH_SECRET}"\nanswer_bytes = {mib * 2**20}\n')
    from pooltui.sim.process import SimProcess
    from pooltui.sim.scenario import load_scenario

    sim = SimProcess(load_scenario(scenario), scenario, port=sim_port).start()
    proxy = _proxy_process(sim_port, proxy_port, tmp)
    try:
        _wait_port(proxy_port, proxy, "the proxy")
        url = f"http://127.0.0.1:{proxy_port}/v1/chat/completions"
        idle = _rss_mib(proxy.pid)
        runner = _runner()
        first = runner(_large_answers(url, 1, proxy.pid))[0]
        after = runner(_large_answers(url, n, proxy.pid))
        time.sleep(2.0)
        settled = _rss_mib(proxy.pid)
    finally:
        proxy.terminate()
        proxy.wait(5)
        sim.stop()
    print(f"bodies: the proxy relays {n} answers of {mib} MiB after a first one (RSS of the proxy process)")
    print(f"  idle {idle:.0f} MiB; after the first answer {first:.0f} MiB; after each of {n} more "
          f"{', '.join(f'{a:.0f}' for a in after)} MiB; 2 s later {settled:.0f} MiB")
    return {"idle": idle, "first": first, "after": after, "settled": settled}


async def _events_run(scenario: str, seconds: float, window_s: float) -> dict:
    from pooltui.session.local import demo_session
    from pooltui.session.story import EventStory

    session = demo_session(scenario, seed=1, in_process=True)
    story = EventStory(window_s, max_rows=100_000)
    raw: list[float] = []
    rows: list[float] = []

    def seen(event) -> None:
        raw.append(event.ts)
        if story.add(event)[1]:
            rows.append(event.ts)

    session.listeners.append(seen)
    await session.start()
    t0 = session.clock.now()
    try:
        await asyncio.sleep(seconds)
    finally:
        await session.stop()
    buckets = int(seconds // 10)

    def per_10s(times: list[float]) -> list[int]:
        return [sum(1 for t in times if t0 + 10 * i <= t < t0 + 10 * (i + 1)) for i in range(buckets)]

    assert session.traffic is not None, "the demo session runs traffic"
    return {"raw": per_10s(raw), "rows": per_10s(rows), "requests": session.traffic.result.requests}


def bench_events(scenario: str, seconds: float, window_s: float) -> dict:
    result = asyncio.run(_events_run(scenario, seconds, window_s))
    print(f"events: `pooltui demo --scenario {scenario}` for {seconds:g} s, {result['requests']} requests; "
          f"rows added to the events pane per 10 s")
    print(f"  one row per event (before)       {result['raw']}")
    print(f"  repeats folded within {window_s:g} s (now) {result['rows']}")
    return result


def _bench_pool() -> Pool:
    return Pool("bench", [KeySpec(f"k{i}", f"sk-test-{i:032d}") for i in range(3)], "round-robin", preempt=False)


def _follow_states(url: str, changes: int, out) -> None:
    """In another process: share a pool through ``url`` and send the monotonic time (one clock for every
    process of a host) at which each state change of k0 arrived."""
    from pooltui.store.shared_state import SharedKeyStates

    async def run() -> None:
        pool, seen = _bench_pool(), asyncio.Event()
        shared = SharedKeyStates(url, "bench-procs")
        shared.attach(pool)
        def changed(event: Event) -> None:
            if event.key == "k0":
                out.put(time.monotonic())
                seen.set()

        pool.events.subscribe(changed)
        await shared.start()
        out.put("ready")
        for _ in range(changes):
            await seen.wait()
            seen.clear()
        await shared.stop()

    asyncio.run(run())


async def _propagation_between_processes(url: str, changes: int) -> list[float]:
    """ms from a state change in this process to its arrival in another process, per change."""
    import multiprocessing

    from pooltui.store.shared_state import SharedKeyStates

    ctx = multiprocessing.get_context("spawn")
    stamps = ctx.Queue()
    child = ctx.Process(target=_follow_states, args=(url, changes, stamps), daemon=True)
    child.start()
    assert await asyncio.to_thread(stamps.get, True, 30) == "ready"
    pool = _bench_pool()
    shared = SharedKeyStates(url, "bench-procs")
    shared.attach(pool)
    await shared.start()
    delays = []
    for i in range(changes):
        await asyncio.sleep(0.002)
        t0 = time.monotonic()
        pool.disable("k0") if i % 2 == 0 else pool.enable("k0")
        delays.append((await asyncio.to_thread(stamps.get, True, 10) - t0) * 1000)
    await shared.stop()
    child.join(10)
    return sorted(delays)


async def _shared_run(url: str, cycles: int, changes: int) -> dict:
    from pooltui.store.shared_state import SharedKeyStates

    pool = _bench_pool

    def cycle_us(p: Pool) -> float:
        ok = Classification(Outcome.OK, 200)
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(cycles):
                key = p.pick()
                assert key is not None  # each pick is reported at once: a key is always free
                p.report(key, ok, 0.01)
            best = min(best, (time.perf_counter() - t0) / cycles * 1e6)
        return best

    alone = cycle_us(pool())
    a, b = pool(), pool()
    sa, sb = SharedKeyStates(url, "bench"), SharedKeyStates(url, "bench")
    sa.attach(a)
    sb.attach(b)
    await sa.start()
    await sb.start()
    shared = cycle_us(a)
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
    return {"alone_us": alone, "shared_us": shared, "delays_ms": sorted(delays), "between_ms": between}


async def _fleet_rps(ports: list[int], n: int, concurrency: int) -> float:
    import aiohttp

    body = {"model": "gpt-sim-1", "max_tokens": 16, "messages": [{"role": "user", "content": "ping"}]}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        turn = iter(range(1 << 30))

        async def call() -> None:
            port = ports[next(turn) % len(ports)]  # the load spread over the proxies, as a balancer would
            async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body,
                                    headers={"authorization": "Bearer any"}) as r:
                await r.read()

        await _drive(call, 300, concurrency)
        return await _drive(call, n, concurrency)


def _proxies_rps(url: str | None, count: int, n: int, concurrency: int) -> float:
    import tempfile

    sim_port = free_port()
    sim = _start_sim(sim_port)
    ports = [free_port() for _ in range(count)]
    procs = [_proxy_process(sim_port, port, tempfile.mkdtemp(prefix="pooltui-bench-"), url) for port in ports]
    try:
        for port, proc in zip(ports, procs, strict=True):
            _wait_port(port, proc, "the proxy")
        return _runner()(_fleet_rps(ports, n, concurrency))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(5)
        sim.stop()


def bench_shared(cycles: int, changes: int, requests: int = 3000, rounds: int = 3) -> dict | None:
    import shutil
    import socket

    if shutil.which("redis-server") is None:
        print("shared: needs redis-server on PATH (apt-get install redis-server)")
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.02)
        url = f"redis://127.0.0.1:{port}/0"
        result = asyncio.run(_shared_run(url, cycles, changes))
        runs: dict[tuple[str, int], list[float]] = {}
        for i in range(rounds):  # the stores take turns, first one then the other: a busy moment hits both
            for count in (1, 3):
                for store in ("memory", "redis")[:: 1 if i % 2 == 0 else -1]:
                    runs.setdefault((store, count), []).append(
                        _proxies_rps(url if store == "redis" else None, count, requests, 64))
        result["rps"] = {k: sorted(v)[len(v) // 2] for k, v in runs.items()}  # the median run
        result["rps_runs"] = runs
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"shared: key states on a local redis-server; pick+report at 3 keys, best of 3 x {cycles} cycles")
    print(f"  pick+report        alone {result['alone_us']:.2f} µs   sharing through Redis "
          f"{result['shared_us']:.2f} µs (target < 10)")
    for where, d in (("another pool in this process", result["delays_ms"]), ("another process", result["between_ms"])):
        print(f"  a state change seen by {where}: p50 {d[len(d) // 2]:.2f} ms, p99 {d[int(len(d) * 0.99)]:.2f} ms, "
              f"max {d[-1]:.2f} ms over {len(d)} changes (target p99 < 50 ms)")
    rps = result["rps"]
    for count in (1, 3):
        mem, red = rps[("memory", count)], rps[("redis", count)]
        each = " ".join(f"{m:.0f}/{r:.0f}" for m, r in zip(result["rps_runs"][("memory", count)],
                                                           result["rps_runs"][("redis", count)], strict=True))
        print(f"  {count} prox{'y' if count == 1 else 'ies'} ({requests} requests, 64 in flight, spread evenly; median "
              f"of {rounds} runs): in-memory {mem:.0f} req/s, Redis {red:.0f} req/s ({red / mem:.2f}x, target >= "
              f"0.8x); runs memory/Redis {each}")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pooltui.bench", description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    e = sub.add_parser("engine", help="µs per pick+report cycle")
    e.add_argument("--cycles", type=int, default=20000)
    d = sub.add_parser("dispatch", help="requests/s through PoolClient vs raw clients")
    d.add_argument("--requests", type=int, default=3000)
    d.add_argument("--concurrency", type=int, default=32)
    d.add_argument("--rounds", type=int, default=3)
    m = sub.add_parser("monitor", help="key-press latency of the monitor under heavy demo traffic")
    m.add_argument("--rate", type=float, default=1000.0)
    m.add_argument("--seconds", type=float, default=8.0)
    m.add_argument("--presses", type=int, default=20)
    x = sub.add_parser("proxy", help="requests/s and added latency through the pooling proxy")
    x.add_argument("--requests", type=int, default=5000)
    x.add_argument("--concurrency", type=int, default=64)
    x.add_argument("--sequential", type=int, default=300)
    x.add_argument("--rounds", type=int, default=3)
    s = sub.add_parser("stream", help="µs per streamed chunk in the SSE scanner (OpenAI, usage:null)")
    s.add_argument("--tokens", type=int, default=200)
    s.add_argument("--streams", type=int, default=500)
    b = sub.add_parser("bodies", help="memory of the proxy relaying large answers")
    b.add_argument("--mib", type=int, default=50)
    b.add_argument("--answers", type=int, default=6)
    h = sub.add_parser("shared", help="pick+report and propagation delay with key states shared through Redis")
    h.add_argument("--cycles", type=int, default=20000)
    h.add_argument("--changes", type=int, default=400)
    lr = sub.add_parser("learned", help="a scenario without headers at 0.75x, 1.0x, 1.5x capacity, learning off/on")
    lr.add_argument("--scenario", default="peak-hour")
    lr.add_argument("--seconds", type=float, default=30.0)
    lr.add_argument("--strategy", default="round-robin")
    lr.add_argument("--loads", default="0.75,1.0,1.5", help="multiples of the capacity, comma-separated")
    v = sub.add_parser("events", help="rows the events pane adds per 10 s during a demo scenario")
    v.add_argument("--scenario", default="peak-hour")
    v.add_argument("--seconds", type=float, default=60.0)
    v.add_argument("--window", type=float, default=10.0)
    lb = sub.add_parser("lab", help="wall time of `pooltui compare` per scenario, simulated vs real time")
    lb.add_argument("--scenarios", default="", help="comma-separated (default: every built-in one)")
    lb.add_argument("--strategies", default="all", help="as for `pooltui compare`")
    lb.add_argument("--real-time-seconds", type=float, default=5.0,
                    help="real-time runs send the arrivals of this many seconds of the workload (0: all)")
    sub.add_parser("corpus", help="per provider: captured error responses, read as their source says, each miss")
    args = parser.parse_args(argv)
    if args.what == "corpus":
        from pooltui.bench_corpus import bench_corpus

        bench_corpus()
        return
    if args.what == "lab":
        from pooltui.bench_lab import bench_lab
        from pooltui.session.lab import parse_strategies

        bench_lab([n for n in args.scenarios.split(",") if n] or None, parse_strategies(args.strategies),
                  args.real_time_seconds)
        return
    if args.what == "learned":
        from pooltui.bench_learned import bench_learned

        bench_learned(args.scenario, args.seconds, args.strategy, tuple(float(x) for x in args.loads.split(",")))
        return
    if args.what == "events":
        bench_events(args.scenario, args.seconds, args.window)
        return
    if args.what == "shared":
        bench_shared(args.cycles, args.changes)
        return
    if args.what == "stream":
        bench_stream(args.tokens, args.streams)
    elif args.what == "bodies":
        bench_bodies(args.mib, args.answers)
    elif args.what == "proxy":
        bench_proxy(args.requests, args.concurrency, args.sequential, args.rounds)
    elif args.what == "engine":
        bench_engine(args.cycles)
    elif args.what == "monitor":
        bench_monitor(args.rate, args.seconds, args.presses)
    else:
        bench_dispatch(args.requests, args.concurrency, args.rounds)


if __name__ == "__main__":
    main()
