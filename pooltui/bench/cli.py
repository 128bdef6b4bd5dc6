"""The command line of ``python -m pooltui.bench NAME ...``: one subcommand per benchmark, each module imported
only when its benchmark runs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

_DESCRIPTION = ("Benchmarks that print figures. Targets (issue 1): engine under 10 µs per pick+report at 3 keys, "
                "growing < 3x from 3 to 1000 keys; dispatch >= 0.85x httpx on the same (aiohttp) transport and "
                ">= 3x httpx on its default transport.")

def _engine(a: argparse.Namespace) -> None:
    from pooltui.bench.engine import bench_engine

    bench_engine(a.cycles)


def _dispatch(a: argparse.Namespace) -> None:
    from pooltui.bench.dispatch import bench_dispatch

    bench_dispatch(a.requests, a.concurrency, a.rounds)


def _monitor(a: argparse.Namespace) -> None:
    from pooltui.bench.monitor import bench_monitor

    bench_monitor(a.rate, a.seconds, a.presses)


def _proxy(a: argparse.Namespace) -> None:
    from pooltui.bench.proxy import MODES, REFERENCES, bench_proxy

    modes = tuple(m.strip() for m in a.modes.split(",") if m.strip())
    unknown = [m for m in modes if m not in MODES and (a.hooks or m not in REFERENCES)]
    if unknown or not modes:
        raise SystemExit(f"pooltui.bench proxy: unknown mode {unknown[0] if unknown else '(none)'!r} "
                         f"(known: {', '.join(MODES)}; without --hooks also {', '.join(REFERENCES)})")
    if a.hooks:
        from pooltui.bench.proxy import bench_hooks

        bench_hooks(a.hooks, a.rounds, modes)
        return
    bench_proxy(a.requests, a.concurrency, a.sequential, a.rounds, modes, a.source)


def _peers(a: argparse.Namespace) -> None:
    from pooltui.bench.peers import bench_peers

    threads = tuple(int(t) for t in a.tensorzero_threads.split(",") if t.strip())
    bench_peers(a.requests, a.concurrency, a.sequential, a.rounds, a.tensorzero_python, threads or (0,))


def _profile(a: argparse.Namespace) -> None:
    from pooltui.bench.profile import bench_profile
    from pooltui.bench.proxy import MODES

    if a.mode not in MODES:
        print(f"pooltui.bench profile: unknown mode {a.mode!r} (one of {', '.join(MODES)})", file=sys.stderr)
        raise SystemExit(2)
    bench_profile(a.requests, a.concurrency, a.top, a.out, a.source, a.mode, a.gil)


def _stream(a: argparse.Namespace) -> None:
    from pooltui.bench.stream import bench_stream

    bench_stream(a.tokens, a.streams)


def _bodies(a: argparse.Namespace) -> None:
    from pooltui.bench.bodies import bench_bodies

    bench_bodies(a.mib, a.answers)


def _shared(a: argparse.Namespace) -> None:
    from pooltui.bench.shared import bench_shared

    bench_shared(a.cycles, a.changes, a.requests, a.rounds)


def _fleet_limits(a: argparse.Namespace) -> None:
    from pooltui.bench.fleet_limits import bench_fleet_limits

    bench_fleet_limits(a.seconds, a.requests, a.rounds)


def _learned(a: argparse.Namespace) -> None:
    from pooltui.bench.learned import bench_learned

    bench_learned(a.scenario, a.seconds, a.strategy, tuple(float(x) for x in a.loads.split(",")))


def _events(a: argparse.Namespace) -> None:
    from pooltui.bench.events import bench_events

    bench_events(a.scenario, a.seconds, a.window)


def _lab(a: argparse.Namespace) -> None:
    from pooltui.bench.lab import bench_lab
    from pooltui.session.lab import parse_strategies

    bench_lab([n for n in a.scenarios.split(",") if n] or None, parse_strategies(a.strategies), a.real_time_seconds)


def _affinity(a: argparse.Namespace) -> None:
    from pooltui.bench.affinity import bench_affinity

    bench_affinity(tuple(float(x) for x in a.loads.split(",")), tuple(a.strategies.split(",")))


def _upstream(a: argparse.Namespace) -> None:
    from pooltui.bench.upstream import bench_upstream

    bench_upstream(a.requests, a.rounds)


def _corpus(_: argparse.Namespace) -> None:
    from pooltui.bench.corpus import bench_corpus

    bench_corpus()


_BENCHES: dict[str, tuple[str, Callable[[argparse.Namespace], None]]] = {
    "engine": ("µs per pick+report cycle", _engine),
    "dispatch": ("requests/s through PoolClient vs raw clients", _dispatch),
    "monitor": ("key-press latency of the monitor under heavy demo traffic", _monitor),
    "proxy": ("requests/s and added latency through the pooling proxy", _proxy),
    "peers": ("compiled gateways (TensorZero's, Rust) beside the proxy, measured as `proxy` measures it", _peers),
    "upstream": ("CPU and wall time per upstream attempt: aiohttp against our HTTP/1.1 client", _upstream),
    "profile": ("the proxy's frames with the most self time under the proxy benchmark's load (py-spy)", _profile),
    "stream": ("µs per streamed chunk in the SSE scanner (OpenAI, usage:null)", _stream),
    "bodies": ("memory of the proxy relaying large answers", _bodies),
    "shared": ("pick+report and propagation delay with key states shared through Redis", _shared),
    "fleet-limits": ("3 proxies on one Redis at 1.5x a key's capacity: calls per success, windows shared or not",
                     _fleet_limits),
    "learned": ("a scenario without headers at 0.75x, 1.0x, 1.5x capacity, learning off/on", _learned),
    "events": ("rows the events pane adds per 10 s during a demo scenario", _events),
    "lab": ("wall time of `pooltui compare` per scenario, simulated vs real time", _lab),
    "corpus": ("per provider: captured error responses, read as their source says, each miss", _corpus),
    "affinity": ("conversations at 0.75x and 1.5x capacity: cache hit rate and cost with and without affinity",
                 _affinity),
}
BENCHMARKS: dict[str, str] = {name: text for name, (text, _) in _BENCHES.items()}  # name -> what it measures


def _parser() -> argparse.ArgumentParser:
    """Each benchmark's subcommand and its options (defaults: the figures README.md quotes)."""
    parser = argparse.ArgumentParser(prog="python -m pooltui.bench", description=_DESCRIPTION)
    sub = parser.add_subparsers(dest="what", required=True)
    parsers = {name: sub.add_parser(name, help=text) for name, text in BENCHMARKS.items()}
    parsers["engine"].add_argument("--cycles", type=int, default=20000)
    d = parsers["dispatch"]
    d.add_argument("--requests", type=int, default=3000)
    d.add_argument("--concurrency", type=int, default=32)
    d.add_argument("--rounds", type=int, default=3)
    m = parsers["monitor"]
    m.add_argument("--rate", type=float, default=1000.0)
    m.add_argument("--seconds", type=float, default=8.0)
    m.add_argument("--presses", type=int, default=20)
    x = parsers["proxy"]
    x.add_argument("--requests", type=int, default=5000)
    x.add_argument("--concurrency", type=int, default=32)  # the figures: c=32
    x.add_argument("--sequential", type=int, default=300)
    x.add_argument("--rounds", type=int, default=3)
    x.add_argument("--modes", default="off,text-log,json-log,traced",
                   help="the proxy's observability settings to compare, comma-separated (the first is the base); "
                   "also the reference hops `floor` (a bare pass-through relay in Python on uvloop) and `haproxy`")
    x.add_argument("--hooks", type=int, default=0, metavar="N",
                   help="instead: CPU per request of each mode in one process, N requests per round")
    x.add_argument("--source", default=None, help="run the proxy from another checkout's directory (before/after)")
    pe = parsers["peers"]
    pe.add_argument("--requests", type=int, default=5000)
    pe.add_argument("--concurrency", type=int, default=32)
    pe.add_argument("--sequential", type=int, default=300)
    pe.add_argument("--rounds", type=int, default=3)
    pe.add_argument("--tensorzero-python", default=None, metavar="PATH",
                    help="a Python with `tensorzero` installed (default: this one); without it, TensorZero is skipped")
    pe.add_argument("--tensorzero-threads", default="0", metavar="N,...",
                    help="TensorZero's tokio worker threads, one gateway per count, comma-separated (0: tokio's "
                    "default, one per core; e.g. 0,1 compares it with one worker in the same run)")
    u = parsers["upstream"]
    u.add_argument("--requests", type=int, default=2000)
    u.add_argument("--rounds", type=int, default=4)
    pr = parsers["profile"]
    pr.add_argument("--requests", type=int, default=20000)
    pr.add_argument("--concurrency", type=int, default=32)
    pr.add_argument("--top", type=int, default=15)
    pr.add_argument("--source", default=None, help="profile the proxy of another checkout's directory")
    pr.add_argument("--mode", default="text-log", help="the proxy's observability settings (a `proxy` mode)")
    pr.add_argument("--gil", action="store_true", help="sample only the thread holding the interpreter lock")
    pr.add_argument("--out", default=None, help="where py-spy's raw output goes (default: a temporary directory)")
    s = parsers["stream"]
    s.add_argument("--tokens", type=int, default=200)
    s.add_argument("--streams", type=int, default=500)
    b = parsers["bodies"]
    b.add_argument("--mib", type=int, default=50)
    b.add_argument("--answers", type=int, default=6)
    h = parsers["shared"]
    h.add_argument("--cycles", type=int, default=20000)
    h.add_argument("--changes", type=int, default=400)
    h.add_argument("--requests", type=int, default=3000, help="per proxy throughput run")
    h.add_argument("--rounds", type=int, default=3, help="proxy throughput runs per store and proxy count")
    fl = parsers["fleet-limits"]
    fl.add_argument("--seconds", type=float, default=60.0, help="how long each case is driven")
    fl.add_argument("--requests", type=int, default=3000, help="per requests/s run")
    fl.add_argument("--rounds", type=int, default=3, help="requests/s runs per store")
    lr = parsers["learned"]
    lr.add_argument("--scenario", default="peak-hour")
    lr.add_argument("--seconds", type=float, default=30.0)
    lr.add_argument("--strategy", default="round-robin")
    lr.add_argument("--loads", default="0.75,1.0,1.5", help="multiples of the capacity, comma-separated")
    v = parsers["events"]
    v.add_argument("--scenario", default="peak-hour")
    v.add_argument("--seconds", type=float, default=60.0)
    v.add_argument("--window", type=float, default=10.0)
    lb = parsers["lab"]
    lb.add_argument("--scenarios", default="", help="comma-separated (default: every built-in one)")
    lb.add_argument("--strategies", default="all", help="as for `pooltui compare`")
    lb.add_argument("--real-time-seconds", type=float, default=5.0,
                    help="real-time runs send the arrivals of this many seconds of the workload (0: all)")
    af = parsers["affinity"]
    af.add_argument("--loads", default="0.75,1.5", help="multiples of the capacity, comma-separated")
    af.add_argument("--strategies", default="round-robin", help="comma-separated pooltui strategies")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    _BENCHES[args.what][1](args)
