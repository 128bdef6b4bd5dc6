"""``advise`` on histories recorded by running simulator scenarios in simulated time (the recorder on): a light
personal agent, a team limited per key, a team whose keys share one organization's limit."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from pooltui.core.budget import Budget, Prices
from pooltui.session.advice import advise, gather
from pooltui.session.lab import run_strategy
from pooltui.session.simtime import run_simulated
from pooltui.session.workload import seeded_workload
from pooltui.sim.scenario import Scenario
from pooltui.store.history import History
from tests.conftest import keys, make_scenario

WEEK = 7 * 86400.0


def recorded(tmp_path: Path, sc: Scenario, requests: int, rate: float, concurrency: int) -> History:
    """``sc`` run in simulated time with a history recorder, as a proxy would have recorded it."""
    history = History(tmp_path / "history.db")
    arrivals = seeded_workload(sc, requests=requests, rate=rate, seed=1)
    run_simulated(run_strategy(sc, "round-robin", arrivals, concurrency=concurrency, seed=1, history=history))
    return history


def _team(org: str | None) -> Scenario:
    fields = {"rpm": 20, **({"org": org} if org else {})}
    sc = make_scenario({"name": "p", "window_s": 60, "latency_ms": [200, 400], "keys": keys("k", 4, **fields)},
                       {"name": "fb", "keys": keys("f", 1)}, models=["m1"])
    return dataclasses.replace(sc, prices=Prices.from_dict({"m1": {"input_per_mtok": 100.0, "output_per_mtok": 400.0}}))


def _advice(history: History, sc: Scenario, budgets: dict[str, Budget] | None = None):
    labels = [k.label for k in sc.primary.keys]
    return advise(gather(history, "p", time.time() - WEEK, labels, tuple(p.name for p in sc.fallbacks), budgets))


def test_a_light_personal_agent_never_needed_a_second_key(tmp_path) -> None:
    sc = make_scenario({"name": "p", "window_s": 60, "latency_ms": [300, 900], "keys": keys("k", 2, rpm=30)})
    history = recorded(tmp_path, sc, 40, 1 / 300, 1)  # 40 requests, one every 5 minutes
    advice = _advice(history, sc)
    assert advice.verdict == "one-key-enough", advice.text()
    assert advice.figures["requests"] == 40 and advice.figures["http_429"] == 0
    assert advice.figures["peak_ok_per_minute"] <= 30 == advice.figures["one_key_per_minute"]


def test_a_team_limited_per_key_is_helped_by_its_pool(tmp_path) -> None:
    sc = _team(None)
    # 120 a minute against 4 keys of 20, for 100 s: a full busiest minute (79 served; 80 with 400 requests over
    # 200 s, which cost twice the time for the same figures)
    history = recorded(tmp_path, sc, 200, 2.0, 16)
    advice = _advice(history, sc)
    assert advice.verdict == "pooling-helps", advice.text()
    assert advice.figures["peak_ok_per_minute"] > 1.25 * 20
    assert advice.figures["shared_accounts"] == []


def test_a_team_whose_keys_share_one_org_is_not(tmp_path) -> None:
    sc = _team("acme")
    history = recorded(tmp_path, sc, 200, 2.0, 16)
    advice = _advice(history, sc, {"k0": Budget(cost_month=5.0)})
    assert advice.verdict == "shared-limit", advice.text()
    assert advice.figures["http_429"] > 0
    assert advice.figures["shared_accounts"] == [["k0", "k1", "k2", "k3"]]
    assert "acme" not in advice.text() and "org…" in advice.text()
    assert advice.figures["fallback"]["fb"]["ok"] > 0  # what the shared limit could not serve went to the fallback
    spend = advice.sentences[-1]  # per key against its budget, per account, and the fallback's share of the cost
    key_cost = {k["label"]: k["cost"] for k in advice.figures["keys"]}
    fallback_cost = advice.figures["fallback"]["fb"]["cost"]
    assert all(c > 0 for c in key_cost.values()) and fallback_cost > 0
    assert f"k0 {next(k['tokens'] for k in advice.figures['keys'] if k['label'] == 'k0')} tokens, " in spend
    assert "of a $5.00 month budget" in spend and "(k0+k1+k2+k3)" in spend
    share = fallback_cost / (fallback_cost + sum(key_cost.values()))
    assert f"The fallback carried {share:.0%} of the cost." in spend
