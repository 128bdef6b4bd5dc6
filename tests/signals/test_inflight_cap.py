"""Issue 6.8: a soft cap of requests in flight per key spreads long streams; it never blocks."""

from __future__ import annotations

import pytest

from pooltui.core import Classification, KeySpec, Outcome, Pool
from pooltui.sim.server import ThreadedServer
from tests.safety.test_bounded_requests import UPSTREAM
from tests.signals.helpers import client_with_keys


def test_a_failover_pool_spills_to_the_next_key_at_the_cap_and_never_blocks() -> None:
    pool = Pool("p", [KeySpec(f"k{i}", f"sk-test-cap-{i}-0000000000001") for i in range(3)], "failover",
                max_inflight=1)
    picked = [pool.pick() for _ in range(4)]
    assert [k.label for k in picked] == ["k0", "k1", "k2", "k0"]  # the 4th: every key at the cap, still served
    pool.report(picked[0], Classification(Outcome.OK, 200))
    pool.report(picked[3], Classification(Outcome.OK, 200))
    assert pool.pick().label == "k0"
    uncapped = Pool("q", [KeySpec(f"k{i}", f"sk-test-cap-{i}-0000000000002") for i in range(3)], "failover")
    assert [uncapped.pick().label for _ in range(3)] == ["k0", "k0", "k0"]


@pytest.mark.parametrize(("cap", "expected"), [(1, ["k0", "k1", "k2"]), (None, ["k0", "k0", "k0"])])
async def test_long_streams_spread_over_the_keys(cap, expected) -> None:
    with ThreadedServer(UPSTREAM) as up:
        client = client_with_keys(f"{up.url}/stall/v1", 3, "failover", max_inflight=cap)
        streams = [await client.open_stream(client.chat_builder("hi", stream=True)) for _ in range(3)]
        assert [s.key for s in streams] == expected
        assert any(s.kind == "spill" for s in streams[1].trace.steps) == (cap is not None)
        for stream in streams:
            await stream.aclose()
        assert all(k.streams == 0 for k in client.primary.pool.keys)
        await client.aclose()
