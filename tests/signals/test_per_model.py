"""Issue 6.4: limits per model. A 429 storm on model A leaves model B served by the same keys at full rate."""

from __future__ import annotations

import pytest

from pooltui.client.pool_client import PoolUnavailableError
from pooltui.core import Classification, KeySpec, Outcome, Pool
from pooltui.core.clock import FakeClock
from pooltui.sim.wiring import client_for_scenario
from pooltui.tui.format import state_cell
from tests.conftest import keys, make_scenario


async def test_a_storm_on_one_model_leaves_another_served_by_the_same_keys(serve) -> None:
    sc = make_scenario({"name": "p", "window_s": 60, "per_model": True, "keys": keys("k", 2, rpm=4)})
    server = serve(sc)
    client = client_for_scenario(sc, server, "round-robin", seed=1, deadline_s=0.5)
    a_ok = a_failed = 0
    b_served = [(await client.chat("b", model="model-b")).key]  # traffic mixes models from the start
    for i in range(12):
        try:
            await client.chat("a", model="model-a")
            a_ok += 1
        except PoolUnavailableError:
            a_failed += 1
        if i >= 9:  # model A is in its storm: both keys answer 429 for it
            b_served.append((await client.chat("b", model="model-b")).key)
    await client.aclose()
    assert a_ok == 8 and a_failed == 4
    assert sorted(set(b_served)) == ["k0", "k1"] and len(b_served) == 4  # the same keys, every request served
    stats = server.state.stats()["p"]
    assert sum(c.get("200", 0) for c in stats.values()) == 8 + 4
    pool = client.primary.pool
    assert all(k.state.value == "ok" for k in pool.keys)  # the keys themselves are fine
    assert set(pool.model_cooldowns(pool.key("k0"))) == {"model-a"}


async def test_a_storm_on_model_a_from_the_very_first_request_leaves_model_b_served_by_the_same_keys(serve) -> None:
    """Issue 23 item 3: no other model has been seen yet when model A's 429s start (the provider limits per
    model): each 429 cools (key, model A) only, and model B, asked for afterwards, is served by both keys."""
    sc = make_scenario({"name": "p", "window_s": 60, "per_model": True, "keys": keys("k", 2, rpm=4)})
    server = serve(sc)
    client = client_for_scenario(sc, server, "round-robin", seed=1, deadline_s=0.5)
    a_ok = a_failed = 0
    for _ in range(12):  # model A only, from the first request: 8 fit the two keys' windows, then 429s
        try:
            await client.chat("a", model="model-a")
            a_ok += 1
        except PoolUnavailableError:
            a_failed += 1
    pool = client.primary.pool
    assert pool.models_seen() == ["model-a"]
    b_served = [(await client.chat("b", model="model-b")).key for _ in range(4)]
    await client.aclose()
    assert a_ok == 8 and a_failed == 4
    assert sorted(set(b_served)) == ["k0", "k1"] and len(b_served) == 4  # the same keys, every request served
    assert all(k.state.value == "ok" for k in pool.keys)  # the keys themselves are fine
    assert all(set(pool.model_cooldowns(k)) == {"model-a"} for k in pool.keys)


def test_a_second_models_429_on_a_key_cools_the_whole_key() -> None:
    clock = FakeClock(1000.0)
    pool = Pool("p", [KeySpec("a", "sk-test-pm-a-0000000000001")], clock=clock)
    scoped = Classification(Outcome.RATE_LIMITED, 429, "slow down", 5.0, model_scoped=True)
    key = pool.pick(model="m1")
    pool.report(key, scoped, model="m1")
    assert (key.state.value, key.cool_model) == ("cooling", "m1")  # one model so far: shown as the key's
    assert pool.pick(model="m2") is key  # another model: the cooldown was m1's
    assert key.state.value == "ok" and pool.model_cooldowns(key) == {"m1": 1005.0}
    pool.report(key, scoped, model="m2")  # m1 still cools on it: the limit is the key's after all
    assert key.state.value == "cooling" and pool.pick(model="m3") is None


def test_with_one_model_a_429_is_the_keys_own_and_quota_stays_per_key() -> None:
    clock = FakeClock(1000.0)
    pool = Pool("p", [KeySpec("a", "sk-test-pm-a-0000000000001"), KeySpec("b", "sk-test-pm-b-000000000001")],
                clock=clock)
    key = pool.pick(model="m1")
    pool.report(key, Classification(Outcome.RATE_LIMITED, 429, "slow down", 5.0), model="m1")
    assert key.state.value == "cooling"  # one model in traffic: the key cools, as the monitor shows
    other = pool.pick(model="m2")
    pool.report(other, Classification(Outcome.RATE_LIMITED, 429, "slow down", 5.0), model="m2")
    assert other.state.value == "ok" and pool.model_cooldowns(other) == {"m2": 1005.0}
    assert pool.pick(model="m2") is None and pool.next_ready_in("m2") == pytest.approx(5.0)
    clock.advance(6)
    assert pool.pick(model="m2") is not None
    quota = pool.pick(model="m2")
    pool.report(quota, Classification(Outcome.QUOTA, 429, "no credit"), model="m2")
    assert quota.state.value == "exhausted"


def test_the_monitor_shows_per_model_cooldowns_under_their_key() -> None:
    cell = state_cell({"state": "ok", "models": {"gpt-4o": 12.0}})
    assert cell.plain == "ok · gpt-4o 12s"
