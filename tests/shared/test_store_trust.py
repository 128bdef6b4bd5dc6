"""The shared store is a trust boundary (issue 26, item 1): whoever can write to the Redis can publish or
plant anything; what a process takes from it is checked like input from the network, dropped when bad
(logged once), and never raised into a pick."""

from __future__ import annotations

import contextlib
import json
import time

import pytest
import redis.asyncio as redis

from pooltui.core import Classification, DeadlineSource, KeyState, Outcome
from tests.shared.test_shared_key_states import answer, pool, sharing, until

pytestmark = pytest.mark.asyncio


def forged_states(p) -> list[object]:
    """The red team's key states: a deadline that is text, a list, infinite, or centuries ahead; a model
    cooldown that is text; an unknown state; a list where an object is expected."""
    fp = p.key("k0").fingerprint
    base = {"from": "evil", "provider": "p", "key": "k0", "fingerprint": fp, "at": time.time()}
    return [{**base, "state": "disabled", "until": "abc"}, {**base, "state": "disabled", "until": [1]},
            {**base, "state": "cooling", "until": float("inf")}, {**base, "state": "cooling", "until": 9e18},
            {**base, "state": "exhausted", "until": time.time() + 60, "models": {"m": "abc"}},
            {**base, "state": "melted"}, {**base, "key": "k0\x1b]0;pwned\x07"}, [1, 2],
            {"kind": "breaker", "from": "evil", "provider": "p", "open": True, "until": float("inf")}]


async def test_forged_states_on_the_channel_are_dropped_and_logged_once(redis_server) -> None:
    p = pool()
    said: list[str] = []
    shared = await sharing(redis_server.url, p, said.append)
    raw = redis.from_url(redis_server.url)
    try:
        for forged in forged_states(p) * 2:  # each twice: one line per reason, not per message
            await raw.publish("t:keys", json.dumps(forged))
        fp2 = p.key("k2").fingerprint
        await raw.publish("t:keys", json.dumps({"from": "peer", "provider": "p", "key": "k2", "fingerprint": fp2,
                                                "state": "cooling", "until": time.time() + 30, "at": time.time()}))
        await until(lambda: p.key("k2").state is KeyState.COOLING)  # a good message still applies
        assert p.key("k0").state is KeyState.OK and p.key("k0").until is None
        assert p.pick().label == "k0"
        answer(p, "k1", Classification(Outcome.RATE_LIMITED, 429, "slow", 5.0, DeadlineSource.RETRY_AFTER))
        assert p.pick().label == "k0"  # the timer heap holds only numbers
        dropped = [line for line in said if "dropped" in line]
        assert dropped and len(dropped) == len(set(dropped)) and "\x1b" not in "".join(said)
    finally:
        await raw.aclose()
        await shared.stop()


async def test_forged_states_planted_in_the_hash_do_not_reach_a_newcomer(redis_server) -> None:
    p = pool()
    raw = redis.from_url(redis_server.url)
    try:
        for i, forged in enumerate(forged_states(p)[:5]):
            await raw.hset("t:keys:p", f"k0-{i}" if i else "k0", json.dumps(forged))
        shared = await sharing(redis_server.url, p)
        await shared.stop()
        assert p.key("k0").state is KeyState.OK and p.pick().label == "k0"
    finally:
        await raw.aclose()


async def test_a_state_without_a_deadline_ends_ttl_after_it_was_published(redis_server) -> None:
    """A forged `disabled` (no deadline) held for ever, and outlived restarts through the history: it now ends
    ``[state] ttl_s`` after it was published; one older than that is not applied at all (and leaves the hash)."""
    from pooltui.store.shared_state import SharedKeyStates

    p, now = pool(), time.time()
    base = {"from": "evil", "provider": "p", "state": "disabled", "until": None}
    raw = redis.from_url(redis_server.url)
    try:
        await raw.hset("t:keys:p", mapping={
            "k0": json.dumps({**base, "key": "k0", "fingerprint": p.key("k0").fingerprint, "at": now}),
            "k1": json.dumps({**base, "key": "k1", "fingerprint": p.key("k1").fingerprint, "at": now - 120})})
        shared = SharedKeyStates(redis_server.url, prefix="t", ttl_s=60.0)
        shared.attach(p)
        await shared.start()
        await shared.stop()
        assert p.key("k0").state is KeyState.DISABLED and p.key("k0").until == pytest.approx(now + 60.0)
        assert p.key("k1").state is KeyState.OK
        assert await raw.hkeys("t:keys:p") == [b"k0"]
    finally:
        await raw.aclose()


