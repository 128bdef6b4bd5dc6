"""Affinity through the proxy (issue 28): the Anthropic SDK's conversation stays on one key, the proxy's
/metrics counts it per key, /pooltui/state shows the provider's figures and the trace says why."""

from __future__ import annotations

import anthropic
import httpx

from pooltui.sim.wiring import client_for_scenario
from tests.conftest import keys, make_scenario
from tests.test_proxy import ProxyThread

SYSTEM = [{"type": "text", "text": "You review pull requests. " * 700, "cache_control": {"type": "ephemeral"}}]


def test_a_conversation_through_the_proxy_stays_counted_and_explained(serve) -> None:
    spec = {"name": "ant", "dialect": "anthropic", "keys": keys("k", 3)}
    server = serve(make_scenario(spec))
    client = client_for_scenario(make_scenario(spec), server, "round-robin", seed=1, affinity="prefix")
    served_by: list[str] = []
    cached: list[int] = []
    reads: list[int] = []
    with ProxyThread({"ant": client}) as px:
        sdk = anthropic.Anthropic(base_url=px.service.url, api_key="caller-own-key", max_retries=0)
        messages: list[anthropic.types.MessageParam] = [{"role": "user", "content": "review PR 12"}]
        for n in range(4):
            raw = sdk.messages.with_raw_response.create(model="claude-sim-1", max_tokens=4, system=SYSTEM,
                                                         messages=messages)
            served_by.append(raw.headers["x-pooltui-served-by"])
            usage = raw.parse().usage
            cached.append((usage.cache_read_input_tokens or 0) + (usage.cache_creation_input_tokens or 0))
            reads.append(usage.cache_read_input_tokens or 0)
            messages = [*messages, {"role": "assistant", "content": raw.parse().content[0].text},  # type: ignore[union-attr]
                        {"role": "user", "content": f"and now part {n}"}]
        admin = {"authorization": f"Bearer {px.proxy.admin_token}"}
        metrics = httpx.get(f"{px.service.url}/metrics", headers=admin).text
        state = httpx.get(f"{px.service.url}/pooltui/state",
                          headers={"x-pooltui-admin-token": px.proxy.admin_token}).json()
    assert served_by == ["ant/k0"] * 4
    assert 'pooltui_key_affinity_hits_total{key="k0",provider="ant"} 3.0' in metrics
    assert 'pooltui_key_affinity_moves_total{key="k0",provider="ant"} 0.0' in metrics
    assert 'pooltui_pool_conversations{provider="ant"} 1.0' in metrics
    assert reads[0] == 0 and min(reads[1:]) > 0  # turn 1 wrote the prefix, the next turns read it
    assert f'pooltui_key_cache_tokens_total{{key="k0",kind="read",provider="ant"}} {float(sum(reads))}' in metrics
    assert 'pooltui_key_cache_hit_ratio{key="k0",provider="ant"}' in metrics
    figures = state["providers"]["ant"]["affinity"]
    assert {name: figures[name] for name in ("mode", "conversations", "hits", "moves", "new")} == {
        "mode": "prefix", "conversations": 1, "hits": 3, "moves": 0, "new": 1}
    texts = [t["text"] for t in state["traces"]["ant"]]
    assert cached[2] > 1024  # the simulator cached the system prompt (its breakpoint): the trace tells its size
    assert any(f"stayed on k0: its cache holds this conversation ({cached[2]:,}-token prefix)" in text
               for text in texts)
