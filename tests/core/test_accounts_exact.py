"""Counters that fall as one, to the step: the same limit only, cross steps only (within 2 s, however the series
start), at least eight of them, at least 80% falling, equal values not a fall (independent keys at one rate).
Written from the mutation run's survivors (counters_move_together had no exact test)."""

from __future__ import annotations

from pooltui.core.accounts import (
    MAX_GAP_S,
    MIN_CROSS_STEPS,
    CounterSample,
    counters_move_together,
    group_of,
)

T0 = 1_000.0


def alternating(values: list[int], gap: float = 0.5, limit: int = 100, start: float = T0
                ) -> tuple[list[CounterSample], list[CounterSample]]:
    """Samples taken in turn by key a then key b, ``gap`` apart, reading ``values`` in order."""
    a: list[CounterSample] = []
    b: list[CounterSample] = []
    for i, remaining in enumerate(values):
        (a if i % 2 == 0 else b).append(CounterSample(start + i * gap, remaining, limit))
    return a, b


def test_one_budget_falls_at_every_cross_step() -> None:
    a, b = alternating(list(range(99, 83, -1)))  # 99, 98, 97, ...: each request lowers both
    assert counters_move_together(a, b)


def test_at_least_eight_cross_steps() -> None:
    eight = alternating(list(range(99, 99 - MIN_CROSS_STEPS - 1, -1)))  # 9 samples: 8 cross steps
    seven = alternating(list(range(99, 99 - MIN_CROSS_STEPS, -1)))
    assert counters_move_together(*eight) and not counters_move_together(*seven)


def test_at_least_four_in_five_cross_steps_fall() -> None:
    falls = [99, 98, 97, 96, 95, 94, 93, 92, 91, 91, 91]  # 10 cross steps, 8 falls
    assert counters_move_together(*alternating(falls))
    fewer = [99, 98, 97, 96, 95, 94, 93, 92, 92, 92, 92]  # 7 falls of 10
    assert not counters_move_together(*alternating(fewer))


def test_independent_keys_at_one_rate_show_equal_values_half_the_time() -> None:
    round_robin = [99, 99, 98, 98, 97, 97, 96, 96, 95, 95, 94, 94, 93, 93, 92, 92]
    assert not counters_move_together(*alternating(round_robin))


def test_only_keys_of_one_limit_are_compared() -> None:
    a, b = alternating(list(range(99, 83, -1)))
    assert not counters_move_together(a, [s._replace(limit=200) for s in b])
    assert not counters_move_together([], [])


def test_only_cross_steps_count_however_the_series_start() -> None:
    own = [CounterSample(T0 + i * 0.1, 99 - i, 100) for i in range(12)]  # one key's own falls: not shared
    assert not counters_move_together(own, [CounterSample(T0 + 5, 50, 100)])
    a, b = alternating(list(range(97, 81, -1)), start=T0 + 1)
    first = [CounterSample(T0, 99, 100), CounterSample(T0 + 0.5, 98, 100)]  # two of a's samples first
    assert counters_move_together(first + a, b)


def test_a_cross_step_may_be_two_seconds_long_not_more() -> None:
    assert counters_move_together(*alternating(list(range(99, 83, -1)), gap=MAX_GAP_S))
    assert not counters_move_together(*alternating(list(range(99, 83, -1)), gap=MAX_GAP_S + 0.01))


def test_a_key_is_found_in_its_group() -> None:
    groups = [["k0", "k1"], ["k2", "k3"]]
    assert group_of("k3", groups) == ["k2", "k3"] and group_of("k9", groups) is None
