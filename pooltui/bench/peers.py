"""``python -m pooltui.bench peers``: compiled LLM gateways measured on ``bench proxy``'s harness, beside pooltui's
proxy (``off`` mode) in the same run: the simulator, each gateway and the load generator as processes of their
own, the gateways taking turns round after round. A peer runs only when its package is installed somewhere (never a
dependency of pooltui): TensorZero's Rust gateway comes inside the ``tensorzero`` wheel, whose
``_start_http_gateway`` serves it over HTTP on loopback from a Python process (its tokio threads do the work)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from pooltui.bench.common import BENCH_SECRET, free_port, proxy_process, start_sim, stop_process, wait_port
from pooltui.bench.proxy import MODES, Hop, direct_line, hop_line, measure_hops

#: the model TensorZero's config names, as a caller of its OpenAI-compatible endpoint spells it
TENSORZERO_MODEL = "tensorzero::model_name::gpt-sim-1"

#: the gateway's process: starts TensorZero's HTTP gateway on a free loopback port, writes its base URL to a file
#: (its own log goes to stdout, so the URL does not), then serves until it is terminated
_TENSORZERO_GATEWAY = """
import os, sys, threading
import tensorzero
gateway = tensorzero._start_http_gateway(config_file=sys.argv[1], clickhouse_url=None, postgres_url=None,
                                         valkey_url=None, async_setup=False)
with open(sys.argv[2] + ".part", "w") as fh:
    fh.write(gateway.base_url)
os.replace(sys.argv[2] + ".part", sys.argv[2])
threading.Event().wait()
"""


def tensorzero_config(sim_port: int) -> str:
    """TensorZero's config: one model, ``gpt-sim-1``, on an OpenAI-compatible provider at the simulator, its key
    read from the environment (``POOLTUI_BENCH_KEY``, never written in the file); no observability (no ClickHouse)."""
    return ('[gateway]\nobservability.enabled = false\n\n'
            '[models."gpt-sim-1"]\nrouting = ["sim"]\n\n'
            '[models."gpt-sim-1".providers.sim]\ntype = "openai"\nmodel_name = "gpt-sim-1"\n'
            f'api_base = "http://127.0.0.1:{sim_port}/sim-openai/v1/"\napi_key_location = "env::POOLTUI_BENCH_KEY"\n')


def tensorzero_missing(python: str) -> str | None:
    """Why TensorZero's gateway cannot run from ``python`` (None: it can)."""
    try:
        found = subprocess.run([python, "-c", "import tensorzero; tensorzero._start_http_gateway"],
                               capture_output=True, text=True, timeout=60)
    except OSError as exc:
        return f"cannot run {python}: {exc.strerror or exc}"
    if found.returncode == 0:
        return None
    last = (found.stderr.strip().splitlines() or ["(no error text)"])[-1]
    return f"tensorzero is not importable in {python} ({last}); `pip install tensorzero` in some venv and pass " \
           "its python as --tensorzero-python"


