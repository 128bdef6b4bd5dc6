"""``python -m pooltui.bench affinity``: 20 conversations of 15 turns over 3 keys in 3 organizations, at 0.75x and
1.5x of the pool's capacity, each strategy with and without affinity: served, 429s, cache hit rate, cost.

Every turn resends the conversation (a long system prompt with a ``cache_control`` breakpoint, the turns so far,
a breakpoint on the newest message, as agents send them) to the simulator, which caches prompts per organization
with Anthropic's rules (see ``sim/prompt_cache.py``) and reports the cache in usage. The conversations take turns
at a steady pace; a turn goes out when its time comes and the previous turn has its answer. In simulated time
(a fast-forwarded loop), so a run of minutes takes seconds; the same seed gives the same figures.

Target (issue 28): a hit rate of at least 80% with affinity at 0.75x (round-robin over 3 organizations gives about
a third), served unchanged at 0.75x and not lower at 1.5x."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from pooltui.client.pool_client import PoolClient, PoolUnavailableError
from pooltui.core.budget import Prices
from pooltui.providers.profiles import ApiRequest
from pooltui.session.simtime import run_simulated
from pooltui.sim.inprocess import InProcessSim
from pooltui.sim.scenario import Scenario, scenario_from_dict
from pooltui.sim.wiring import client_for_scenario

MODEL = "claude-sonnet-4-5"
PRICES = Prices.from_dict({MODEL: {"input_per_mtok": 3.0, "output_per_mtok": 15.0}})  # cache: the default multipliers
RPM = 20  # per key: 3 keys serve 1 request a second
#: each conversation's own context (its repository's files): what its organization's cache holds for it alone
CONTEXT = "a file of the repository under work, read into the conversation's context; " * 300


@dataclass(frozen=True)
class AffinityRow:
    """One run: a strategy with or without affinity at a load (a multiple of the pool's capacity)."""

    load: float
    strategy: str
    affinity: str
    requests: int
    served: int
    upstream_429: int
    cache_read: int
    cacheable: int
    cost: float

    @property
    def hit_rate(self) -> float:
        return self.cache_read / self.cacheable if self.cacheable else 0.0


def conversations_scenario() -> Scenario:
    """3 keys, each of its own organization (its own prompt cache), ``RPM`` requests a minute each."""
    return scenario_from_dict({"name": "affinity-bench", "seed": 7, "traffic": {"deadline_s": 60.0}, "providers": [
        {"name": "ant", "dialect": "anthropic", "window_s": 60.0, "latency_ms": [400, 1200],
         "keys": [{"label": f"org-{org}", "secret": f"sk-ant-bench-{org}-{'0' * 24}", "rpm": RPM, "org": org}
                  for org in "abc"]}]})


def _turn(conversation: int, n: int) -> ApiRequest:
    """Turn ``n`` of a conversation: its own context, the turns so far (each with a tool result), the newest
    message with a breakpoint."""
    messages: list[dict[str, Any]] = []
    for i in range(n + 1):
        if i:
            messages.append({"role": "assistant", "content": f"done with step {i - 1} of task {conversation}"})
        text = f"task {conversation}, step {i}: " + ("the tool's output for this step; " * 60 if i else CONTEXT)
        messages.append({"role": "user", "content": [{"type": "text", "text": text}]})
    messages[-1]["content"][0]["cache_control"] = {"type": "ephemeral"}
    body = {"model": MODEL, "max_tokens": 64, "messages": messages,
            "system": [{"type": "text", "text": "You are a careful coding agent; follow the house style."}]}
    return ApiRequest("POST", "/v1/messages", body)


async def _run(sc: Scenario, strategy: str, affinity: str, load: float, conversations: int, turns: int
               ) -> AffinityRow:
    loop = asyncio.get_running_loop()
    server = InProcessSim(sc)
    http = server.http_client()
    client: PoolClient = client_for_scenario(sc, server, strategy, seed=sc.seed, clock=server.clock, http=http,
                                             latency_clock=loop.time, affinity=affinity)
    capacity = len(sc.primary.keys) * RPM / sc.primary.window_s  # requests a second
    gap = conversations / (capacity * load)  # seconds between two turns of one conversation
    served = cache_read = cacheable = 0
    cost = 0.0
    start = loop.time()

    async def talk(c: int) -> None:
        nonlocal served, cache_read, cacheable, cost
        for n in range(turns):
            due = start + c * gap / conversations + n * gap
            await asyncio.sleep(max(0.0, due - loop.time()))
            try:
                resp = await client.send(_turn(c, n))
            except PoolUnavailableError:
                continue
            if resp.status == 200:
                served += 1
                cache_read += resp.usage.cache_read
                cacheable += resp.usage.cacheable
                cost += PRICES.cost_of(MODEL, resp.usage) or 0.0

    async with client:
        await asyncio.gather(*(talk(c) for c in range(conversations)))
    await http.aclose()
    limited = sum(c.by_status.get(429, 0) for c in server.state.providers[sc.primary.name].counters.values())
    return AffinityRow(load, strategy, affinity, conversations * turns, served, limited, cache_read, cacheable, cost)


def bench_affinity(loads: tuple[float, ...] = (0.75, 1.5), strategies: tuple[str, ...] = ("round-robin",),
                   conversations: int = 20, turns: int = 15) -> list[AffinityRow]:
    """Print the table and return its rows (per load: each strategy without affinity, then with it)."""
    sc = conversations_scenario()
    print(f"affinity: {conversations} conversations of {turns} turns over 3 keys in 3 organizations ({RPM} rpm "
          f"each), Anthropic-style prompt caching in the simulator, {MODEL} prices (cache write 1.25x, read 0.1x); "
          "simulated time")
    print(f"  {'load':>5} {'strategy':22} {'served':>7} {'429s':>5} {'hit rate':>9} {'cost $':>9}")
    rows: list[AffinityRow] = []
    for load in loads:
        for strategy in strategies:
            for affinity in ("off", "prefix"):
                row = run_simulated(_run(sc, strategy, affinity, load, conversations, turns))
                rows.append(row)
                name = strategy + ("+affinity" if affinity != "off" else "")
                print(f"  {load:>4g}x {name:22} {row.served:>3}/{row.requests:<3} {row.upstream_429:>5} "
                      f"{row.hit_rate:>8.0%} {row.cost:>9.4f}")
    return rows
