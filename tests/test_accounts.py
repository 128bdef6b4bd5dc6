"""Keys of one account, found from what the simulator answers on loopback: the organization header, and
rate-limit counters that fall as one (core/accounts.py); recorded per key in the history."""

from __future__ import annotations

import httpx
import pytest

from pooltui.core.accounts import CounterSample, counters_move_together, shared_groups, short_org
from pooltui.providers.profiles import profile_for
from pooltui.providers.verify import verify_key
from pooltui.session.build import HistoryRecorder
from pooltui.sim.wiring import client_for_scenario
from pooltui.store.history import History
from tests.conftest import make_scenario


def _keys(*orgs: str | None, rpm: int = 60) -> list[dict]:
    out = []
    for i, org in enumerate(orgs):
        key = {"label": f"k{i}", "secret": f"sk-test-acct-{i:024d}", "rpm": rpm}
        if org is not None:
            key["org"] = org
        out.append(key)
    return out


async def _send(sc, serve, n: int, tmp_path=None, dialect: str = "openai"):
    server = serve(sc)
    async with client_for_scenario(sc, server, "round-robin", seed=1) as client:
        recorder = HistoryRecorder(History(tmp_path / "h.db"), client) if tmp_path is not None else None
        for _ in range(n):  # one at a time: each answer's counter follows the one before
            assert (await client.chat("hi")).status == 200
        if recorder is not None:
            recorder.close()
    return client.primary.pool, server


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
async def test_two_keys_of_one_org_are_found_from_headers(serve, tmp_path, dialect) -> None:
    sc = make_scenario({"name": "p", "dialect": dialect, "keys": _keys("acme", "acme", None)})
    pool, server = await _send(sc, serve, 6, tmp_path)
    orgs = {k.label: k.stats.org for k in pool.keys}
    assert orgs["k0"] is not None and orgs["k0"] == orgs["k1"] != orgs["k2"] is not None
    assert "acme" not in str(orgs) and short_org(orgs["k0"]).startswith("org…")  # never the id itself
    accounts = History(tmp_path / "h.db").accounts("p")
    assert accounts[("p", "k0")].shares == accounts[("p", "k1")].shares == "k0,k1"
    assert accounts[("p", "k2")].shares is None
    profile = profile_for(dialect, name="p", base_url=server.base_url("p"))
    async with httpx.AsyncClient() as http:  # verification names the organization too
        found = [await verify_key(http, profile, k.label, k.secret) for k in sc.primary.keys]
    assert [r.org for r in found] == [orgs["k0"], orgs["k1"], orgs["k2"]]


async def test_keys_of_different_orgs_are_not_matched(serve) -> None:
    sc = make_scenario({"name": "p", "keys": _keys("acme", "globex", None)})
    pool, _ = await _send(sc, serve, 6)
    orgs = {k.label: k.stats.org for k in pool.keys}
    assert len(set(orgs.values())) == 3
    assert shared_groups(orgs, {}) == []


async def test_two_keys_of_one_org_are_found_from_counters(serve) -> None:
    sc = make_scenario({"name": "p", "keys": _keys("acme", "acme")})
    pool, _ = await _send(sc, serve, 24)
    a, b = (list(k.stats.counters) for k in pool.keys)
    assert len(a) == len(b) == 12
    assert counters_move_together(a, b)
    assert shared_groups({}, {"k0": a, "k1": b}) == [["k0", "k1"]]  # no header needed


async def test_independent_keys_falling_at_the_same_rate_are_not_matched(serve) -> None:
    sc = make_scenario({"name": "p", "keys": _keys("acme", "globex")})
    pool, _ = await _send(sc, serve, 24)
    a, b = (list(k.stats.counters) for k in pool.keys)
    assert len(a) == len(b) == 12
    assert not counters_move_together(a, b)


def test_counters_of_different_limits_or_too_few_steps_say_nothing() -> None:
    shared = [CounterSample(i * 0.1, 50 - i, 50) for i in range(20)]
    a, b = shared[0::2], shared[1::2]
    assert counters_move_together(a, b)
    assert not counters_move_together(a, [s._replace(limit=60) for s in b])
    assert not counters_move_together(a[:3], b[:3])
    assert not counters_move_together(a, [s._replace(ts=s.ts + 60) for s in b])  # never close in time
