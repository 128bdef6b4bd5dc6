"""Issue 6.1 and 6.2: no retry storms; a transient error's Retry-After is honoured or sends us to the fallback."""

from __future__ import annotations

import time

import pytest

from pooltui.client.pool_client import PoolUnavailableError
from pooltui.core.cooldown import Backoff
from pooltui.sim.wiring import client_for_scenario
from tests.conftest import keys, make_scenario


def _attempts(client) -> list:
    return [s for t in client.traces for s in t.steps if s.kind == "attempt"]


@pytest.mark.wording
async def test_retry_after_zero_does_not_loop(serve) -> None:
    sc = make_scenario({"name": "p", "window_s": 60, "keys": keys("k", 2, rpm=0, retry_after=0)})
    server = serve(sc)
    client = client_for_scenario(sc, server, seed=1, deadline_s=5)
    with pytest.raises(PoolUnavailableError):
        await client.chat("hi")
    await client.aclose()
    assert len(_attempts(client)) <= 4, f"{len(_attempts(client))} attempts for one request"
    limited = [e for e in client.events if e.kind == "rate_limited"]
    assert limited and all("floor 1 s applied" in e.action for e in limited)  # "0 s" never means 0 s


async def test_a_tiny_retry_after_meets_the_floor_and_the_attempt_cap(serve) -> None:
    sc = make_scenario({"name": "p", "window_s": 60, "keys": keys("k", 2, rpm=0, retry_after=0.01)})
    server = serve(sc)
    client = client_for_scenario(sc, server, seed=1, deadline_s=10)
    with pytest.raises(PoolUnavailableError) as err:
        await client.chat("hi")
    await client.aclose()
    steps = [s for t in client.traces for s in t.steps]
    assert len(_attempts(client)) == 4, "each of the 2 keys at most twice"
    assert any(s.kind == "floor" for s in steps) and any(s.kind == "cap" for s in steps)
    assert "attempt cap" in str(err.value)
    stats = server.state.stats()["p"]
    assert sum(sum(c.values()) for c in stats.values()) == 4


async def _through_an_outage(serve, retry_after: float, ends_s: float, n_keys: int):
    """One request to a provider in an outage whose 503s carry ``retry_after``; a healthy fallback behind it."""
    sc = make_scenario({"name": "p", "outage_retry_after": retry_after, "outages": [{"start_s": 0, "end_s": ends_s}],
                        "keys": keys("k", n_keys)},
                       {"name": "fb", "keys": keys("f", 1)})
    server = serve(sc)
    client = client_for_scenario(sc, server, seed=1, deadline_s=10)
    server.state.providers["p"].started = time.monotonic()  # the outage's clock starts with the request, not
    # with the server: on a loaded machine the first attempt came after a 0.3 s outage had ended
    t0 = time.perf_counter()
    resp = await client.chat("hi")
    took = time.perf_counter() - t0
    await client.aclose()
    steps = [s for t in client.traces for s in t.steps]
    return resp, took, steps


async def test_a_503_whose_retry_after_does_not_fit_goes_to_the_fallback_at_once(serve) -> None:
    resp, _, steps = await _through_an_outage(serve, retry_after=30, ends_s=600, n_keys=2)
    assert resp.status == 200 and resp.provider == "fb"
    assert len([s for s in steps if s.kind == "attempt" and s.provider == "p"]) == 1
    assert not [s for s in steps if s.kind == "backoff"], "no early retry inside the provider's Retry-After"
    assert any(s.kind == "skip" and "does not fit the deadline" in s.detail.get("reason", "") for s in steps)


async def test_a_503_whose_retry_after_fits_is_honoured_not_retried_early(serve) -> None:
    # over before the retry (at 1.2 s or later), however late the first attempt lands within its first second
    resp, took, steps = await _through_an_outage(serve, retry_after=1.2, ends_s=1.0, n_keys=1)
    assert resp.status == 200 and resp.provider == "p"
    assert took >= 1.2, "the retry waited for the provider's Retry-After"
    backoffs = [s for s in steps if s.kind == "backoff"]
    assert len(backoffs) == 1 and backoffs[0].detail["seconds"] >= 1.2


def test_backoff_with_a_zero_base_never_busy_waits() -> None:
    backoff = Backoff(base_s=0.0)
    assert min(backoff.delay(n) for n in range(1, 20)) >= 0.05
