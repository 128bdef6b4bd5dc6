"""`usage` shows prompt-cache figures per key and per provider (issue 28): hit rate, reads, writes, the money caching
saved and what the same tokens would have cost with no cache use; recorded by the engine, read from the history."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pooltui.core.budget import Prices
from pooltui.providers.profiles import ApiRequest, ProviderProfile
from pooltui.session.build import HistoryRecorder
from pooltui.sim.wiring import client_for_scenario
from pooltui.store.history import History
from tests.conftest import keys, make_scenario
from tests.test_pool_cli import run

SYSTEM = [{"type": "text", "text": "follow the house style. " * 1200, "cache_control": {"type": "ephemeral"}}]


def ask(question: str):
    def build(profile: ProviderProfile) -> ApiRequest:
        return ApiRequest("POST", profile.chat_path, {"model": "claude-sim-1", "max_tokens": 4, "system": SYSTEM,
                                                      "messages": [{"role": "user", "content": question}]})
    return build


def priced_provider(server) -> History:
    """Provider "sim" configured on ``server`` with Sonnet-like prices; the history its usage goes to."""
    assert run("provider", "set", "sim", "--kind", "anthropic", "--base-url", server.base_url("sim")).exit_code == 0
    with Path(os.environ["POOLTUI_CONFIG"]).open("a") as f:
        f.write('\n[prices."claude-sim-1"]\ninput_per_mtok = 3.0\noutput_per_mtok = 15.0\n')
    return History(Path(os.environ["POOLTUI_DATA_DIR"]) / "history.db")


@pytest.mark.asyncio
async def test_usage_by_key_and_provider_shows_cache_figures(serve) -> None:
    sc = make_scenario({"name": "sim", "dialect": "anthropic", "keys": keys("k", 2)})  # two orgs
    server = serve(sc)
    history = priced_provider(server)
    async with client_for_scenario(sc, server, "round-robin", seed=1) as client:
        client.prices = Prices.from_dict({"claude-sim-1": {"input_per_mtok": 3.0, "output_per_mtok": 15.0}})
        recorder = HistoryRecorder(history, client)
        for i in range(6):  # round-robin over two orgs: each key writes once, then reads
            assert (await client.send(ask(f"question {i}"))).status == 200
            if i == 2:
                recorder.flush()  # the recorder goes on summing after a flush
        recorder.flush()
    history.close()
    rows = {r["key"]: r for r in json.loads(run("usage", "--by", "key", "--json").output)}
    assert set(rows) == {"k0", "k1"}
    for row in rows.values():
        assert row["cache_write"] > 1024 and row["cache_read"] == 2 * row["cache_write"]
        assert row["cache_hit_rate"] == pytest.approx(2 / 3, abs=0.01)
        assert row["cache_saved"] == pytest.approx(row["cost_no_cache"] - row["cost"])
        assert 0 < row["cost"] < row["cost_no_cache"]
        assert row["cost_round_robin"] == row["cost"]  # affinity off: no conversation known, rotation paid this
    [provider] = json.loads(run("usage", "--by", "provider", "--json").output)
    assert provider["cache_read"] == sum(r["cache_read"] for r in rows.values())
    table = run("usage", "--by", "provider").output
    assert "cache hit" in table and "67%" in table and "saved $" in table


def turn(n: int):
    def build(profile: ProviderProfile) -> ApiRequest:
        messages = []
        for i in range(n):
            messages += [{"role": "user", "content": f"part {i}"}, {"role": "assistant", "content": f"done {i}"}]
        return ApiRequest("POST", profile.chat_path, {"model": "claude-sim-1", "max_tokens": 4, "system": SYSTEM,
                                                      "messages": [*messages, {"role": "user", "content": "next"}]})
    return build


@pytest.mark.asyncio
async def test_usage_shows_what_round_robin_without_affinity_would_have_paid(serve) -> None:
    sc = make_scenario({"name": "sim", "dialect": "anthropic", "keys": keys("k", 3)})  # three orgs
    server = serve(sc)
    history = priced_provider(server)
    async with client_for_scenario(sc, server, "round-robin", seed=1, affinity="prefix") as client:
        client.prices = Prices.from_dict({"claude-sim-1": {"input_per_mtok": 3.0, "output_per_mtok": 15.0}})
        recorder = HistoryRecorder(history, client)
        for n in range(4):  # one conversation, kept on its key: each later turn reads the system prompt
            assert (await client.send(turn(n))).status == 200
        recorder.flush()
        extra = sum(k.cost_round_robin_extra for k in client.primary.pool.keys)
    history.close()
    [row] = json.loads(run("usage", "--by", "provider", "--json").output)
    assert extra > 0 and row["cost_round_robin"] == pytest.approx(row["cost"] + extra, abs=1e-6)
    assert "round-robin $" in run("usage", "--by", "provider").output
