"""N keys sustain N times one key's rate: the engine and the simulator on the simulated clock (the same code
as over loopback, with no socket and no wall-clock noise; it ran in real time before and its ratio check
failed once under a loaded full run)."""

from __future__ import annotations

import asyncio

from pooltui.session.simtime import run_simulated
from pooltui.session.traffic import TrafficGenerator
from pooltui.sim.inprocess import InProcessSim
from pooltui.sim.wiring import client_for_scenario
from tests.conftest import keys, make_scenario


def successes_in(sc, seconds: float, strategy: str = "round-robin") -> int:
    """Requests the simulator answered 200 in ``seconds`` of closed-loop traffic (12 in flight)."""

    async def run() -> int:
        sim = InProcessSim(sc)
        loop = asyncio.get_running_loop()
        client = client_for_scenario(sc, sim, strategy, seed=2, deadline_s=3.0, clock=sim.clock,
                                     http=sim.http_client(), latency_clock=loop.time)
        async with client:
            gen = TrafficGenerator(client, concurrency=12, seed=2)
            task = asyncio.create_task(gen.run(None))
            await asyncio.sleep(seconds)
            ok = sum(int(v.get("200", 0)) for v in sim.state.stats()["p"].values())
            gen.stop()
            await task
        return ok

    return run_simulated(run())


def test_n_keys_sustain_n_times_one_keys_rate() -> None:
    # R = 6 requests per 1 s sliding window (the simulator's minute, scaled down), over 30 simulated seconds
    r, n, window, seconds = 6, 3, 1.0, 30.0
    one = successes_in(make_scenario({"name": "p", "window_s": window, "keys": keys("s", 1, rpm=r)}), seconds)
    many = successes_in(make_scenario({"name": "p", "window_s": window, "keys": keys("k", n, rpm=r)}), seconds)
    expected_one = r * seconds / window
    assert 0.9 * expected_one <= one <= 1.05 * expected_one, one
    assert 0.9 * n * expected_one <= many <= 1.05 * n * expected_one, many
    assert 2.7 <= many / one <= 3.1, (one, many)
