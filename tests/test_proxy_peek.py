"""A large request body goes through the proxy with its model and stream flags peeked at (proxy/peek.py), not
parsed whole: served as it came, its model recorded, its stream relayed with usage; parsed when a provider needs it."""

from __future__ import annotations

import openai

from pooltui.client.pool_client import RequestRecord
from pooltui.providers.profiles import ProviderProfile
from pooltui.proxy.app import PEEK_MIN_BYTES
from pooltui.proxy.dialects import OPENAI, as_it_came
from pooltui.sim.wiring import client_for_scenario
from tests.conftest import keys, make_scenario
from tests.test_proxy import ProxyThread

LONG = [{"role": "user", "content": "a long prompt " * (PEEK_MIN_BYTES // 10)}]


def test_a_large_body_is_served_with_its_model_and_stream_flags(serve) -> None:
    spec = {"name": "oai", "window_s": 60, "keys": keys("k", 2)}
    server = serve(make_scenario(spec))
    client = client_for_scenario(make_scenario(spec), server, "round-robin", seed=1)
    records: list[RequestRecord] = []
    client.request_listeners.append(records.append)
    with ProxyThread({"oai": client}) as px:
        sdk = openai.OpenAI(base_url=f"{px.service.url}/v1", api_key="any", max_retries=0)
        reply = sdk.chat.completions.create(model="gpt-sim-1", messages=LONG, max_tokens=3)
        direct = openai.OpenAI(base_url=server.base_url("oai"), api_key=spec["keys"][0]["secret"], max_retries=0)
        whole = direct.chat.completions.create(model="gpt-sim-1", messages=LONG, max_tokens=3)
        assert reply.usage is not None and whole.usage is not None  # the whole body reached the provider
        assert reply.usage.prompt_tokens == whole.usage.prompt_tokens > 1000
        chunks = list(sdk.chat.completions.create(model="gpt-sim-1", messages=LONG, max_tokens=3, stream=True,
                                                  stream_options={"include_usage": True}))
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert [(r.model, r.outcome) for r in records] == [("gpt-sim-1", "ok"), ("gpt-sim-1", "ok")]


def test_a_body_goes_unparsed_only_where_its_model_keeps_its_name() -> None:
    mapped = ProviderProfile("m", "openai", "http://x/v1", model_map=(("gpt-a", "gpt-b"),))
    sent = as_it_came(OPENAI, mapped, "POST", "/chat/completions", "gpt-c", {}, False, b"{}")
    assert sent is not None and sent.model == "gpt-c" and sent.json is None and sent.content == b"{}"
    assert as_it_came(OPENAI, mapped, "POST", "/chat/completions", "gpt-a", {}, False, b"{}") is None
    other = ProviderProfile("a", "anthropic", "http://x/v1")
    assert as_it_came(OPENAI, other, "POST", "/chat/completions", "gpt-c", {}, False, b"{}") is None
