"""The simulator answers tools over real HTTP, to the official SDKs, and with the translator in between."""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion

from pooltui.providers.translate import (
    AnthropicToOpenAIStream,
    OpenAIToAnthropicStream,
    anthropic_to_openai_request,
    anthropic_to_openai_response,
    openai_to_anthropic_request,
    openai_to_anthropic_response,
)
from pooltui.sim.tools import arguments_for, value_for
from tests.conftest import keys, make_scenario
from tests.translate.test_streams import anthropic_sdk, openai_sdk

SECRET = "sk-test-k-000000000000000000000000"
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                                            "metric": {"type": "boolean"}, "note": {"type": "string"}},
           "required": ["city", "days", "metric"]}
CLOCK = {"type": "object", "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}}, "required": ["zone"]}
A_TOOLS = [{"name": "weather", "description": "Forecast", "input_schema": WEATHER},
           {"name": "clock", "description": "Time", "input_schema": CLOCK}]
O_TOOLS = [{"type": "function", "function": {"name": t["name"], "description": t["description"],
                                             "parameters": t["input_schema"]}} for t in A_TOOLS]
ASK = [{"role": "user", "content": "weather in Paris?"}]
WEATHER_ARGS = {"city": "sim", "days": 1, "metric": True}
RESULT = "Sunny, 24 degrees, light wind from the south-west all afternoon"


@pytest.fixture
def sim(serve):
    return serve(make_scenario({"name": "p", "keys": keys("k", 1)})).url + "/p"


def ant_client(sim: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=sim, api_key=SECRET, max_retries=0)


def oai_client(sim: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim + "/v1", api_key=SECRET, max_retries=0)


def test_values_from_a_json_schema() -> None:
    assert arguments_for(WEATHER) == WEATHER_ARGS
    assert arguments_for(CLOCK) == {"zone": "UTC"}
    assert value_for({"type": "number"}) == 1 and value_for({"type": ["null", "string"]}) == "sim"
    assert value_for({"type": "array"}) == [] and arguments_for({"type": "object"}) == {}
    nested = {"type": "object", "properties": {"to": {"type": "object", "properties": {"x": {"type": "integer"}},
                                                      "required": ["x"]}}, "required": ["to"]}
    assert arguments_for(nested) == {"to": {"x": 1}}


def test_a_schema_whose_type_is_not_a_name_gets_the_plain_value() -> None:
    # a tool schema sent by a caller is theirs: a malformed "type" (an object, a number) must not crash the simulator
    assert value_for({"type": {"oneOf": ["string"]}}) == "sim"
    assert value_for({"type": 3}) == "sim"
    assert arguments_for({"type": "object", "properties": {"a": {"type": {}}}, "required": ["a"]}) == {"a": "sim"}


def test_anthropic_sdk_tool_round_trip(sim) -> None:
    client = ant_client(sim)
    first = client.messages.create(model="claude-sim", max_tokens=64, tools=A_TOOLS, messages=ASK)
    assert first.stop_reason == "tool_use" and len(first.content) == 1
    call = first.content[0]
    assert (call.type, call.name, call.input) == ("tool_use", "weather", WEATHER_ARGS) and call.id.startswith("toolu_")
    answer = client.messages.create(model="claude-sim", max_tokens=64, tools=A_TOOLS, messages=[
        *ASK, {"role": "assistant", "content": [call.model_dump(include={"type", "id", "name", "input"})]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": RESULT}]}])
    assert answer.stop_reason == "end_turn" and answer.content[0].text == "sim saw: " + RESULT[:40]
    chosen = client.messages.create(model="claude-sim", max_tokens=64, tools=A_TOOLS, messages=ASK,
                                    tool_choice={"type": "tool", "name": "clock"})
    assert (chosen.content[0].name, chosen.content[0].input) == ("clock", {"zone": "UTC"})
    plain = client.messages.create(model="claude-sim", max_tokens=64, tools=A_TOOLS, messages=ASK,
                                   tool_choice={"type": "none"})
    assert plain.stop_reason == "end_turn" and plain.content[0].type == "text"


def test_anthropic_sdk_streams_a_tool_call(sim) -> None:
    with ant_client(sim).messages.stream(model="claude-sim", max_tokens=64, tools=A_TOOLS, messages=ASK) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use" and final.usage.output_tokens > 0
    assert (final.content[0].name, final.content[0].input) == ("weather", WEATHER_ARGS)
    follow = [*ASK, {"role": "assistant", "content": [final.content[0].model_dump(
        include={"type", "id", "name", "input"})]}, {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": final.content[0].id, "content": [{"type": "text", "text": RESULT}]}]}]
    with ant_client(sim).messages.stream(model="claude-sim", max_tokens=64, tools=A_TOOLS, messages=follow) as stream:
        assert stream.get_final_message().content[0].text == "sim saw: " + RESULT[:40]


def test_openai_sdk_tool_round_trip(sim) -> None:
    client = oai_client(sim)
    first = client.chat.completions.create(model="gpt-sim", tools=O_TOOLS, messages=ASK)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.function.name == "weather" and json.loads(call.function.arguments) == WEATHER_ARGS
    answer = client.chat.completions.create(model="gpt-sim", tools=O_TOOLS, messages=[
        *ASK, choice.message.model_dump(include={"role", "content", "tool_calls"}),
        {"role": "tool", "tool_call_id": call.id, "content": RESULT}])
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.content == "sim saw: " + RESULT[:40]
    chosen = client.chat.completions.create(model="gpt-sim", tools=O_TOOLS, messages=ASK,
                                            tool_choice={"type": "function", "function": {"name": "clock"}})
    assert chosen.choices[0].message.tool_calls[0].function.name == "clock"
    plain = client.chat.completions.create(model="gpt-sim", tools=O_TOOLS, messages=ASK, tool_choice="none")
    assert plain.choices[0].finish_reason == "stop" and plain.choices[0].message.tool_calls is None


def test_openai_sdk_streams_a_tool_call(sim) -> None:
    with oai_client(sim).chat.completions.stream(model="gpt-sim", tools=O_TOOLS, messages=ASK,
                                                 stream_options={"include_usage": True}) as stream:
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls" and final.usage.completion_tokens > 0
    (call,) = choice.message.tool_calls
    assert call.id.startswith("call_") and json.loads(call.function.arguments) == WEATHER_ARGS
    raw = httpx.post(sim + "/v1/chat/completions", headers={"authorization": f"Bearer {SECRET}"},
                     json={"model": "gpt-sim", "tools": O_TOOLS, "messages": ASK, "stream": True}).text
    assert raw.count('"arguments"') > 3  # the arguments come in several pieces, as openai sends them


# ------------------------------------------------------------------------------- the translator in between
def test_anthropic_caller_through_an_openai_upstream(sim) -> None:
    body = {"model": "claude-asked", "max_tokens": 64, "tools": A_TOOLS, "messages": ASK}
    upstream = httpx.post(sim + "/v1/chat/completions", headers={"authorization": f"Bearer {SECRET}"},
                          json=anthropic_to_openai_request(body, "gpt-sim"))
    msg = Message.model_validate(openai_to_anthropic_response(upstream.json(), "claude-asked"))
    assert msg.model == "claude-asked" and msg.stop_reason == "tool_use"
    assert (msg.content[0].name, msg.content[0].input) == ("weather", WEATHER_ARGS)
    follow = {**body, "messages": [*ASK, {"role": "assistant", "content": [msg.content[0].model_dump(
        include={"type", "id", "name", "input"})]}, {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": msg.content[0].id, "content": RESULT}]}], "stream": True}
    translator = OpenAIToAnthropicStream("claude-asked")
    out = b""
    with httpx.stream("POST", sim + "/v1/chat/completions", headers={"authorization": f"Bearer {SECRET}"},
                      json=anthropic_to_openai_request(follow, "gpt-sim")) as response:
        for chunk in response.iter_raw():
            out += translator.feed(chunk)
    out += translator.close()
    with anthropic_sdk(out).messages.stream(**{k: v for k, v in follow.items() if k != "stream"}) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "sim saw: " + RESULT[:40] and final.stop_reason == "end_turn"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0 and not translator.truncated


def test_openai_caller_through_an_anthropic_upstream(sim) -> None:
    body = {"model": "gpt-asked", "tools": O_TOOLS, "messages": ASK, "stream": True,
            "stream_options": {"include_usage": True}}
    translator = AnthropicToOpenAIStream("gpt-asked", include_usage=True)
    out = b""
    with httpx.stream("POST", sim + "/v1/messages", headers={"x-api-key": SECRET},
                      json=openai_to_anthropic_request(body, "claude-sim")) as response:
        for chunk in response.iter_raw():
            out += translator.feed(chunk)
    out += translator.close()
    with openai_sdk(out).chat.completions.stream(model="gpt-asked", tools=O_TOOLS, messages=ASK) as stream:
        final = stream.get_final_completion()
    (call,) = final.choices[0].message.tool_calls
    assert final.choices[0].finish_reason == "tool_calls" and json.loads(call.function.arguments) == WEATHER_ARGS
    assert final.usage.prompt_tokens > 0 and translator.usage["output_tokens"] > 0
    follow = {"model": "gpt-asked", "tools": O_TOOLS, "messages": [
        *ASK, {"role": "assistant", "content": None, "tool_calls": [call.model_dump(include={
            "id": True, "type": True, "function": {"name", "arguments"}})]},
        {"role": "tool", "tool_call_id": call.id, "content": RESULT}]}
    upstream = httpx.post(sim + "/v1/messages", headers={"x-api-key": SECRET},
                          json=openai_to_anthropic_request(follow, "claude-sim"))
    answer = ChatCompletion.model_validate(anthropic_to_openai_response(upstream.json(), "gpt-asked"))
    assert answer.model == "gpt-asked" and answer.choices[0].message.content == "sim saw: " + RESULT[:40]
