"""Stream translators: every byte split gives the same output, and the official SDKs read what they make."""

from __future__ import annotations

import json
import time

import anthropic
import httpx
import httpx2
import openai
import pytest

from pooltui.providers.translate import AnthropicToOpenAIStream, OpenAIToAnthropicStream


def oai_chunk(delta: dict | None = None, finish: str | None = None, usage: dict | None = None) -> bytes:
    body = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1, "model": "gpt-up",
            "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}],
            "usage": usage}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def ant_event(name: str, data: dict, crlf: bool = False) -> bytes:
    text = f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"
    return (text.replace("\n", "\r\n") if crlf else text).encode()


OAI_USAGE = {"prompt_tokens": 130, "completion_tokens": 9, "total_tokens": 139,
             "prompt_tokens_details": {"cached_tokens": 100}}
OPENAI_TEXT = b"".join([
    b": OPENROUTER PROCESSING\n\n",
    oai_chunk({"role": "assistant", "content": ""}),
    oai_chunk({"content": "h\u00e9llo "}).replace(b"\n\n", b"\r\n\r\n"),
    oai_chunk({"content": "w\u00f6rld \u2713"}),
    oai_chunk({}, "stop"),
    oai_chunk(usage=OAI_USAGE),
    b"data: [DONE]\n\n",
])
OPENAI_TOOLS = b"".join([
    oai_chunk({"role": "assistant", "content": "Let me check."}),
    oai_chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                               "function": {"name": "read_file", "arguments": ""}}]}),
    oai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"pa'}}]}),
    oai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'th": "a.t'}}]}),
    oai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'xt"}'}}]}),
    oai_chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                               "function": {"name": "list_dir", "arguments": '{"dir"'}}]}),
    b": keep-alive\n\n",
    oai_chunk({"tool_calls": [{"index": 1, "function": {"arguments": ': "/"}'}}]}),
    oai_chunk({}, "tool_calls"),
    oai_chunk(usage=OAI_USAGE),
    b"data: [DONE]\n\n",
])
OPENAI_ERROR = (oai_chunk({"role": "assistant", "content": "par"})
                + b'data: {"error":{"message":"The server had an error while processing your request.",'
                  b'"type":"server_error","param":null,"code":null}}\n\n')

ANT_START = ant_event("message_start", {"message": {
    "id": "msg_up", "type": "message", "role": "assistant", "model": "claude-up", "content": [],
    "stop_reason": None, "stop_sequence": None,
    "usage": {"input_tokens": 30, "output_tokens": 1, "cache_read_input_tokens": 100,
              "cache_creation_input_tokens": 0}}})
