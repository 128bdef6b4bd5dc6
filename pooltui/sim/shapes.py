"""Response bodies and headers in each dialect's real shape (success, errors, SSE streams)."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from typing import Any

from pooltui.sim.limits import Verdict
from pooltui.sim.prompt_cache import CacheUsage
from pooltui.sim.tools import ToolCall

WORDS = ("pooled", "keys", "keep", "the", "agent", "running", "through", "peak", "hour", "limits")


def go_duration(seconds: float) -> str:
    """Seconds as a Go duration, the way openai and groq send resets (``1s``, ``6m0s``, ``250ms``)."""
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    rest_text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{rest_text}" if minutes else rest_text


def rfc3339(ts: float) -> str:
    """A reset time at whole-second precision, rounded up: the budget is back *by* then."""
    return datetime.fromtimestamp(math.ceil(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def reply_text(n_tokens: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(n_tokens))


#: anthropic's names of its token windows (``anthropic-ratelimit-{name}-limit`` ...)
_ANTHROPIC_TOKENS = {"tokens": "tokens", "input_tokens": "input-tokens", "output_tokens": "output-tokens"}


def rate_headers(dialect: str, v: Verdict, now_wall: float) -> dict[str, str]:
    """The dialect's rate-limit headers for a verdict that carries limit information: the request window's,
    and the tightest token window's (anthropic names it: ``input-tokens``, ``output-tokens``, ``tokens``;
    openai states one ``tokens`` window)."""
    out: dict[str, str] = {}
    if v.limit is not None:
        reset = v.reset_s or 0.0
        if dialect == "anthropic":
            out.update({"anthropic-ratelimit-requests-limit": str(v.limit),
                        "anthropic-ratelimit-requests-remaining": str(v.remaining or 0),
                        "anthropic-ratelimit-requests-reset": rfc3339(now_wall + reset)})
        else:
            out.update({"x-ratelimit-limit-requests": str(v.limit),
                        "x-ratelimit-remaining-requests": str(v.remaining or 0),
                        "x-ratelimit-reset-requests": go_duration(reset)})
    if v.tokens_limit is not None and v.tokens_what is not None:
        reset = v.tokens_reset_s or 0.0
        if dialect == "anthropic":
            name = f"anthropic-ratelimit-{_ANTHROPIC_TOKENS[v.tokens_what]}-"
            out.update({name + "limit": str(v.tokens_limit), name + "remaining": str(v.tokens_remaining or 0),
                        name + "reset": rfc3339(now_wall + reset)})
        else:
            out.update({"x-ratelimit-limit-tokens": str(v.tokens_limit),
                        "x-ratelimit-remaining-tokens": str(v.tokens_remaining or 0),
                        "x-ratelimit-reset-tokens": go_duration(reset)})
    return out


def _token_message(dialect: str, v: Verdict) -> str:
    """A token 429's message, worded as the provider words it (tests/corpus/: openai-tpm-rate-limit-644ms-429,
    anthropic-itpm-org-429)."""
    if dialect == "anthropic":
        what = {"tokens": "tokens", "input_tokens": "input tokens", "output_tokens": "output tokens"}
        return (f"This request would exceed the rate limit for your organization (sim) of {v.tokens_limit:,} "
                f"{what[v.tokens_what or 'tokens']} per minute. For details, refer to: "
                "https://docs.anthropic.com/en/api/rate-limits. You can see the response headers for current usage. "
                "Please reduce the prompt length or the maximum tokens requested, or try again later.")
    used = (v.tokens_limit or 0) - (v.tokens_remaining or 0)
    return (f"Rate limit reached for {v.model or 'sim-model'} in organization org-sim on tokens per min (TPM): "
            f"Limit {v.tokens_limit}, Used {used}, Requested {v.requested}. "
            f"Please try again in {go_duration(v.retry_after_s or 0)}.")


def org_header(dialect: str, org_id: str) -> dict[str, str]:
    """The header naming the key's organization, as OpenAI and Anthropic send it on every answer."""
    return {"anthropic-organization-id" if dialect == "anthropic" else "openai-organization": org_id}


