"""Declared windows to the unit and the second: the body's token estimate, what each window counts, when a
full window opens (with the network's margin), what a refused take gives back, how an answer's usage settles
a hold and how the input ratio is learnt. Written from the mutation run's survivors (fake times, no pool)."""

from __future__ import annotations

import pytest

from pooltui.core.declared import (
    DEFAULT_OUTPUT,
    RATIO_BOUNDS,
    RATIO_WEIGHT,
    DeclaredWindows,
    TokenHold,
    estimate_input,
    output_cap,
)
from pooltui.core.pool import KeySpec, PoolKey
from pooltui.core.windows import KeyLimits, local_window

T0 = 1_000.0


def windows(**limits: int) -> DeclaredWindows:
    return DeclaredWindows(KeyLimits(**limits), "p", "k0", local_window)


def used(w: DeclaredWindows, now: float = T0) -> dict[str, int]:
    return {name: use["used"] for name, use in w.budgets(now).items()}


def test_the_estimate_is_a_quarter_of_the_bytes_rounded_up() -> None:
    assert estimate_input(None) == 0 and estimate_input(b"") == 0
    assert estimate_input(b"abcd") == 1
    six = estimate_input(b"abcdef")
    assert six == 2 and isinstance(six, int)
    assert estimate_input(b"a") == 1


def test_the_output_held_is_max_tokens_else_the_default() -> None:
    assert output_cap(b'{"model": "m", "max_tokens": 1000}') == 1000
    assert output_cap(b'{"max_completion_tokens":77}') == 77
    assert output_cap(b'{"model": "m"}') == DEFAULT_OUTPUT == output_cap(None)
    hold = TokenHold.of_body(b'{"max_tokens": 100, "messages": []}')
    assert hold.out == 100 and hold.body_in == estimate_input(b'{"max_tokens": 100, "messages": []}')


def test_a_key_without_model_limits_serves_every_model_from_its_own_windows() -> None:
    w = windows(rpm=5)
    assert w.for_model("gpt-4o") is w and w.for_model(None) is w


def test_exactly_enough_room_is_not_full_and_the_wait_has_the_network_margin() -> None:
    w = windows(rpm=2)
    assert w.take(T0, 0, 0) is None
    assert w.full(T0 + 1, 0, 0) is None  # one of two left: exactly what a request needs
    assert w.take(T0 + 1, 0, 0) is None
    wait, name, limit = w.full(T0 + 10, 0, 0) or (0.0, "", 0)
    # the first slot frees at T0 + 60; the provider saw it a little later: 1% of the window (0.6 s)
    assert (name, limit) == ("rpm", 2) and wait == pytest.approx(50.0 + 0.6)
    soon = w.full(T0 + 59.5, 0, 0)  # opens in half a second: still full until then
    assert soon is not None and soon[0] == pytest.approx(0.5 + 0.6)


def test_a_large_request_waits_for_as_many_tokens_as_it_needs() -> None:
    w = windows(tpm=100)
    assert w.take(T0, 50, 0) is None and w.take(T0 + 20, 50, 0) is None
    wait, name, _ = w.full(T0 + 30, 60, 0) or (0.0, "", 0)
    assert name == "tpm" and wait == pytest.approx(50.0 + 0.6)  # both entries must leave, not only the first
    refused = w.take(T0 + 30, 60, 0)
    assert refused is not None and refused[0] == pytest.approx(50.0)


def test_the_window_that_opens_last_is_the_one_named() -> None:
    w = windows(rpm=1, tpm=100)
    assert w.take(T0, 60, 40) is None  # both full now
    wait, name, _ = w.full(T0 + 30, 10, 0) or (0.0, "", 0)
    assert name in ("rpm", "tpm") and wait == pytest.approx(30.6)
    day = windows(rpm=1, rpd=1)
    assert day.take(T0, 0, 0) is None
    wait, name, _ = day.full(T0 + 30, 0, 0) or (0.0, "", 0)
    assert name == "rpd" and wait == pytest.approx(86_400 - 30 + 1.0)  # the margin is capped at 1 s


