"""The seed's own production setup through ``pooltui proxy``: a pool of two Anthropic keys as the primary and
one OpenRouter key (openai-style Chat Completions) as the fallback; and the reverse. The primary is put in an
outage; the fallback of the other dialect serves non-streaming, streaming and a tool-use round trip, driven
by the official SDKs over real HTTP, the config read from a real TOML file (issue 21 item 1)."""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest

from pooltui.session.local import config_session
from pooltui.store.config import ConfigEditor, KeyEntry, ProviderConfig, load_config
from pooltui.store.secrets import SecretStore
from tests.conftest import keys, make_scenario
from tests.test_proxy import ProxyThread, no_secret_in

WEATHER = {"name": "get_weather", "description": "The weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def seed_setup(serve, tmp_path, primary: str = "anthropic"):
    """The simulator with an anthropic pool of two keys and an openai-style (OpenRouter) key; a config whose
    primary is ``primary`` (``anthropic``: fallback ``openrouter``; ``openai``: the reverse, fallback ``claude``).
    Returns (proxy thread, simulator, secrets)."""
    sc = make_scenario({"name": "ant", "dialect": "anthropic", "keys": keys("a", 2)},
                       {"name": "or", "keys": keys("o", 1)})
    server = serve(sc)
    store = SecretStore(tmp_path / "data")
    path = tmp_path / "config.toml"
    with ConfigEditor(path) as cfg:
        ant = ProviderConfig("anthropic", "anthropic", server.base_url("ant"))
        orr = ProviderConfig("openrouter", "openrouter", server.base_url("or"))
        for p, sim_name in ((ant, "ant"), (orr, "or")):
            sim = next(x for x in sc.providers if x.name == sim_name)
            for k in sim.keys:
                p.keys.append(KeyEntry(k.label, store.put(p.name, k.label, k.secret)))
        if primary == "anthropic":
            ant.fallback = ["openrouter"]
            orr.model_map = {"claude-sonnet-4-5": "anthropic/claude-sonnet-4.5"}
            cfg.providers["anthropic"], cfg.providers["openrouter"] = ant, orr
        else:
            orr.fallback = ["anthropic"]
            ant.default_model = "claude-sonnet-4-5"
            cfg.providers["openrouter"], cfg.providers["anthropic"] = orr, ant
    session, problems = config_session(load_config(path), store, None, primary if primary == "anthropic"
                                       else "openrouter")
    assert not problems
    secrets = [k.secret for p in sc.providers for k in p.keys]
    return session, server, secrets


def outage(server, sim_name: str, status: int) -> None:
    httpx.post(f"{server.url}/_sim/outage/{sim_name}", params={"status": status}).raise_for_status()


def sim_served(server, sim_name: str) -> int:
    stats = httpx.get(f"{server.url}/_sim/stats").json()[sim_name]
    return sum(n for by_status in stats.values() for s, n in by_status.items() if s == "200")


@pytest.mark.wording
def test_anthropic_pool_in_an_outage_is_served_by_the_openrouter_fallback(serve, tmp_path) -> None:
    session, server, secrets = seed_setup(serve, tmp_path, "anthropic")
    outage(server, "ant", 529)
    with ProxyThread({"anthropic": session.clients["anthropic"]}, session=session) as px:
        sdk = anthropic.Anthropic(base_url=px.service.url, api_key="anything", max_retries=0)
        # non-streaming
        msg = sdk.messages.create(model="claude-sonnet-4-5", max_tokens=64, system="Be brief.",
                                  messages=[{"role": "user", "content": "hi"}])
        assert msg.type == "message" and msg.role == "assistant" and msg.content[0].type == "text"
        assert msg.content[0].text and msg.stop_reason == "end_turn" and msg.model == "claude-sonnet-4-5"
        assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
        # streaming, event by event
        with sdk.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=ASK) as stream:
            kinds = [event.type for event in stream]
            final = stream.get_final_message()
        assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and "content_block_delta" in kinds
        assert final.content[0].text and final.usage.output_tokens > 0
        # a tool-use round trip
        first = sdk.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=ASK, tools=[WEATHER])
        assert first.stop_reason == "tool_use"
        call = next(b for b in first.content if b.type == "tool_use")
        assert call.name == "get_weather" and isinstance(call.input, dict) and "city" in call.input
        second = sdk.messages.create(model="claude-sonnet-4-5", max_tokens=64, tools=[WEATHER], messages=[
            *ASK, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21 C"}]},
        ])
        assert second.stop_reason == "end_turn" and "sunny" in second.content[0].text
        # a streamed tool call
        with sdk.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=ASK, tools=[WEATHER]) as stream:
            streamed = stream.get_final_message()
        assert streamed.stop_reason == "tool_use"
        assert next(b for b in streamed.content if b.type == "tool_use").input == call.input
        raw = httpx.post(f"{px.service.url}/v1/messages", headers={"x-api-key": "x", "anthropic-version": "2023-06-01"},
                         json={"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": ASK})
        models = httpx.get(f"{px.service.url}/v1/models", headers={"x-api-key": "x",
                                                                   "anthropic-version": "2023-06-01"}).json()
        state = px.proxy.state()
        trace = "\n".join(t["text"] for t in state["traces"]["anthropic"])
    assert any(e["action"] == "fell back to openrouter (chat translated to its API)" for e in state["events"])
    assert "claude-sonnet-4-5" in [m["id"] for m in models["data"]]  # the model map's name for callers
    assert raw.headers["x-pooltui-translated"] == "anthropic->openai"
    assert raw.headers["x-pooltui-served-by"].startswith("openrouter/")
    assert "translated anthropic Messages -> openai Chat Completions for openrouter" in trace
    assert "claude-sonnet-4-5 -> anthropic/claude-sonnet-4.5" in trace
    assert sim_served(server, "ant") == 0 and sim_served(server, "or") == 6
    no_secret_in(raw.text, json.dumps(dict(raw.headers)), trace)
    assert not any(secret in text for secret in secrets for text in (raw.text, trace, json.dumps(dict(raw.headers))))


