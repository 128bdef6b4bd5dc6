"""What round-robin without affinity would have paid, live (issue 28): a conversation kept on one key through the
proxy; /metrics, /pooltui/state (the provider's figures) and the key's detail screen carry the estimate.

With one breakpoint on a fixed system prompt of S tokens over 3 keys in 3 organizations, the model of
core/round_robin_cost.py has a closed form: turn t (t >= 2) would find S cached on its group unless none of the
t - 1 earlier turns went there, so it reads S (1 - (2/3)^(t-1)) on average, and writes the rest at the write price."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from pooltui.core.budget import Prices
from pooltui.sim.wiring import client_for_scenario
from pooltui.tui.screens import key_detail
from tests.conftest import keys, make_scenario
from tests.test_proxy import ProxyThread

SYSTEM = [{"type": "text", "text": "You review pull requests. " * 700, "cache_control": {"type": "ephemeral"}}]
PRICES = {"claude-sim-1": {"input_per_mtok": 3.0, "output_per_mtok": 15.0}}  # writes 3.75, reads 0.30 (defaults)
TURNS = 5


def test_the_round_robin_estimate_reaches_metrics_state_and_the_key_detail(serve) -> None:
    spec = {"name": "ant", "dialect": "anthropic", "keys": keys("k", 3)}
    server = serve(make_scenario(spec))
    client = client_for_scenario(make_scenario(spec), server, "round-robin", seed=1, affinity="prefix")
    client.prices = Prices.from_dict(PRICES)
    reads: list[int] = []
    with ProxyThread({"ant": client}) as px:
        sdk = anthropic.Anthropic(base_url=px.service.url, api_key="caller-own-key", max_retries=0)
        messages: list[anthropic.types.MessageParam] = [{"role": "user", "content": "review PR 12"}]
        for n in range(TURNS):
            answer = sdk.messages.create(model="claude-sim-1", max_tokens=4, system=SYSTEM, messages=messages)
            reads.append(answer.usage.cache_read_input_tokens or 0)
            messages = [*messages, {"role": "assistant", "content": answer.content[0].text},  # type: ignore[union-attr]
                        {"role": "user", "content": f"and now part {n}"}]
        admin = {"authorization": f"Bearer {px.proxy.admin_token}"}
        metrics = httpx.get(f"{px.service.url}/metrics", headers=admin).text
        state = httpx.get(f"{px.service.url}/pooltui/state",
                          headers={"x-pooltui-admin-token": px.proxy.admin_token}).json()
    size = reads[1]
    assert size > 1024 and reads == [0] + [size] * (TURNS - 1)  # affinity: every later turn read the prompt
    extra = sum(size * (2 / 3) ** (t - 1) for t in range(2, TURNS + 1)) * (3.75 - 0.30) / 1e6
    figures = state["providers"]["ant"]["affinity"]
    assert figures["cost_round_robin"] == pytest.approx(figures["cost"] + extra, abs=1e-6)  # cost: rounded to 6
    assert figures["cache_read"] == sum(reads) and figures["cache_hit_rate"] == pytest.approx(
        sum(reads) / figures["cacheable"])
    line = next(x for x in metrics.splitlines()
                if x.startswith('pooltui_key_cost_round_robin_dollars_total{key="k0",provider="ant"}'))
    assert float(line.split()[-1]) == pytest.approx(figures["cost"] + extra, abs=1e-6)
    snap = next(k for k in state["providers"]["ant"]["keys"] if k["label"] == "k0")
    text = key_detail(snap, [], 0.0).plain
    assert "round-robin without affinity would have cost" in text and "hit rate 80%" in text
