"""Serve the simulator on loopback with uvicorn: in a background thread, or in the foreground."""

from __future__ import annotations

import threading
import time

import uvicorn

from pooltui.client.loops import loop_name
from pooltui.client.sockets import listen
from pooltui.sim.app import create_app
from pooltui.sim.limits import SimState
from pooltui.sim.scenario import Scenario

#: idle connections stay open this long (uvicorn's default, 5 s, is shorter than the proxy's aiohttp client keeps
#: them pooled, 15 s): the simulator, like a real provider, is never the side that closes a reused connection
KEEP_ALIVE_S = 120


def _config(app, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
                          loop=loop_name(), http="httptools", backlog=2048, timeout_keep_alive=KEEP_ALIVE_S)


class SimAddress:
    """Where a served scenario answers: the root URL and each provider's base URL."""

    scenario: Scenario
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def base_url(self, provider: str | None = None) -> str:
        """The base URL a client of that provider uses (openai style ends in /v1)."""
        spec = self.scenario.provider(provider) if provider else self.scenario.primary
        root = f"{self.url}/{spec.name}"
        return root if spec.dialect == "anthropic" else root + "/v1"


class ThreadedServer:
    """Any ASGI app served from a background thread on a free loopback port (the simulator, test upstreams)."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self._sock = listen(host, port)
        self.host, self.port = self._sock.getsockname()[:2]
        self._server = uvicorn.Server(_config(self.app, self.host, self.port))  # no signal capture off the main thread
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0):
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="pooltui-sim", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SimServer(ThreadedServer, SimAddress):
    """The simulator served from a background thread on a free loopback port."""

    def __init__(self, scenario: Scenario, host: str = "127.0.0.1", port: int = 0) -> None:
        self.scenario = scenario
        self.state = SimState(scenario)
        super().__init__(create_app(scenario, self.state), host, port)


def serve_forever(scenario: Scenario, host: str = "127.0.0.1", port: int = 8600, sock=None) -> None:
    """Serve in the foreground until interrupted (``pooltui sim serve``), on ``sock`` when already listening."""
    sock = sock if sock is not None else listen(host, port)
    server = uvicorn.Server(_config(create_app(scenario), host, port))
    server.run(sockets=[sock])
