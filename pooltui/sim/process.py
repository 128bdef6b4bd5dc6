"""The simulator in a child process on loopback: its own core, so heavy demo traffic stays smooth."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time

from pooltui.sim.scenario import Scenario
from pooltui.sim.server import SimAddress


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SimProcess(SimAddress):
    """``pooltui sim serve`` as a child process; same URLs as :class:`SimServer`."""

    def __init__(self, scenario: Scenario, scenario_ref: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.scenario = scenario
        self.ref = scenario_ref
        self.host = host
        self.port = port or free_port()
        self._proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> SimProcess:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "pooltui", "sim", "serve", "--scenario", self.ref, "--port", str(self.port),
             "--host", self.host], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the simulator exited with code {self._proc.returncode}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("the simulator did not start in time")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()  # the simulator holds nothing worth a graceful stop: quitting stays instant
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(5)
        self._proc = None
