"""The history recorder sums a flush's usage records into the history's usage rows as they come: the rows hold
every figure the records held, per minute, key and model (a real client on the simulator, a real SQLite history),
and what waits for the flush is a row per minute, key and model, not every record."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pooltui.client.pool_client import UsageRecord
from pooltui.core.budget import Prices
from pooltui.session.build import HistoryRecorder
from pooltui.sim.wiring import client_for_scenario
from pooltui.store.history import History
from tests.conftest import keys, make_scenario

FIGURES = ("requests", "ok", "tokens_in", "tokens_out", "cost", "cache_read", "cache_write", "cacheable",
           "cost_no_cache")


@pytest.mark.asyncio
async def test_the_usage_rows_sum_every_record_per_minute_key_and_model(serve, tmp_path: Path) -> None:
    scenario = make_scenario({"name": "p", "keys": keys("k", 2)})
    history = History(tmp_path / "h.db")
    heard: list[UsageRecord] = []
    async with client_for_scenario(scenario, serve(scenario), "round-robin", seed=1) as client:
        client.prices = Prices({"gpt-sim-1": (1.0, 2.0)})
        recorder = HistoryRecorder(history, client)
        client.usage_listeners.append(heard.append)
        for i in range(5):
            assert (await client.send(lambda p, i=i: p.chat(f"q{i}", model="gpt-sim-1", max_tokens=3 + i))).status \
                == 200
        minute = int(time.time() // 60) * 60
        late = UsageRecord(minute - 3569.5, "p", "k0", "gpt-sim-1", 1, 0, 7, 0, 0.25, 1, 2, 3, 0.5, 0.125)
        for listener in client.usage_listeners:  # an attempt of another minute, as reported
            listener(late)  # (an hour ago)
        recorder.flush()
        recorder.close()
    history.settle()
    by_key = {r["key"]: r for r in history.usage(minute - 7200)}
    assert set(by_key) == {"k0", "k1"}
    for label, row in by_key.items():
        mine = [u for u in heard if u.key == label]
        for name in FIGURES:
            assert row[name] == pytest.approx(sum(getattr(u, name) for u in mine)), (label, name)
        assert row["cost_round_robin"] == pytest.approx(sum(u.cost + u.round_robin_extra for u in mine))
    assert by_key["k0"]["tokens_out"] > 0 and by_key["k1"]["requests"] == sum(u.key == "k1" for u in heard)
    minutes = {(b, k): n for b, _, k, n in history.usage_rows(minute - 7200)}
    assert all(b % 60 == 0 for b, _ in minutes)  # rows per minute
    assert minutes.pop((minute - 3600, "k0")) == 1  # the late record in its own minute's row
    assert sum(minutes.values()) == 5
    assert client.usage_listeners == [heard.append]  # closed: the recorder no longer listens
    history.close()


def test_what_waits_for_the_flush_is_a_row_per_minute_key_and_model_not_every_record() -> None:
    """Summed as they come, while each record is fresh: the flush has a few rows to hand on, not a second's records
    to read again (which held the event loop, and every caller's request, up to a millisecond once a second)."""
    from pooltui.session.build import UsageSums

    sums = UsageSums()
    minute = int(time.time() // 60) * 60
    for i in range(3000):  # 30 s of two keys' records, then one of the next minute
        sums.add(UsageRecord(minute + i / 100, "p", f"k{i % 2}", "m", 1, 1, 5, 12, 0.001))
    sums.add(UsageRecord(minute + 61, "p", "k0", "m", 1, 0, 3, 0, 0.0))
    assert len(sums._sums) == 3  # what is held until the flush: a row per minute, key and model
    rows = sums.take()
    assert [(b - minute, k, n, ok, tin, tout) for b, _, k, _, n, ok, tin, tout, *_ in rows] == \
        [(0, "k0", 1500, 1500, 7500, 18000), (0, "k1", 1500, 1500, 7500, 18000), (60, "k0", 1, 0, 3, 0)]
    assert sums.take() == []
