"""The lab counts prompt caching (issue 28, item 4): a workload of conversations that re-send their growing
history with cache breakpoints, the built-in `conversations` scenario, and per run the cache figures and a cost
that prices cache reads and writes."""

from __future__ import annotations

import dataclasses
import itertools
import json
import time

from click.testing import CliRunner

from pooltui.commands.cli import cli
from pooltui.session.lab import run_lab
from pooltui.session.workload import conversation_body, conversation_workload, seeded_workload
from pooltui.sim.prompt_cache import ANTHROPIC_MAX_BREAKPOINTS, anthropic_blocks
from pooltui.sim.scenario import load_scenario


def test_a_conversation_resends_its_growing_history_with_at_most_four_breakpoints() -> None:
    sc = load_scenario("conversations")
    arrivals = conversation_workload(sc, seed=1)
    assert len(arrivals) == 20 * 15 and arrivals == sorted(arrivals, key=lambda a: a.at_s)
    turns = sorted((a for a in arrivals if a.conversation == 3), key=lambda a: a.turn)
    assert [a.turn for a in turns] == list(range(15))
    gaps = [b.at_s - a.at_s for a, b in itertools.pairwise(turns)]
    assert all(10.0 <= g <= 30.0 for g in gaps)  # think time around 20 s
    first, later = (conversation_body("anthropic", "claude-sim-1", a, sc.traffic) for a in (turns[4], turns[5]))
    def texts(body: dict) -> list[tuple[str, str]]:
        return [(m["role"], b["text"]) for m in body["messages"] for b in m["content"]]

    assert texts(later)[:len(texts(first))] == texts(first) and len(texts(later)) == len(texts(first)) + 2
    marks = [ttl for _, ttl in anthropic_blocks(later) if ttl is not None]
    assert len(marks) == ANTHROPIC_MAX_BREAKPOINTS
    other = conversation_body("anthropic", "claude-sim-1", dataclasses.replace(turns[5], conversation=4), sc.traffic)
    assert other["tools"] == later["tools"] and other["system"] != later["system"]  # a project line of its own


def test_the_conversations_scenario_runs_in_simulated_time_and_prices_its_cache_use() -> None:
    sc = load_scenario("conversations")
    arrivals = seeded_workload(sc, requests=sc.traffic.requests, rate=0, seed=sc.seed)
    started = time.perf_counter()
    [run] = run_lab(sc, ["round-robin"], arrivals, concurrency=sc.traffic.concurrency, seed=sc.seed)
    assert time.perf_counter() - started < 30  # about 300 simulated seconds
    assert run.succeeded == 300 and run.seconds > 280
    assert 0 < run.cache_read_tokens < run.cacheable_tokens and run.cache_write_tokens > 0
    assert run.cache_hit_rate == run.cache_read_tokens / run.cacheable_tokens
    out_tokens = 300 * 12  # the simulator answers max_tokens 16 with 12
    uncached = run.tokens - out_tokens - run.cache_read_tokens - run.cache_write_tokens
    # the scenario's prices: input 3, output 15; the default multipliers: writes 1.25x, reads 0.1x
    by_hand = (uncached * 3 + run.cache_write_tokens * 3.75 + run.cache_read_tokens * 0.3 + out_tokens * 15) / 1e6
    assert run.cost is not None and abs(run.cost - by_hand) < 1e-9
    row = run.row()
    assert {"cache_hit_rate", "cache_read_tokens", "cache_write_tokens", "cacheable_tokens", "cost_usd"} <= set(row)


def test_keys_of_one_organization_share_a_cache_in_the_lab() -> None:
    sc = load_scenario("conversations")
    shared = dataclasses.replace(sc, providers=[dataclasses.replace(
        sc.primary, keys=[dataclasses.replace(k, org="one-org") for k in sc.primary.keys])])
    arrivals = conversation_workload(sc, seed=2, conversations=6)
    [apart] = run_lab(sc, ["round-robin"], arrivals, concurrency=6, seed=2)
    [together] = run_lab(shared, ["round-robin"], arrivals, concurrency=6, seed=2)
    assert apart.succeeded == together.succeeded == len(arrivals)
    assert together.cache_hit_rate is not None and apart.cache_hit_rate is not None
    assert together.cache_hit_rate > 0.9 > apart.cache_hit_rate  # one cache: only each turn's new tail is written
    assert together.cost is not None and apart.cost is not None and together.cost < apart.cost


def test_compare_shows_the_cache_hit_rate_per_strategy() -> None:
    out = CliRunner().invoke(cli, ["compare", "--scenario", "conversations", "--strategies", "round-robin",
                                   "--json"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    [row] = json.loads(out.output)["strategies"]
    assert 0 < row["cache_hit_rate"] < 1 and row["cost_usd"] > 0
    table = CliRunner().invoke(cli, ["compare", "--scenario", "conversations", "--strategies", "round-robin"])
    assert "cache hit" in table.output