def tensorzero_process(python: str, sim_port: int, tmp: str, threads: int = 0) -> tuple[subprocess.Popen[bytes], str]:
    """TensorZero's gateway in its own process (``threads``: its tokio worker threads, 0 for tokio's default of
    one per core); returns the process and the base URL of its OpenAI-compatible endpoint (``.../openai/v1``)."""
    config, said = os.path.join(tmp, "tensorzero.toml"), os.path.join(tmp, "base_url")
    with open(config, "w") as fh:
        fh.write(tensorzero_config(sim_port))
    env = {**os.environ, "POOLTUI_BENCH_KEY": BENCH_SECRET}
    if threads:
        env["TOKIO_WORKER_THREADS"] = str(threads)
    proc = subprocess.Popen([python, "-c", _TENSORZERO_GATEWAY, config, said], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60  # loading its 124 MB library on a busy machine takes seconds
    while not os.path.exists(said):
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                stop_process(proc)
            raise RuntimeError(f"TensorZero's gateway did not start (exit code {proc.returncode})")
        time.sleep(0.05)
    with open(said) as fh:
        return proc, fh.read().strip()


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """A process's threads: id -> (name, CPU seconds used so far, to the nanosecond: /proc's schedstat, where a
    clock tick of 10 ms is too coarse for a short run), from /proc (none elsewhere)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return {}
    out = {}
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/comm") as fh:
                name = fh.read().strip()
            with open(f"/proc/{pid}/task/{task}/schedstat") as fh:
                out[int(task)] = (name, int(fh.read().split()[0]) / 1e9)
        except (OSError, ValueError, IndexError):
            continue
    return out


def busy_threads(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], name: str) -> int:
    """How many of the threads called ``name`` did at least a tenth of that name's work between two snapshots:
    tokio names its blocking pool's threads as its workers, and those idle while the workers serve."""
    used = {tid: cpu - before.get(tid, (n, 0.0))[1] for tid, (n, cpu) in after.items() if n == name}
    total = sum(used.values())
    return sum(1 for u in used.values() if total and u >= total / 10)


def tensorzero_hops(threads: tuple[int, ...]) -> dict[str, tuple[str, int]]:
    """TensorZero's gateways measured, one per tokio worker count asked for (0: tokio's default): figure prefix ->
    (printed label, worker threads)."""
    return {("tensorzero" if t == 0 else f"tensorzero_{t}w"):
            ("TensorZero (Rust)" if t == 0 else f"TensorZero {t} worker{'' if t == 1 else 's'}", t)
            for t in dict.fromkeys(threads)}


def bench_peers(n: int, concurrency: int, sequential: int, rounds: int, tensorzero_python: str | None = None,
                tensorzero_threads: tuple[int, ...] = (0,)) -> dict[str, float]:
    """pooltui's proxy (``off`` mode) and TensorZero's gateway (one per worker count in ``tensorzero_threads``)
    against the simulator directly, in one run: ``bench proxy``'s figures for each (medians of interleaved rounds).
    Where ``tensorzero`` does not import, says so and why, and measures nothing."""
    python = tensorzero_python or sys.executable
    missing = tensorzero_missing(python)
    if missing:
        print(f"peers: tensorzero skipped: {missing}")
        print("peers: no peer gateway to measure (see `bench proxy` for pooltui's proxy alone)")
        return {}
    peers = tensorzero_hops(tensorzero_threads)
    sim_port = free_port()
    sim = start_sim(sim_port)
    hops: dict[str, Hop] = {}
    workers: dict[str, tuple[int, int]] = {}  # peer -> (busy workers, threads named as tokio's)
    try:
        port, tmp = free_port(), tempfile.mkdtemp(prefix="pooltui-bench-")
        args, env = MODES["off"]
        hops["pooltui"] = Hop(proxy_process(sim_port, port, tmp, args=args, env=env), f"http://127.0.0.1:{port}/v1")
        wait_port(port, hops["pooltui"].proc, "the proxy (off)")
        for name, (_, threads) in peers.items():
            tz, base = tensorzero_process(python, sim_port, tempfile.mkdtemp(prefix="pooltui-bench-"), threads)
            hops[name] = Hop(tz, base, model=TENSORZERO_MODEL)
        before = {name: thread_cpu(hops[name].proc.pid) for name in peers}
        med = measure_hops(sim_port, hops, n, concurrency, sequential, rounds)
        for name in peers:
            after = thread_cpu(hops[name].proc.pid)
            med[f"{name}_workers"] = busy = busy_threads(before[name], after, "tokio-rt-worker")
            workers[name] = (busy, [thread for thread, _ in after.values()].count("tokio-rt-worker"))
    finally:
        for hop in hops.values():
            stop_process(hop.proc)
        sim.stop()
    print(f"peers: simulator, gateway and load generator as processes of their own on {os.cpu_count()} cores; "
          f"{n} requests at concurrency {concurrency}, then {sequential} one at a time; median of {rounds} rounds "
          "per gateway, the gateways taking turns (% vs pooltui: median of each round's ratio)")
    print(direct_line(med))
    print(hop_line(f"{'pooltui (off)':20}", "pooltui", med, "pooltui"))
    for name, (label, _) in peers.items():
        print(hop_line(f"{label:20}", name, med, "pooltui"))
    for name, (label, threads) in peers.items():
        busy, named = workers[name]
        setting = f"TOKIO_WORKER_THREADS={threads}" if threads else "tokio's default: one per core"
        print(f"  {label}: {busy} tokio worker thread{'' if busy == 1 else 's'} served the requests ({setting}; "
              f"{named} named tokio-rt-worker in all, its blocking pool's included)")
    print("  TensorZero's peak RSS includes the Python interpreter that hosts it")
    return med