def test_a_request_larger_than_an_empty_window_goes_and_the_provider_judges() -> None:
    w = windows(tpm=1000)
    assert w.full(T0, 5000, 0) is None


def test_each_token_window_counts_its_own_tokens_and_usage_settles_them() -> None:
    w = windows(tpm=10_000, itpm=5000, otpm=2000)
    assert w.take(T0, 300, 100) is None
    assert used(w) == {"tpm": 400, "itpm": 300, "otpm": 100}
    w.settle_tokens(T0 + 1, (300, 100), (250, 40))
    assert used(w, T0 + 1) == {"tpm": 290, "itpm": 250, "otpm": 40}
    w.settle_tokens(T0 + 2, (10, 10), (30, 50))  # used more than held: the difference is added
    assert used(w, T0 + 2) == {"tpm": 350, "itpm": 270, "otpm": 80}


def test_a_refused_take_gives_back_what_the_windows_before_it_took() -> None:
    w = windows(rpm=10, itpm=100, otpm=100)
    assert w.take(T0, 100, 0) is None  # itpm now full
    assert used(w) == {"rpm": 1, "itpm": 100, "otpm": 0}
    refused = w.take(T0 + 1, 50, 30)
    assert refused is not None and refused[1:] == ("itpm", 100)
    assert refused[0] == pytest.approx(59.0)  # when the itpm slot frees: later than the margin alone
    assert used(w, T0 + 1) == {"rpm": 1, "itpm": 100, "otpm": 0}  # rpm gave its slot back, otpm took nothing
    assert w.take(T0 + 2, 0, 0) is None
    w.give_back_request(T0 + 3)  # one of the two requests was never sent
    assert used(w, T0 + 3)["rpm"] == 1
    soon = w.take(T0 + 59.8, 1, 0)  # the itpm slot frees in 0.2 s: the wait is the margin at least
    assert soon is not None and soon[0] == pytest.approx(0.6)
    tokens_first = windows(rpm=10, tpm=1000, otpm=100)
    assert tokens_first.take(T0, 0, 100) is None
    assert tokens_first.take(T0 + 1, 50, 30) is not None  # otpm refuses after tpm took 80
    assert used(tokens_first, T0 + 1) == {"rpm": 1, "tpm": 100, "otpm": 100}


def _answered(hold: TokenHold, ratios: dict[str, float], used_in: int) -> dict[str, float]:
    """An answer that used ``used_in`` input tokens settles ``hold`` (held on no window) on a key: its ratios."""
    hold.ratio_of = ratios
    hold.settle(PoolKey(KeySpec("k", "sk-test-ratio-0000000000000000"), 0), T0, used_in, 0)
    assert hold.ratio_of is None and hold.held == (0, 0)  # the hold is empty again
    return ratios


def test_the_input_ratio_starts_at_the_first_answer_then_moves_by_its_weight() -> None:
    hold = TokenHold(1000, 100)
    hold.model = "m"
    ratios = _answered(hold, {}, 500)
    assert ratios == {"m": 0.5}
    _answered(hold, ratios, 1000)
    assert ratios["m"] == pytest.approx(0.5 + RATIO_WEIGHT * 0.5)
    _answered(hold, ratios, 0)  # an answer without usage teaches nothing
    assert ratios["m"] == pytest.approx(0.6)
    # one token of ten bytes' estimate: 0.1, inside the bounds; no model: ""
    assert _answered(TokenHold(10, 0), {}, 1) == {"": pytest.approx(0.1)}
    assert _answered(TokenHold(10, 0), {}, 10_000) == {"": RATIO_BOUNDS[1]}
    assert _answered(TokenHold(0, 0), {}, 50) == {}  # no body to compare with
