"""What round-robin without affinity would have paid (issue 28), from each answer's cache use: the model of
core/round_robin_cost.py on hand-made turns, priced with Anthropic's published Sonnet prices."""

from __future__ import annotations

import pytest

from pooltui.core.budget import Prices
from pooltui.core.round_robin_cost import RoundRobinCost, round_robin_extra
from pooltui.core.usage import Usage

THIRDS = (1 / 3, 1 / 3, 1 / 3)  # three keys in three organizations
SONNET = Prices.from_dict({"claude-sonnet-4-5": {"input_per_mtok": 3.0, "output_per_mtok": 15.0}})


def turn(read: int, written: int) -> Usage:
    return Usage(input=read + written + 10, output=5, cache_read=read, cache_write=written,
                 cacheable=read + written)


def test_the_first_turn_reads_what_it_read_and_later_turns_what_round_robin_would_find() -> None:
    est = RoundRobinCost()
    assert est.expected_read("c", THIRDS, turn(0, 1000), 1, 0.0) == 0.0
    assert est.expected_read("c", THIRDS, turn(1000, 1000), 3, 10.0) == pytest.approx(1000 / 3)
    # two turns back: the group of the last turn (1/3) holds 2,000, else the one before's (1/3 x 2/3) holds 1,000
    expected = est.expected_read("c", THIRDS, turn(2000, 1000), 5, 20.0)
    assert expected == pytest.approx(3 * (1 / 3) * ((1 / 3) * 2000 + (1 / 3) * (2 / 3) * 1000))


def test_one_organization_reads_as_affinity_does_and_a_shared_head_is_read_everywhere() -> None:
    one = RoundRobinCost()
    one.expected_read("c", (1.0,), turn(0, 1500), 1, 0.0)
    assert one.expected_read("c", (1.0,), turn(1500, 500), 3, 5.0) == 1500  # every key shares the one cache
    shared = RoundRobinCost()
    shared.expected_read("c", THIRDS, turn(800, 700), 1, 0.0)  # read 800 on its first turn: a head others wrote
    assert shared.expected_read("c", THIRDS, turn(1500, 500), 3, 5.0) == pytest.approx(800 + 700 / 3)


def test_a_turn_past_the_cache_lifetime_or_the_lookback_is_not_read() -> None:
    est = RoundRobinCost(ttl_s=300.0)
    est.expected_read("old", THIRDS, turn(0, 1000), 1, 0.0)
    assert est.expected_read("old", THIRDS, turn(0, 2000), 3, 301.0) == 0.0
    far = RoundRobinCost(lookback=20)
    far.expected_read("far", THIRDS, turn(0, 1000), 1, 0.0)
    assert far.expected_read("far", THIRDS, turn(1000, 3000), 22, 10.0) == 0.0  # 21 messages back
    openai = RoundRobinCost(lookback=None)  # no lookback limit
    openai.expected_read("far", THIRDS, turn(0, 1024), 1, 0.0)
    assert openai.expected_read("far", THIRDS, turn(1024, 3000), 22, 10.0) == pytest.approx(1024 / 3)


def test_reads_round_robin_misses_are_priced_as_writes() -> None:
    price = SONNET.price("claude-sonnet-4-5")
    assert price is not None
    usage = turn(2000, 1000)
    extra = round_robin_extra(price, usage, 500.0)
    assert extra == pytest.approx(1500 * (3.75 - 0.30) / 1e6)  # 1,500 tokens written at 3.75 instead of read at 0.30
    assert SONNET.cost_of("claude-sonnet-4-5", usage) + extra == pytest.approx(SONNET.cost_of(
        "claude-sonnet-4-5", Usage(usage.input, 5, 500, 2500, 0, 3000)))  # the same as pricing those reads anew
    hour = Usage(3010, 5, 2000, 1000, 1000, 3000)  # its writes had the 1-hour lifetime: so would round-robin's
    assert round_robin_extra(price, hour, 500.0) == pytest.approx(1500 * (6.0 - 0.30) / 1e6)
