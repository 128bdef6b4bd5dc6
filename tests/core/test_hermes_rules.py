"""Hermes Agent's pool rules as the lab emulates them (from hermes-agent 0.19's credential_pool.py)."""

from __future__ import annotations

import pytest

from pooltui.core.hermes_rules import (
    HermesEntry,
    HermesPoolModel,
    backoff_s,
    exhausted_ttl,
    retry_delay_in,
)

NOW = 1_790_000_000.0


def pool(n: int = 3, strategy: str = "fill_first") -> HermesPoolModel:
    return HermesPoolModel([HermesEntry(f"k{i}", f"sk-test-hermes-{i:020d}") for i in range(n)], strategy)


def test_it_stays_on_the_current_entry_until_an_error() -> None:
    for strategy in ("fill_first", "round_robin"):
        p = pool(strategy=strategy)
        first = p.entry(NOW)
        assert all(p.entry(NOW + i) is first for i in range(10))  # no per-request rotation


def test_fill_first_goes_back_to_the_first_available_and_round_robin_moves_on() -> None:
    ff, rr = pool(), pool(strategy="round_robin")
    for p in (ff, rr):
        k0 = p.entry(NOW)
        assert k0.label == "k0"
        assert p.exhaust_and_rotate(k0, 429, NOW).label == "k1"
    assert ff.exhaust_and_rotate(ff.entry(NOW), 401, NOW + 1).label == "k2"
    assert [e.label for e in rr.entries] == ["k2", "k0", "k1"]  # the selected entry went to the end


@pytest.mark.parametrize(("status", "sole", "ttl"), [(429, False, 3600.0), (401, False, 300.0), (500, False, 3600.0),
                                                    (429, True, 3600.0), (401, True, 300.0)])
def test_an_entry_is_benched_for_hermes_ttl(status: int, sole: bool, ttl: float) -> None:
    """A sole key is benched as long as any other (hermes-agent 0.19 has no shorter rule for it)."""
    assert exhausted_ttl(status) == ttl
    p = pool(1 if sole else 3)
    entry = p.entry(NOW)
    p.exhaust_and_rotate(entry, status, NOW)
    assert entry.exhausted_until == NOW + ttl
    assert entry not in p.available(NOW + ttl - 0.001) and entry in p.available(NOW + ttl)


def test_a_terminal_401_kills_the_entry_for_good() -> None:
    p = pool()
    k0 = p.entry(NOW)
    assert p.exhaust_and_rotate(k0, 401, NOW, reason="invalid_token").label == "k1"
    assert k0.dead and k0 not in p.available(NOW + 10 * 86400)


def test_a_reset_it_can_read_wins_over_the_ttl() -> None:
    p = pool()
    k0 = p.entry(NOW)
    p.exhaust_and_rotate(k0, 429, NOW, "Rate limit reached. Please retry after 20 seconds.")
    assert k0.exhausted_until == NOW + 20
    k1 = p.entry(NOW)
    p.exhaust_and_rotate(k1, 429, NOW, "", reset_at=NOW + 90)
    assert k1.exhausted_until == NOW + 90


@pytest.mark.parametrize(("message", "seconds"), [
    ("quotaResetDelay: 1500ms", 1.5), ('"quotaResetDelay": "7s"', 7.0), ("retry after 20 seconds", 20.0),
    ("Retry 3s", 3.0), ("resets in 2hr 5min", 7500), ("Resets in 4hr", 14400), ("resets in 15 min", 900),
    ("Please try again in 20s.", None), ("", None)])
def test_the_reset_hermes_reads_in_a_message(message: str, seconds: float | None) -> None:
    assert retry_delay_in(message) == seconds


def test_backoff_doubles_from_two_seconds_to_a_minute_with_half_as_jitter() -> None:
    assert [backoff_s(n, 0.0) for n in (1, 2, 3, 6, 7)] == [2.0, 4.0, 8.0, 60.0, 60.0]
    assert backoff_s(1, 0.999) == pytest.approx(2.999)


def test_an_empty_pool_selects_nothing_and_an_unknown_strategy_is_refused() -> None:
    p = pool(1)
    p.exhaust_and_rotate(p.entry(NOW), 429, NOW)
    assert p.entry(NOW) is None and p.current is None
    with pytest.raises(ValueError, match="fill_first or round_robin"):
        HermesPoolModel([], "least_used")
