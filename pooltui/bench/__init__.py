"""Benchmarks that print figures: ``python -m pooltui.bench NAME`` (``--help`` lists them). One module per
benchmark, their shared helpers in ``common.py``, the command line in ``cli.py``. Not imported by the engine."""

from __future__ import annotations

from pooltui.bench.cli import BENCHMARKS, main

__all__ = ["BENCHMARKS", "main"]
