"""The lab compares strategies with and without affinity (issue 28): ``round-robin+affinity`` keeps a
conversation on its key; ``compare --affinity both`` runs each pooltui strategy both ways."""

from __future__ import annotations

import json

from click.testing import CliRunner

from pooltui.commands.cli import cli
from pooltui.session.lab import run_lab, with_affinity
from pooltui.session.workload import Arrival
from tests.conftest import keys, make_scenario


def test_a_run_with_affinity_keeps_one_conversation_on_one_key() -> None:
    sc = make_scenario({"name": "p", "keys": keys("k", 3)})
    prompt = "the same long conversation, long enough to be cached " * 100
    arrivals = [Arrival(i * 0.5, None, prompt) for i in range(9)]
    plain, kept = run_lab(sc, ["round-robin", "round-robin+affinity"], arrivals, concurrency=1, seed=1)
    assert plain.key_requests == {"k0": 3, "k1": 3, "k2": 3}
    assert kept.strategy == "round-robin+affinity" and sorted(kept.key_requests.values()) == [0, 0, 9]
    assert plain.succeeded == kept.succeeded == 9


def test_the_runs_with_and_without_affinity() -> None:
    names = ["round-robin", "hermes-fill-first", "failover"]
    assert with_affinity(names, "off") == names
    assert with_affinity(names, "on") == ["round-robin+affinity", "hermes-fill-first", "failover+affinity"]
    assert with_affinity(names, "both") == ["round-robin", "round-robin+affinity", "hermes-fill-first", "failover",
                                            "failover+affinity"]


def test_compare_affinity_both_on_the_cli() -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["compare", "--scenario", "steady", "--strategies", "round-robin", "--requests", "10",
                              "--affinity", "both", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert [s["strategy"] for s in data["strategies"]] == ["round-robin", "round-robin+affinity"]
    assert data["affinity"] == "both" and all(s["requests"] == 10 for s in data["strategies"])
    table = runner.invoke(cli, ["compare", "--scenario", "steady", "--strategies", "round-robin", "--requests", "6",
                                "--affinity", "both"])
    assert table.stdout.splitlines()[2].startswith("round-robin+affinity ")
    bad = runner.invoke(cli, ["compare", "--scenario", "steady", "--affinity", "sometimes"])
    assert bad.exit_code == 2 and "--affinity" in bad.output and "Traceback" not in bad.output
