"""Strategy order and spread, with a fake clock and no network."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pooltui.core import (
    Classification,
    FakeClock,
    KeySpec,
    KeyState,
    Outcome,
    Pool,
    UnknownStrategyError,
    normalize_strategy,
)
from pooltui.core.headers import RateLimits

OK = Classification(Outcome.OK, 200)
LIMITED = Classification(Outcome.RATE_LIMITED, 429, "slow down", 10.0)


def pool(n: int = 4, strategy: str = "round-robin", seed: int = 1, **kw) -> Pool:
    return Pool("p", [KeySpec(f"k{i}", f"sk-test-{i:030d}") for i in range(n)], strategy, clock=FakeClock(),
                rng=random.Random(seed), **kw)


def cycle(p: Pool, n: int) -> list[str]:
    out = []
    for _ in range(n):
        key = p.pick()
        assert key is not None
        out.append(key.label)
        p.report(key, OK)
    return out


def test_round_robin_is_exact_over_available_keys() -> None:
    p = pool(4)
    assert cycle(p, 8) == ["k0", "k1", "k2", "k3"] * 2
    p.disable("k2")
    assert cycle(p, 9) == ["k0", "k1", "k3"] * 3
    p.enable("k2")
    assert cycle(p, 4) == ["k0", "k1", "k2", "k3"]


def test_round_robin_continues_after_a_key_leaves_mid_cycle() -> None:
    p = pool(4)
    assert cycle(p, 2) == ["k0", "k1"]
    key = p.pick()
    assert key.label == "k2"
    p.report(key, LIMITED)
    assert cycle(p, 6) == ["k3", "k0", "k1", "k3", "k0", "k1"]


def test_failover_stays_on_first_key_until_it_is_limited() -> None:
    p = pool(3, "fill-first")
    assert p.strategy == "failover"
    assert cycle(p, 5) == ["k0"] * 5
    key = p.pick()
    p.report(key, LIMITED)
    assert cycle(p, 3) == ["k1"] * 3
    p.clock.advance(11)  # k0's cooldown is over: back to the first key
    assert cycle(p, 2) == ["k0"] * 2


def test_random_spreads_evenly_within_bounds() -> None:
    p = pool(3, "random", seed=42)
    counts = Counter(cycle(p, 3000))
    assert set(counts) == {"k0", "k1", "k2"}
    for n in counts.values():
        assert 850 <= n <= 1150  # mean 1000, sd ~26


def test_least_used_balances_and_catches_up() -> None:
    p = pool(3, "failover")
    cycle(p, 10)  # k0 has already served 10 requests
    p.set_strategy("least_used")
    assert p.strategy == "least-used"
    assert "k0" not in cycle(p, 20)  # the others catch up first
    cycle(p, 300)
    final = [k.stats.requests for k in p.keys]
    assert max(final) - min(final) <= 1, final


def test_headroom_prefers_the_key_with_most_budget_left() -> None:
    p = pool(2, "headroom")
    a, b = p.pick(), p.pick()
    p.report(a, Classification(Outcome.OK, 200, limits=RateLimits(100, 5, 10.0, None, None, None)))
    p.report(b, Classification(Outcome.OK, 200, limits=RateLimits(100, 80, 10.0, None, None, None)))
    low = a if a.stats.limits.requests_remaining == 5 else b
    picks = Counter(p.pick().label for _ in range(20))
    assert picks[low.label] == 0  # steered away from the nearly spent key before it 429s


def test_hermes_aliases_and_unknown_strategy() -> None:
    assert [normalize_strategy(s) for s in ("fill_first", "round_robin", "least_used", "random")] == [
        "failover", "round-robin", "least-used", "random"]
    with pytest.raises(UnknownStrategyError, match="unknown strategy 'bogus'"):
        normalize_strategy("bogus")


@pytest.mark.parametrize("strategy", ["round-robin", "failover", "least-used", "headroom"])
def test_peek_names_the_next_pick(strategy: str) -> None:
    p = pool(4, strategy)
    p.disable("k1")
    for _ in range(12):
        expected = p.peek()
        key = p.pick()
        assert key.label == expected
        p.report(key, OK)


def test_rotation_position_is_observable() -> None:
    p = pool(3)
    cycle(p, 5)
    assert list(p.picks) == ["k0", "k1", "k2", "k0", "k1"]
    assert p.peek() == "k2"


def test_reorder_changes_the_next_pick() -> None:
    p = pool(3, "failover")
    assert p.peek() == "k0"
    p.move("k2", -2)
    assert [k.label for k in p.keys] == ["k2", "k0", "k1"]
    assert p.pick().label == "k2"


OUTCOMES = [OK, LIMITED, Classification(Outcome.INVALID, 401, "bad key"),
            Classification(Outcome.QUOTA, 429, "quota", 30.0), Classification(Outcome.TRANSIENT, 503, "down"),
            Classification(Outcome.RATE_LIMITED, 429, "no reset")]


@settings(max_examples=150, deadline=None)
@given(
    strategy=st.sampled_from(["round-robin", "random", "failover", "least-used", "headroom"]),
    n=st.integers(1, 7),
    ops=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 6), st.floats(0, 90)), max_size=80),
)
def test_a_strategy_only_picks_available_keys(strategy: str, n: int, ops) -> None:
    p = pool(n, strategy)
    for op, arg, dt in ops:
        if op <= 5:
            key = p.pick()
            if key is None:
                assert p.usable() == 0
                continue
            assert key.state is KeyState.OK
            p.report(key, OUTCOMES[arg % len(OUTCOMES)])
        elif op == 6:
            p.clock.advance(dt)
        elif op == 7:
            p.disable(f"k{arg % n}")
        elif op == 8:
            p.enable(f"k{arg % n}")
        else:
            p.reset()
        assert p.usable() == sum(1 for k in p.keys if k.state is KeyState.OK)
