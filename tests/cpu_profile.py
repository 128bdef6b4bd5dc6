"""``pytest --cpu-profile DIR``: the CPU each test costs, its child processes included, not only its wall time.

On a loaded 2-core machine wall times say more about the neighbours than about a test; CPU seconds are what a
change can cut. Each process running tests (each xdist worker, or pytest itself with ``-n 0``) writes
``DIR/<worker>.json``: per test its own CPU (``getrusage(RUSAGE_SELF)``, user + system, threads included), its
children's (``RUSAGE_CHILDREN``: the processes it started and waited for: proxies, Hermes, redis-server) and its
wall time, and the CPU its start and collection took. The run ends with the top tests by CPU and the totals.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

OPTION = "--cpu-profile"
SHOWN = 25


def cpu_seconds() -> tuple[float, float]:
    """This process's CPU seconds so far (user + system), and its waited-for children's."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


class CpuProfile:
    """Records each test's CPU in this process and, in the process that reports, ranks them at the end."""

    def __init__(self, folder: Path, worker: str | None) -> None:
        self.folder, self.worker = folder, worker
        self.rows: list[dict[str, Any]] = []
        self.collection: dict[str, float] = {}

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        own, children = cpu_seconds()  # the interpreter's start, the imports and the collection
        self.collection = {"self": own, "children": children}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, None, None]:
        (own, children), started = cpu_seconds(), time.monotonic()
        yield
        (own_after, children_after), ended = cpu_seconds(), time.monotonic()
        self.rows.append({"id": item.nodeid, "self": own_after - own, "children": children_after - children,
                          "wall": ended - started})

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.worker is None and not self.rows:
            return  # the xdist controller runs no test: its workers write theirs
        own, children = cpu_seconds()
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"{self.worker or 'main'}.json").write_text(json.dumps(
            {"collection": self.collection, "total": {"self": own, "children": children}, "tests": self.rows}))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.worker is not None:
            return
        write = terminalreporter.write_line
        tests: list[dict[str, Any]] = []
        for path in sorted(self.folder.glob("*.json")):
            said = json.loads(path.read_text())
            tests += said["tests"]
            write(f"{path.stem}: start and collection {sum(said['collection'].values()):.1f} s of CPU, in all "
                  f"{said['total']['self']:.1f} s own + {said['total']['children']:.1f} s children")
        cpu = sorted(tests, key=lambda t: t["self"] + t["children"], reverse=True)
        write(f"{len(tests)} tests: {sum(t['self'] + t['children'] for t in tests):.1f} s of CPU "
              f"({sum(t['children'] for t in tests):.1f} s in their child processes); the most:")
        for t in cpu[:SHOWN]:
            write(f"{t['self'] + t['children']:6.2f} s CPU ({t['children']:5.2f} children) {t['wall']:6.1f} s wall "
                  f"{t['id']}")


def add_option(parser: pytest.Parser) -> None:
    parser.addoption(OPTION, metavar="DIR", default=None,
                     help="record each test's CPU seconds (its child processes included) and wall time in DIR, one "
                          "file per xdist worker, and list the costliest at the end")


def register(config: pytest.Config) -> None:
    """Registers the profile when ``--cpu-profile`` is given (in the controller and in every worker)."""
    folder = config.getoption(OPTION)
    if folder:
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        if worker is None:  # the process that reports: last run's files go
            for stale in Path(folder).glob("*.json"):
                stale.unlink()
        config.pluginmanager.register(CpuProfile(Path(folder).resolve(), worker), "cpu_profile")
