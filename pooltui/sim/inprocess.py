"""The simulator in this process, with no socket: its Starlette app behind httpx's ASGI transport, its limits,
latencies and outages on the running event loop's clock. On a fast-forwarded loop (``looptime``) a scenario's
minutes take seconds: the strategy lab's simulated time."""

from __future__ import annotations

import asyncio

import httpx

from pooltui.core.clock import LoopClock
from pooltui.sim.app import create_app
from pooltui.sim.limits import SimState
from pooltui.sim.scenario import Scenario
from pooltui.sim.server import SimAddress


class InProcessSim(SimAddress):
    """A scenario's providers answering in-process (``http_client()``), timed by the running loop's clock."""

    host = "sim.in-process"  # never resolved: the ASGI transport hands requests to the app directly
    port = 80

    def __init__(self, scenario: Scenario) -> None:
        loop = asyncio.get_running_loop()
        self.scenario = scenario
        self.clock = LoopClock(loop)
        self.state = SimState(scenario, mono=loop.time, wall=self.clock.now)
        self.app = create_app(scenario, self.state)

    def http_client(self, timeout_s: float = 60.0) -> httpx.AsyncClient:
        """An httpx client whose requests go straight to the simulator's app (no socket, no thread)."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), timeout=timeout_s)

    def __enter__(self) -> InProcessSim:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
