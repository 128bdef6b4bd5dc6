"""Requests translated between the anthropic and openai dialects, and what is refused by name."""

from __future__ import annotations

import pytest

from pooltui.providers.translate import (
    DEFAULT_ANTHROPIC_MAX_TOKENS,
    TOOL_ERROR_PREFIX,
    Untranslatable,
    anthropic_to_openai_request,
    openai_to_anthropic_request,
)

CC = {"type": "ephemeral"}
SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
A_TOOL = {"name": "read_file", "description": "Read a file", "input_schema": SCHEMA}
O_TOOL = {"type": "function", "function": {"name": "read_file", "description": "Read a file", "parameters": SCHEMA}}


def ant(**fields):
    return {"model": "claude-x", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], **fields}


def oai(**fields):
    return {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}], **fields}


# ------------------------------------------------------------------------------------ anthropic -> openai
def test_system_string_and_blocks_become_a_leading_system_message() -> None:
    out = anthropic_to_openai_request(ant(system="be brief"), "gpt-up")
    assert out["model"] == "gpt-up" and out["max_tokens"] == 64
    assert out["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    two = anthropic_to_openai_request(ant(system=[{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]), "g")
    assert two["messages"][0] == {"role": "system", "content": [{"type": "text", "text": "a"},
                                                                {"type": "text", "text": "b"}]}


def test_cache_control_kept_on_text_parts_only_when_asked() -> None:
    body = ant(system=[{"type": "text", "text": "sys", "cache_control": CC}],
               messages=[{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": CC}]}],
               tools=[{**A_TOOL, "cache_control": CC}])
    dropped = anthropic_to_openai_request(body, "g")
    assert dropped["messages"] == [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}]
    assert "cache_control" not in str(dropped)
    kept = anthropic_to_openai_request(body, "g", keep_cache_control=True)
    assert kept["messages"][0]["content"] == [{"type": "text", "text": "sys", "cache_control": CC}]
    assert kept["messages"][1]["content"] == [{"type": "text", "text": "hi", "cache_control": CC}]
    assert "cache_control" not in kept["tools"][0]["function"]


def test_images_base64_and_url() -> None:
    body = ant(messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "what are these?"}]}])
    parts = anthropic_to_openai_request(body, "g")["messages"][0]["content"]
    assert parts == [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                     {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                     {"type": "text", "text": "what are these?"}]


def test_tool_use_and_results_in_order() -> None:
    body = ant(tools=[A_TOOL], messages=[
        {"role": "user", "content": "read two files"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Reading."},
            {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "a"}},
            {"type": "tool_use", "id": "toolu_2", "name": "read_file", "input": {"path": "b"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "AAA"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "no such file"}],
             "is_error": True},
            {"type": "text", "text": "now summarise"}]}])
    out = anthropic_to_openai_request(body, "g")
    assert out["tools"] == [O_TOOL]
    assert out["messages"][1:] == [
        {"role": "assistant", "content": "Reading.", "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "read_file", "arguments": '{"path":"a"}'}},
            {"id": "toolu_2", "type": "function", "function": {"name": "read_file", "arguments": '{"path":"b"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "AAA"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": TOOL_ERROR_PREFIX + "no such file"},
        {"role": "user", "content": "now summarise"}]


def test_assistant_with_only_tool_calls_has_null_content() -> None:
    body = ant(messages=[{"role": "user", "content": "x"}, {"role": "assistant", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": {}}]}])
    assert anthropic_to_openai_request(body, "g")["messages"][1]["content"] is None


@pytest.mark.parametrize(("choice", "expected"), [
    ({"type": "auto"}, {"tool_choice": "auto"}),
    ({"type": "any"}, {"tool_choice": "required"}),
    ({"type": "none"}, {"tool_choice": "none"}),
    ({"type": "tool", "name": "read_file"}, {"tool_choice": {"type": "function", "function": {"name": "read_file"}}}),
    ({"type": "auto", "disable_parallel_tool_use": True}, {"tool_choice": "auto", "parallel_tool_calls": False}),
])
def test_tool_choice_to_openai(choice, expected) -> None:
    out = anthropic_to_openai_request(ant(tools=[A_TOOL], tool_choice=choice), "g")
    assert {k: out[k] for k in ("tool_choice", "parallel_tool_calls") if k in out} == expected


def test_sampling_stop_user_stream_and_disabled_thinking() -> None:
    out = anthropic_to_openai_request(ant(temperature=0.2, top_p=0.9, stop_sequences=["\n\nHuman:"], stream=True,
                                          metadata={"user_id": "u-1"}, thinking={"type": "disabled"}), "g")
    assert out["temperature"] == 0.2 and out["top_p"] == 0.9 and out["stop"] == ["\n\nHuman:"]
    assert out["user"] == "u-1" and out["stream"] is True and out["stream_options"] == {"include_usage": True}
    assert "thinking" not in out
    assert anthropic_to_openai_request(ant(), "g", max_tokens_field="max_completion_tokens")[
        "max_completion_tokens"] == 64


@pytest.mark.parametrize(("fields", "field"), [
    ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "thinking"),
    ({"thinking": {"type": "adaptive", "display": "summarized"}}, "thinking"),
    ({"output_config": {"effort": "high"}}, "output_config"),
    ({"top_k": 5}, "top_k"),
    ({"speed": "fast"}, "speed"),
    ({"service_tier": "auto"}, "service_tier"),
    ({"container": "c1"}, "container"),
    ({"metadata": {"user_id": "u", "trace": "x"}}, "metadata.trace"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0].type"),
    ({"tools": [{**A_TOOL, "defer_loading": True}]}, "tools[0].defer_loading"),
    ({"tool_choice": {"type": "auto", "extra": 1}}, "tool_choice.extra"),
    ({"system": [{"type": "image", "source": {}}]}, "system[0].type"),
    ({"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
     "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "s"}]}]}, "messages[1].content[0].type"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": [
        {"type": "redacted_thinking", "data": "x"}]}]}, "messages[1].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}]}]},
     "messages[0].content[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]},
     "messages[0].content[0].source.type"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "citations": [{"a": 1}]}]}]},
     "messages[0].content[0].citations"),
    ({"messages": [{"role": "user", "content": "x", "name": "bob"}]}, "messages[0].name"),
])
def test_anthropic_refusals_name_their_field(fields, field) -> None:
    with pytest.raises(Untranslatable) as caught:
        anthropic_to_openai_request(ant(**fields), "g")
    assert caught.value.field == field and str(caught.value).startswith(field)
    assert isinstance(caught.value, ValueError)


