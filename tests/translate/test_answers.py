"""Answers and errors translated between the dialects, checked against the official SDKs' types."""

from __future__ import annotations

import json

import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion

from pooltui.core.masking import remember
from pooltui.providers.translate import (
    RAW_ARGUMENTS_KEY,
    Untranslatable,
    anthropic_to_openai_response,
    error_to_anthropic,
    error_to_openai,
    openai_to_anthropic_response,
)


def openai_answer(message: dict, finish: str = "stop", usage: dict | None = None) -> dict:
    return {"id": "chatcmpl-up", "object": "chat.completion", "created": 1, "model": "gpt-up",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish,
                         "logprobs": None}],
            "usage": usage or {"prompt_tokens": 120, "completion_tokens": 7, "total_tokens": 127,
                               "prompt_tokens_details": {"cached_tokens": 100}}}


def anthropic_answer(content: list, stop: str = "end_turn", usage: dict | None = None) -> dict:
    return {"id": "msg_up", "type": "message", "role": "assistant", "model": "claude-up", "content": content,
            "stop_reason": stop, "stop_sequence": None,
            "usage": usage or {"input_tokens": 20, "output_tokens": 7, "cache_read_input_tokens": 100,
                               "cache_creation_input_tokens": 5}}


def test_openai_text_answer_as_anthropic_message() -> None:
    out = openai_to_anthropic_response(openai_answer({"content": "Hello."}), "claude-asked")
    msg = Message.model_validate(out)
    assert msg.model == "claude-asked" and msg.id.startswith("msg_") and msg.id != "chatcmpl-up"
    assert [b.text for b in msg.content] == ["Hello."] and msg.stop_reason == "end_turn"
    # prompt_tokens includes the cached ones; anthropic's input_tokens does not
    assert (msg.usage.input_tokens, msg.usage.cache_read_input_tokens, msg.usage.output_tokens) == (20, 100, 7)
    assert openai_to_anthropic_response(openai_answer({"content": "x"}), "")["model"] == "gpt-up"


def test_openai_tool_calls_as_tool_use_blocks() -> None:
    body = openai_answer({"content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": '{"path":"a"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "read_file", "arguments": "{not json"}},
        {"id": "call_3", "type": "function", "function": {"name": "now", "arguments": ""}}]}, "tool_calls")
    msg = Message.model_validate(openai_to_anthropic_response(body, "c"))
    assert msg.stop_reason == "tool_use"
    assert [(b.type, b.id, b.name, b.input) for b in msg.content] == [
        ("tool_use", "call_1", "read_file", {"path": "a"}),
        ("tool_use", "call_2", "read_file", {RAW_ARGUMENTS_KEY: "{not json"}),
        ("tool_use", "call_3", "now", {})]


@pytest.mark.parametrize(("finish", "stop"), [("stop", "end_turn"), ("length", "max_tokens"),
                                              ("tool_calls", "tool_use"), ("content_filter", "refusal")])
def test_finish_reasons_to_anthropic(finish, stop) -> None:
    assert openai_to_anthropic_response(openai_answer({"content": "x"}, finish), "c")["stop_reason"] == stop


@pytest.mark.parametrize(("stop", "finish"), [("end_turn", "stop"), ("stop_sequence", "stop"),
                                              ("max_tokens", "length"), ("tool_use", "tool_calls"),
                                              ("refusal", "content_filter")])
def test_stop_reasons_to_openai(stop, finish) -> None:
    out = anthropic_to_openai_response(anthropic_answer([{"type": "text", "text": "x"}], stop), "g")
    assert ChatCompletion.model_validate(out).choices[0].finish_reason == finish


def test_anthropic_answer_as_openai_completion() -> None:
    body = anthropic_answer([{"type": "thinking", "thinking": "hmm", "signature": "s"},
                             {"type": "text", "text": "Let me look. "},
                             {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "a"}},
                             {"type": "tool_use", "id": "toolu_2", "name": "raw", "input": {RAW_ARGUMENTS_KEY: "{x"}}],
                            "tool_use")
    out = ChatCompletion.model_validate(anthropic_to_openai_response(body, "gpt-asked"))
    assert out.model == "gpt-asked" and out.id.startswith("chatcmpl-") and out.object == "chat.completion"
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Let me look. "
    assert [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls] == [
        ("toolu_1", "read_file", '{"path":"a"}'), ("toolu_2", "raw", "{x")]
    usage = out.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (125, 7, 132)
    assert usage.prompt_tokens_details.cached_tokens == 100


def test_usage_round_trips_through_both_shapes() -> None:
    there = anthropic_to_openai_response(anthropic_answer([{"type": "text", "text": "x"}]), "g")
    back = openai_to_anthropic_response(there, "c")
    assert back["usage"] == {"input_tokens": 20, "output_tokens": 7, "cache_read_input_tokens": 100,
                             "cache_creation_input_tokens": 5}


def test_untranslatable_answers_are_refused() -> None:
    with pytest.raises(Untranslatable, match=r"content\[0\]\.type"):
        anthropic_to_openai_response(anthropic_answer([{"type": "server_tool_use", "id": "s", "name": "web_search",
                                                        "input": {}}]), "g")
    two = openai_answer({"content": "a"})
    two["choices"].append({**two["choices"][0], "index": 1})
    with pytest.raises(Untranslatable, match="choices"):
        openai_to_anthropic_response(two, "c")


# -------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("status", "etype"), [
    (400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error"),
    (404, "not_found_error"), (413, "request_too_large"), (429, "rate_limit_error"), (500, "api_error"),
    (529, "overloaded_error"), (503, "api_error"), (418, "invalid_request_error"),
])
def test_errors_to_anthropic_typed_by_status(status, etype) -> None:
    upstream = {"error": {"message": "Rate limit reached for requests", "type": "requests",
                          "code": "rate_limit_exceeded", "param": None}}
    assert error_to_anthropic(status, json.dumps(upstream).encode()) == {
        "type": "error", "error": {"type": etype, "message": "Rate limit reached for requests"}}


def test_errors_to_openai_carry_message_code_and_param() -> None:
    upstream = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert error_to_openai(529, upstream) == {"error": {"message": "Overloaded", "type": "server_error",
                                                        "param": None, "code": "overloaded_error"}}
    oai = {"error": {"message": "bad", "type": "invalid_request_error", "param": "messages", "code": "x"}}
    assert error_to_openai(400, oai)["error"] == {"message": "bad", "type": "invalid_request_error",
                                                 "param": "messages", "code": "x"}
    assert error_to_openai(401, {"error": {"message": "no"}})["error"]["type"] == "authentication_error"


def test_error_bodies_of_any_shape_never_crash() -> None:
    assert error_to_anthropic(502, b"<html>Bad Gateway</html>")["error"]["message"] == "<html>Bad Gateway</html>"
    assert error_to_anthropic(500, b"")["error"]["message"] == "upstream error (HTTP 500)"
    assert error_to_openai(401, {"detail": "Unauthorized"})["error"]["message"] == "Unauthorized"
    assert error_to_openai(400, b"[1, 2]")["error"]["message"] == "[1, 2]"


def test_error_messages_never_carry_a_secret() -> None:
    secret = "sk-test-echo-000000000000000000000042"
    remember(secret)
    body = {"error": {"message": f"Incorrect API key provided: {secret}.", "type": "invalid_request_error"}}
    for out in (error_to_anthropic(401, body), error_to_openai(401, json.dumps(body).encode())):
        assert secret not in json.dumps(out) and "Incorrect API key provided" in json.dumps(out)
