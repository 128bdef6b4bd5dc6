"""Learnt limits merged fleet-wide (issue 27 item 3): a limit one process learnt from its 429s reaches the
others through Redis (and a newcomer reads it); the fleet keeps the surest estimate, or the smaller of two
equally sure; a planted or malformed estimate is refused."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from pooltui.core import Classification, DeadlineSource, KeySpec, Outcome, Pool
from pooltui.core.classify import classify
from pooltui.core.clock import FakeClock
from pooltui.sim.corpus import case, raw_body
from pooltui.store.shared_state import SharedKeyStates, surer
from pooltui.store.shared_wire import Rejected, learned, learned_tokens
from tests.conftest import until

SECRET = "sk-test-learnfleet-00000000000000000001"


def learn(p: Pool, clock: FakeClock) -> Pool:
    """The pool's key accepts 4 requests 10 ms apart, then 429s saying a slot frees 2 s after the first: 4 per 2 s."""
    for _ in range(4):
        p.report(p.pick(), Classification(Outcome.OK, 200))
        clock.advance(0.01)
    clock.advance(0.06)
    p.report(p.pick(), Classification(Outcome.RATE_LIMITED, 429, "slow", 1.9, DeadlineSource.RETRY_AFTER))
    return p


def learnt_here(clock: FakeClock) -> Pool:
    return learn(Pool("p", [KeySpec("k0", SECRET)], "round-robin", clock=clock), clock)


def estimate(p: Pool) -> tuple[int, float] | None:
    fits = p.key("k0").estimates()
    return (fits[0].limit, round(fits[0].window_s, 3)) if fits else None


@pytest.mark.asyncio
async def test_a_limit_learnt_by_one_process_paces_the_others_and_newcomers(redis_server) -> None:
    other = Pool("p", [KeySpec("k0", SECRET)], "round-robin")
    sb = SharedKeyStates(redis_server.url, prefix="t")
    sb.attach(other)
    await sb.start()
    sa = SharedKeyStates(redis_server.url, prefix="t")
    clock = FakeClock()
    here = Pool("p", [KeySpec("k0", SECRET)], "round-robin", clock=clock)
    sa.attach(here)
    await sa.start()
    newcomer = Pool("p", [KeySpec("k0", SECRET)], "round-robin")
    sc = SharedKeyStates(redis_server.url, prefix="t")
    try:
        learn(here, clock)
        # fitted once the fleet's sends before the 429 are read (the store's next round): those of the others too
        await until(lambda: estimate(here) == (4, 2.0), "the 429 is fitted", 10)
        await until(lambda: estimate(other) == (4, 2.0), "the other process adopts the estimate", 10)
        sc.attach(newcomer)
        await sc.start()
        await until(lambda: estimate(newcomer) == (4, 2.0), "a newcomer reads it from the store", 10)
    finally:
        for s in (sa, sb, sc):
            await s.stop()


def message(limit: int, window_s: float, sure: float, **over) -> dict:
    return learned({"kind": "learned", "from": "x", "provider": "p", "key": "k0", "fingerprint": over.pop(
        "fingerprint", Pool("p", [KeySpec("k0", SECRET)]).key("k0").fingerprint), "model": "", "limit": limit,
        "window_s": window_s, "sure": sure, "at": 1.0, **over}, 2.0)