async def test_auth_reset_clears_the_shared_states_and_running_processes_follow(redis_server, tmp_path) -> None:
    """`pooltui auth reset` said "reset 0 keys" while a forged state held every process: it now clears the
    provider's shared states and tells the running processes the keys are back."""
    import asyncio
    import subprocess
    import sys

    from pooltui.core import KeySpec, Pool
    from pooltui.store.shared_state import SharedKeyStates
    from tests.shared.conftest import proxy_env

    secrets = {"K0": "sk-test-reset-000000000000000000000000", "K1": "sk-test-reset-000000000000000000000001"}
    env = proxy_env(tmp_path, redis_server.url, "http://127.0.0.1:9/v1",
                    '{ label = "k0", secret = "env:K0" }, { label = "k1", secret = "env:K1" }', **secrets)
    p = Pool("oai", [KeySpec("k0", secrets["K0"]), KeySpec("k1", secrets["K1"])], "failover")
    shared = SharedKeyStates(redis_server.url)
    shared.attach(p)
    await shared.start()
    raw = redis.from_url(redis_server.url)
    try:
        await raw.hset("pooltui:keys:oai", "k0", json.dumps(
            {"from": "evil", "provider": "oai", "key": "k0", "fingerprint": p.key("k0").fingerprint,
             "state": "disabled", "until": None, "at": time.time()}))
        await raw.publish("pooltui:keys", await raw.hget("pooltui:keys:oai", "k0"))
        await until(lambda: p.key("k0").state is KeyState.DISABLED)
        done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "pooltui", "auth", "reset", "oai"],
                                       env=env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert "cleared 1 shared state" in done.stdout and redis_server.password not in done.stdout + done.stderr
        await until(lambda: p.key("k0").state is KeyState.OK)
        assert await raw.hlen("pooltui:keys:oai") == 0
    finally:
        await raw.aclose()
        await shared.stop()


@contextlib.asynccontextmanager
async def redis_session(serve, tmp_path, url: str, log=None, history=None, alerts: bool = True):
    """A session (as `pooltui proxy` builds it) on a simulator, its state on the Redis at ``url`` (with
    ``alerts``, going to a webhook with a secret path and a command); with a raw connection to that Redis."""
    from pooltui.session.local import config_session
    from pooltui.store.config import load_config
    from tests.conftest import config_on_simulator

    path, store, _ = config_on_simulator(serve, tmp_path)
    path.write_text(path.read_text() + f'\n[state]\nbackend = "redis"\nurl = "{url}"\n' + (
        '\n[alerts]\nwebhook = "https://hooks.example.com/services/T0/B0/very-secret-path"\ncommand = ["notify-me"]\n'
        if alerts else ""))
    session, _ = config_session(load_config(path), store, history)
    if log is not None:
        session.shared.log = log
    session.start_background()
    raw = redis.from_url(url)
    try:
        await until(lambda: session.shared.connected)
        yield session, path, raw
    finally:
        await raw.aclose()
        session.stop_background()
        await session.shared.stop()
        for c in session.clients.values():
            await c.aclose()


async def test_the_shared_config_carries_only_what_is_safe(redis_server, serve, tmp_path) -> None:
    """`team:config` held the whole file: the Redis password, the webhook's secret path, the alert command."""
    async with redis_session(serve, tmp_path, redis_server.url) as (session, _path, raw):
        session.live.reload()
        await until(lambda: session.shared.published >= 1)
        shared = json.loads(await raw.get("pooltui:config"))["text"]
        assert "k0" in shared and "keyring:" in shared
        for secret in (redis_server.password, "very-secret-path", "notify-me", "127.0.0.1", "[state]"):
            assert secret not in shared


async def test_a_shared_config_resolves_only_references_this_host_had(serve, tmp_path, monkeypatch) -> None:
    """A forged shared config gave k1 = env:SOME_VAR and k2 = another key's file: reference; another host sent
    them upstream as Bearer tokens. One with no keys emptied every host's pool."""
    from pooltui.session.local import config_session
    from pooltui.store.config import load_config
    from tests.conftest import config_on_simulator

    monkeypatch.setenv("SOME_VAR", "sk-test-not-a-key-of-this-pool-0000000001")
    path, store, _ = config_on_simulator(serve, tmp_path, n_keys=3)
    session, _ = config_session(load_config(path), store, None)
    said: list[str] = []
    session.live.log = said.append
    pool, before = session.pool, {k.label: k.secret for k in session.pool.keys}
    mine = {e.label: e.secret for e in load_config(path).providers["main"].keys}
    try:
        forged = {"providers": {"main": {"strategy": "failover", "keys": [
            {"label": "k0", "secret": mine["k0"]}, {"label": "k1", "secret": "env:SOME_VAR"},
            {"label": "k2", "secret": mine["k0"]}]}}}
        session.live.apply_shared(json.dumps(forged), "evil\x1b]0;t\x07", time.time() + 60)
        assert {k.label: k.secret for k in pool.keys}.items() <= before.items()  # no secret from elsewhere
        assert pool.key("k0").secret == before["k0"] and pool.strategy == "failover"
        assert any("main/k1: not applied" in line for line in said) and "\x1b" not in "".join(said)
        session.live.apply_shared(json.dumps({"providers": {"main": {"keys": []}}}), "evil", time.time() + 60)
        assert len(pool.keys) >= 1 and any("would leave no key" in line for line in said)
    finally:
        for c in session.clients.values():
            await c.aclose()


