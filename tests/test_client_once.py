"""One request's facts are worked out once: its request per provider built once (a failed one is not rebuilt to
be recorded), its model read once per provider however many listeners and prices look at it (issue 25, item 2)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from pooltui.client.pool_client import PoolUnavailableError, RequestRecord, UsageRecord
from pooltui.core.budget import Prices
from pooltui.providers.profiles import ApiRequest, ProviderProfile
from pooltui.sim.wiring import client_for_scenario
from tests.conftest import keys, make_scenario

pytestmark = pytest.mark.asyncio


class ModelReads(dict[str, Any]):
    """A request body that counts how often its model is read."""

    reads = 0

    def get(self, name: str, default: Any = None) -> Any:
        if name == "model":
            ModelReads.reads += 1
        return super().get(name, default)


async def test_a_request_no_provider_serves_is_built_once_per_provider_and_recorded_with_its_model(serve) -> None:
    sc = make_scenario({"name": "p", "keys": keys("bad", 1, invalid=True)},
                       {"name": "fb", "keys": keys("worse", 1, invalid=True)})
    server = serve(sc)
    built: Counter[str] = Counter()
    records: list[RequestRecord] = []

    def build(profile: ProviderProfile) -> ApiRequest:
        built[profile.name] += 1
        return profile.chat("hi", model=f"model-of-{profile.name}")

    async with client_for_scenario(sc, server, seed=1) as client:
        client.request_listeners.append(records.append)
        with pytest.raises(PoolUnavailableError):
            await client.send(build)
    assert built == {"p": 1, "fb": 1}  # not built again for its record
    assert [(r.provider, r.model, r.outcome) for r in records] == [("p", "model-of-p", "error")]


async def test_the_model_is_read_once_per_provider_whoever_listens(serve) -> None:
    sc = make_scenario({"name": "p", "keys": keys("k", 2)})
    server = serve(sc)
    usage: list[UsageRecord] = []
    records: list[RequestRecord] = []

    def build(profile: ProviderProfile) -> ApiRequest:
        req = profile.chat("hi", model="gpt-sim-1", max_tokens=5)
        return ApiRequest(req.method, req.path, ModelReads(req.json), stream=req.stream)

    async with client_for_scenario(sc, server, seed=1) as client:
        client.prices = Prices({"gpt-sim-1": (1.0, 2.0)})
        client.usage_listeners.append(usage.append)
        client.request_listeners.append(records.append)
        ModelReads.reads = 0
        resp = await client.send(build)
    assert resp.status == 200
    assert ModelReads.reads == 1
    assert [u.model for u in usage] == ["gpt-sim-1"] and usage[0].cost > 0
    assert [(r.model, r.tokens_out) for r in records] == [("gpt-sim-1", 5)]
