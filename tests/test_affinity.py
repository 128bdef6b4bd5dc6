"""Conversations keep their key (issue 28): PoolClient against the simulator on 127.0.0.1, counted by what the
simulator logged per key."""

from __future__ import annotations

from typing import Any

import pytest

from pooltui.client.pool_client import PoolClient
from pooltui.core.affinity import SESSION_HEADER
from pooltui.core.trace import format_trace
from pooltui.providers.profiles import ApiRequest, ProviderProfile
from pooltui.sim.wiring import client_for_scenario
from tests.conftest import keys, make_scenario

pytestmark = pytest.mark.asyncio

SYSTEM = "You are a careful coding agent. " * 160  # long enough to be cached (over 1,024 tokens)


def turn(conversation: int, n: int, session: str | None = None) -> Any:
    """Turn ``n`` of conversation ``conversation``: its system prompt, first message and the turns since."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM},
                                      {"role": "user", "content": f"task {conversation}: refactor the parser"}]
    for i in range(n):
        messages += [{"role": "assistant", "content": f"step {i} done"}, {"role": "user", "content": f"go on {i}"}]
    headers = {SESSION_HEADER: session} if session is not None else {}

    def build(profile: ProviderProfile) -> ApiRequest:
        return ApiRequest("POST", profile.chat_path, {"model": "gpt-4o-mini", "max_tokens": 8,
                                                      "messages": messages}, dict(headers))
    return build


def served(server, provider: str = "p") -> dict[str, int]:
    """Successes per key, as the simulator counted them."""
    return {label: int(counts.get("200", 0)) for label, counts in server.state.stats()[provider].items()}


async def talk(client: PoolClient, conversation: int, turns: int, start: int = 0) -> list[str]:
    out = []
    for n in range(start, start + turns):
        resp = await client.send(turn(conversation, n))
        assert resp.status == 200
        out.append(resp.key or "")
    return out


async def test_a_conversation_stays_on_its_key_over_ten_turns(serve) -> None:
    sc = make_scenario({"name": "p", "keys": keys("k", 3)})
    server = serve(sc)
    async with client_for_scenario(sc, server, "round-robin", seed=1, affinity="prefix") as client:
        first = await talk(client, 1, 1)
        other = await talk(client, 2, 1)  # a second conversation starts on the next key of the rotation
        rest = [*(await talk(client, 1, 9, start=1)), *(await talk(client, 2, 9, start=1))]
    assert first[0] != other[0]
    assert set(rest[:9]) == {first[0]} and set(rest[9:]) == {other[0]}
    logged = served(server)
    assert logged[first[0]] == 10 and logged[other[0]] == 10 and sum(logged.values()) == 20
    pool = client.primary.pool
    assert pool is not None and pool.conversations == 2 and pool.affinity_new == 2
    assert pool.key(first[0]).affinity_hits == 9 and pool.key(other[0]).affinity_hits == 9


async def test_off_rotates_as_before(serve) -> None:
    sc = make_scenario({"name": "p", "keys": keys("k", 3)})
    server = serve(sc)
    async with client_for_scenario(sc, server, "round-robin", seed=1, affinity="off") as client:
        used = await talk(client, 1, 6)
    assert used == ["k0", "k1", "k2", "k0", "k1", "k2"]
    assert served(server) == {"k0": 2, "k1": 2, "k2": 2}


async def test_it_moves_on_at_once_when_its_key_429s_and_stays_on_the_new_key(serve) -> None:
    sc = make_scenario({"name": "p", "success_headers": False, "window_s": 60.0,
                        "keys": [*keys("k", 1, rpm=3), *keys("m", 2)]})
    server = serve(sc)
    async with client_for_scenario(sc, server, "round-robin", seed=1, affinity="prefix") as client:
        before = await talk(client, 1, 3)
        resp = await client.send(turn(1, 3))
        after = await talk(client, 1, 6, start=4)
    assert before == ["k0"] * 3
    assert resp.status == 200 and resp.key == "m0"
    assert resp.trace.waited_s == 0.0 and "wait" not in [s.kind for s in resp.trace.steps]  # no wait for k0
    assert after == ["m0"] * 6
    stats = server.state.stats()["p"]
    assert int(stats["k0"].get("429", 0)) == 1 and int(stats["k0"]["200"]) == 3
    assert served(server) == {"k0": 3, "m0": 7, "m1": 0}
    text = format_trace(resp.trace)
    assert "moved from k0 (cooling): affinity follows" in text
    pool = client.primary.pool
    assert pool is not None and pool.key("k0").affinity_moves == 1 and pool.key("m0").affinity_hits == 6


async def test_a_session_header_overrides_the_prefix_hash(serve) -> None:
    sc = make_scenario({"name": "p", "keys": keys("k", 3)})
    server = serve(sc)
    async with client_for_scenario(sc, server, "round-robin", seed=1, affinity="prefix") as client:
        # different prompts, one session: one key
        same = [(await client.send(turn(c, 0, session="agent-7"))).key for c in range(4)]
        # the same prompt, two sessions: the rotation gives each its own key
        a = (await client.send(turn(9, 0, session="s-a"))).key
        b = (await client.send(turn(9, 0, session="s-b"))).key
    assert len(set(same)) == 1 and a != b


async def test_session_mode_ignores_the_prompt(serve) -> None:
    sc = make_scenario({"name": "p", "keys": keys("k", 3)})
    server = serve(sc)
    async with client_for_scenario(sc, server, "round-robin", seed=1, affinity="session") as client:
        used = await talk(client, 1, 3)
        pinned = [(await client.send(turn(c, 0, session="agent-1"))).key for c in range(3)]
    assert used == ["k0", "k1", "k2"] and len(set(pinned)) == 1


async def test_with_affinity_wait_it_waits_for_its_key_back_soon(serve) -> None:
    sc = make_scenario({"name": "p", "success_headers": False, "window_s": 2.0,
                        "keys": [*keys("k", 1, rpm=1), *keys("m", 2)]})
    server = serve(sc)
    async with client_for_scenario(sc, server, "round-robin", seed=1, affinity="prefix") as client:
        pool = client.primary.pool
        assert pool is not None
        pool.set_affinity("prefix", wait_s=5.0)  # the user says: a cache is worth up to 5 s
        first = await talk(client, 1, 1)
        resp = await client.send(turn(1, 1))  # k0 answers 429 (1 a window): back within 2 s, so it waits
    assert first == ["k0"] and resp.status == 200 and resp.key == "k0"
    assert 0 < resp.trace.waited_s <= 5.0
    assert "waits for k0" in format_trace(resp.trace)
    assert served(server) == {"k0": 2, "m0": 0, "m1": 0}