def test_refusal_message_names_the_block_type() -> None:
    body = ant(messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                         {"role": "user", "content": [{"type": "document", "source": {}}]}])
    with pytest.raises(Untranslatable, match=r"messages\[2\]\.content\[0\]\.type: 'document'"):
        anthropic_to_openai_request(body, "g")


# ------------------------------------------------------------------------------------ openai -> anthropic
def test_openai_system_developer_and_max_tokens() -> None:
    body = oai(messages=[{"role": "system", "content": "one"}, {"role": "developer", "content": "two"},
                         {"role": "user", "content": "hi"}])
    out = openai_to_anthropic_request(body, "claude-up")
    assert out["model"] == "claude-up"
    assert out["system"] == [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
    assert out["messages"] == [{"role": "user", "content": "hi"}]
    assert out["max_tokens"] == DEFAULT_ANTHROPIC_MAX_TOKENS
    assert openai_to_anthropic_request(oai(max_tokens=10), "c")["max_tokens"] == 10
    assert openai_to_anthropic_request(oai(max_completion_tokens=20, max_tokens=10), "c")["max_tokens"] == 20
    assert openai_to_anthropic_request(oai(messages=[{"role": "system", "content": "s"},
                                                     {"role": "user", "content": "u"}]), "c")["system"] == "s"


def test_openai_images_and_cache_control() -> None:
    body = oai(messages=[{"role": "user", "content": [
        {"type": "text", "text": "look", "cache_control": CC},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ", "detail": "auto"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}])
    assert openai_to_anthropic_request(body, "c")["messages"][0]["content"] == [
        {"type": "text", "text": "look", "cache_control": CC},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]


def test_openai_tool_messages_merge_into_one_user_message() -> None:
    body = oai(tools=[O_TOOL], tool_choice={"type": "function", "function": {"name": "read_file"}},
               parallel_tool_calls=False, messages=[
                   {"role": "user", "content": "read"},
                   {"role": "assistant", "content": None, "tool_calls": [
                       {"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": '{"path":"a"}'}},
                       {"id": "c2", "type": "function", "function": {"name": "read_file", "arguments": "oops{"}}]},
                   {"role": "tool", "tool_call_id": "c1", "content": "AAA"},
                   {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "BBB"}]},
                   {"role": "user", "content": "thanks"}])
    out = openai_to_anthropic_request(body, "c")
    assert out["tools"] == [A_TOOL]
    assert out["tool_choice"] == {"type": "tool", "name": "read_file", "disable_parallel_tool_use": True}
    assert out["messages"][1:] == [
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "c1", "name": "read_file", "input": {"path": "a"}},
            {"type": "tool_use", "id": "c2", "name": "read_file", "input": {"_raw_arguments": "oops{"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "c1", "content": "AAA"},
            {"type": "tool_result", "tool_use_id": "c2", "content": "BBB"},
            {"type": "text", "text": "thanks"}]}]


