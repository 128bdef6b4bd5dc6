"""PoolClient against the simulator on 127.0.0.1: attribution, throughput, waits, fallbacks, streams."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from pooltui.client.pool_client import PoolUnavailableError
from pooltui.core import Backoff, KeyState
from pooltui.core.events import StateChange
from pooltui.session.traffic import TrafficGenerator
from pooltui.sim.wiring import client_for_scenario
from tests.conftest import keys, make_scenario, until

pytestmark = pytest.mark.asyncio


async def test_attribution_under_concurrency_64(serve) -> None:
    sc = make_scenario({"name": "p", "keys": [
        *keys("lim", 2, rpm=5), {"label": "rev", "secret": "sk-test-rev-0000000000000000001", "revoke_after": 3},
        {"label": "bad", "secret": "sk-test-bad-0000000000000000002", "invalid": True}, *keys("ok", 3)]})
    server = serve(sc)
    client = client_for_scenario(sc, server, "round-robin", seed=1)
    async with client:
        result = await TrafficGenerator(client, concurrency=64, seed=1).run(400)
    assert result.requests == 400 == result.succeeded + result.failed
    sim = server.state.stats()["p"]
    pool = client.primary.pool
    for key in pool.keys:
        sent = sim[key.label]
        assert key.stats.rate_limited == int(sent.get("429", 0)), key.label
        assert key.stats.invalid == int(sent.get("401", 0)), key.label
        assert key.stats.ok == int(sent.get("200", 0)), key.label
    assert pool.key("lim0").stats.rate_limited >= 1 and pool.key("rev").stats.invalid >= 1  # in-flight 401s too
    bad = pool.key("bad")  # requests already in flight when its first 401 came back got 401 too
    assert 1 <= bad.stats.invalid == bad.stats.requests <= 64 and bad.stats.ok == 0


def _two_limited_keys(window: float = 1.5, fallback: bool = False):
    providers = [{"name": "p", "window_s": window, "keys": keys("k", 2, rpm=1)}]
    if fallback:
        providers.append({"name": "fb", "dialect": "anthropic", "keys": keys("f", 1)})
    return make_scenario(*providers)


async def _spend_both(client) -> None:
    for _ in range(2):
        assert (await client.chat("hi")).status == 200


async def test_all_keys_limited_waits_for_the_earliest_reset_within_deadline(serve) -> None:
    sc = _two_limited_keys()
    server = serve(sc)
    async with client_for_scenario(sc, server, seed=3) as client:
        await _spend_both(client)
        t0 = time.perf_counter()
        resp = await client.chat("again", deadline_s=5.0)
        waited = time.perf_counter() - t0
    assert resp.status == 200 and not resp.fallback
    assert 0.8 <= waited <= 3.0
    kinds = [s.kind for s in resp.trace.steps]
    assert "wait" in kinds and kinds[-1] == "attempt"
    # the first wait is the reset (at most the 1.5 s window) and a spread of at most 50 ms + 10% of it
    assert resp.trace.steps[kinds.index("wait")].detail["seconds"] <= 1.5 + 0.05 + 0.15


async def test_a_wait_and_its_spread_end_by_the_request_deadline(serve) -> None:
    """The spread added to a wait (up to 50 ms + 10% of it) never carries it past the request's deadline: a reset
    that fits with a few ms to spare gets a wait cut at the deadline, not one that outlives the request."""
    sc = _two_limited_keys()
    server = serve(sc)
    traces: list = []
    async with client_for_scenario(sc, server, seed=3) as client:
        client.outcome_listeners.append(lambda outcome, served_by, trace: traces.append(trace))
        await _spend_both(client)
        pool = client.primary.pool
        reset = pool.next_ready_in(None)
        assert reset is not None and reset > 0.5
        deadline_s = reset + pool.answer_time_s() + 0.003  # the reset fits; almost any spread on top of it does not
        with contextlib.suppress(PoolUnavailableError):
            await client.chat("again", deadline_s=deadline_s)
    trace = traces[-1]
    waits = [s for s in trace.steps if s.kind == "wait"]
    assert waits
    for step in waits:
        # the deadline runs from a moment after the trace's start (µs): 1 ms of slack, where a spread is 1-200 ms
        assert step.ts + step.detail["seconds"] <= trace.started + deadline_s + 0.001, step


async def test_a_cancelled_attempt_frees_its_send_on_its_models_estimate(serve) -> None:
    """Once a pool serves several models its learnt limits are per model: a caller that goes away mid-attempt
    settles the send on the estimate of the model it asked for, which would otherwise count it as in flight."""
    sc = make_scenario({"name": "p", "latency_ms": 400, "success_headers": False, "keys": keys("k", 1)})
    server = serve(sc)
    async with client_for_scenario(sc, server, seed=8) as client:
        for model in ("m-a", "m-b"):  # two models served: each has its own estimate on the key
            assert (await client.chat("hi", model=model)).status == 200
        key = client.primary.pool.key("k0")
        assert key.learned_models is not None and not key.learned_models["m-a"].outstanding
        task = asyncio.create_task(client.chat("slow", model="m-a"))
        await until(lambda: key.inflight == 1, "the attempt in flight")
        assert key.learned_models["m-a"].outstanding  # the send counts on its model's estimate...
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert key.inflight == 0
        assert not key.learned_models["m-a"].outstanding  # ...until the cancelled attempt settles it


async def test_all_keys_limited_falls_back_when_the_reset_is_past_the_deadline(serve) -> None:
    sc = _two_limited_keys(window=30.0, fallback=True)
    server = serve(sc)
    async with client_for_scenario(sc, server, seed=4) as client:
        await _spend_both(client)
        resp = await client.chat("again", deadline_s=2.0)
        assert resp.status == 200 and resp.fallback and resp.provider == "fb" and resp.key == "f0"
        assert client.fallback_used == 1
        assert resp.json()["type"] == "message"  # the fallback speaks its own dialect


async def test_all_keys_limited_without_fallback_is_a_clear_pool_error(serve) -> None:
    sc = _two_limited_keys(window=30.0)
    server = serve(sc)
    async with client_for_scenario(sc, server, seed=5) as client:
        await _spend_both(client)
        with pytest.raises(PoolUnavailableError) as err:
            await client.chat("again", deadline_s=2.0)
    msg = str(err.value)
    assert "p: 2 keys cooling, next ready in" in msg and "401" not in msg
    assert err.value.retry_after_s is not None and 20 < err.value.retry_after_s <= 30


async def test_a_fallback_providers_429_leaves_the_primary_keys_untouched(serve) -> None:
    sc = make_scenario(
        {"name": "p", "keys": keys("k", 2), "outages": [{"start_s": 0, "end_s": 3600, "status": 503}]},
        {"name": "fb", "window_s": 60, "keys": keys("f", 1, rpm=1)},
    )
    server = serve(sc)
    async with client_for_scenario(sc, server, seed=6) as client:
        client.backoff = Backoff(base_s=0.01, max_s=0.02, max_retries=1)
        client.fallbacks[0].pool.preempt = False  # let the fallback key really answer 429
        assert (await client.chat("one")).provider == "fb"
        with pytest.raises(PoolUnavailableError):
            await client.chat("two", deadline_s=2.0)
        primary, fb = client.primary.pool, client.fallbacks[0].pool
    assert fb.key("f0").state is KeyState.COOLING and fb.key("f0").stats.rate_limited == 1
    for key in primary.keys:
        assert key.state is KeyState.OK and key.stats.rate_limited == 0 and key.stats.invalid == 0
        assert key.stats.server_errors >= 1


async def test_a_revoked_key_is_marked_invalid_at_its_first_401_and_gets_no_more_traffic(serve) -> None:
    rev_key = {"label": "rev", "secret": "sk-test-r-00000000000001", "revoke_after": 3}
    sc = make_scenario({"name": "p", "keys": [*keys("k", 2), rev_key]})
    server = serve(sc)
    async with client_for_scenario(sc, server, seed=7) as client:
        # one at a time, so no request is already in flight on the key when its 401 arrives
        result = await TrafficGenerator(client, concurrency=1).run(60)
        rev = client.primary.pool.key("rev")
    assert result.succeeded == 60
    assert rev.state is KeyState.INVALID and rev.stats.invalid == 1
    sim = server.state.stats()["p"]["rev"]
    assert sim == {"200": 3, "401": 1}


async def test_every_key_invalid_is_a_pool_error_not_a_401(serve) -> None:
    sc = make_scenario({"name": "p", "keys": keys("k", 3, invalid=True)})
    server = serve(sc)
    async with client_for_scenario(sc, server, seed=8) as client:
        with pytest.raises(PoolUnavailableError, match="3 keys invalid"):
            await client.chat("hi")


@pytest.mark.wording
async def test_rotation_spends_no_retry_budget(serve) -> None:
    sc = make_scenario({"name": "p", "keys": [*keys("bad", 9, invalid=True), *keys("good", 1)]})
    server = serve(sc)
    async with client_for_scenario(sc, server, seed=9) as client:
        client.backoff = Backoff(max_retries=1)
        resp = await client.chat("hi")
    assert resp.key == "good0"
    assert [s.kind for s in resp.trace.steps].count("attempt") == 10
    rotations = [e for e in client.events if e.kind == "rotated"]
    assert len(rotations) == 9 and rotations[-1].action == "rotated bad8 -> good0"


async def test_transient_errors_back_off_then_fail_clearly(serve) -> None:
    sc = make_scenario({"name": "p", "error_rate": 1.0, "keys": keys("k", 2)})
    server = serve(sc)
    async with client_for_scenario(sc, server, seed=10) as client:
        client.backoff = Backoff(base_s=0.01, max_s=0.05, max_retries=2)
        with pytest.raises(PoolUnavailableError, match="failing: 500") as err:
            await client.chat("hi")
        assert err.value.last_status == 500
        trace = client.traces[-1]
    kinds = [s.kind for s in trace.steps]
    assert kinds.count("attempt") == 3 and kinds.count("backoff") == 2
    assert all(k.state is KeyState.OK for k in client.primary.pool.keys)


async def test_request_errors_are_returned_to_the_caller_without_rotation(serve) -> None:
    from pooltui.providers import ApiRequest

    sc = make_scenario({"name": "p", "keys": keys("k", 2)})
    server = serve(sc)
    async with client_for_scenario(sc, server, seed=11) as client:
        resp = await client.send(ApiRequest("POST", "/chat/completions", {"model": "x"}))
    assert resp.status == 400 and len([s for s in resp.trace.steps if s.kind == "attempt"]) == 1


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
async def test_stream_moves_to_another_key_only_before_its_first_data_event(serve, dialect: str) -> None:
    sc = make_scenario({"name": "p", "dialect": dialect, "keys": [
        {"label": "early", "secret": "sk-test-early-000000000001", "stream_fault": "before-data"},
        {"label": "good", "secret": "sk-test-good-0000000000002"}]})
    server = serve(sc)
    async with client_for_scenario(sc, server, seed=12) as client:
        client.backoff = Backoff(base_s=0.01, max_s=0.02)
        stream = await client.open_stream(client.chat_builder("hi", stream=True))
        body = b"".join([c async for c in stream])
        assert stream.key == "good"
        assert stream.tokens[1] > 0
        assert (b"[DONE]" in body) if dialect == "openai" else (b"message_stop" in body)
        attempts = [(s.key, s.detail["outcome"]) for s in stream.trace.steps if s.kind == "attempt"]
        assert attempts == [("early", "transient"), ("good", "ok")]
        assert client.primary.pool.key("good").stats.tokens_out == stream.tokens[1]


async def test_stream_stays_on_its_key_after_the_first_data_event(serve) -> None:
    sc = make_scenario({"name": "p", "dialect": "anthropic", "keys": [
        {"label": "late", "secret": "sk-test-late-0000000000001", "stream_fault": "after-data"},
        {"label": "good", "secret": "sk-test-good-0000000000002"}]})
    server = serve(sc)
    async with client_for_scenario(sc, server, "failover", seed=13) as client:
        stream = await client.open_stream(client.chat_builder("hi", stream=True))
        body = b"".join([c async for c in stream])
    assert stream.key == "late"
    assert b"overloaded_error" in body  # the error reaches the caller in-band
    assert [s.key for s in stream.trace.steps if s.kind == "attempt"] == ["late"]
    assert any(e.kind == "transport" and e.key == "late" for e in client.events)


async def test_quota_exhausted_key_is_parked(serve) -> None:
    sc = make_scenario({"name": "p", "keys": [*keys("k", 2), {"label": "free", "secret": "sk-test-free-000000001",
                                                              "daily_quota": 4}]})
    server = serve(sc)
    async with client_for_scenario(sc, server, seed=14) as client:
        result = await TrafficGenerator(client, concurrency=2).run(30)
        free = client.primary.pool.key("free")
    assert result.succeeded == 30
    assert free.state is KeyState.EXHAUSTED and free.stats.ok == 4 and free.stats.quota == 1
    assert server.state.stats()["p"]["free"] == {"200": 4, "429": 1}


async def test_tokens_are_counted_from_usage(serve) -> None:
    sc = make_scenario({"name": "p", "keys": keys("k", 1)})
    server = serve(sc)
    async with client_for_scenario(sc, server, seed=15) as client:
        resp = await client.chat("hello", max_tokens=5)
        k = client.primary.pool.key("k0")
    usage = resp.json()["usage"]
    assert (k.stats.tokens_in, k.stats.tokens_out) == (usage["prompt_tokens"], usage["completion_tokens"]) != (0, 0)


async def test_trace_explains_exclusions(serve) -> None:
    from pooltui.core import format_trace

    sc = make_scenario({"name": "p", "keys": [*keys("k", 2), {"label": "gone", "secret": "sk-test-g-000000000001",
                                                              "invalid": True}]})
    server = serve(sc)
    async with client_for_scenario(sc, server, seed=16) as client:
        for _ in range(4):
            await client.chat("x")
        text = format_trace(client.traces[-1])
    assert "excluded: gone invalid" in text and "from 2 available" in text


async def test_an_outage_sends_requests_straight_to_the_fallback(serve) -> None:
    sc = make_scenario(
        {"name": "p", "keys": keys("k", 2), "outages": [{"start_s": 0, "end_s": 3600, "status": 529}]},
        {"name": "fb", "keys": keys("f", 1)},
    )
    server = serve(sc)
    async with client_for_scenario(sc, server, seed=17) as client:
        client.backoff = Backoff(base_s=0.01, max_s=0.02, max_retries=3)
        for _ in range(6):
            assert (await client.chat("hi")).provider == "fb"
        primary_attempts = sum(k.stats.requests for k in client.primary.pool.keys)
        later = await client.chat("during the outage")
    assert client.primary.breaker.is_open and primary_attempts <= 8
    assert [s.kind for s in later.trace.steps][:2] == ["skip", "fallback"]
    assert later.trace.steps[0].detail["reason"].startswith("p: outage suspected, skipped for ")  # the skip says why
    assert any(e.change is StateChange.OUTAGE_OPENED for e in client.events)
