"""Exact edges of the engine's readers and estimators, each the survivor of issue 25's sampled mutation run (a
uniform random sample of the mutants of pooltui/core, pooltui/client and session/alerts.py): the field a reader
must look at, the boundary a size check sits on, the margin a learnt window keeps."""

from __future__ import annotations

import json

import pytest

from pooltui.core import Classification, DeadlineSource, FakeClock, KeySpec, KeyState, Outcome, Pool, classify
from pooltui.core.accounts import read_org
from pooltui.core.classify import parse_body
from pooltui.core.declared import TokenHold
from pooltui.core.events import EventLog, StateChange
from pooltui.core.headers import RateLimits
from pooltui.core.hints import date_hints
from pooltui.core.learned import MARGIN, MIN_MARGIN_S, WINDOWS_READ, LearnedLimit
from pooltui.core.stats import RollingCounter
from pooltui.core.strategies import STRATEGIES, UnknownStrategyError, normalize_strategy
from pooltui.core.timefmt import millis
from pooltui.core.trace import RequestTrace
from pooltui.core.usage import usage_of
from pooltui.core.windows import KeyLimits
from tests.core.test_learned_limit import SlidingKey, drive

NOW = 1_780_000_000.0
OK = Classification(Outcome.OK, 200)


def rate_limited(retry: float) -> Classification:
    return Classification(Outcome.RATE_LIMITED, 429, "rate limited", retry, DeadlineSource.RETRY_AFTER)


def make_pool(n: int) -> Pool:
    return Pool("p", [KeySpec(f"k{i}", f"sk-test-{i:030d}") for i in range(n)], "failover", clock=FakeClock())


def hit(pool: Pool, label: str, result: Classification) -> None:
    key = pool.key(label)
    key.inflight += 1
    pool.report(key, result)