def test_the_fleet_keeps_the_surest_estimate_or_the_smaller_of_equally_sure() -> None:
    assert surer((8, 5.0, 0.9), (4, 5.0, 0.5)) and not surer((4, 5.0, 0.5), (8, 5.0, 0.9))
    assert surer((4, 5.0, 0.5), (8, 5.0, 0.5)) and not surer((8, 5.0, 0.5), (4, 5.0, 0.5))
    assert not surer((8, 5.0, 0.5), (8, 5.0, 0.5))  # the same: nothing to adopt
    store = SharedKeyStates("redis://127.0.0.1:1/0", prefix="t")
    p = learnt_here(FakeClock())
    store.attach(p)
    sure = p.key("k0").estimates()[0].estimate.sure
    assert not store.merge_learned(message(2, 2.0, sure - 0.1))  # less sure: kept mine
    assert estimate(p) == (4, 2.0)
    assert store.merge_learned(message(6, 2.0, sure + 0.1))  # surer: adopted
    assert estimate(p) == (6, 2.0)
    assert store.merge_learned(message(5, 2.0, sure + 0.1))  # as sure, smaller: adopted
    assert not store.merge_learned(message(9, 2.0, sure + 0.1))  # as sure, larger: not
    assert estimate(p) == (5, 2.0)
    assert not store.merge_learned(message(1, 2.0, 1.0, fingerprint="another-key"))  # another secret: ignored


@pytest.mark.parametrize("bad", [{"limit": 0}, {"limit": True}, {"limit": 10**9}, {"window_s": 0},
                                 {"window_s": 1e9}, {"window_s": float("nan")}, {"sure": 2.0},
                                 {"model": "no spaces allowed"}, {"key": "../etc"}, {"at": 1e12}])
def test_a_planted_estimate_is_refused(bad) -> None:
    good = {"kind": "learned", "provider": "p", "key": "k0", "fingerprint": "f", "model": "", "limit": 4,
            "window_s": 2.0, "sure": 0.5, "at": 1.0}
    learned(json.loads(json.dumps(good)), 2.0)
    with pytest.raises(Rejected):
        learned({**good, **bad}, 2.0)


def learn_model(p: Pool, clock: FakeClock, model: str, limit: int) -> Pool:
    """The pool serves two models; ``model`` accepts ``limit`` requests 10 ms apart, then 429s saying a slot frees
    2 s after the first: ``limit`` per 2 s for that model only."""
    p.report(p.pick(model="other"), Classification(Outcome.OK, 200), model="other")
    for _ in range(limit):
        p.report(p.pick(model=model), Classification(Outcome.OK, 200), model=model)
        clock.advance(0.01)
    clock.advance(0.06)
    p.report(p.pick(model=model), Classification(Outcome.RATE_LIMITED, 429, "slow", 2.0 - 0.01 * limit - 0.06,
                                                 DeadlineSource.RETRY_AFTER, model_scoped=True), model=model)
    return p


def model_estimate(p: Pool, model: str) -> tuple[int, float] | None:
    fit = next((f for f in p.key("k0").estimates() if f.model == model), None)
    return (fit.limit, round(fit.window_s, 2)) if fit is not None else None


@pytest.mark.asyncio
async def test_a_per_model_limit_two_processes_learnt_reaches_a_third(redis_server) -> None:
    stores, pools = [], []
    try:
        for _ in range(3):
            store = SharedKeyStates(redis_server.url, prefix="pm")
            pool = Pool("p", [KeySpec("k0", SECRET)], "round-robin", clock=FakeClock())
            store.attach(pool)
            stores.append(store)
            pools.append(pool)
        learn_model(pools[0], pools[0].clock, "m-a", 4)
        learn_model(pools[1], pools[1].clock, "m-a", 3)
        # a 429 is fitted once the fleet's sends before it are read, and an estimate another process published
        # meanwhile is adopted first: the 429 then re-fits it, a second 429 (surer). Started while both wait, in
        # turn, the first fits its 4 alone; the second reads it on start, and its 429 (3 accepted: the 4 refuted)
        # re-fits to 3, surer: the fleet, the third included, paces m-a by it, m-b by nothing
        for store in stores:
            await store.start()
        await until(lambda: [model_estimate(p, "m-a") for p in pools] == [(3, 2.0)] * 3, "the fleet takes the re-fit",
                    10)
        assert model_estimate(pools[2], "") is None and model_estimate(pools[2], "other") is None
    finally:
        for s in stores:
            await s.stop()


