"""Budget windows held across the fleet (issue 27 item 3) through a real Redis: the Lua window is atomic under
concurrent takers, what it reads back is checked, several processes' pools keep together within one learnt
limit, Redis down makes each pace on its share (said once), and a restarted Redis loses no budget."""

from __future__ import annotations

import asyncio
import threading
import time
from bisect import bisect_left

import pytest
import redis

from pooltui.core import Classification, KeySpec, Outcome, Pool
from pooltui.store.shared_state import SharedKeyStates
from pooltui.store.shared_windows import TAKE_LUA
from pooltui.store.shared_wire import Rejected, lease_answer
from tests.conftest import until

SECRET = "sk-test-fleetwin-000000000000000000000001"


def most_in_any_window(times: list[float], window_s: float) -> int:
    """The most events within any ``window_s`` (an event leaves it exactly ``window_s`` later; in whole ms)."""
    ms = sorted(round(t * 1000) for t in times)
    span = round(window_s * 1000)
    return max((i + 1 - bisect_left(ms, t - span + 1, 0, i + 1) for i, t in enumerate(ms)), default=0)


def test_the_lua_window_is_atomic_under_concurrent_takers(redis_server) -> None:
    limit, window_ms, grants = 12, 600, []
    lock, stop = threading.Lock(), time.monotonic() + 1.5

    def taker(n: int) -> None:
        client = redis.Redis.from_url(redis_server.url)
        take = client.register_script(TAKE_LUA)
        seq = 0
        while time.monotonic() < stop:
            seq += 1
            got, at, *_ = take(keys=["t:win:w"], args=[window_ms, limit, 1 + seq % 3, f"c{n}:{seq}"])
            if got:
                with lock:
                    grants.extend([at / 1000] * int(got))
        client.close()

    threads = [threading.Thread(target=taker, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(grants) >= 2 * limit  # the takers were served, window after window
    assert most_in_any_window(grants, window_ms / 1000) == limit  # and never more than the limit at once


def test_entries_planted_in_a_window_are_refused(redis_server) -> None:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    take = client.register_script(TAKE_LUA)
    now_ms = int(client.time()[0]) * 1000
    client.zadd("t:win:w", {"garbage": now_ms, "a:b:999": now_ms, "a:b:1": now_ms + 3_600_000, "a:b:2": now_ms})
    got, _, _, held, refused = take(keys=["t:win:w"], args=[60_000, 10, 10, "me:1"])
    assert (got, held, refused) == (8, 10, 3)  # the well-formed entry counts; the three others are gone
    assert set(client.zrange("t:win:w", 0, -1)) == {"a:b:2", "me:1:8"}
    client.set("t:win:s", "not a window")
    assert take(keys=["t:win:s"], args=[60_000, 10, 4, "me:2"])[0] == 4  # a key of another type: replaced
    for forged in ([11, now_ms, 0, 1, 0], [1, now_ms, 10**9, 1, 0], ["x", now_ms, 0, 1, 0], [1, 0, 0, 1, 0], [1]):
        with pytest.raises(Rejected):
            lease_answer(forged, 10, 10, 60_000)
    client.close()


def paced_pool() -> Pool:
    p = Pool("p", [KeySpec("k0", SECRET)], "round-robin")
    p.restore_learned("k0", "", 6, 1.0)  # the key's learnt limit: 6 per second
    return p


async def drive(pools: list[Pool], seconds: float) -> list[float]:
    """Each pool sends to its key as fast as its pacing lets it (answers come at once); the send times."""
    sent: list[float] = []
    stop = time.monotonic() + seconds

    async def one(p: Pool) -> None:
        while time.monotonic() < stop:
            key = p.pick()
            if key is None:
                await asyncio.sleep(0.005)
                continue
            sent.append(time.time())
            p.report(key, Classification(Outcome.OK, 200))
            await asyncio.sleep(0)

    await asyncio.gather(*(one(p) for p in pools))
    return sent


async def sharing(url: str, pools: list[Pool], **options) -> list[SharedKeyStates]:
    stores = [SharedKeyStates(url, prefix="t", **options) for _ in pools]
    for store, p in zip(stores, pools, strict=True):
        store.attach(p)
        await store.start()
    return stores


@pytest.mark.asyncio
async def test_three_processes_keep_together_within_a_learnt_limit(redis_server) -> None:
    """Fails with ``share_windows=False`` (each process paces alone: 18 per second)."""
    pools = [paced_pool() for _ in range(3)]
    stores = await sharing(redis_server.url, pools)
    try:
        await until(lambda: all(s.processes_seen == 3 for s in stores), "the processes see each other", 10)
        sent = await drive(pools, 3.0)
    finally:
        for store in stores:
            await store.stop()
    assert len(sent) >= 12  # the key was used
    assert most_in_any_window(sent, 1.0) <= 6  # three processes, one key: its limit, not three times it
