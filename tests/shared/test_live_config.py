"""Config and keys change live (issue 10, item 4, on one host): a running proxy or monitor picks up keys
added, removed, reordered or disabled by another process, and a new strategy, without a restart."""

from __future__ import annotations

import asyncio
import time

import pytest

from pooltui.core import KeyState
from pooltui.session.local import config_session
from pooltui.store.config import ConfigEditor, KeyEntry, load_config
from tests.conftest import config_on_simulator

pytestmark = pytest.mark.asyncio


async def until(check, timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "not applied in time"
        await asyncio.sleep(0.02)


async def test_keys_added_removed_reordered_and_disabled_elsewhere_apply_within_a_second(serve, tmp_path) -> None:
    path, store, _ = config_on_simulator(serve, tmp_path, n_keys=3)
    session, _ = config_session(load_config(path), store, None)
    said: list[str] = []
    session.log = said.append
    session.live.log = said.append
    session.start_background()
    pool = session.pool
    try:
        secret = "sk-test-live-added-000000000000000001"
        with ConfigEditor(path) as cfg:  # as `pooltui auth add` in another process does
            cfg.providers["main"].keys.append(KeyEntry("added", store.put("main", "added", secret)))
        await until(lambda: "added" in [k.label for k in pool.keys])
        assert pool.key("added").secret == secret
        with ConfigEditor(path) as cfg:
            p = cfg.providers["main"]
            p.keys = [k for k in p.keys if k.label != "k1"]
            p.key("k2").disabled = True
            p.credential_pool = ["added", "k0", "k2"]
            p.strategy = "failover"
        await until(lambda: [k.label for k in pool.keys] == ["added", "k0", "k2"])
        assert pool.key("k2").state is KeyState.DISABLED and pool.strategy == "failover"
        assert pool.pick().label == "added"  # served at once, in the new order
        r = await session.client.chat("hi")
        assert r.status == 200
        assert any("main/k1 removed" in line for line in said)
        path.write_text(path.read_text() + "\n[providers.broken\n")  # a bad edit: one line, nothing changes
        await until(lambda: any("config not reloaded" in line for line in said))
        assert [k.label for k in pool.keys] == ["added", "k0", "k2"]
    finally:
        session.stop_background()
        for c in session.clients.values():
            await c.aclose()
