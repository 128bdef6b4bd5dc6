"""Picks paced by a learnt limit (issue 12, step 2): a key whose learnt window is full rests until it has
room instead of collecting a 429; when every key is full the pool says when the first opens; successes
that state the budget switch learning off for that key (headers win)."""

from __future__ import annotations

import asyncio

from pooltui.core import Classification, DeadlineSource, KeySpec, KeyState, Outcome, Pool
from pooltui.core.clock import FakeClock
from pooltui.core.headers import RateLimits
from tests.core.test_learned_limit import SlidingKey

OK = Classification(Outcome.OK, 200)


def limited(retry: float) -> Classification:
    return Classification(Outcome.RATE_LIMITED, 429, "slow down", retry, DeadlineSource.RETRY_AFTER)


def run(pool: Pool, keys: dict[str, SlidingKey], clock: FakeClock, seconds: float, every_s: float = 0.05) -> dict:
    """A request every ``every_s`` through the pool; counts what the provider saw."""
    seen = {"ok": 0, "429": 0, "none": 0}
    end = clock.now() + seconds
    while clock.now() < end:
        key = pool.pick()
        if key is None:
            seen["none"] += 1
        else:
            retry = keys[key.label].send(clock.now())
            pool.report(key, OK if retry is None else limited(retry))
            seen["ok" if retry is None else "429"] += 1
        clock.advance(every_s)
    return seen


def test_learning_paces_the_keys_and_stops_the_429s() -> None:
    results = {}
    for learn in (False, True):
        clock = FakeClock()
        pool = Pool("p", [KeySpec(f"k{i}", f"sk-test-pace-{i:020d}") for i in range(2)], "round-robin",
                    clock=clock, learn=learn)
        keys = {f"k{i}": SlidingKey(8, 5.0) for i in range(2)}
        results[learn] = run(pool, keys, clock, 60.0)
    off, on = results[False], results[True]
    print(f"\n60 s at 20 requests/s on 2 keys of 8 per 5 s: learning off {off}, on {on}")
    assert on["429"] <= 4 and on["429"] * 5 <= off["429"]  # one or two to learn each key, then paced
    assert on["ok"] >= off["ok"] * 0.9  # and it serves about as many


def test_when_every_key_is_full_the_pool_says_when_the_first_opens() -> None:
    clock = FakeClock()
    pool = Pool("p", [KeySpec("k0", "sk-test-pace-00000000000000000001")], clock=clock, learn=True)
    provider = SlidingKey(3, 10.0, whole_seconds=False)
    run(pool, {"k0": provider}, clock, 2.0)  # learns 3 per 10 s from its first 429
    assert pool.key("k0").learned.limit == 3
    clock.advance(10.0)
    for _ in range(3):
        key = pool.pick()
        assert key is not None
        assert provider.send(clock.now()) is None
        pool.report(key, OK)
        clock.advance(1.0)
    assert pool.pick() is None  # full: no request goes out to collect a 429
    k0 = pool.key("k0")
    assert k0.state is KeyState.COOLING and k0.source is DeadlineSource.LEARNED
    assert "learned limit 3 per 10.0 s reached" in k0.reason
    assert abs(pool.next_ready_in() - 7.0) < 0.01  # the first of the three leaves the window
    before = pool.events.total
    clock.advance(7.01)
    assert pool.pick() is k0 and provider.send(clock.now()) is None
    assert pool.events.total == before  # pacing ends quietly: no "back in rotation" every few seconds


def test_successes_that_state_the_budget_switch_learning_off() -> None:
    clock = FakeClock()
    pool = Pool("p", [KeySpec("k0", "sk-test-pace-00000000000000000002")], clock=clock, learn=True)
    run(pool, {"k0": SlidingKey(2, 5.0)}, clock, 1.0)
    assert pool.key("k0").learned.limit == 2
    clock.advance(10.0)
    key = pool.pick()
    stated = Classification(Outcome.OK, 200, limits=RateLimits(requests_limit=2, requests_remaining=1))
    pool.report(key, stated)
    assert pool.key("k0").learned is None  # the headers say it: no guess


def test_a_pool_that_does_not_learn_never_holds_a_key_back() -> None:
    clock = FakeClock()
    pool = Pool("p", [KeySpec("k0", "sk-test-pace-00000000000000000003")], clock=clock)
    assert pool.learn is False
    seen = run(pool, {"k0": SlidingKey(2, 5.0)}, clock, 20.0)
    assert pool.key("k0").learned is None and seen["429"] >= 3
    assert not any("learned" in e.reason for e in pool.events.recent())


def test_through_the_client_peak_hour_sends_few_429s_when_learning(serve) -> None:
    """The real client against the simulator's peak-hour (no rate-limit headers on successes)."""
    from pooltui.session.lab import run_strategy
    from pooltui.session.workload import seeded_workload
    from pooltui.sim.scenario import load_scenario
    from pooltui.sim.wiring import client_for_scenario

    sc = load_scenario("peak-hour")
    server = serve(sc)

    async def go(learn: bool) -> tuple[int, int]:
        client = client_for_scenario(sc, server, "round-robin", seed=1)
        client.primary.pool.learn = learn
        served = 0
        async with client:
            for _ in range(60):
                served += (await client.chat("hi", deadline_s=12.0)).status == 200
        return served, sum(k.stats.rate_limited for k in client.primary.pool.keys)

    on = asyncio.run(go(True))
    assert on[0] == 60 and on[1] <= 8, on
    assert run_strategy and seeded_workload  # the lab runs the same client
