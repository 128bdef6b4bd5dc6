"""``python -m pooltui.bench proxy``: requests/s at concurrency, added latency one request at a time (p50, p99),
time to the first byte of a stream, and the proxy's memory under that load, through the pooling proxy against
the simulator directly, as three processes (simulator, proxy, load generator)."""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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


def children_of(pid: int) -> list[int]:
    """A process's live child processes, and theirs (from /proc; none elsewhere)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            direct = [int(p) for p in fh.read().split()]
    except OSError:
        return []
    return direct + [grandchild for child in direct for grandchild in children_of(child)]


def family_cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time of a process and of its child processes so far (the proxy's span export process)."""
    return cpu_seconds(pid), sum(map(cpu_seconds, children_of(pid)))


async def _proxy_round(direct: str, proxied: str, n: int, concurrency: int, sequential: int, pid: int,
                       proxy_key: str = "any", proxy_model: str | None = None) -> dict[str, float]:
    """One round: the simulator directly, then through the hop at ``proxied`` (process ``pid``), which a caller
    sends ``proxy_key`` and, when given, ``proxy_model`` instead of the simulator's model name."""
    import aiohttp

    out: dict[str, float] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def call(base: str, key: str, body: dict[str, object]) -> int:
            async with session.post(base + "/chat/completions", json=body,
                                    headers={"authorization": f"Bearer {key}"}) as r:
                await r.read()
                return r.status

        async def first_byte(base: str, key: str, streamed: dict[str, object]) -> float:
            """ms from sending a stream request to its first byte of body."""
            t0 = time.perf_counter()
            async with session.post(base + "/chat/completions", json=streamed,
                                    headers={"authorization": f"Bearer {key}"}) as r:
                await r.content.readany()
                took = (time.perf_counter() - t0) * 1000
                await r.read()
            return took

        for name, base, key, model in (("direct", direct, BENCH_SECRET, None),
                                       ("proxy", proxied, proxy_key, proxy_model)):
            body, streamed = ping_body(), {**ping_body(64), "stream": True}
            if model is not None:
                body["model"] = streamed["model"] = model
            if await call(base, key, body) != 200:
                raise RuntimeError(f"{name} did not answer 200")
            send = partial(call, base, key, body)
            await drive(send, 300, concurrency)
            cpu, child_cpu = family_cpu_seconds(pid)
            out[f"{name}_rps"] = await drive(send, n, concurrency)
            if name == "proxy":  # the proxy's own CPU per request: a figure a loaded machine disturbs far less
                cpu_after, child_after = family_cpu_seconds(pid)
                out["proxy_cpu_us"] = (cpu_after - cpu) / n * 1e6  # the proxy's process, on the requests' path
                out["proxy_child_cpu_us"] = (child_after - child_cpu) / n * 1e6  # its span export process

            async def serial(send: Callable[[], Awaitable[int]] = send) -> None:
                await send()

            latencies = await _timed(serial, sequential)
            out[f"{name}_p50_ms"] = statistics.median(latencies)
            out[f"{name}_p99_ms"] = _percentile(latencies, 0.99)
            ttfb = await _timed(partial(first_byte, base, key, streamed), max(20, sequential // 3))
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


#: the proxy's observability settings compared: (extra command line, extra environment) per mode
MODES: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "off": (("--no-access-log",), {}),  # no log line, no tracing: the hooks' cost alone
    "text-log": ((), {}),  # the default: a human-readable access line per request
    "json-log": (("--log-format", "json"), {}),
    # exporting to a local collector with the SDK's batch defaults (512 spans' requests or 5 s, whichever first)
    "traced": (("--no-access-log",), {"OTEL_EXPORTER_OTLP_ENDPOINT": "{otlp}"}),
}


#: the collector's process: accepts every OTLP export (200), counts its bytes, answers the count to a GET; over
#: HTTP/1.1 keep-alive, as a collector's OTLP/HTTP receiver does (one connection for all of an exporter's batches)
_SINK = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
received = 0
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        global received
        received += len(self.rfile.read(int(self.headers.get("content-length") or 0)))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def do_GET(self):
        body = str(received).encode()
        self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class _OtlpSink:
    """A local OTLP/HTTP receiver in a process of its own, as a collector is (in the load generator's process its
    thread took the generator's interpreter lock, which slowed the traced rounds' callers, not the proxy): it
    accepts every export and counts its bytes."""

    def __init__(self) -> None:
        self.received = 0
        self.proc = subprocess.Popen([sys.executable, "-c", _SINK], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}"

    def close(self) -> None:
        """Read what it received, then stop it."""
        with contextlib.suppress(OSError, ValueError), urllib.request.urlopen(self.url, timeout=5) as answer:
            self.received = int(answer.read())
        self.proc.terminate()
        self.proc.wait(10)


_HAPROXY_CONFIG = """global
    nbthread 1
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
frontend relay
    bind 127.0.0.1:{port}
    http-request set-path /sim-openai%[path]
    default_backend sim
backend sim
    http-reuse always
    server sim 127.0.0.1:{sim_port}
"""


def _floor_process(sim_port: int, port: int, tmp: str) -> subprocess.Popen[bytes] | None:
    """The floor: a pass-through relay in Python on uvloop, no pooling feature (bench/floor.py)."""
    return subprocess.Popen([sys.executable, "-m", "pooltui.bench.floor", str(port), str(sim_port), "/sim-openai"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _haproxy_process(sim_port: int, port: int, tmp: str) -> subprocess.Popen[bytes] | None:
    """A compiled proxy (HAProxy, one thread, keep-alive both sides) relaying the same way; None when missing."""
    binary = shutil.which("haproxy")
    if binary is None:
        return None
    config = os.path.join(tmp, "haproxy.cfg")
    with open(config, "w") as fh:
        fh.write(_HAPROXY_CONFIG.format(port=port, sim_port=sim_port))
    return subprocess.Popen([binary, "-db", "-f", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


#: reference hops measured as the proxy is, not in the default run: mode -> its process (None: not installed). The
#: caller's key goes through them as it is (they hold no pool)
REFERENCES: dict[str, Callable[[int, int, str], subprocess.Popen[bytes] | None]] = {
    "floor": _floor_process, "haproxy": _haproxy_process}


def rotated(modes: tuple[str, ...], r: int) -> tuple[str, ...]:
    """Round ``r``'s order of the modes: each takes each place once every ``len(modes)`` rounds."""
    k = r % len(modes)
    return modes[k:] + modes[:k]


def sink_for(modes: tuple[str, ...]) -> _OtlpSink | None:
    """The local OTLP collector, only when a mode traces (a sink no mode sends to would still take CPU)."""
    return _OtlpSink() if any("{otlp}" in v for m in modes if m in MODES for v in MODES[m][1].values()) else None


@dataclass(frozen=True)
class Hop:
    """A process measured between the load generator and the simulator: the process, the base URL a caller sends
    to (``.../v1``), and the key and model name a caller gives it (None: the simulator's own model name)."""

    proc: subprocess.Popen[bytes]
    base: str
    key: str = "any"
    model: str | None = None


def measure_hops(sim_port: int, hops: dict[str, Hop], n: int, concurrency: int, sequential: int,
                 rounds: int) -> dict[str, float]:
    """Each hop against the simulator directly, the hops taking turns round after round (each in each place in
    turn: a run's later places are slower); the medians of the rounds by figure (``direct_...`` for the simulator
    directly, ``NAME_proxy_...`` for hop NAME, ``NAME_vs_base``: its req/s over the first hop's in the same round),
    and each hop's peak RSS (``NAME_rss_peak_mb``, its child processes' in ``NAME_child_rss_peak_mb``)."""
    names = tuple(hops)
    samples: dict[str, list[float]] = {}
    for r in range(rounds):
        this_round: dict[str, float] = {}
        for name in rotated(names, r):
            hop = hops[name]
            result = run(_proxy_round(f"http://127.0.0.1:{sim_port}/sim-openai/v1", hop.base, n, concurrency,
                                      sequential, hop.proc.pid, hop.key, hop.model))
            for k, v in result.items():
                samples.setdefault(k if k.startswith("direct") else f"{name}_{k}", []).append(v)
            this_round[name] = result["proxy_rps"]
        for name in names:  # this round's req/s against the base's
            samples.setdefault(f"{name}_vs_base", []).append(this_round[name] / this_round[names[0]])
    for name, hop in hops.items():
        samples[f"{name}_rss_peak_mb"] = [memory_kib(hop.proc.pid).get("VmHWM", 0) / 1024]
        samples[f"{name}_child_rss_peak_mb"] = [sum(memory_kib(c).get("VmHWM", 0) for c in children_of(hop.proc.pid))
                                                / 1024]
    return {k: statistics.median(v) for k, v in samples.items()}


def direct_line(med: dict[str, float]) -> str:
    """The printed line of the simulator reached directly."""
    return (f"  direct to the simulator   {med['direct_rps']:7.0f} req/s   p50 {med['direct_p50_ms']:.2f} ms "
            f"p99 {med['direct_p99_ms']:.2f} ms   stream first byte {med['direct_ttfb_ms']:.2f} ms")


def hop_line(label: str, name: str, med: dict[str, float], base: str) -> str:
    """Hop ``name``'s printed line (``label`` first), from ``measure_hops``'s medians; adds to ``med`` what it works
    out (``NAME_rps_ratio``, ``NAME_added_ms``, ``NAME_added_p99_ms``, ``NAME_added_ttfb_ms``)."""
    rps = med[f"{name}_proxy_rps"]
    med[f"{name}_rps_ratio"] = ratio = rps / med["direct_rps"]
    med[f"{name}_added_ms"] = med[f"{name}_proxy_p50_ms"] - med["direct_p50_ms"]
    med[f"{name}_added_p99_ms"] = med[f"{name}_proxy_p99_ms"] - med["direct_p99_ms"]
    med[f"{name}_added_ttfb_ms"] = med[f"{name}_proxy_ttfb_ms"] - med["direct_ttfb_ms"]
    vs = "" if name == base else f"   {med[f'{name}_vs_base'] * 100 - 100:+.1f}% req/s vs {base}"
    return (f"  {label}  {rps:7.0f} req/s ({ratio:.2f}x direct)   added p50 {med[f'{name}_added_ms']:.2f} ms "
            f"p99 {med[f'{name}_added_p99_ms']:.2f} ms   first byte +{med[f'{name}_added_ttfb_ms']:.2f} ms   "
            f"CPU {med[f'{name}_proxy_cpu_us']:.0f} µs/request"
            + (f" (+{child:.0f} export process)" if (child := med[f'{name}_proxy_child_cpu_us']) >= 0.5 else "")
            + f"   peak RSS {med[f'{name}_rss_peak_mb']:.0f} MB"
            + (f" (+{rss:.0f} export process)" if (rss := med[f'{name}_child_rss_peak_mb']) else "") + vs)


def bench_proxy(n: int, concurrency: int, sequential: int, rounds: int, modes: tuple[str, ...] = tuple(MODES),
                source: str | None = None) -> dict[str, float]:
    """Each mode (the proxy's observability settings) against the simulator directly, in one run. ``source``: a
    directory holding another checkout's ``pooltui`` package, run as the proxy (before/after)."""
    sim_port = free_port()
    sim = start_sim(sim_port)
    sink = sink_for(modes)
    hops: dict[str, Hop] = {}
    try:
        for mode in modes:  # every mode's proxy up at once: the rounds take turns (a busy machine's swings hit all)
            port, tmp = free_port(), tempfile.mkdtemp(prefix="pooltui-bench-")
            base = f"http://127.0.0.1:{port}/v1"
            if mode in REFERENCES:
                reference = REFERENCES[mode](sim_port, port, tmp)
                if reference is None:
                    print(f"proxy: mode {mode} skipped: {mode} is not installed")
                    continue
                hops[mode] = Hop(reference, base, BENCH_SECRET)
            else:
                args, env = MODES[mode]
                env = {k: v.format(otlp=sink.url if sink else "") for k, v in env.items()}
                hops[mode] = Hop(proxy_process(sim_port, port, tmp, args=args, source=source, env=env), base)
            wait_port(port, hops[mode].proc, f"the proxy ({mode})")
        modes = tuple(hops)
        med = measure_hops(sim_port, hops, n, concurrency, sequential, rounds)
    finally:
        for hop in hops.values():
            stop_process(hop.proc)
        sim.stop()
        if sink is not None:
            sink.close()
    print(f"proxy: simulator, proxy and load generator as three processes on {os.cpu_count()} cores; "
          f"{n} requests at concurrency {concurrency}, then {sequential} one at a time; median of {rounds} rounds "
          "per mode, the modes taking turns (% vs the base: median of each round's ratio)"
          + (f"; proxy from {source}" if source else ""))
    print(direct_line(med))
    for mode in modes:
        print(hop_line(f"proxy, {mode:9}", mode, med, modes[0]))
    if sink is not None:
        print(f"  traced: {sink.received / 1024:.0f} KiB of OTLP received by the local collector")
    print("  targets: >= 0.5x direct, added p50 <= 0.30 ms, first byte added <= 0.3 ms, RSS <= 80 MB; "
          "tracing on within 15% of off")
    return med


async def _hooks_round(mode: str, n: int, sink_url: str | None) -> tuple[float, float, float]:
    """CPU seconds per request of the whole proxy (hooks included) in this process, against the in-process
    simulator (no socket, no other process): what a mode adds, with little of the machine's load in it. Returns
    (all threads, the request's thread alone, the span export process): the second from the first is the batch
    and log threads'."""
    import io
    import logging

    import httpx

    from pooltui.proxy.app import PoolProxy, create_proxy_app
    from pooltui.proxy.logs import ACCESS, OPERATIONS, configure
    from pooltui.proxy.observe import Observer
    from pooltui.sim.inprocess import InProcessSim
    from pooltui.sim.scenario import scenario_from_dict
    from pooltui.sim.wiring import client_for_scenario
    from pooltui.store.telemetry import TelemetryConfig

    scenario = scenario_from_dict({"name": "bench", "providers": [{"name": "bench", "latency_ms": 0, "keys": [
        {"label": f"k{i}", "secret": f"sk-bench-{i:030d}"} for i in range(2)]}]})
    with InProcessSim(scenario) as sim:
        client = client_for_scenario(scenario, sim, "round_robin", http=sim.http_client(), seed=1)
        tracing = None
        if mode == "traced" and sink_url:
            from pooltui.proxy.telemetry import Tracing

            tracing = Tracing(TelemetryConfig(endpoint=sink_url))
        level = "info" if mode in ("text-log", "json-log") else "warning"
        configure("json" if mode == "json-log" else "text", level, io.StringIO())
        proxy = PoolProxy({"bench": client}, observer=Observer(tracing=tracing))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_proxy_app(proxy)),
                                     base_url="http://proxy") as caller:
            async def one() -> None:
                r = await caller.post("/v1/chat/completions", json=ping_body())
                if r.status_code != 200:
                    raise RuntimeError(f"{mode}: the proxy answered {r.status_code}")

            for _ in range(50):
                await one()
            if tracing is not None:
                tracing.flush()
            child0 = cpu_seconds(tracing.export_pid) if tracing is not None else 0.0
            t0, main0 = time.process_time(), time.thread_time()
            for _ in range(n):
                await one()
            main = (time.thread_time() - main0) / n
            if tracing is not None:  # the spans of these requests built and sent inside the measure
                tracing.flush()
            cpu = (time.process_time() - t0) / n
            child = (cpu_seconds(tracing.export_pid) - child0) / n if tracing is not None else 0.0
        if tracing is not None:
            tracing.shutdown()
        await client.aclose()
        for name in (ACCESS, OPERATIONS):
            logging.getLogger(name).handlers.clear()
    return cpu, main, child


def bench_hooks(n: int, rounds: int, modes: tuple[str, ...] = tuple(MODES)) -> dict[str, float]:
    """The per-request CPU of each mode in one process, modes interleaved round after round (median)."""
    sink = sink_for(modes)
    samples: dict[str, list[tuple[float, float, float]]] = {m: [] for m in modes}
    try:
        for _ in range(rounds):
            for mode in modes:
                samples[mode].append(run(_hooks_round(mode, n, sink.url if sink else None)))
    finally:
        if sink is not None:
            sink.close()
    med = {m: statistics.median(total for total, _, _ in v) * 1e6 for m, v in samples.items()}
    threads = {m: statistics.median(total - main for total, main, _ in v) * 1e6 for m, v in samples.items()}
    child = {m: statistics.median(c for _, _, c in v) * 1e6 for m, v in samples.items()}
    base = modes[0]
    print(f"proxy hooks: CPU per request of the whole proxy in one process (in-process simulator, {n} requests "
          f"one at a time, median of {rounds} interleaved rounds)")
    for mode in modes:
        vs = "" if mode == base else f"   {med[mode] / med[base] * 100 - 100:+.1f}% vs {base}"
        print(f"  {mode:9} {med[mode]:8.0f} µs per request (batch and log threads {threads[mode]:4.0f}){vs}"
              + (f"; span export process {child[mode]:.0f} more" if child[mode] else ""))
    return med
