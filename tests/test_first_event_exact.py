"""How a stream's first event is judged (issue 25, item 6: survivors in PoolClient._await_first_event): a 200
stream's rate-limit headers are read in its dialect; an error sent as the first event is classified in the
upstream's dialect, from its body, at the time it came."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from pooltui.client.pool_client import PoolUnavailableError
from pooltui.core import KeyState
from pooltui.core.trace import RequestTrace
from pooltui.sim.wiring import client_for_scenario
from tests.conftest import make_scenario
from tests.odd_upstream import OddUpstream, head
from tests.test_stream_close_exact import opened, pool_of

pytestmark = pytest.mark.asyncio


async def test_a_streams_rate_limit_headers_are_read_in_its_dialect(serve) -> None:
    sc = make_scenario({"name": "p", "dialect": "anthropic",
                        "keys": [{"label": "k0", "secret": "sk-test-first-000000000001", "rpm": 100}]})
    server = serve(sc)
    async with client_for_scenario(sc, server, seed=5) as client:
        stream = await opened(client, None)
        _ = [chunk async for chunk in stream]
        limits = pool_of(client).key("k0").stats.limits
    assert limits is not None and limits.requests_limit == 100 and limits.requests_remaining == 99
    assert limits.requests_reset_s is not None and 0 < limits.requests_reset_s <= 62  # a minute, from the sim's clock


async def limited_first_event(writer: asyncio.StreamWriter) -> None:
    event = {"error": {"type": "rate_limit_error", "message": "Rate limit reached for requests",
                       "reset_at": int(time.time()) + 45}}
    writer.write(head() + b"data: " + json.dumps(event).encode() + b"\n\n")


def attempts(traces: list[RequestTrace]) -> list[tuple[str, int | None, str]]:
    return [(s.detail["outcome"], s.detail["status"], s.detail["reason"]) for t in traces for s in t.steps
            if s.kind == "attempt"]


async def test_a_rate_limit_sent_as_the_first_event_cools_the_key_for_that_model() -> None:
    with OddUpstream(limited_first_event) as up:
        traces: list[RequestTrace] = []
        async with up.client(max_attempts=1) as client:
            client.outcome_listeners.append(lambda outcome, provider, trace: traces.append(trace))
            with pytest.raises(PoolUnavailableError):
                await client.open_stream(client.chat_builder("hi", stream=True, model="model-a"), deadline_s=0.5)
            pool = pool_of(client)
            key = pool.key("k0")
            assert key.state is KeyState.COOLING and key.until is not None
            assert 40 <= key.until - pool.clock.now() <= 46  # the body's reset_at, read at the time it came
            assert attempts(traces) == [("rate_limited", 200, "Rate limit reached for requests")]
            assert pool.pick(model="model-b") is key  # its cooldown was model-a's: openai limits per model


async def only_done(writer: asyncio.StreamWriter) -> None:
    writer.write(head() + b": keep-alive\n\ndata: [DONE]\n\n")


async def test_a_stream_that_ends_before_any_data_is_a_transient_failure() -> None:
    with OddUpstream(only_done) as up:
        traces: list[RequestTrace] = []
        async with up.client(max_attempts=2) as client:
            client.outcome_listeners.append(lambda outcome, provider, trace: traces.append(trace))
            with pytest.raises(PoolUnavailableError) as failed:
                await client.open_stream(client.chat_builder("hi", stream=True), deadline_s=5)
    assert attempts(traces) == [("transient", 200, "stream ended before any data")] * 2
    assert failed.value.last_status == 200
    assert up.requests == 2
