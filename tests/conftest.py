"""Shared fixtures: simulated providers served on 127.0.0.1 (real sockets)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import keyring
import pytest
from hypothesis import HealthCheck, settings
from keyring.backend import KeyringBackend

from pooltui.core.events import reworded
from pooltui.sim.scenario import Scenario, scenario_from_dict
from pooltui.sim.server import SimServer
from tests import cpu_profile

REWORD = "--reword-events"

# Property tests judge what comes out, never how fast: hypothesis's default 200 ms deadline per example is a timing
# assert, and it failed `test_classifier_never_raises` on a loaded machine (DeadlineExceeded in a mutation run).
settings.register_profile("pooltui", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("pooltui")

# Bytecode caches for our own sources, whatever the shell says: with PYTHONDONTWRITEBYTECODE set (as on this
# machine) every `python -m pooltui` a test starts compiled pooltui from source again (~0.1 s of CPU each, several
# hundred times a run) and each xdist worker rewrote and compiled every test module (~9 s of CPU). The caches go
# to the gitignored __pycache__ folders; xdist workers and subprocesses inherit the environment from here.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(REWORD, action="store_true",
                     help="every engine event's reason and action reworded (each word spelt backwards): the "
                          "behaviour must not change; tests marked `wording` (they check what people read) skip")
    cpu_profile.add_option(parser)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` (pyproject's addopts): one and a half workers per core (3 on two cores). Many tests wait (real
    servers, subprocesses, Redis, Hermes) rather than compute: with one worker per core the cores sat idle for a
    good part of a run. Measured on the two loaded cores here, same minutes, tests/shared+lab+hermes+callers: 546 s
    at 2 workers, 430 s at 3; a full run at 4 used 58 s more CPU and timed out waits (again on 2026-12-07, other
    runs loading the machine: 404 s of CPU and three 60 s timeouts at 4, 366 s and none at 3).
    PYTEST_XDIST_AUTO_NUM_WORKERS still decides when set; ``-n N`` always does."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores * 3 // 2)


def pytest_configure(config: pytest.Config) -> None:
    cpu_profile.register(config)
    config.addinivalue_line("markers", "wording: checks the words of events people read (skipped under "
                                       f"{REWORD})")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption(REWORD):
        skip = pytest.mark.skip(reason=f"checks the wording, which {REWORD} changes")
        for item in items:
            if item.get_closest_marker("wording"):
                item.add_marker(skip)


def backwards(text: str) -> str:
    """Each word of ``text`` spelt backwards: the same facts, none of the wording."""
    return " ".join(word[::-1] for word in text.split(" "))


@pytest.fixture(autouse=True, scope="session")
def _reword_events(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.config.getoption(REWORD):
        with reworded(backwards):
            yield
    else:
        yield


def make_scenario(*providers: dict[str, Any], seed: int = 3, **traffic: Any) -> Scenario:
    """A scenario from provider dicts, e.g. ``{"name": "p", "keys": [{"label": "a", "secret": ...}]}``."""
    return scenario_from_dict({"name": "test", "seed": seed, "providers": list(providers), "traffic": traffic})


async def until(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Wait (on the running loop) until ``check()`` holds: a wait for the thing itself, which a loaded
    machine only delays, where a fixed sleep can end before it; fails saying ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:g} s"
        await asyncio.sleep(0.02)


def pooltui_in_process(*args: str, stdin: str | None = None,
                       env: Mapping[str, str | None] | None = None) -> subprocess.CompletedProcess[str]:
    """``pooltui ARGS`` through its real entry point (``main``: its one-line errors, exit codes and scrubbed
    streams) in this process, click's runner standing in for the terminal: what ``python -m pooltui`` answers,
    without a Python start (~0.5 s of CPU). For tests of what a command says; each command keeps a test that
    runs it as a real process."""
    from click.testing import CliRunner

    from pooltui.commands.cli import main

    code: int | str | None = 0
    with CliRunner().isolation(input=stdin, env=env) as (out, err, _):
        try:
            main(list(args))
        except SystemExit as exit_:
            code = exit_.code
        if isinstance(code, str):  # as Python prints a sys.exit("message")
            sys.stderr.write(code + "\n")
        sys.stdout.flush()
        sys.stderr.flush()
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    returncode = 0 if code is None else code if isinstance(code, int) else 1
    return subprocess.CompletedProcess(["pooltui", *args], returncode, stdout, stderr)


def keys(prefix: str, n: int, **fields: Any) -> list[dict[str, Any]]:
    """``n`` fake keys labelled ``{prefix}0..`` with the given behaviour fields."""
    return [{"label": f"{prefix}{i}", "secret": f"sk-test-{prefix}-{i:024d}", **fields} for i in range(n)]


@pytest.fixture
def serve() -> Iterator[Callable[[Scenario], SimServer]]:
    servers: list[SimServer] = []

    def start(scenario: Scenario) -> SimServer:
        server = SimServer(scenario).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


class MemoryKeyring(KeyringBackend):
    """An OS keyring stand-in that lives in memory (trusted: priority 10)."""

    priority = 10

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.store.pop((service, username), None)


@pytest.fixture(autouse=True)
def memory_keyring(monkeypatch, tmp_path) -> Iterator[MemoryKeyring]:
    """Every test gets an in-memory keyring and its own config and data dirs (never the user's)."""
    backend = MemoryKeyring()
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    monkeypatch.setenv("POOLTUI_CONFIG", str(tmp_path / "config" / "config.toml"))
    monkeypatch.setenv("POOLTUI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")  # for subprocesses
    yield backend
    keyring.set_keyring(previous)


def config_on_simulator(serve, tmp_path: Path, n_keys: int = 2, name: str = "main", **sim_fields: Any):
    """A config file with one openai-style provider served by a simulator on loopback, its keys in a
    secret store under ``tmp_path``: (path, store, server). ``sim_fields`` go to the simulated provider
    (e.g. ``latency_ms``; ``keys`` longer than ``n_keys``: the rest are known to the simulator only)."""
    from pooltui.store.config import ConfigEditor, KeyEntry, ProviderConfig
    from pooltui.store.secrets import SecretStore

    sc = make_scenario({"name": name, "keys": keys("k", n_keys), **sim_fields})
    server = serve(sc)
    store = SecretStore(tmp_path / "data")
    path = tmp_path / "config.toml"
    with ConfigEditor(path) as cfg:
        p = cfg.providers[name] = ProviderConfig(name, "openai", server.base_url(name))
        for k in sc.primary.keys[:n_keys]:
            p.keys.append(KeyEntry(k.label, store.put(name, k.label, k.secret)))
    return path, store, server