async def test_a_shared_config_from_the_future_does_not_beat_every_file(redis_server, serve, tmp_path) -> None:
    """`at = 9e18` beat any host's own file: a config dated beyond clock skew is dropped."""
    from pooltui.store.config import load_config

    said: list[str] = []
    async with redis_session(serve, tmp_path, redis_server.url, said.append) as (session, path, raw):
        mine = {e.label: e.secret for e in load_config(path).providers["main"].keys}
        text = json.dumps({"providers": {"main": {"strategy": "failover", "keys": [
            {"label": "k0", "secret": mine["k0"]}]}}})
        await raw.publish("pooltui:config:changed", json.dumps(
            {"kind": "config", "from": "evil", "origin": "evil", "text": text, "at": 9e18}))
        await until(lambda: any("dropped" in line for line in said))
        assert [k.label for k in session.pool.keys] == ["k0", "k1"]


async def test_with_a_fleet_secret_only_what_a_member_signed_is_applied(redis_server) -> None:
    """Published messages carry an HMAC under the fleet secret (never written to Redis): a process ignores a
    state nobody signed, or one signed with another secret, and applies its peers' at once."""
    from pooltui.store.shared_state import SharedKeyStates

    secret = "fleet-secret-0123456789abcdef0123456789abcdef"
    a, b = pool(), pool()
    said: list[str] = []
    sa = SharedKeyStates(redis_server.url, prefix="t", secret=secret)
    sb = SharedKeyStates(redis_server.url, prefix="t", secret=secret, log=said.append)
    for shared, p in ((sa, a), (sb, b)):
        shared.attach(p)
        await shared.start()
    raw = redis.from_url(redis_server.url)
    try:
        forged = {"from": "evil", "provider": "p", "key": "k0", "fingerprint": b.key("k0").fingerprint,
                  "state": "disabled", "until": time.time() + 600, "at": time.time()}
        await raw.publish("t:keys", json.dumps(forged))
        from pooltui.store.shared_wire import signed

        await raw.publish("t:keys", signed(forged, "another-secret"))
        answer(a, "k1", Classification(Outcome.RATE_LIMITED, 429, "slow", 30.0, DeadlineSource.RETRY_AFTER))
        await until(lambda: b.key("k1").state is KeyState.COOLING)  # a member's message applies
        assert b.key("k0").state is KeyState.OK
        assert any("not signed by a member" in line for line in said)
        for name in await raw.keys("*"):
            kind = await raw.type(name)
            values = [await raw.get(name)] if kind == b"string" else (
                list((await raw.hgetall(name)).values()) if kind == b"hash" else [])
            assert all(secret.encode() not in (v or b"") for v in values)
    finally:
        await raw.aclose()
        await sa.stop()
        await sb.stop()


async def test_the_fleet_secret_is_a_reference_and_one_that_cannot_be_read_shares_nothing(tmp_path) -> None:
    from pooltui.store.config import parse_state
    from pooltui.store.secrets import SecretStore
    from pooltui.store.state_store import MemoryState, open_state

    with pytest.raises(ValueError, match="reference"):
        parse_state({"backend": "redis", "url": "redis://h:6379/0", "secret": "the-secret-itself"})
    cfg = parse_state({"backend": "redis", "url": "redis://h:6379/0", "secret": "env:POOLTUI_NO_SUCH_VAR_26"})
    said: list[str] = []
    assert isinstance(open_state(cfg, said.append, SecretStore(tmp_path / "data")), MemoryState)
    assert len(said) == 1 and "fleet secret" in said[0]


async def test_a_state_from_elsewhere_is_not_kept_in_this_hosts_history(redis_server, serve, tmp_path) -> None:
    """A forged `disabled` outlived restarts with Redis wiped: the process kept it in its own history, restored
    it at start and gave it back to the empty Redis. What others said lives in the store only; the history
    keeps what this process learnt itself."""
    from pooltui.store.history import History

    history = History(tmp_path / "history.db")
    try:
        async with redis_session(serve, tmp_path, redis_server.url, history=history, alerts=False) as (
                session, _path, raw):
            pool = session.pool
            await raw.publish("pooltui:keys", json.dumps(
                {"from": "evil", "provider": "main", "key": "k0", "fingerprint": pool.key("k0").fingerprint,
                 "state": "disabled", "until": None, "at": time.time()}))
            await until(lambda: pool.key("k0").state is KeyState.DISABLED)
            answer(pool, "k1", Classification(Outcome.RATE_LIMITED, 429, "slow", 30.0, DeadlineSource.RETRY_AFTER))
            for recorder in session.recorders:
                recorder.flush()
        kept = history.key_statuses("main")
        assert ("main", "k1") in kept and kept[("main", "k1")].state == "cooling"  # its own: kept
        assert kept.get(("main", "k0")) is None or kept[("main", "k0")].state != "disabled"
    finally:
        history.close()
