"""The Redis store decides by an event's change, never by its words (issue 25, item 1): a cooldown that ran out
in one process is not told to the others, in any words (an outage, which is: test_reworded.py); the
fleet's event stream keeps each event's change."""

from __future__ import annotations

import asyncio
import time

import pytest

from pooltui.core import Classification, DeadlineSource, FakeClock, KeySpec, KeyState, Outcome, Pool
from pooltui.core.events import reworded
from pooltui.store.fleet import FleetLink
from tests.conftest import backwards
from tests.shared.test_shared_key_states import SECRETS, answer, pool, sharing, until

pytestmark = pytest.mark.asyncio


async def test_a_cooldown_that_ran_out_here_is_not_told_to_the_others_whatever_its_words(redis_server) -> None:
    clock = FakeClock(time.time())
    a, b = Pool("p", [KeySpec(f"k{i}", s) for i, s in enumerate(SECRETS)], "failover", clock=clock), pool()
    sa, sb = await sharing(redis_server.url, a), await sharing(redis_server.url, b)
    link = FleetLink(redis_server.url, "t")
    try:
        with reworded(backwards):
            answer(a, "k0", Classification(Outcome.RATE_LIMITED, 429, "slow", 30.0, DeadlineSource.RETRY_AFTER))
            await until(lambda: b.key("k0").state is KeyState.COOLING)
            clock.advance(31)
            a.pick()  # a's cooldown of k0 has run out: a's own timer, b keeps its own
            assert a.key("k0").state is KeyState.OK and a.events.recent()[-1].reason == "gnilooc revo"
            a.disable("k2")  # told after the end of the cooldown, so seen after it
            await until(lambda: b.key("k2").state is KeyState.DISABLED)
        assert b.key("k0").state is KeyState.COOLING

        async def stream() -> list:
            return [(e["key"], e["change"]) for _, e in await link.events_after("0-0")]

        deadline = time.monotonic() + 3
        while len(await stream()) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await stream() == [("k0", "cooled"), ("k0", "recovered"), ("k2", "disabled")]
    finally:
        await link.aclose()
        await sa.stop()
        await sb.stop()

