"""Issue 6.6: parked keys come back by themselves (background re-verification on a backoff schedule)."""

from __future__ import annotations

import time

import httpx
import pytest

from pooltui.core.clock import FakeClock
from pooltui.core.events import StateChange
from pooltui.session.reverify import Reverifier, ReverifyPolicy
from pooltui.sim.wiring import client_for_scenario
from tests.conftest import make_scenario


def _client(serve, keys):
    sc = make_scenario({"name": "p", "dialect": "anthropic", "keys": keys})
    server = serve(sc)
    clock = FakeClock(time.time())
    return client_for_scenario(sc, server, "failover", clock=clock, seed=1), server, clock


@pytest.mark.wording
async def test_a_topped_up_key_rejoins_after_its_backoff(serve) -> None:
    client, server, clock = _client(serve, [{"label": "a", "secret": "sk-ant-test-topup-000000001", "daily_quota": 1},
                                            {"label": "b", "secret": "sk-ant-test-other-000000002"}])
    pool = client.primary.pool
    for _ in range(3):
        await client.chat("hi")
    a = pool.key("a")
    assert a.state.value == "exhausted" and a.until is None  # no reset known: parked until re-verified
    reverify = Reverifier(client, {"p": ReverifyPolicy(first_s=300, max_s=3600)})
    assert await reverify.run_once() == 0  # not due yet
    clock.advance(301)
    assert await reverify.run_once() == 1 and a.state.value == "exhausted"  # still no credit
    clock.advance(301)
    assert await reverify.run_once() == 0  # backed off: next check 600 s after the last one
    httpx.post(f"{server.url}/_sim/restore/p/a")  # the account is topped up
    clock.advance(300)
    assert await reverify.run_once() == 1
    assert a.state.value == "ok"
    assert [e.change for e in client.events if e.key == "a" and e.change in (StateChange.CHECKED, StateChange.VERIFIED)
            ] == [StateChange.CHECKED, StateChange.VERIFIED]
    events = [e for e in client.events if e.key == "a" and "background" in e.reason]
    assert [e.reason for e in events] == ["re-verified in the background: still quota",
                                         "re-verified in the background: valid again"]
    assert events[0].action == "next check in 600 s"
    await client.aclose()


async def test_a_sole_keys_403_is_rechecked_after_60_s_and_an_invalid_key_never(serve) -> None:
    client, server, clock = _client(serve, [{"label": "only", "secret": "sk-ant-test-sole-00000000001",
                                             "forbidden": True}])
    pool = client.primary.pool
    try:
        await client.chat("hi")
    except Exception:
        pass
    only = pool.key("only")
    assert only.state.value == "forbidden"
    reverify = Reverifier(client, {"p": ReverifyPolicy()})
    clock.advance(59)
    assert await reverify.run_once() == 0
    httpx.post(f"{server.url}/_sim/restore/p/only")
    clock.advance(2)
    assert await reverify.run_once() == 1 and only.state.value == "ok"
    await client.aclose()

    client, _, clock = _client(serve, [{"label": "bad", "secret": "sk-ant-test-bad-000000000001", "invalid": True},
                                       {"label": "ok", "secret": "sk-ant-test-fine-00000000002"}])
    await client.chat("hi")
    assert client.primary.pool.key("bad").state.value == "invalid"
    reverify = Reverifier(client)
    clock.advance(100_000)
    assert await reverify.run_once() == 0
    await client.aclose()


async def test_off_per_provider(serve) -> None:
    client, _, clock = _client(serve, [{"label": "a", "secret": "sk-ant-test-off-0000000000001", "daily_quota": 0},
                                       {"label": "b", "secret": "sk-ant-test-off-0000000000002"}])
    await client.chat("hi")
    assert client.primary.pool.key("a").state.value == "exhausted"
    reverify = Reverifier(client, {"p": ReverifyPolicy(enabled=False)})
    clock.advance(100_000)
    assert await reverify.run_once() == 0
    await client.aclose()


def test_an_invalid_key_starts_afresh_only_when_its_secret_changes(tmp_path) -> None:
    from pooltui.core.events import EventLog
    from pooltui.session.build import build_pool
    from pooltui.store.config import ConfigEditor, KeyEntry, ProviderConfig, load_config
    from pooltui.store.history import History
    from pooltui.store.secrets import SecretStore

    store = SecretStore(tmp_path / "data")
    path = tmp_path / "config.toml"
    with ConfigEditor(path) as cfg:
        p = cfg.providers["openai"] = ProviderConfig("openai", "openai")
        p.keys.append(KeyEntry("a", store.put("openai", "a", "sk-test-revoked-00000000000001")))
    history = History(tmp_path / "data" / "history.db")
    pool = build_pool(load_config(path).provider("openai"), store, history, EventLog())
    key = pool.key("a")
    history.set_key_status("openai", "a", "invalid", None, None, "revoked", 401, None, key.fingerprint)
    assert build_pool(load_config(path).provider("openai"), store, history, EventLog()).key("a").state.value \
        == "invalid"  # the same secret: still invalid after a restart, never re-checked
    store.put("openai", "a", "sk-test-rotated-00000000000002")  # the user put a new secret behind the label
    assert build_pool(load_config(path).provider("openai"), store, history, EventLog()).key("a").state.value == "ok"