def error_response(dialect: str, v: Verdict, secret_hint: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, body, headers) of an error in the dialect's shape."""
    headers: dict[str, str] = {}
    if v.retry_after_s is not None:  # a real provider rounds up to whole seconds; 0 is sent as 0
        headers["retry-after"] = str(math.ceil(v.retry_after_s))
        if dialect == "openai":
            headers["retry-after-ms"] = str(max(0, round(v.retry_after_s * 1000)))
    if dialect == "anthropic":
        etype, msg = {
            "invalid": ("authentication_error", "invalid x-api-key"),
            "forbidden": ("permission_error", "Your API key does not have permission to use the specified resource."),
            "rate_limited": ("rate_limit_error", _token_message(dialect, v) if v.tokens_what else
                             f"This request would exceed your organization's rate limit of {v.limit} requests "
                             "per window."),
            "quota": ("invalid_request_error", "Your credit balance is too low to access the Anthropic API. "
                      "Please go to Plans & Billing to upgrade or purchase credits."),
            "outage": ("overloaded_error", "Overloaded"),
            "server_error": ("overloaded_error", "Overloaded"),
            "bad_request": ("invalid_request_error", "messages: field required"),
        }[v.kind]
        status = v.status
        if v.kind == "quota" and status == 429:
            status = 400
        return status, {"type": "error", "error": {"type": etype, "message": msg}}, headers
    bodies: dict[str, dict[str, Any]] = {
        "invalid": {"message": f"Incorrect API key provided: {secret_hint}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.", "type": "invalid_request_error",
                    "code": "invalid_api_key"},
        "forbidden": {"message": "You are not allowed to sample from this model", "type": "invalid_request_error",
                      "code": "model_not_found"},
        "rate_limited": {"message": _token_message(dialect, v), "type": "tokens", "code": "rate_limit_exceeded"}
        if v.tokens_what else
        {"message": f"Rate limit reached for requests: Limit {v.limit}, Used {v.limit}. "
         f"Please try again in {go_duration(v.retry_after_s or 0)}.", "type": "requests",
         "code": "rate_limit_exceeded"},
        "quota": {"message": "You exceeded your current quota, please check your plan and billing details.",
                  "type": "insufficient_quota", "code": "insufficient_quota"},
        "outage": {"message": "The server is overloaded or not ready yet.", "type": "server_error", "code": None},
        "server_error": {"message": "The server had an error while processing your request. Sorry about that!",
                         "type": "server_error", "code": None},
        "bad_request": {"message": "'messages' is a required property", "type": "invalid_request_error",
                        "code": None},
    }
    err = bodies[v.kind]
    return v.status, {"error": {**err, "param": None}}, headers


def usage_of(dialect: str, tokens_in: int, tokens_out: int, cache: CacheUsage | None = None) -> dict[str, Any]:
    """The usage object as the provider names it: ``tokens_in`` is the whole prompt; Anthropic's ``input_tokens``
    then counts only what the cache neither read nor wrote, OpenAI's ``prompt_tokens`` includes ``cached_tokens``."""
    cache = cache or CacheUsage()
    read = min(cache.read, tokens_in)
    written = min(cache.written, tokens_in - read)
    written_1h = min(cache.written_1h, written)
    if dialect == "anthropic":
        return {"input_tokens": tokens_in - read - written, "cache_creation_input_tokens": written,
                "cache_read_input_tokens": read,
                "cache_creation": {"ephemeral_5m_input_tokens": written - written_1h,
                                   "ephemeral_1h_input_tokens": written_1h},
                "output_tokens": tokens_out}
    return {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out,
            "prompt_tokens_details": {"cached_tokens": read, "audio_tokens": 0}}


def tool_call_id(dialect: str, req_id: str) -> str:
    """The id of the one tool call an answer makes: ``toolu_…`` (anthropic) or ``call_…`` (openai)."""
    return ("toolu_" if dialect == "anthropic" else "call_") + req_id.rsplit("_", 1)[-1]


