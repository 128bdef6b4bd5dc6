"""The live estimate of what round-robin without affinity would have paid, checked against the lab (issue 28):
the affinity run's estimate (its keys' figures, as /metrics and `usage` show them) against what a round-robin run
of the same conversations, on the same simulator, measured.

Tolerance 20%: the estimate is an expectation over where round-robin would have sent each turn, the round-robin
run one draw of it (its interleaving of 8 conversations); the model leaves out a hit refreshing a cache's
lifetime and counts the lookback in messages. Wider than those effects, far narrower than the gap to the model
that counts only the last turn's cache (over 100% off on this workload: README, "Prompt caches and affinity").
"""

from __future__ import annotations

import pytest

from pooltui.session.lab import run_lab, with_affinity
from pooltui.session.workload import conversation_workload
from pooltui.sim.scenario import load_scenario

TOLERANCE = 0.20


def test_the_affinity_runs_estimate_of_round_robin_is_what_round_robin_paid() -> None:
    sc = load_scenario("conversations")
    arrivals = conversation_workload(sc, seed=sc.seed, conversations=8)
    plain, kept = run_lab(sc, with_affinity(["round-robin"], "both"), arrivals, concurrency=sc.traffic.concurrency,
                          seed=sc.seed)
    assert (plain.strategy, kept.strategy) == ("round-robin", "round-robin+affinity")
    assert plain.cost is not None and kept.cost is not None and kept.cost_round_robin is not None
    assert kept.cost < plain.cost  # affinity paid less than round-robin did
    assert kept.cost_round_robin == pytest.approx(plain.cost, rel=TOLERANCE)
    assert plain.cost_round_robin == pytest.approx(plain.cost)  # no affinity, no conversation: what it paid
