"""Declared limits against the simulator (issue 27), in simulated time (the engine and an in-process simulator
on a fast-forwarded loop: minutes in a second): the simulator's own log counts what it admitted per key per
window. A declared rpm is never exceeded; a declared token budget holds keys before the provider's token 429s
(large prompts: none sent with tpm declared, some without); a token 429 is not learnt as a request limit;
headers that state a smaller token budget than the one declared win."""

from __future__ import annotations

import asyncio

from pooltui.client.pool_client import PoolUnavailableError
from pooltui.core.windows import KeyLimits
from pooltui.session.simtime import run_simulated
from pooltui.sim.inprocess import InProcessSim
from pooltui.sim.scenario import Scenario
from pooltui.sim.wiring import client_for_scenario
from tests.conftest import keys, make_scenario

PROMPT = "Summarise the thread above in one line. " * 400  # ~16 kB: ~1,000 tokens as the simulator counts them


def drive(sc: Scenario, declared: KeyLimits | None, requests: int, every_s: float, prompt: str = PROMPT
          ) -> tuple[dict[str, list[tuple[float, int, int]]], dict[str, int], object]:
    """``requests`` chats, one every ``every_s`` simulated seconds: what the simulator admitted per key, the
    statuses it sent, and the pool."""

    async def go():
        sim = InProcessSim(sc)
        loop = asyncio.get_running_loop()
        client = client_for_scenario(sc, sim, "round-robin", clock=sim.clock, http=sim.http_client(),
                                     latency_clock=loop.time, deadline_s=600.0, seed=1)
        pool = client.primary.pool
        assert pool is not None
        if declared is not None:
            for key in pool.keys:
                pool.set_limits(key.label, declared)

        async def one(i: int) -> None:
            await asyncio.sleep(i * every_s)
            try:
                await client.chat(prompt)
            except PoolUnavailableError:
                pass  # the simulator's log counts what it sent

        await asyncio.gather(*(one(i) for i in range(requests)))
        await client.http.aclose()
        ps = sim.state.primary
        statuses: dict[str, int] = {}
        for c in ps.counters.values():
            for status, n in c.by_status.items():
                statuses[str(status)] = statuses.get(str(status), 0) + n
        return {label: list(c.admitted) for label, c in ps.counters.items()}, statuses, pool

    return run_simulated(go())


def most_in_a_window(admitted: list[tuple[float, int, int]], window_s: float, units=lambda e: 1) -> int:
    """The most units admitted within any window of ``window_s`` seconds."""
    return max((sum(units(e) for e in admitted if t <= e[0] < t + window_s) for t, _, _ in admitted), default=0)


def test_a_declared_rpm_is_never_exceeded_by_one_process() -> None:
    sc = make_scenario({"name": "p", "window_s": 60, "latency_ms": [20, 80], "success_headers": False,
                        "keys": keys("k", 2)})  # the simulator itself would take any rate
    admitted, statuses, _ = drive(sc, KeyLimits(rpm=10), 60, 0.5, prompt="hi")  # 120 per minute offered
    print(f"\nadmitted per key: { {k: len(v) for k, v in admitted.items()} }, statuses {statuses}")
    for label, times in admitted.items():
        assert most_in_a_window(times, 60.0) <= 10, label
    assert statuses == {"200": 60}  # and every request served, in time


def test_a_declared_token_budget_holds_keys_before_the_providers_token_429s() -> None:
    sc = make_scenario({"name": "p", "window_s": 60, "latency_ms": [20, 60], "success_headers": False,
                        "keys": keys("k", 2, tpm=20_000)})
    results = {}
    for declared in (None, KeyLimits(tpm=20_000)):
        admitted, statuses, pool = drive(sc, declared, 60, 1.0)  # 60 per minute of ~1,000 tokens: 1.5x capacity
        results[declared is not None] = statuses
        tokens = lambda e: e[1] + e[2]  # noqa: E731
        assert all(most_in_a_window(t, 60.0, tokens) <= 20_000 for t in admitted.values())  # the simulator's own
        assert all(k.learned is None or k.learned.limit is None for k in pool.keys)  # token 429s: not requests
    print(f"\n60 large prompts over a minute, 2 keys of tpm 20,000: undeclared {results[False]}, "
          f"declared {results[True]}")
    assert results[False].get("429", 0) > 0  # without it, the provider's 429s
    assert results[True].get("429", 0) == 0 and results[True]["200"] == 60  # with it: none, all served


def test_headers_that_state_a_smaller_token_budget_win_over_the_declared_one() -> None:
    sc = make_scenario({"name": "p", "window_s": 60, "latency_ms": [20, 60], "success_headers": True,
                        "keys": keys("k", 2, tpm=20_000)})
    _, statuses, _ = drive(sc, KeyLimits(tpm=1_000_000), 60, 1.0)
    print(f"\nstated tpm 20,000, declared 1,000,000: {statuses}")
    assert statuses.get("429", 0) == 0 and statuses["200"] == 60
