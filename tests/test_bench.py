"""The benchmarks package: every benchmark listed and runnable as ``python -m pooltui.bench NAME``."""

from __future__ import annotations

import importlib
import subprocess
import sys

from pooltui.bench import BENCHMARKS
from pooltui.bench.engine import engine_pool
from pooltui.core.health import KeyState


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pooltui.bench", *args], capture_output=True, text=True, timeout=50)


def test_the_help_names_every_benchmark_and_each_has_its_module() -> None:
    out = bench("--help")
    assert out.returncode == 0, out.stderr
    assert len(BENCHMARKS) == 12
    for name, text in BENCHMARKS.items():
        assert name in out.stdout and text.split()[0] in out.stdout, name
        assert callable(getattr(importlib.import_module(f"pooltui.bench.{name}"), f"bench_{name}")), name


def test_a_quick_benchmark_runs_as_a_subprocess() -> None:
    out = bench("stream", "--tokens", "5", "--streams", "2")
    assert out.returncode == 0, out.stderr
    assert "2 OpenAI streams of" in out.stdout and "µs per chunk through the SSE scanner" in out.stdout


def test_an_unknown_benchmark_is_one_clear_line_and_exit_2() -> None:
    out = bench("nope")
    assert out.returncode == 2 and "invalid choice: 'nope'" in out.stderr and "Traceback" not in out.stderr


def test_the_engine_bench_sets_its_pool_up_through_public_methods() -> None:
    """All keys but 10% (at least 2) cooling; without headers, each key's learnt limit never full."""
    pool = engine_pool(100, "round-robin", cooling=True, headers=False)
    assert sum(k.state is KeyState.COOLING for k in pool.keys) == 90
    estimates = [fitted.estimate for k in pool.keys for fitted in k.estimates()]
    assert estimates and all((est.limit, est.window_s) == (10**9, 1.0) for est in estimates)