@pytest.mark.parametrize(("choice", "expected"), [
    ("auto", {"type": "auto"}), ("required", {"type": "any"}), ("none", {"type": "none"}),
])
def test_tool_choice_to_anthropic(choice, expected) -> None:
    assert openai_to_anthropic_request(oai(tools=[O_TOOL], tool_choice=choice), "c")["tool_choice"] == expected


def test_openai_stop_user_stream_and_defaults() -> None:
    out = openai_to_anthropic_request(oai(stop="END", user="u-2", stream=True, stream_options={"include_usage": True},
                                          temperature=0.7, top_p=0.5, n=1, logprobs=False,
                                          response_format={"type": "text"}), "c")
    assert out["stop_sequences"] == ["END"] and out["metadata"] == {"user_id": "u-2"}
    assert out["stream"] is True and out["temperature"] == 0.7 and out["top_p"] == 0.5
    assert "stream_options" not in out and "n" not in out
    assert openai_to_anthropic_request(oai(stop=["a", "b"]), "c")["stop_sequences"] == ["a", "b"]


@pytest.mark.parametrize(("fields", "field"), [
    ({"n": 2}, "n"),
    ({"logprobs": True}, "logprobs"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
    ({"modalities": ["text", "audio"]}, "modalities"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}, "response_format"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"reasoning_effort": "high"}, "reasoning_effort"),
    ({"seed": 7}, "seed"),
    ({"frequency_penalty": 0.5}, "frequency_penalty"),
    ({"functions": [{"name": "f"}]}, "functions"),
    ({"temperature": 1.5}, "temperature"),
    ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type"),
    ({"tool_choice": {"type": "allowed_tools", "allowed_tools": {}}}, "tool_choice.type"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
     "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}]},
     "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "data:image/bmp;base64,Qk0="}}]}]}, "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "https://x/y.png", "detail": "low"}}]}]}, "messages[0].content[0].image_url.detail"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "late"}]}, "messages[1].role"),
    ({"messages": [{"role": "user", "content": "a", "name": "bob"}]}, "messages[0].name"),
    ({"messages": [{"role": "assistant", "content": None, "refusal": "no"}]}, "messages[0].refusal"),
    ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role"),
])
def test_openai_refusals_name_their_field(fields, field) -> None:
    with pytest.raises(Untranslatable) as caught:
        openai_to_anthropic_request(oai(**fields), "c")
    assert caught.value.field == field


def test_message_level_cache_control_goes_on_the_last_block() -> None:
    """Hermes marks openai messages (tool and empty assistant ones) with a message-level cache_control."""
    body = oai(tools=[O_TOOL], messages=[
        {"role": "system", "content": "sys", "cache_control": CC},
        {"role": "user", "content": "read a", "cache_control": CC},
        {"role": "assistant", "content": "", "cache_control": CC, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "AAA", "cache_control": CC}])
    out = openai_to_anthropic_request(body, "c")
    assert out["system"] == [{"type": "text", "text": "sys", "cache_control": CC}]
    assert out["messages"][0]["content"] == [{"type": "text", "text": "read a", "cache_control": CC}]
    assert out["messages"][1]["content"][-1]["cache_control"] == CC
    assert out["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "c1", "content": "AAA",
                                              "cache_control": CC}]


def test_a_tool_choice_without_tools_is_left_out() -> None:
    """Both APIs reject a tool choice with no tools; with no tools it means nothing."""
    assert "tool_choice" not in anthropic_to_openai_request(ant(tool_choice={"type": "none"}), "g")
    assert "tool_choice" not in openai_to_anthropic_request(oai(tool_choice="none"), "c")
    with pytest.raises(Untranslatable, match=r"tool_choice\.type"):
        anthropic_to_openai_request(ant(tool_choice={"type": "sometimes"}), "g")


def test_openai_tool_cache_control_is_carried_to_anthropic() -> None:
    """Hermes puts cache_control on its last openai-format tool to cache the schemas."""
    out = openai_to_anthropic_request(oai(tools=[{**O_TOOL, "cache_control": CC}]), "c")
    assert out["tools"] == [{**A_TOOL, "cache_control": CC}]
