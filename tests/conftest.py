"""Shared fixtures: simulated providers served on 127.0.0.1 (real sockets)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pooltui.sim.scenario import Scenario, scenario_from_dict
from pooltui.sim.server import SimServer


def make_scenario(*providers: dict[str, Any], seed: int = 3, **traffic: Any) -> Scenario:
    """A scenario from provider dicts, e.g. ``{"name": "p", "keys": [{"label": "a", "secret": ...}]}``."""
    return scenario_from_dict({"name": "test", "seed": seed, "providers": list(providers), "traffic": traffic})


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
