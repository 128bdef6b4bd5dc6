"""The classes of real bodies a status classifier misreads (issue 23, PROVIDERS.md), each on captured cases of
tests/corpus/: the outcome, the key's state, the wait, and what the pool's event says."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pooltui.core import FakeClock, KeySpec, KeyState, Outcome, Pool, classify
from pooltui.core.events import EventKind
from pooltui.sim import corpus


def pool_after(case_id: str, times: int = 1, keys: int = 3) -> tuple[Pool, object]:
    """A pool of ``keys`` keys, each answered with the case ``times`` times (one caller retrying)."""
    c = corpus.case(case_id)
    now = datetime.fromisoformat((c.get("now") or corpus.DEFAULT_NOW).replace("Z", "+00:00")).timestamp()
    pool = Pool("p", [KeySpec(f"k{i}", f"sk-test-{i:030d}") for i in range(keys)], "round-robin",
                clock=FakeClock(now))
    result = classify(c["dialect"], c["status"], c["headers"], corpus.raw_body(c), now)
    for _ in range(times):
        for key in list(pool.keys):
            if key.state is KeyState.OK:
                key.inflight += 1
                pool.report(key, result, model=c.get("model"))
    return pool, result


def nothing_learnt(key) -> bool:
    return key.learned is None or (key.learned.limit is None and not key.learned.votes)


@pytest.mark.parametrize("case_id, state, kind", [
    ("xai-wrong-key-400", KeyState.INVALID, "invalid"),
    ("anthropic-org-disabled-400", KeyState.FORBIDDEN, "forbidden"),
    ("groq-organization-restricted-400", KeyState.FORBIDDEN, "forbidden"),
    ("fireworks-account-suspended-412", KeyState.EXHAUSTED, "quota"),
])
@pytest.mark.wording
def test_a_dead_key_on_another_status_is_taken_out_and_its_event_says_the_status(case_id, state, kind) -> None:
    pool, _result = pool_after(case_id, keys=1)
    status = corpus.case(case_id)["status"]
    assert pool.key("k0").state is state
    event = pool.events.recent()[-1]
    assert (event.kind.value, event.status) == (kind, status)
    assert f"(HTTP {status})" in event.reason


@pytest.mark.parametrize("case_id", ["openai-billing-not-active-429", "xai-credits-429", "zhipu-1113-arrears-429-en",
                                     "cohere-trial-monthly-429", "gemini-insufficient-credits-429"])
def test_billing_sent_as_a_429_parks_the_key_instead_of_cooling_it(case_id) -> None:
    pool, result = pool_after(case_id, times=3, keys=1)
    key = pool.key("k0")
    assert (result.outcome, key.state) == (Outcome.QUOTA, KeyState.EXHAUSTED)
    assert key.stats.rate_limited == 0 and nothing_learnt(key)  # no 429 counted, nothing learnt from it


def test_a_trial_keys_monthly_cap_parks_it_until_the_first_of_next_month() -> None:
    pool, _result = pool_after("cohere-trial-monthly-429", keys=1)
    assert pool.key("k0").until == datetime(2026, 10, 1, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("case_id", ["openai-request-too-large-429", "anthropic-extra-usage-long-context-429",
                                     "groq-tpm-oversized-429"])
def test_a_request_that_can_never_succeed_goes_back_to_its_caller_and_cools_no_key(case_id) -> None:
    pool, result = pool_after(case_id, times=4)
    assert result.outcome is Outcome.REQUEST_ERROR
    assert [k.state for k in pool.keys] == [KeyState.OK] * 3
    assert not any(pool.model_cooldowns(k) for k in pool.keys)


@pytest.mark.parametrize("case_id", ["openrouter-upstream-rate-limited-429", "zhipu-1305-overloaded-429"])
def test_an_upstreams_shared_overload_is_transient_and_teaches_nothing(case_id) -> None:
    pool, result = pool_after(case_id, times=5)
    assert result.outcome is Outcome.TRANSIENT
    assert [k.state for k in pool.keys] == [KeyState.OK] * 3
    assert all(k.stats.rate_limited == 0 and nothing_learnt(k) for k in pool.keys)
    assert (pool.events.recent()[-1].kind, pool.events.recent()[-1].change) == (EventKind.SERVER_ERROR, None)


def test_a_rate_limit_sent_as_a_400_cools_the_key() -> None:
    pool, result = pool_after("dashscope-rate-increased-too-quickly-400", keys=1)
    assert result.outcome is Outcome.RATE_LIMITED
    assert pool.key("k0").state is KeyState.COOLING


def test_a_wait_written_as_a_date_parks_the_key_until_that_date() -> None:
    pool, result = pool_after("anthropic-usage-limits-regain-400", keys=1)
    assert result.outcome is Outcome.QUOTA
    assert pool.key("k0").until == datetime(2026, 4, 1, tzinfo=UTC).timestamp()


def test_an_hourly_usage_wall_parks_the_key_an_hour() -> None:
    pool, result = pool_after("ollama-hourly-usage-limit-429", keys=1)
    assert (result.outcome, result.retry_after_s) == (Outcome.QUOTA, 3600.0)
    assert pool.key("k0").state is KeyState.EXHAUSTED