async def start_processes(url: str, prefix: str, n: int, stores: list[SharedKeyStates], pools: list[Pool]) -> None:
    """``n`` processes of one fleet, each a pool of key k0 with its store started; added to ``stores`` and ``pools``
    as each starts (the caller stops what started, whatever failed)."""
    for _ in range(n):
        store = SharedKeyStates(url, prefix=prefix)
        pool = Pool("p", [KeySpec("k0", SECRET)], "round-robin")
        store.attach(pool)
        stores.append(store)
        pools.append(pool)
        await store.start()


@pytest.mark.asyncio
async def test_a_per_model_learnt_limit_paces_the_fleet_through_one_window(redis_server) -> None:
    """Like the key's own learnt limit, a model's is held across the processes: three pools that each believe
    "3 per 5 s for m-a" send 3 of m-a in a window together, not 3 each; the other model is not held."""
    stores: list[SharedKeyStates] = []
    pools: list[Pool] = []
    try:
        await start_processes(redis_server.url, "pmw", 3, stores, pools)
        for pool in pools:
            pool.report(pool.pick(model="other"), Classification(Outcome.OK, 200), model="other")
            assert pool.restore_learned("k0", "m-a", 3, 5.0)
        sent, deadline = 0, asyncio.get_running_loop().time() + 1.5
        while asyncio.get_running_loop().time() < deadline:
            for pool in pools:
                key = pool.pick(model="m-a")
                if key is not None:
                    sent += 1
                    pool.report(key, Classification(Outcome.OK, 200), model="m-a")
            await asyncio.sleep(0.01)
        assert sent == 3  # the fleet's window of k0@m-a: 3 in all (each pool alone would send 3)
        assert all(p.pick(model="other") is not None for p in pools)  # the other model: not held by it
    finally:
        for s in stores:
            await s.stop()


@pytest.mark.asyncio
async def test_a_token_budget_one_process_learnt_from_a_429_is_held_by_the_others(redis_server) -> None:
    """OpenAI's "on tokens per min (TPM): Limit 30000" (a real body, tests/corpus/) teaches one process the key's
    budget; the others hold it too (a smaller one they know is kept); a planted one is refused."""
    c = case("openai-tpm-rate-limit-644ms-429")
    stores: list[SharedKeyStates] = []
    pools: list[Pool] = []
    try:
        await start_processes(redis_server.url, "tok", 2, stores, pools)
        key = pools[0].pick()
        assert key is not None
        pools[0].report(key, classify(c["dialect"], c["status"], c["headers"], raw_body(c), time.time()))

        def tpm(p: Pool) -> int | None:
            d = p.key("k0").declared
            return d.limits.tpm if d is not None else None

        assert tpm(pools[0]) == 30000
        await until(lambda: tpm(pools[1]) == 30000 and pools[1].counts_tokens, "the other holds the budget", 10)
        assert not stores[1].merge_learned_tokens(learned_tokens(  # larger than what it holds: kept its own
            {"kind": "learned_tokens", "provider": "p", "key": "k0", "fingerprint": pools[1].key("k0").fingerprint,
             "window": "tpm", "limit": 90000, "at": time.time()}, time.time()))
        assert tpm(pools[1]) == 30000
    finally:
        for s in stores:
            await s.stop()


@pytest.mark.parametrize("bad", [{"limit": 0}, {"limit": True}, {"limit": 10**11}, {"window": "rpm"},
                                 {"window": None}, {"key": "../etc"}])
def test_a_planted_token_budget_is_refused(bad) -> None:
    good = {"kind": "learned_tokens", "provider": "p", "key": "k0", "fingerprint": "f", "window": "itpm",
            "limit": 40000, "at": 1.0}
    learned_tokens(json.loads(json.dumps(good)), 2.0)
    with pytest.raises(Rejected):
        learned_tokens({**good, **bad}, 2.0)