def completion(dialect: str, model: str, req_id: str, tokens_in: int, tokens_out: int,
               answer: ToolCall | str | None = None, cache: CacheUsage | None = None) -> dict[str, Any]:
    """A whole answer: ``answer`` is a tool call to make, a text to say, or None for the usual words; ``cache``:
    what the prompt cache read and wrote."""
    text = answer if isinstance(answer, str) else reply_text(tokens_out)
    call = answer if isinstance(answer, ToolCall) else None
    if dialect == "anthropic":
        content: list[dict[str, Any]] = [{"type": "text", "text": text}]
        if call is not None:
            content = [{"type": "tool_use", "id": tool_call_id(dialect, req_id), "name": call.name,
                        "input": call.arguments}]
        return {
            "id": req_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": "tool_use" if call else "end_turn",
            "stop_sequence": None,
            "usage": usage_of(dialect, tokens_in, tokens_out, cache),
        }
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if call is not None:
        message = {"role": "assistant", "content": None, "tool_calls": [{
            "id": tool_call_id(dialect, req_id), "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments)}}]}
    return {
        "id": req_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if call else "stop", "logprobs": None}
        ],
        "usage": usage_of(dialect, tokens_in, tokens_out, cache),
    }


def _pieces(text: str, size: int = 7) -> list[str]:
    """``text`` in pieces, as providers stream a tool call's arguments."""
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def sse_events(dialect: str, model: str, req_id: str, tokens_in: int, tokens_out: int,
               answer: ToolCall | str | None = None, cache: CacheUsage | None = None) -> list[bytes]:
    """The whole SSE stream of one completion, as the chunks the server writes (``answer`` as in
    :func:`completion`)."""
    call = answer if isinstance(answer, ToolCall) else None
    words = (answer if isinstance(answer, str) else reply_text(tokens_out)).split(" ")
    arguments = json.dumps(call.arguments) if call else ""
    out: list[bytes] = []
    if dialect == "anthropic":

        def ev(name: str, data: dict[str, Any]) -> bytes:
            return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()

        out.append(ev("message_start", {"type": "message_start", "message": {
            "id": req_id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": usage_of(dialect, tokens_in, 1, cache)}}))
        if call is None:
            out.append(ev("content_block_start", {"type": "content_block_start", "index": 0,
                                                  "content_block": {"type": "text", "text": ""}}))
            out.append(ev("ping", {"type": "ping"}))
            for i, w in enumerate(words):
                out.append(ev("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
                    "type": "text_delta", "text": (" " if i else "") + w}}))
        else:  # as anthropic streams a tool call: the block with an empty input, then the JSON in pieces
            out.append(ev("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
                "type": "tool_use", "id": tool_call_id(dialect, req_id), "name": call.name, "input": {}}}))
            out.append(ev("ping", {"type": "ping"}))
            for piece in ["", *_pieces(arguments)]:
                out.append(ev("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
                    "type": "input_json_delta", "partial_json": piece}}))
        out.append(ev("content_block_stop", {"type": "content_block_stop", "index": 0}))
        out.append(ev("message_delta", {"type": "message_delta",
                                        "delta": {"stop_reason": "tool_use" if call else "end_turn",
                                                  "stop_sequence": None},
                                        "usage": {"output_tokens": tokens_out}}))
        out.append(ev("message_stop", {"type": "message_stop"}))
        return out
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, usage: dict | None = None) -> bytes:
        body: dict[str, Any] = {"id": req_id, "object": "chat.completion.chunk", "created": created, "model": model,
                                "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
                                "usage": usage}  # as OpenAI with include_usage: null in every chunk but the last
        return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"

    if call is None:
        out.append(chunk({"role": "assistant", "content": ""}))
        for i, w in enumerate(words):
            out.append(chunk({"content": (" " if i else "") + w}))
    else:  # as openai streams a tool call: id, type and name first, then the arguments in pieces
        out.append(chunk({"role": "assistant", "content": None, "tool_calls": [{
            "index": 0, "id": tool_call_id(dialect, req_id), "type": "function",
            "function": {"name": call.name, "arguments": ""}}]}))
        for piece in _pieces(arguments):
            out.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
    out.append(chunk({}, "tool_calls" if call else "stop"))
    out.append(chunk({}, usage=usage_of(dialect, tokens_in, tokens_out, cache)))
    out.append(b"data: [DONE]\n\n")
    return out


def models(dialect: str) -> dict[str, Any]:
    if dialect == "anthropic":
        data = [{"type": "model", "id": "claude-sim-1", "display_name": "Claude (simulated)",
                 "created_at": "2026-01-01T00:00:00Z"}]
        return {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
    return {"object": "list", "data": [{"id": "gpt-sim-1", "object": "model", "created": 1767225600,
                                        "owned_by": "pooltui-sim"}]}


def with_stream_fault(dialect: str, chunks: list[bytes], fault: str) -> list[bytes]:
    """Cut a stream with an in-band error: before any data event, or after the first two.

    ``bad-request`` sends a request error as the stream's first event (status 200), as some
    openai-compatible hosts do for a request they reject only once streaming has begun.
    """
    if fault == "bad-request":
        if dialect == "anthropic":
            return [b'event: error\ndata: {"type":"error","error":{"type":"invalid_request_error",'
                    b'"message":"max_tokens: must be at most 8192"}}\n\n']
        return [b'data: {"error":{"message":"This model\'s maximum context length is 8192 tokens.",'
                b'"type":"invalid_request_error","param":"messages","code":400}}\n\n', b"data: [DONE]\n\n"]
    if dialect == "anthropic":
        error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    else:
        error = (b'data: {"error":{"message":"The server had an error while processing your request.",'
                 b'"type":"server_error","param":null,"code":null}}\n\n')
    if fault == "before-data":
        return [b": keep-alive\n\n", error]
    return [*chunks[:2], error]
