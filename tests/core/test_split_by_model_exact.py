"""The moment traffic first mixes models on a provider that limits per model: the first model's cooldown and
estimates become that model's, the key serves the second model at once, and the event says so (issue 25, item 6:
survivors in core.pool.Pool._split_by_model)."""

from __future__ import annotations

import pytest

from pooltui.core import Classification, DeadlineSource, EventKind, FakeClock, KeySpec, KeyState, Outcome, Pool
from pooltui.core.events import StateChange

T0 = 1_790_000_000.0


def limited_for_model(retry: float) -> Classification:
    return Classification(Outcome.RATE_LIMITED, 429, "slow down", retry, DeadlineSource.RETRY_AFTER,
                          model_scoped=True)


def test_a_second_model_splits_the_first_models_cooldown_and_estimate() -> None:
    clock = FakeClock(T0)
    pool = Pool("p", [KeySpec(f"k{i}", f"sk-test-split-{i:020d}") for i in range(2)], "failover", clock=clock)
    k0 = pool.pick(model="a")
    assert k0 is not None and k0.label == "k0"
    pool.report(k0, limited_for_model(30.0), model="a")
    learned = k0.learned
    assert k0.state is KeyState.COOLING and learned is not None  # one model so far: the whole key cools
    clock.advance(1.0)
    assert pool.pick(model="b") is k0  # the second model: k0's cooldown was model a's, k0 serves b at once
    assert k0.state is KeyState.OK and k0.learned is None and k0.learned_models is not None
    assert k0.learned_models["a"] is learned
    scoped = [e for e in pool.events.recent() if e.change is StateChange.SCOPED]
    assert [(e.key, e.kind, e.status, e.ts) for e in scoped] == [("k0", EventKind.STATE, None, T0 + 1)]
    assert pool.pick(model="a").label == "k1"  # model a still waits for k0
    clock.advance(30.0)
    assert pool.pick(model="a") is k0


def test_estimates_kept_per_model_survive_the_split() -> None:
    clock = FakeClock(T0)
    pool = Pool("p", [KeySpec("k0", "sk-test-split-00000000000000000000")], "failover", clock=clock)
    assert pool.restore_learned("k0", "b", 5, 10.0) and pool.restore_learned("k0", "", 7, 20.0)
    k0 = pool.pick(model="b")
    assert k0 is not None
    pool.report(k0, Classification(Outcome.OK, 200, model_scoped=True), model="b")
    assert k0.learned_models is not None
    kept, whole = k0.learned_models["b"], k0.learned
    pool.pick(model="c")  # traffic mixes: the whole-key estimate would be b's, but b already has its own
    assert k0.learned is None and k0.learned_models is not None and k0.learned_models["b"] is kept
    assert whole is not None and whole is not kept



@pytest.mark.wording
def test_the_split_says_so_in_words() -> None:
    """What an operator reads when a key's cooldown becomes one model's."""
    clock = FakeClock(T0)
    pool = Pool("p", [KeySpec(f"k{i}", f"sk-test-split-{i:020d}") for i in range(2)], "failover", clock=clock)
    k0 = pool.pick(model="a")
    assert k0 is not None
    pool.report(k0, limited_for_model(30.0), model="a")
    clock.advance(1.0)
    pool.pick(model="b")
    words = [(e.reason, e.action) for e in pool.events.recent() if e.change is StateChange.SCOPED]
    assert words == [("a second model is served: its cooldown is a's", "cools for a only")]