ANTHROPIC_TEXT = b"".join([
    ANT_START,
    ant_event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    ant_event("ping", {}),
    ant_event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "h\u00e9llo "}}, crlf=True),
    ant_event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "w\u00f6rld \u2713"}}),
    ant_event("content_block_stop", {"index": 0}),
    ant_event("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                "usage": {"output_tokens": 9}}),
    ant_event("message_stop", {}),
])
ANTHROPIC_TOOLS = b"".join([
    ANT_START,
    ant_event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    ant_event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Let me check."}}),
    ant_event("content_block_stop", {"index": 0}),
    ant_event("content_block_start", {"index": 1, "content_block": {"type": "tool_use", "id": "toolu_a",
                                                                    "name": "read_file", "input": {}}}),
    ant_event("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
    ant_event("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"pa'}}),
    ant_event("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta",
                                                            "partial_json": 'th": "a.txt"}'}}),
    ant_event("content_block_stop", {"index": 1}),
    ant_event("content_block_start", {"index": 2, "content_block": {"type": "tool_use", "id": "toolu_b",
                                                                    "name": "list_dir", "input": {}}}),
    ant_event("content_block_delta", {"index": 2, "delta": {"type": "input_json_delta", "partial_json": '{"dir"'}}),
    ant_event("content_block_delta", {"index": 2, "delta": {"type": "input_json_delta", "partial_json": ': "/"}'}}),
    ant_event("content_block_stop", {"index": 2}),
    ant_event("message_delta", {"delta": {"stop_reason": "tool_use", "stop_sequence": None},
                                "usage": {"output_tokens": 9}}),
    ant_event("message_stop", {}),
])
ANTHROPIC_ERROR = ANT_START + ant_event("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})


def to_anthropic() -> OpenAIToAnthropicStream:
    return OpenAIToAnthropicStream("claude-asked", message_id="msg_fixed")


def to_openai() -> AnthropicToOpenAIStream:
    return AnthropicToOpenAIStream("gpt-asked", completion_id="chatcmpl-fixed", created=7)


CASES = [(to_anthropic, OPENAI_TEXT), (to_anthropic, OPENAI_TOOLS), (to_anthropic, OPENAI_ERROR),
         (to_openai, ANTHROPIC_TEXT), (to_openai, ANTHROPIC_TOOLS), (to_openai, ANTHROPIC_ERROR)]


def run(make, *pieces: bytes) -> bytes:
    translator = make()
    return b"".join(translator.feed(p) for p in pieces) + translator.close()


@pytest.mark.parametrize(("make", "upstream"), CASES, ids=["oai-text", "oai-tools", "oai-error", "ant-text",
                                                          "ant-tools", "ant-error"])
def test_every_byte_split_gives_the_same_output(make, upstream) -> None:
    whole = run(make, upstream)
    assert whole
    for cut in range(len(upstream) + 1):
        assert run(make, upstream[:cut], upstream[cut:]) == whole, cut
    assert run(make, *(upstream[i:i + 1] for i in range(len(upstream)))) == whole


def anthropic_sdk(stream_bytes: bytes) -> anthropic.Anthropic:
    """The anthropic SDK (which runs on ``httpx2``) served ``stream_bytes``."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=stream_bytes)

    return anthropic.Anthropic(api_key="sk-test", base_url="http://translated.test", max_retries=0,
                               http_client=httpx2.Client(transport=httpx2.MockTransport(answer)))


def openai_sdk(stream_bytes: bytes) -> openai.OpenAI:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=stream_bytes)

    return openai.OpenAI(api_key="sk-test", base_url="http://translated.test/v1", max_retries=0,
                         http_client=httpx.Client(transport=httpx.MockTransport(answer)))


ASK = {"model": "claude-asked", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
OASK = {"model": "gpt-asked", "messages": [{"role": "user", "content": "hi"}]}


def test_anthropic_sdk_reads_a_translated_text_stream() -> None:
    translator = to_anthropic()
    data = b"".join(translator.feed(OPENAI_TEXT[i:i + 5]) for i in range(0, len(OPENAI_TEXT), 5)) + translator.close()
    with anthropic_sdk(data).messages.stream(**ASK) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts) == "h\u00e9llo w\u00f6rld \u2713"
    assert final.id == "msg_fixed" and final.model == "claude-asked" and final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens, final.usage.output_tokens) == (30, 100, 9)
    assert translator.usage["input_tokens"] == 30 and translator.usage["cache_read_input_tokens"] == 100
    assert not translator.truncated


def test_anthropic_sdk_reads_translated_tool_calls() -> None:
    with anthropic_sdk(run(to_anthropic, OPENAI_TOOLS)).messages.stream(**ASK) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "text" and final.content[0].text == "Let me check."
    assert [(b.type, b.id, b.name, b.input) for b in final.content[1:]] == [
        ("tool_use", "call_a", "read_file", {"path": "a.txt"}), ("tool_use", "call_b", "list_dir", {"dir": "/"})]
    assert final.usage.output_tokens == 9


def test_anthropic_sdk_raises_the_translated_error() -> None:
    with pytest.raises(anthropic.APIStatusError, match="while processing your request"), \
            anthropic_sdk(run(to_anthropic, OPENAI_ERROR)).messages.stream(**ASK) as stream:
        stream.get_final_message()


def test_openai_sdk_reads_a_translated_text_stream() -> None:
    chunks = list(openai_sdk(run(to_openai, ANTHROPIC_TEXT)).chat.completions.create(
        **OASK, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "h\u00e9llo w\u00f6rld \u2713"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.prompt_tokens_details.cached_tokens) == (130, 9, 100)
    assert {c.id for c in chunks} == {"chatcmpl-fixed"} and {c.model for c in chunks} == {"gpt-asked"}


def test_openai_sdk_accumulates_translated_tool_calls() -> None:
    with openai_sdk(run(to_openai, ANTHROPIC_TOOLS)).chat.completions.stream(**OASK) as stream:
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Let me check."
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls] == [
        ("toolu_a", "read_file", {"path": "a.txt"}), ("toolu_b", "list_dir", {"dir": "/"})]
    assert final.usage.total_tokens == 139


def test_openai_sdk_raises_the_translated_error() -> None:
    with pytest.raises(openai.APIError, match="Overloaded"):
        list(openai_sdk(run(to_openai, ANTHROPIC_ERROR)).chat.completions.create(**OASK, stream=True))


def test_no_usage_chunk_unless_asked() -> None:
    out = AnthropicToOpenAIStream("g", include_usage=False)
    data = out.feed(ANTHROPIC_TEXT) + out.close()
    assert b'"usage"' not in data and data.endswith(b"data: [DONE]\n\n")


def test_an_upstream_cut_short_still_gets_a_proper_ending() -> None:
    cut = OPENAI_TOOLS[:OPENAI_TOOLS.index(b'"list_dir"') - 60]  # inside the first tool call's chunks
    translator = to_anthropic()
    data = translator.feed(cut) + translator.close()
    assert translator.truncated and data.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    with anthropic_sdk(data).messages.stream(**ASK) as stream:
        assert stream.get_final_message().content[0].text == "Let me check."
    other = to_openai()
    data = other.feed(ANTHROPIC_TEXT[:ANTHROPIC_TEXT.index(b"content_block_stop")]) + other.close()
    assert other.truncated and data.endswith(b"data: [DONE]\n\n")
    chunks = list(openai_sdk(data).chat.completions.create(**OASK, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "h\u00e9llo w\u00f6rld \u2713"


def test_translation_is_linear_in_the_bytes_fed() -> None:
    big = oai_chunk({"content": "x" * 1_000_000})  # one long line, fed a byte at a time
    translator = to_anthropic()
    started = time.perf_counter()
    out = b"".join(translator.feed(big[i:i + 1]) for i in range(len(big)))
    assert time.perf_counter() - started < 20 and b"x" * 1_000_000 in out


def test_an_upstream_that_stopped_but_sent_no_done_is_not_truncated() -> None:
    translator = to_anthropic()
    data = translator.feed(OPENAI_TEXT[:OPENAI_TEXT.index(b"data: [DONE]")]) + translator.close()
    assert not translator.truncated and b'"stop_reason":"end_turn"' in data and b'"output_tokens":9' in data
