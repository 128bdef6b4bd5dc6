"""A client's series count each caller's request exactly once, in the second it ended: requests per second are the
ok, errors and rejected of that second together, and the incident tracker hears of a failure or a fallback's
service (not of a plain success). The real client against the simulator over loopback, on a clock that only moves
when told."""

from __future__ import annotations

import pytest

from pooltui.client.pool_client import PoolUnavailableError
from pooltui.core.clock import FakeClock
from pooltui.providers.profiles import ApiRequest, ProviderProfile
from pooltui.session.views import ClientSeries, panel
from pooltui.sim.wiring import client_for_scenario
from tests.conftest import keys, make_scenario


def ask(profile: ProviderProfile) -> ApiRequest:
    return profile.chat("hi", model="gpt-sim-1", max_tokens=3)


def malformed(profile: ProviderProfile) -> ApiRequest:
    """A request the provider refuses as the caller's own mistake (400): no list of messages."""
    return ApiRequest("POST", profile.chat_path, {"model": "gpt-sim-1", "messages": "hi"})


@pytest.mark.asyncio
async def test_each_callers_request_is_counted_once_in_its_second_and_the_tracker_hears_of_trouble(serve) -> None:
    scenario = make_scenario({"name": "p", "keys": keys("k", 1)}, {"name": "fb", "keys": keys("j", 1)},
                             {"name": "bad", "keys": keys("x", 1, invalid=True)})
    clock = FakeClock()
    async with client_for_scenario(scenario, serve(scenario), seed=1, clock=clock) as client:
        series = ClientSeries(client, clock)
        primary, fallback, bad = client.upstreams
        for _ in range(3):
            assert (await client.send(ask, upstreams=[primary])).status == 200
        assert series.tracker.current is None  # plain successes: no trouble
        clock.advance(1)
        assert (await client.send(malformed, upstreams=[primary])).status == 400
        clock.advance(1)
        with pytest.raises(PoolUnavailableError):
            await client.send(ask, upstreams=[bad])
        assert (await client.send(ask, upstreams=[fallback])).status == 200
        view = panel(client, series, clock.now())
    assert view["callers"] == {"requests": 6, "ok": 4, "errors": 1, "rejected": 1}
    s = view["series"]
    assert (s["requests"][-3:], s["ok"][-3:], s["errors"][-3:]) == ([3, 1, 2], [3, 0, 1], [0, 0, 1])
    assert sum(s["requests"]) == 6 and len(s["requests"]) == 60
    assert view["fallback_served"] == 1 and view["latency"]["requests"] == 6
    assert series.latency_hist.count == series.wait_hist.count == 6
    incident = view["incident"]
    assert incident is not None and (incident["failed"], incident["fallback_served"]) == (1, 1)
