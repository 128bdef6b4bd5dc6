"""Malformed bodies are refused with Untranslatable (a ValueError naming the field), never another exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pooltui.providers.translate import (
    AnthropicToOpenAIStream,
    OpenAIToAnthropicStream,
    Untranslatable,
    anthropic_to_openai_request,
    anthropic_to_openai_response,
    openai_to_anthropic_request,
    openai_to_anthropic_response,
)

KEYS = st.sampled_from(["role", "content", "type", "text", "source", "media_type", "data", "url", "id", "name",
                        "input", "tool_use_id", "is_error", "messages", "system", "tools", "tool_choice",
                        "function", "arguments", "parameters", "input_schema", "tool_calls", "tool_call_id",
                        "image_url", "max_tokens", "temperature", "stop", "stop_sequences", "metadata", "user",
                        "choices", "message", "finish_reason", "usage", "stream", "cache_control"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False),
                    st.sampled_from(["user", "assistant", "tool", "system", "text", "image", "tool_use", "tool_result",
                                     "image_url", "function", "base64", "url", "auto", "any", "none", "tool",
                                     "data:image/png;base64,AA", "https://x/y.png", "{}", "[1]"]))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.dictionaries(KEYS, inner, max_size=4)), max_leaves=25)
BODY = st.dictionaries(KEYS, JSON, max_size=6)
BLOCK = st.dictionaries(KEYS, JSON, max_size=5)
MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "tool", "system", "developer"])},
                                optional={"content": st.one_of(JSON, st.lists(BLOCK, max_size=3)),
                                          "tool_calls": st.lists(BLOCK, max_size=2), "tool_call_id": JSON})
REQUEST = st.fixed_dictionaries({"messages": st.lists(MESSAGE, max_size=4)}, optional={
    key: JSON for key in ("system", "tools", "tool_choice", "max_tokens", "temperature", "stop", "stop_sequences",
                          "metadata", "user", "stream", "top_p")})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(BODY, REQUEST))
def test_requests_refuse_malformed_bodies_cleanly(body) -> None:
    for translate in (anthropic_to_openai_request, openai_to_anthropic_request):
        try:
            translate(body, "m")
        except Untranslatable:
            pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(BODY)
def test_answers_refuse_malformed_bodies_cleanly(body) -> None:
    for translate in (anthropic_to_openai_response, openai_to_anthropic_response):
        try:
            translate(body, "m")
        except Untranslatable:
            pass


def user(*blocks):
    return {"messages": [{"role": "user", "content": list(blocks)}]}


HI = [{"role": "user", "content": "x"}]


@pytest.mark.parametrize(("translate", "body", "field"), [
    (anthropic_to_openai_request, user({"type": "image", "source": {"type": "base64"}}),
     "messages[0].content[0].source.media_type"),
    (anthropic_to_openai_request, user({"type": "image", "source": {"type": "url", "url": 5}}),
     "messages[0].content[0].source.url"),
    (anthropic_to_openai_request, {"messages": [{"role": "assistant", "content": [{"type": "tool_use"}]}]},
     "messages[0].content[0].id"),
    (anthropic_to_openai_request, {"messages": HI, "tools": 5}, "tools"),
    (anthropic_to_openai_request, {"messages": HI, "tool_choice": {"type": "tool"}}, "tool_choice.name"),
    (anthropic_to_openai_request, {"messages": HI, "metadata": {"user_id": 5}}, "metadata.user_id"),
    (anthropic_to_openai_request, {"messages": HI, "max_tokens": "many"}, "max_tokens"),
    (openai_to_anthropic_request, {"messages": HI, "temperature": []}, "temperature"),
    (openai_to_anthropic_request, {"messages": HI, "stop": [1]}, "stop"),
    (openai_to_anthropic_request, {"messages": [{"role": "assistant", "tool_calls": [
        {"id": "c", "function": {"name": "f", "arguments": 5}}]}]}, "messages[0].tool_calls[0].function.arguments"),
    (openai_to_anthropic_request, {"messages": [{"role": "assistant", "tool_calls": [
        {"id": "c", "function": {"name": 5}}]}]}, "messages[0].tool_calls[0].function.name"),
    (openai_to_anthropic_request, {"messages": HI, "tools": [{"type": "function", "function": {
        "name": "a", "parameters": 5}}]}, "tools[0].function.parameters"),
    (openai_to_anthropic_request, {"messages": HI, "tool_choice": {"type": "function", "function": {"name": 5}}},
     "tool_choice.function.name"),
    (openai_to_anthropic_request, {"messages": HI, "stream_options": {"include_usage": "x"}},
     "stream_options.include_usage"),
])
def test_malformed_fields_are_named(translate, body, field) -> None:
    """Each of these once crashed with a KeyError or TypeError, or passed garbage on."""
    with pytest.raises(Untranslatable) as caught:
        translate(body, "m")
    assert caught.value.field == field


EVENTS = st.sampled_from(["message_start", "content_block_start", "content_block_delta", "message_delta",
                          "message_stop", "error", "ping", ""])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(EVENTS, st.one_of(JSON, BODY, st.just("[DONE]"))), max_size=8))
def test_stream_translators_never_crash_on_odd_events(events) -> None:
    raw = b"".join((f"event: {e}\n" if e else "").encode() + b"data: " +
                   (d.encode() if d == "[DONE]" else json.dumps(d).encode()) + b"\n\n" for e, d in events)
    for translator in (OpenAIToAnthropicStream("m"), AnthropicToOpenAIStream("m")):
        out = translator.feed(raw) + translator.close()
        assert translator.finished and out


def test_an_unhashable_index_does_not_crash_a_stream() -> None:
    odd = (b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":[1],"function":{"name":"f"}}]}}]}\n\n'
           b'event: content_block_delta\ndata: {"type":"content_block_delta","index":[1],"delta":'
           b'{"type":"input_json_delta","partial_json":"{"}}\n\n')
    for translator in (OpenAIToAnthropicStream("m"), AnthropicToOpenAIStream("m")):
        assert translator.feed(odd) + translator.close()
