"""Shared key states through a real Redis (issue 10, step 1): what one process learns about a key, the
others apply to their own pool at once; a newcomer reads what was learnt before it started; Redis going
away and coming back loses nothing and fails no request."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from pooltui.core import Classification, DeadlineSource, KeySpec, KeyState, Outcome, Pool
from pooltui.store.fleet import FleetLink
from pooltui.store.shared_state import SharedKeyStates

pytestmark = pytest.mark.asyncio
SECRETS = [f"sk-test-shared-{i:024d}" for i in range(3)]


def pool(secrets=SECRETS) -> Pool:
    return Pool("p", [KeySpec(f"k{i}", s) for i, s in enumerate(secrets)], "failover")


async def sharing(url: str, p: Pool, log=None) -> SharedKeyStates:
    shared = SharedKeyStates(url, prefix="t", log=log or (lambda line: None))
    shared.attach(p)
    await shared.start()
    assert shared.connected
    return shared


async def until(check, timeout_s: float = 10.0) -> None:  # a bound for a hang: 2 s failed on a loaded run
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "not propagated in time"
        await asyncio.sleep(0.005)


def answer(p: Pool, label: str, result: Classification) -> None:
    key = p.key(label)
    key.inflight += 1
    p.report(key, result)


async def test_a_429_a_401_and_hand_actions_reach_the_other_process(redis_server) -> None:
    a, b = pool(), pool()
    sa, sb = await sharing(redis_server.url, a), await sharing(redis_server.url, b)
    try:
        answer(a, "k0", Classification(Outcome.RATE_LIMITED, 429, "slow", 30.0, DeadlineSource.RETRY_AFTER))
        await until(lambda: b.key("k0").state is KeyState.COOLING)
        assert b.key("k0").until == a.key("k0").until and b.key("k0").source is DeadlineSource.RETRY_AFTER
        assert b.pick().label == "k1"  # b never sends to the key a learnt is spent
        answer(b, "k2", Classification(Outcome.INVALID, 401, "revoked"))
        await until(lambda: a.key("k2").state is KeyState.INVALID)  # one 401 in total, not one per process
        a.disable("k1")
        await until(lambda: b.key("k1").state is KeyState.DISABLED)
        a.enable("k1")
        await until(lambda: b.key("k1").state is KeyState.OK)
        a.reset("k0")
        await until(lambda: b.key("k0").state is KeyState.OK)
        assert sa.applied >= 1 and sb.applied >= 4
    finally:
        await sa.stop()
        await sb.stop()


async def test_states_apply_only_to_the_same_secret(redis_server) -> None:
    a, b = pool(), pool(["sk-test-other-000000000000000000000001", *SECRETS[1:]])  # k0 is another key in b
    sa, sb = await sharing(redis_server.url, a), await sharing(redis_server.url, b)
    try:
        answer(a, "k0", Classification(Outcome.INVALID, 401, "revoked"))
        answer(a, "k1", Classification(Outcome.INVALID, 401, "revoked"))
        await until(lambda: b.key("k1").state is KeyState.INVALID)
        assert b.key("k0").state is KeyState.OK
    finally:
        await sa.stop()
        await sb.stop()


async def test_a_newcomer_reads_what_was_learnt_before_it_started(redis_server) -> None:
    a = pool()
    sa = await sharing(redis_server.url, a)
    try:
        answer(a, "k0", Classification(Outcome.QUOTA, 402, "no credits", 3600.0, DeadlineSource.KNOWN_RESET))
        await until(lambda: sa.published >= 1)
        late = pool()
        sl = await sharing(redis_server.url, late)
        assert late.key("k0").state is KeyState.EXHAUSTED and late.key("k0").until == a.key("k0").until
        await sl.stop()
    finally:
        await sa.stop()


async def test_redis_restarted_midway_loses_nothing(redis_server) -> None:
    a, b = pool(), pool()
    said: list[str] = []
    sa, sb = await sharing(redis_server.url, a), await sharing(redis_server.url, b, said.append)
    try:
        redis_server.stop()
        answer(a, "k0", Classification(Outcome.RATE_LIMITED, 429, "slow", 60.0, DeadlineSource.RETRY_AFTER))
        assert a.pick().label == "k1"  # serving goes on on its own view
        await until(lambda: not sb.connected and any("unreachable" in line for line in said), timeout_s=10)
        redis_server.start()
        await until(lambda: b.key("k0").state is KeyState.COOLING, timeout_s=10)  # published once it was back
    finally:
        await sa.stop()
        await sb.stop()


async def test_two_sessions_on_one_config_share_key_states(redis_server, serve, tmp_path) -> None:
    """`[state] backend = "redis"`: a key one proxy (or monitor) learns is spent, the other skips at once."""
    from pooltui.session.local import config_session
    from pooltui.store.config import load_config
    from tests.conftest import config_on_simulator

    path, store, _ = config_on_simulator(serve, tmp_path)
    text = path.read_text() + f'\n[state]\nbackend = "redis"\nurl = "{redis_server.url}"\nprefix = "team-a"\n'
    path.write_text(text)
    one, _ = config_session(load_config(path), store, None)
    two, _ = config_session(load_config(path), store, None)
    for s in (one, two):
        s.start_background()
    try:
        await until(lambda: one.shared.connected and two.shared.connected)
        answer(one.pool, "k0", Classification(Outcome.RATE_LIMITED, 429, "slow", 30.0, DeadlineSource.RETRY_AFTER))
        await until(lambda: two.pool.key("k0").state is KeyState.COOLING)
        assert two.pool.pick().label == "k1"
        assert "[state]" in path.read_text()  # kept as written
    finally:
        for s in (one, two):
            s.stop_background()
            await s.shared.stop()
            for c in s.clients.values():
                await c.aclose()


async def test_the_state_table_is_checked_at_the_edge() -> None:
    from pooltui.store.config import parse_state

    assert parse_state({}).backend == "memory"
    ok = parse_state({"backend": "redis", "url": "redis://10.0.0.5:6379/2", "prefix": "team-a"})
    assert (ok.backend, ok.url, ok.prefix) == ("redis", "redis://10.0.0.5:6379/2", "team-a")
    for bad, why in (({"backend": "etcd"}, "memory\" or \"redis"), ({"backend": "redis"}, "Redis URL"),
                     ({"backend": "redis", "url": "http://x"}, "Redis URL"), ({"prefix": "a b"}, "state.prefix"),
                     ({"backend": "memory", "ttl": 3}, "unknown setting 'ttl'")):
        with pytest.raises(ValueError, match=why):
            parse_state(bad)


async def test_a_daily_budget_is_spent_once_across_processes(redis_server, serve) -> None:
    """Each process used to count its own spend: two processes on one key spent its daily budget twice."""
    from pooltui.core.budget import Budget
    from pooltui.sim.wiring import client_for_scenario
    from tests.conftest import keys, make_scenario

    sc = make_scenario({"name": "p", "keys": keys("k", 2)})
    server = serve(sc)
    clients = [client_for_scenario(sc, server, "failover", seed=i) for i in (1, 2)]
    shared = []
    for client in clients:
        client.primary.pool.set_budget("k0", Budget(tokens_day=600))
        s = SharedKeyStates(redis_server.url, prefix="budget")
        s.attach(client.primary.pool)
        s.attach_client(client)
        await s.start()
        shared.append(s)
    try:
        spent_per_request = None
        served_on_k0 = 0
        for i in range(40):
            client = clients[i % 2]
            before = client.primary.pool.key("k0").stats.tokens_in + client.primary.pool.key("k0").stats.tokens_out
            r = await client.chat("hi")
            assert r.status == 200
            if r.key == "k0":
                served_on_k0 += 1
                k0 = client.primary.pool.key("k0").stats
                spent_per_request = spent_per_request or (k0.tokens_in + k0.tokens_out - before)
            await until(lambda: all(s._queue.empty() and not s._spending for s in shared))
            await asyncio.sleep(0.02)
            if all(c.primary.pool.key("k0").state is KeyState.EXHAUSTED for c in clients):
                break
        assert all(c.primary.pool.key("k0").state is KeyState.EXHAUSTED for c in clients)
        assert all(c.primary.pool.key("k0").source is DeadlineSource.BUDGET for c in clients)
        total = sum(c.primary.pool.key("k0").stats.tokens_in + c.primary.pool.key("k0").stats.tokens_out
                    for c in clients)
        assert 600 <= total < 600 + 2 * spent_per_request  # once across both, not 600 each
        assert (await clients[0].chat("hi")).key == "k1"
    finally:
        for s in shared:
            await s.stop()
        for c in clients:
            await c.aclose()


async def test_a_per_model_cooldown_reaches_the_other_process(redis_server) -> None:
    a, b = pool(), pool()
    for p in (a, b):  # both have seen two models: a 429 speaks of one
        for model in ("big", "small"):
            p.report(p.pick(model=model), Classification(Outcome.OK, 200), model=model)
    sa, sb = await sharing(redis_server.url, a), await sharing(redis_server.url, b)
    try:
        k0 = a.key("k0")
        k0.inflight += 1
        a.report(k0, Classification(Outcome.RATE_LIMITED, 429, "slow", 20.0, DeadlineSource.RETRY_AFTER),
                 model="big")
        assert a.key("k0").state is KeyState.OK and "big" in a.model_cooldowns(k0)
        await until(lambda: "big" in b.model_cooldowns(b.key("k0")))
        assert b.model_cooldowns(b.key("k0")) == a.model_cooldowns(k0)
        assert b.pick(model="big").label != "k0" and b.pick(model="small").label == "k0"
    finally:
        await sa.stop()
        await sb.stop()


async def test_the_monitor_shows_the_fleet(redis_server, serve, tmp_path) -> None:
    """`F` in a monitor sharing its pool: the processes serving it and the key states they share."""
    from pooltui.session.local import config_session
    from pooltui.store.config import load_config
    from pooltui.tui.app import PoolMonitorApp
    from pooltui.tui.screens import FleetScreen
    from tests.conftest import config_on_simulator

    path, store, _ = config_on_simulator(serve, tmp_path)
    path.write_text(path.read_text() + f'\n[state]\nbackend = "redis"\nurl = "{redis_server.url}"\n')
    other, _ = config_session(load_config(path), store, None)  # another process on the same pool
    other.start_background()
    session, _ = config_session(load_config(path), store, None)
    app = PoolMonitorApp(session)
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            await until(lambda: session.shared.connected and other.shared.connected)
            answer(other.pool, "k1", Classification(Outcome.INVALID, 401, "revoked"))
            await until(lambda: session.pool.key("k1").state is KeyState.INVALID)
            link = FleetLink(redis_server.url)
            deadline = time.monotonic() + 10
            while len(await link.processes()) < 2:  # both have said they are alive (a heartbeat a second)
                assert time.monotonic() < deadline, "not both heartbeats"
                await asyncio.sleep(0.02)
            await link.aclose()
            await pilot.press("F")
            assert isinstance(app.screen, FleetScreen)
            procs, keys = app.screen.query_one("#fleet-procs"), app.screen.query_one("#fleet-keys")
            # the screen reloads every second in an exclusive worker: waited for until it shows both processes (a
            # loaded run's second reload cancelled the first, and waiting for the workers raised WorkerCancelled)
            await until(lambda: procs.row_count == 2 and keys.row_count > 0)
            assert procs.row_count == 2
            rows = [[str(c) for c in keys.get_row_at(i)] for i in range(keys.row_count)]
            assert rows[0][:3] == ["main", "k1", "invalid"]
            await pilot.press("escape")
    finally:
        other.stop_background()
        await other.shared.stop()
        for c in other.clients.values():
            await c.aclose()


async def test_stop_ends_in_bounded_time_even_when_a_task_ignores_cancellation(redis_server, monkeypatch) -> None:
    """A task stuck in a Redis call that does not end on cancellation held stop() (and a test's teardown, and a
    proxy's shutdown) forever: stop() now waits for its tasks a bounded time."""
    import pooltui.store.shared_state as shared_state

    monkeypatch.setattr(shared_state, "STOP_WAIT_S", 0.5, raising=False)
    shared = await sharing(redis_server.url, pool())

    let_go = asyncio.Event()

    async def stubborn() -> None:
        while not let_go.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)

    task = asyncio.create_task(stubborn())
    shared._tasks.append(task)
    await asyncio.sleep(0)
    started = time.monotonic()
    try:
        await asyncio.wait_for(shared.stop(), 10)
        assert time.monotonic() - started < 5
    finally:
        let_go.set()
        task.cancel()
        await task


async def test_stop_cancels_again_a_task_that_swallowed_its_cancellation(redis_server) -> None:
    """A cancellation that lands as a Redis call completes can be swallowed (redis-py #2028): the loop goes on. The
    task outlived stop() and the loop's last cancel waited on it (a teardown hang in test_fleet_learns, 90 s).
    stop() cancels what is still running again until it ends: nothing of the store's is left running."""
    shared = await sharing(redis_server.url, pool())
    swallowed = 0

    async def swallows_once() -> None:  # a loop whose first cancellation is lost, as in that race
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1

    task = asyncio.create_task(swallows_once())
    shared._tasks.append(task)
    await asyncio.sleep(0)
    try:
        await asyncio.wait_for(shared.stop(), 10)
        assert swallowed == 1 and task.done(), "a task of the store still runs after stop()"
    finally:
        task.cancel()