def test_openai_pool_in_an_outage_is_served_by_the_anthropic_fallback(serve, tmp_path) -> None:
    session, server, _ = seed_setup(serve, tmp_path, "openai")
    outage(server, "or", 503)
    tool = {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city",
                                             "parameters": WEATHER["input_schema"]}}
    with ProxyThread({"openrouter": session.clients["openrouter"]}, session=session) as px:
        sdk = openai.OpenAI(base_url=f"{px.service.url}/v1", api_key="anything", max_retries=0)
        done = sdk.chat.completions.create(model="anthropic/claude-sonnet-4.5", max_tokens=64, messages=[
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
        assert done.choices[0].message.content and done.choices[0].finish_reason == "stop"
        assert done.usage.prompt_tokens > 0 and done.usage.completion_tokens > 0
        chunks = list(sdk.chat.completions.create(model="anthropic/claude-sonnet-4.5", max_tokens=64, messages=ASK,
                                                  stream=True, stream_options={"include_usage": True}))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
        assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
        first = sdk.chat.completions.create(model="anthropic/claude-sonnet-4.5", max_tokens=64, messages=ASK,
                                            tools=[tool])
        assert first.choices[0].finish_reason == "tool_calls"
        call = first.choices[0].message.tool_calls[0]
        assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)
        second = sdk.chat.completions.create(model="anthropic/claude-sonnet-4.5", max_tokens=64, tools=[tool],
                                             messages=[*ASK, first.choices[0].message.model_dump(exclude_none=True),
                                                       {"role": "tool", "tool_call_id": call.id,
                                                        "content": "sunny, 21 C"}])
        assert second.choices[0].finish_reason == "stop" and "sunny" in second.choices[0].message.content
        with sdk.chat.completions.stream(model="anthropic/claude-sonnet-4.5", max_tokens=64, messages=ASK,
                                         tools=[tool]) as stream:
            streamed = stream.get_final_completion()
        streamed_call = streamed.choices[0].message.tool_calls[0].function
        assert json.loads(streamed_call.arguments) == json.loads(call.function.arguments)
    assert sim_served(server, "or") == 0 and sim_served(server, "ant") == 5


def test_what_cannot_be_translated_is_refused_naming_the_field(serve, tmp_path) -> None:
    session, server, _ = seed_setup(serve, tmp_path, "anthropic")
    outage(server, "ant", 529)
    with ProxyThread({"anthropic": session.clients["anthropic"]}, session=session) as px:
        sdk = anthropic.Anthropic(base_url=px.service.url, api_key="anything", max_retries=0)
        with pytest.raises(anthropic.BadRequestError) as err:
            sdk.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": [
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}]}])
    message = err.value.body["error"]["message"]
    assert "openrouter" in message and "document" in message and "messages[0].content[0]" in message
    assert sim_served(server, "or") == 0