def test_a_429_whose_token_budget_is_spent_while_one_request_remains_says_tokens() -> None:
    """One request left and no tokens: the tokens ran out, not the requests (both at 0: it says requests)."""
    def says_tokens(requests_left: str) -> bool:
        headers = {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": requests_left,
                   "x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "0"}
        return classify("openai", 429, headers, {"error": {"message": "Rate limit reached", "type": "requests"}},
                        NOW).tokens
    assert says_tokens("1") and says_tokens("7") and not says_tokens("0")


def test_the_error_type_alone_names_a_billing_signature() -> None:
    """openai's billing_not_active with ``code`` null is read from ``type`` (the corpus case, its message
    reworded so that no phrase of the signature matches)."""
    body = {"error": {"message": "Please check your account.", "type": "billing_not_active", "code": None}}
    assert classify("openai", 429, {}, body, NOW).outcome.value == "quota"
    assert classify("openai", 429, {}, {"error": {**body["error"], "type": "requests"}}, NOW).outcome.value \
        == "rate_limited"


def test_a_body_is_read_as_json_up_to_one_million_characters() -> None:
    def of_size(n: int) -> str:
        return '{"a":"' + "x" * (n - 8) + '"}'
    assert len(of_size(1_000_000)) == 1_000_000 and parse_body(of_size(1_000_000)) is not None
    assert parse_body(of_size(1_000_001)) is None


def test_a_regain_date_is_read_from_a_message_of_up_to_4000_characters() -> None:
    said = "You will regain access on 2026-06-01 at 00:00 UTC."
    exactly = said + " " * (4000 - len(said) - 1) + "."
    assert len(exactly) == 4000 and date_hints(exactly, NOW)
    assert date_hints(exactly + ".", NOW) == []


def test_an_organization_header_is_read_only_when_it_holds_a_name_of_up_to_200_characters() -> None:
    assert read_org({"openai-organization": "org-" + "a" * 196}) is not None
    assert read_org({"openai-organization": "org-" + "a" * 197}) is None
    assert read_org({"openai-organization": "   "}) is None
    assert read_org({"openai-organization": ""}) is None


def test_geminis_cached_tokens_are_its_cacheable_input() -> None:
    usage = usage_of({"usageMetadata": {"promptTokenCount": 900, "candidatesTokenCount": 20,
                                        "cachedContentTokenCount": 640}})
    assert (usage.input, usage.output, usage.cache_read, usage.cacheable) == (900, 20, 640, 640)


def test_removing_a_listener_twice_is_harmless() -> None:
    log, seen = EventLog(), []
    remove = log.subscribe(seen.append)
    remove()
    remove()  # a screen closed twice: no error
    assert seen == []


def test_an_unknown_strategy_names_every_strategy_once_comma_separated() -> None:
    with pytest.raises(UnknownStrategyError) as err:
        normalize_strategy("fastest-please")
    assert str(err.value).endswith("choose one of: " + ", ".join(STRATEGIES))


def test_a_429_with_retry_after_zero_is_fitted() -> None:
    """"Retry after 0 s": a slot frees now. It is a fit like any other, not a 429 without a hint."""
    est = LearnedLimit()
    for t in (1.0, 2.0, 3.0):
        est.accept(t)
    assert est.rate_limited(3.5, 0.0)
    assert est.limit is not None and est.window_s is not None


def test_precise_retry_afters_keep_the_margin_at_their_spread_rounded_ones_at_the_window_share() -> None:
    """Windows fitted from unrounded retry-afters agree within jitter: the opening's margin is that spread (at
    least 20 ms); from whole-second retry-afters it is ``MARGIN`` of the window."""
    for whole, margin in ((False, MIN_MARGIN_S), (True, None)):
        key, est = SlidingKey(8, 5.0, whole_seconds=whole), LearnedLimit()
        t = 1000.0
        while t < 1012.0:  # unpaced: several 429s, each fitted
            retry = key.send(t)
            est.accept(t) if retry is None else est.rate_limited(t, retry)
            t += 0.05
        drive(key, est, t, 20.0)
        assert est.limit == 8
        assert est.margin_s == pytest.approx(margin if margin is not None else est.window_s * MARGIN)


def test_a_probe_keeps_the_precise_windows_of_the_limit_below() -> None:
    """The estimate tries one more: the margin stays the one its precise windows gave, not a share of the
    window as if it knew nothing about the jitter."""
    key, est = SlidingKey(8, 5.0, whole_seconds=False), LearnedLimit()
    t = 1000.0
    while est.probes == 0 and t < 1200.0:
        if t < 1012.0 or est.opens_in(t) == 0:
            retry = key.send(t)
            est.accept(t) if retry is None else est.rate_limited(t, retry)
        t += 0.05
    assert est.probes == 1 and est.limit == 9
    assert est.margin_s == pytest.approx(MIN_MARGIN_S), json.dumps({str(k): v[-3:] for k, v in est.precise.items()})


def test_two_keys_probed_at_once_both_count_as_usable_and_the_pool_looks_again_soon() -> None:
    """Two keys back from a cooldown are probed at the same time, a third cools for a minute: both probes count
    as usable keys, and the queue looks again at the probe's pace, not at the minute."""
    pool = make_pool(3)
    for label, wait in (("k0", 5.0), ("k1", 5.0), ("k2", 60.0)):
        hit(pool, label, rate_limited(wait))
    pool.clock.advance(5.1)
    probes = [pool.pick(), pool.pick()]
    assert sorted(k.label for k in probes) == ["k0", "k1"] and pool.pick() is None
    assert pool.usable() == 2
    assert pool.next_ready_in() == pytest.approx(0.05)
    pool.report(probes[0], OK)
    assert pool.usable() == 2  # k0 back in rotation, k1's probe still out


def test_a_token_hold_is_given_back_whole_and_only_real_usage_moves_the_input_ratio() -> None:
    """Two requests hold tokens on a key that declares a token budget. The first answer's usage moves the
    key's input ratio and gives back what it held, input and output; the second fails below HTTP: what it held
    is given back, and its estimate, made before the first answer, teaches the ratio nothing."""
    pool = Pool("p", [KeySpec("k", "sk-test-token-hold-000000001", limits=KeyLimits(tpm=1_000_000))], "failover",
                clock=FakeClock())
    first, second = TokenHold(4000, 100), TokenHold(4000, 100)
    key = pool.pick(model="m", hold=first)
    assert key is not None and pool.pick(model="m", hold=second) is key
    held = key.tokens_inflight
    assert held == sum(first.held) + sum(second.held) and first.held[1] == 100
    pool.report(key, OK, tokens_in=2000, tokens_out=40, model="m", hold=first)
    assert key.tokens_inflight == sum(second.held)
    ratio = dict(key.ratios)
    assert ratio and ratio != {"m": first.held[0] / 4000}
    pool.report_transport(key, "connection reset", model="m", hold=second)
    assert key.tokens_inflight == 0 and key.ratios == ratio


def test_a_key_cooled_by_its_spent_token_budget_comes_back_with_the_budget_forgotten() -> None:
    """A success says "0 tokens remaining, reset in 5 s": the key cools before a 429 (the event names the
    request), and when it comes back the stale "0 remaining" no longer holds it."""
    pool = make_pool(2)
    spent = RateLimits(requests_limit=60, requests_remaining=30, tokens_limit=1000, tokens_remaining=0,
                       tokens_reset_s=5.0)
    key = pool.key("k0")
    key.inflight += 1
    pool.report(key, Classification(Outcome.OK, 200, limits=spent), request_id=41)
    cooled = [e for e in pool.events.recent() if e.change is StateChange.COOLED]
    assert key.state is KeyState.COOLING and [e.request_id for e in cooled] == [41]
    pool.clock.advance(5.1)
    assert pool.usable() == 2
    assert key.stats.limits is not None and key.stats.limits.tokens_remaining is None and key.headroom == 1.0


def test_a_stated_token_budget_back_from_its_reset_is_whole_and_still_held() -> None:
    """Back from a cooldown for a spent token budget (1,000 per window), the key's budget is whole again and
    still counted: after its probe, two requests of ~600 tokens cannot both be in flight."""
    pool = make_pool(1)
    spent = RateLimits(requests_limit=60, requests_remaining=30, tokens_limit=1000, tokens_remaining=0,
                       tokens_reset_s=5.0)
    first = TokenHold(100, 10)
    key = pool.pick(hold=first)
    assert key is not None
    pool.report(key, Classification(Outcome.OK, 200, limits=spent), tokens_in=100, tokens_out=10, hold=first)
    assert key.state is KeyState.COOLING
    pool.clock.advance(5.1)
    probe = TokenHold(1, 0)
    assert pool.pick(hold=probe) is key
    pool.report(key, OK, tokens_in=1, tokens_out=0, hold=probe)
    assert pool.pick(hold=TokenHold(600, 0)) is key
    assert pool.pick(hold=TokenHold(600, 0)) is None  # 1,000 - 600 in flight leaves 400: it waits for an answer


def test_a_429_no_window_fits_is_not_said_to_be_fitted() -> None:
    """A retry-after past the longest window learnt (an hour) fits no pair: nothing was fitted, nothing learnt."""
    est = LearnedLimit()
    est.accept(1.0)
    assert not est.rate_limited(2.0, 7200.0)
    assert est.limit is None and est.observed == 0


def test_a_rolling_count_keeps_its_oldest_second_until_it_leaves_the_window() -> None:
    counter = RollingCounter(60)
    counter.add(1000.0, 5)
    counter.add(1001.5, 1)
    assert counter.total(1059.9) == 6  # seconds 1000..1059: the first still counts
    assert counter.total(1060.0) == 1 and counter.series(1060.0, 2) == [0, 0]


def test_a_latency_reads_as_people_read_it_and_none_as_a_dash() -> None:
    assert [millis(v) for v in (None, 28.4, 999.4, 7000.0)] == ["-", "28 ms", "999 ms", "7.0 s"]


def test_a_key_whose_stated_budget_is_still_spoken_for_stays_held_after_one_answer() -> None:
    """The headers said 2 requests remain; two are in flight, a third waits. The first answer (no new budget)
    leaves the last slot spoken for by the second: the key stays held, and the queue looks again soon."""
    pool = Pool("p", [KeySpec("a", "sk-test-held-a-0000000001")], "failover", clock=FakeClock(1000.0))
    key = pool.key("a")
    pool.report(pool.pick(), Classification(Outcome.OK, 200, limits=RateLimits(10, 2, 60.0, None, None, None)))
    first, second = pool.pick(), pool.pick()
    assert first is key and second is key and pool.pick() is None
    pool.report(first, OK)
    assert pool.pick() is None and pool.next_ready_in() == pytest.approx(0.05)
    assert [e.label for e in pool.exclusions()] == ["a"]  # shown as held, not as available
    pool.report(second, Classification(Outcome.OK, 200, limits=RateLimits(10, 5, 60.0, None, None, None)))
    assert pool.pick() is key


def test_a_top_level_code_beside_an_error_string_is_read_whatever_its_case() -> None:
    """``{"error": "...", "code": "Arrearage"}``: the error object is the string's, the code is the body's."""
    body = {"error": "Access denied.", "code": "Arrearage"}
    assert classify("openai-compatible", 400, {}, body, NOW).outcome.value == "quota"


def test_a_key_429ing_for_long_keeps_a_few_fitted_windows_and_the_same_estimate() -> None:
    """Unpaced for five minutes (a 429 every few requests): the fitted windows kept per limit stay a handful, and the
    estimate is the one the latest windows give."""
    key, est = SlidingKey(8, 5.0, whole_seconds=False), LearnedLimit()
    t = 1000.0
    while t < 1300.0:
        retry = key.send(t)
        est.accept(t) if retry is None else est.rate_limited(t, retry)
        t += 0.25
    assert key.rejected > 200 and est.limit == 8 and est.window_s == pytest.approx(5.0)
    assert max(len(v) for v in (*est.windows.values(), *est.precise.values())) <= 2 * WINDOWS_READ


def test_a_pick_with_every_key_at_its_learnt_limit_traces_no_candidate() -> None:
    pool = make_pool(2)
    for label in ("k0", "k1"):
        assert pool.restore_learned(label, "", 1, 10.0)
    for _ in range(2):
        key = pool.pick()
        assert key is not None
        pool.report(key, OK)
    trace = RequestTrace(1, pool.clock.now(), pool.strategy)
    assert pool.pick(trace) is None
    step = trace.steps[-1]
    assert (step.kind, step.key, step.detail["candidates"]) == ("pick", None, 0)
