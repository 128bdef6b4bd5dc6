"""A proxied success's prompt-cache use is accounted once its answer is written (client/after_answer.py) as it is
when the client answers at once: its key's cache figures, and the usage record every listener hears (anthropic
over the simulator, the official SDK through the proxy, affinity off: no conversation known)."""

from __future__ import annotations

import anthropic

from pooltui.client.pool_client import UsageRecord
from pooltui.sim.wiring import client_for_scenario
from tests.conftest import keys, make_scenario
from tests.test_prompt_cache import cached_system
from tests.test_proxy import ProxyThread


def test_a_proxied_answers_cache_reads_and_writes_reach_its_key_and_its_usage_record(serve) -> None:
    scenario = make_scenario({"name": "a", "dialect": "anthropic", "keys": keys("s", 1, org="acme")})
    client = client_for_scenario(scenario, serve(scenario), "round_robin", seed=1)
    heard: list[UsageRecord] = []
    client.usage_listeners.append(heard.append)
    with ProxyThread({"a": client}) as px:
        sdk = anthropic.Anthropic(base_url=px.service.url, api_key="caller-own-key", max_retries=0)
        first = sdk.messages.create(model="claude-sim-1", max_tokens=4, **cached_system(2000, question="one"))
        second = sdk.messages.create(model="claude-sim-1", max_tokens=4, **cached_system(2000, question="two"))
    # read once the proxy has stopped, as the records are: the accounting runs after the answer is written, and this
    # thread can read the key between the two (a race that failed under load, (2001, 0) for (2001, 2001))
    [key] = client.primary.pool.snapshot()
    written = first.usage.cache_creation_input_tokens
    assert written and second.usage.cache_read_input_tokens == written
    assert [(u.cache_write, u.cache_read) for u in heard] == [(written, 0), (0, written)]
    assert all(u.cacheable >= written for u in heard)
    assert (key["cache_write"], key["cache_read"]) == (written, written)
    assert key["cacheable"] == sum(u.cacheable for u in heard)
