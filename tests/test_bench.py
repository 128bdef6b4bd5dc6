"""The benchmarks package: every benchmark listed and runnable as ``python -m pooltui.bench NAME``."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pooltui.bench
from pooltui.bench import BENCHMARKS
from pooltui.bench.engine import engine_pool
from pooltui.core.health import KeyState


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pooltui.bench", *args], capture_output=True, text=True, timeout=50)


def test_the_help_names_every_benchmark_and_each_has_its_module() -> None:
    out = bench("--help")
    assert out.returncode == 0, out.stderr
    modules = {p.stem for p in Path(pooltui.bench.__file__).parent.glob("*.py")} - {"__init__", "__main__", "cli",
                                                                                     "common", "floor"}  # helpers
    assert {name.replace("-", "_") for name in BENCHMARKS} == modules, "one module per benchmark, each listed"
    for name, text in BENCHMARKS.items():
        assert name in out.stdout and text.split()[0] in out.stdout, name
        module = name.replace("-", "_")  # fleet-limits lives in fleet_limits.py
        assert callable(getattr(importlib.import_module(f"pooltui.bench.{module}"), f"bench_{module}")), name


def test_a_quick_benchmark_runs_as_a_subprocess() -> None:
    out = bench("stream", "--tokens", "5", "--streams", "2")
    assert out.returncode == 0, out.stderr
    assert "2 OpenAI streams of" in out.stdout and "µs per chunk through the SSE scanner" in out.stdout
    assert "µs per event with 4 events a chunk" in out.stdout


def test_an_unknown_benchmark_is_one_clear_line_and_exit_2() -> None:
    out = bench("nope")
    assert out.returncode == 2 and "invalid choice: 'nope'" in out.stderr and "Traceback" not in out.stderr


def test_profiling_an_unknown_proxy_mode_is_one_clear_line_and_exit_2() -> None:
    out = bench("profile", "--mode", "nope")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == ["pooltui.bench profile: unknown mode 'nope' (one of off, text-log, "
                                               "json-log, traced)"]


def test_the_engine_bench_sets_its_pool_up_through_public_methods() -> None:
    """All keys but 10% (at least 2) cooling; without headers, each key's learnt limit never full."""
    pool = engine_pool(100, "round-robin", cooling=True, headers=False)
    assert sum(k.state is KeyState.COOLING for k in pool.keys) == 90
    estimates = [fitted.estimate for k in pool.keys for fitted in k.estimates()]
    assert estimates and all((est.limit, est.window_s) == (10**9, 1.0) for est in estimates)


def test_the_engine_benchs_declared_case_checks_every_window_and_never_fills_one() -> None:
    from pooltui.bench.engine import NEVER_FULL, declared_cycle_us

    pool = engine_pool(3, "round-robin", cooling=False, headers=False, declared=True)
    assert all(k.declared is not None and k.declared.limits == NEVER_FULL for k in pool.keys)
    assert declared_cycle_us(3, "round-robin", 50) > 0  # runs: no key ever held back (it would raise)


def test_the_engine_benchs_affinity_case_follows_conversations_on_a_pool_with_affinity_on() -> None:
    """The case once built its pool with affinity off (and declared limits on instead): it measured nothing of
    affinity. It now raises when no conversation was followed."""
    from pooltui.bench.engine import cycle_us

    assert cycle_us(3, "round-robin", False, True, 50, affinity=True) > 0


def test_the_proxy_bench_starts_its_otlp_collector_only_for_a_traced_mode() -> None:
    from pooltui.bench.proxy import sink_for

    assert sink_for(("off", "text-log", "json-log")) is None
    sink = sink_for(("off", "traced"))
    try:
        assert sink is not None and sink.url.startswith("http://127.0.0.1:")
        assert sink.proc.pid != os.getpid()  # a process of its own, as a collector is: not the load generator's
        for _ in range(2):
            urllib.request.urlopen(urllib.request.Request(sink.url + "/v1/traces", data=b"x" * 1000), timeout=5).read()
    finally:
        if sink is not None:
            sink.close()
    assert sink.received == 2000


def test_the_proxy_benchs_otlp_collector_keeps_the_exporters_connection_alive() -> None:
    """A collector's OTLP/HTTP receiver speaks HTTP/1.1 keep-alive: the exporter's batches share one connection.
    The bench's spoke HTTP/1.0 and closed each, so every batch cost the traced proxy a new connection."""
    import http.client
    from urllib.parse import urlsplit

    from pooltui.bench.proxy import sink_for

    sink = sink_for(("traced",))
    assert sink is not None
    try:
        url = urlsplit(sink.url)
        conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=5)
        sockets = []
        for _ in range(2):
            conn.request("POST", "/v1/traces", body=b"x" * 100, headers={"content-type": "application/x-protobuf"})
            answer = conn.getresponse()
            answer.read()
            assert answer.status == 200 and not answer.will_close
            sockets.append(conn.sock)
        assert sockets[0] is sockets[1] is not None
        conn.close()
    finally:
        sink.close()
    assert sink.received == 200


