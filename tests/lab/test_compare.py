"""The strategy lab (issue 11): the same seed gives the same workload; every strategy's accounting holds;
on `peak-hour` pooltui's round-robin serves more than Hermes Agent's own fill-first (emulated)."""

from __future__ import annotations

import csv
import io
import itertools
import json

import pytest
from click.testing import CliRunner

from pooltui.commands.cli import cli
from pooltui.session.lab import LAB_STRATEGIES, parse_strategies, run_lab
from pooltui.session.workload import seeded_workload
from pooltui.sim.scenario import load_scenario
from tests.conftest import keys, make_scenario


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another() -> None:
    sc = load_scenario("mixed-models")
    a, b = (seeded_workload(sc, requests=200, rate=14.0, seed=5) for _ in range(2))
    assert a == b and len(a) == 200
    assert seeded_workload(sc, requests=200, rate=14.0, seed=6) != a
    assert a[0].at_s == 0.0 and all(x.at_s <= y.at_s for x, y in itertools.pairwise(a))
    assert 200 / 14.0 * 0.7 < a[-1].at_s < 200 / 14.0 * 1.3  # about the asked rate
    models = sc.traffic.models
    assert models and [x.model for x in a[: len(models)]] == models  # the scenario's models in turn
    assert {x.at_s for x in seeded_workload(sc, requests=50, rate=0, seed=5)} == {0.0}  # rate 0: all at once


def test_strategy_names_parse_with_aliases_and_all() -> None:
    assert parse_strategies("all") == list(LAB_STRATEGIES)
    assert parse_strategies("rr, fill-first,hermes-fill-first,rr") == ["round-robin", "failover",
                                                                        "hermes-fill-first"]
    with pytest.raises(ValueError, match="unknown strategy 'lru'"):
        parse_strategies("round-robin,lru")


def test_every_strategys_accounting_holds(serve) -> None:
    """requests = succeeded + failed for every strategy; the provider's log and the callers' counts agree."""
    sc = make_scenario({"name": "p", "window_s": 2, "keys": [*keys("k", 2, rpm=6), {
        "label": "rev", "secret": "sk-test-rev-000000000000000001", "revoke_after": 2}]},
        {"name": "fb", "keys": keys("f", 1)})
    sc.traffic.deadline_s = 3.0
    arrivals = seeded_workload(sc, requests=40, rate=30.0, seed=2)
    results = run_lab(sc, ["round-robin", "failover", "hermes-fill-first"], arrivals, concurrency=8, seed=2)
    for r in results:
        row = r.row()
        assert row["requests"] == 40 == row["succeeded"] + row["failed"], row
        assert sum(r.errors.values()) == r.failed
        assert r.upstream.get(200, 0) >= r.succeeded  # every success is a 200 the provider sent
        assert r.succeeded - r.fallback <= sum(r.key_requests.values()) <= r.attempts  # the primary's share
        assert r.upstream.get(401, 0) >= 1  # the revoked key was found
        assert len(r.latencies_ms) == r.succeeded and sum(r.ok_per_s) == r.succeeded
        assert sum(r.limited_per_s) == r.limited
        assert 1 / 3 <= row["evenness"] <= 1.0
        assert 0 <= row["fallback"] <= r.succeeded
    pooltui_rr = results[0]
    assert pooltui_rr.upstream.get(401) == 1  # pooltui: one 401, then the key is out
    print("\n" + "\n".join(str(r.row()) for r in results))


def test_on_peak_hour_round_robin_serves_more_than_hermes_fill_first() -> None:
    sc = load_scenario("peak-hour")
    arrivals = seeded_workload(sc, requests=60, rate=14.0, seed=sc.seed)
    rr, hermes = run_lab(sc, ["round-robin", "hermes-fill-first"], arrivals, concurrency=16, seed=sc.seed)
    print(f"\npeak-hour, 60 requests: round-robin {rr.row()}\n  hermes-fill-first {hermes.row()}")
    assert rr.succeeded > hermes.succeeded


def test_the_cli_prints_a_table_json_csv_and_a_chart(tmp_path) -> None:
    sc = tmp_path / "tiny.toml"
    sc.write_text("""
name = "tiny"
seed = 4
[traffic]
requests = 12
rate = 40.0
concurrency = 4
[[providers]]
name = "p"
[[providers.keys]]
label = "a"
secret = "sk-test-tiny-a-0000000000000001"
rpm = 5
[[providers.keys]]
label = "b"
secret = "sk-test-tiny-b-0000000000000002"
[prices.gpt-4o-mini]
input_per_mtok = 0.15
output_per_mtok = 0.6
""")
    runner = CliRunner()
    args = ["compare", "--scenario", str(sc), "--strategies", "failover,hermes-round-robin"]
    text = runner.invoke(cli, [*args, "--plot", str(tmp_path / "lab.svg")])
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert lines[0].split()[:4] == ["strategy", "requests", "ok", "failed"]
    assert lines[1].startswith("failover") and lines[2].startswith("hermes-round-robin")
    svg = (tmp_path / "lab.svg").read_text()
    assert svg.startswith("<svg") and svg.count('class="pygal-chart"') == 2
    assert "xlink:href=\"http" not in svg and "kozea.github.io" not in svg  # no script fetched from anywhere
    data = json.loads(runner.invoke(cli, [*args, "--json"]).stdout)
    assert [s["strategy"] for s in data["strategies"]] == ["failover", "hermes-round-robin"]
    assert all(s["requests"] == 12 == s["succeeded"] + s["failed"] for s in data["strategies"])
    assert data["strategies"][0]["cost_usd"] > 0 and data["seed"] == 4
    rows = list(csv.DictReader(io.StringIO(runner.invoke(cli, [*args, "--csv"]).stdout)))
    assert [r["strategy"] for r in rows] == ["failover", "hermes-round-robin"] and rows[0]["requests"] == "12"
    bad = runner.invoke(cli, ["compare", "--scenario", str(sc), "--strategies", "fastest"])
    assert bad.exit_code == 2 and "unknown strategy 'fastest'" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