def test_a_bench_proxy_from_another_source_runs_that_sources_package(tmp_path) -> None:
    """`--source DIR` (before/after): the proxy process runs DIR's pooltui, even when the benchmark is started from
    a checkout's root, whose own package `python -m` would find first."""
    from pooltui.bench.common import proxy_process

    other = tmp_path / "other"
    (other / "pooltui").mkdir(parents=True)
    said = tmp_path / "ran.txt"
    (other / "pooltui" / "__init__.py").write_text("")
    (other / "pooltui" / "__main__.py").write_text(f"open({str(said)!r}, 'w').write(__file__)\n")
    proc = proxy_process(1, 2, str(tmp_path), source=str(other))
    try:
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    assert said.read_text().startswith(str(other))


def test_the_proxy_bench_gives_each_mode_each_place_in_turn() -> None:
    """A run's later places were slower (the same mode measured -3% second and -13% last): the order rotates."""
    from pooltui.bench.proxy import rotated

    modes = ("off", "text-log", "json-log", "traced")
    orders = [rotated(modes, r) for r in range(4)]
    assert orders[0] == modes and all(sorted(o) == sorted(modes) for o in orders)
    assert {o[0] for o in orders} == set(modes)  # each mode first once
    assert all(len({o[place] for o in orders}) == 4 for place in range(4))


def test_the_floor_relays_requests_on_one_keep_alive_connection(tmp_path: Path) -> None:
    """`bench proxy --modes floor`'s relay: each request's head and body re-sent upstream, answers back as they came."""
    import http.client
    import json

    from pooltui.bench.common import BENCH_SECRET, free_port, ping_body, start_sim, stop_process, wait_port
    from pooltui.bench.proxy import REFERENCES

    sim_port, port = free_port(), free_port()
    sim = start_sim(sim_port)
    relay = REFERENCES["floor"](sim_port, port, str(tmp_path))
    assert relay is not None
    try:
        wait_port(port, relay, "the floor")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for tokens in (3, 5):  # one connection: the second request goes on the same upstream connection
            conn.request("POST", "/v1/chat/completions", json.dumps({**ping_body(tokens)}),
                         {"content-type": "application/json", "authorization": f"Bearer {BENCH_SECRET}"})
            answer = conn.getresponse()
            assert answer.status == 200
            assert json.loads(answer.read())["usage"]["completion_tokens"] == tokens
        conn.close()
    finally:
        stop_process(relay)
        sim.stop()


def test_bench_peers_says_a_gateway_it_cannot_import_is_skipped_and_why(tmp_path: Path) -> None:
    """TensorZero is no dependency: where `tensorzero` does not import, `bench peers` says so and measures nothing
    (a stand-in module that fails to import hides a real one the test venv may have)."""
    (tmp_path / "tensorzero.py").write_text("raise ImportError('no tensorzero here')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)}
    out = subprocess.run([sys.executable, "-m", "pooltui.bench", "peers", "--requests", "10", "--sequential", "2",
                          "--rounds", "1"], capture_output=True, text=True, timeout=50, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith(f"peers: tensorzero skipped: tensorzero is not importable in {sys.executable} "
                               "(ImportError: no tensorzero here)"), lines
    assert lines[1:] == ["peers: no peer gateway to measure (see `bench proxy` for pooltui's proxy alone)"]


def test_bench_peers_gives_tensorzero_the_simulator_and_the_key_by_its_name_only() -> None:
    """The gateway's config file holds the simulator's address and the name of the key's variable, never the key."""
    import tomllib

    from pooltui.bench.common import BENCH_SECRET
    from pooltui.bench.peers import TENSORZERO_MODEL, tensorzero_config

    text = tensorzero_config(4321)
    provider = tomllib.loads(text)["models"]["gpt-sim-1"]["providers"]["sim"]
    assert provider["api_base"] == "http://127.0.0.1:4321/sim-openai/v1/"
    assert provider["api_key_location"] == "env::POOLTUI_BENCH_KEY" and BENCH_SECRET not in text
    assert TENSORZERO_MODEL == "tensorzero::model_name::gpt-sim-1"
