"""Streaming dialect translators: raw SSE bytes of one dialect in, SSE bytes of the other out.

Both are fed chunks cut anywhere (inside a line, between ``\\r`` and ``\\n``) and do O(total bytes) work:
a partial line is kept as pieces and joined once its newline arrives. Upstream comments (keep-alives)
come out as one ``: keep-alive`` comment each, so the caller's connection stays alive as long.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from pooltui.core.sse import stream_error_status
from pooltui.providers.translate_base import (
    error_to_anthropic,
    error_to_openai,
    finish_from_anthropic,
    new_id,
    stop_from_openai,
    usage_from_anthropic,
    usage_from_openai,
)

_KEEP_ALIVE = b": keep-alive\n\n"


def _dump(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


class _SSEReader:
    """Incremental SSE parsing: ``feed`` yields ``(event, data)`` per complete event, ``("", None)`` per comment."""

    __slots__ = ("_data", "_event", "_partial")

    def __init__(self) -> None:
        self._partial: list[bytes] = []
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> Iterator[tuple[str, str | None]]:
        if b"\n" not in chunk:
            if chunk:
                self._partial.append(chunk)
            return
        lines = chunk.split(b"\n")
        if self._partial:
            lines[0] = b"".join([*self._partial, lines[0]])
        self._partial = [lines.pop()] if lines[-1] else []
        for raw in lines:
            yield from self._line(raw.rstrip(b"\r").decode("utf-8", "replace"))

    def close(self) -> Iterator[tuple[str, str | None]]:
        """The last event, if the upstream ended without its blank line."""
        if self._partial:
            yield from self._line(b"".join(self._partial).rstrip(b"\r").decode("utf-8", "replace"))
            self._partial = []
        yield from self._line("")

    def _line(self, line: str) -> Iterator[tuple[str, str | None]]:
        if not line:
            if self._data or self._event:
                event, data = self._event, "\n".join(self._data)
                self._event, self._data = "", []
                yield event, data
        elif line[0] == ":":
            yield "", None
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value[:1] == " " else value
            if name == "data":
                self._data.append(value)
            elif name == "event":
                self._event = value


def _d(value: Any) -> dict[str, Any]:
    """``value`` if it is an object, else an empty one (an odd upstream event never crashes the stream)."""
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _s(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _i(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _json(data: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(data)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


class _Translator:
    """The shared loop: parse, hand each event to ``_on_event``, collect the output."""

    def __init__(self) -> None:
        self._reader = _SSEReader()
        self._out: list[str] = []
        self.finished = False  # the caller's stream has its ending (a normal end or an error)
        self.truncated = False  # the upstream ended before its stop reason; ``close`` made the ending

    def feed(self, chunk: bytes) -> bytes:
        """Translate ``chunk``; returns whatever complete output is ready (possibly ``b""``)."""
        for event, data in self._reader.feed(chunk):
            self._dispatch(event, data)
        return self._take()

    def close(self) -> bytes:
        """The upstream ended: the rest, and a proper ending if the upstream did not send one."""
        for event, data in self._reader.close():
            self._dispatch(event, data)
        if not self.finished:
            self.truncated = not self._stopped()
            self._finish()
        return self._take()

    def _dispatch(self, event: str, data: str | None) -> None:
        if self.finished:
            return
        if data is None:
            self._out.append(_KEEP_ALIVE.decode())
        else:
            self._on_event(event, data)

    def _take(self) -> bytes:
        out, self._out = "".join(self._out).encode(), []
        return out

    def _on_event(self, event: str, data: str) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _finish(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _stopped(self) -> bool:  # pragma: no cover - abstract
        """The upstream said why it stopped (its last events may still be missing)."""
        raise NotImplementedError


class OpenAIToAnthropicStream(_Translator):
    """Chat Completions chunks in, anthropic Messages events out.

    ``usage``: tokens seen so far, in anthropic's sense (``input_tokens`` excludes the cached ones).
    """

    def __init__(self, model: str, *, message_id: str | None = None) -> None:
        super().__init__()
        self.model = model
        self._id = message_id or new_id("msg")
        self._started = False
        self._open: int | None = None  # the anthropic block index open now
        self._open_text = False
        self._blocks = 0
        self._tools: dict[int, int] = {}  # openai tool_calls index -> anthropic block index
        self._stop: str | None = None
        self._usage: dict[str, int] = usage_from_openai(None)

    @property
    def usage(self) -> dict[str, int]:
        return dict(self._usage)

    def _emit(self, name: str, data: dict[str, Any]) -> None:
        self._out.append(f"event: {name}\ndata: {_dump({'type': name, **data})}\n\n")

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self._emit("message_start", {"message": {
                "id": self._id, "type": "message", "role": "assistant", "model": self.model, "content": [],
                "stop_reason": None, "stop_sequence": None, "usage": dict(self._usage)}})

    def _close_block(self) -> None:
        if self._open is not None:
            self._emit("content_block_stop", {"index": self._open})
            self._open, self._open_text = None, False

    def _open_block(self, block: dict[str, Any]) -> int:
        self._close_block()
        self._open, self._blocks = self._blocks, self._blocks + 1
        self._emit("content_block_start", {"index": self._open, "content_block": block})
        return self._open

    def _on_event(self, event: str, data: str) -> None:
        if data == "[DONE]":
            self._finish()
            return
        chunk = _json(data)
        if chunk is None:
            return
        if "error" in chunk or any(_d(c).get("finish_reason") == "error" for c in _l(chunk.get("choices"))):
            # OpenRouter ends a failed stream with finish_reason "error", with or without an error object
            self._emit("error", error_to_anthropic(stream_error_status(chunk), chunk))
            self.finished = True
            return
        self._start()
        if isinstance(chunk.get("usage"), dict):
            self._usage = usage_from_openai(chunk["usage"])
        for choice in map(_d, _l(chunk.get("choices"))):
            if choice.get("index", 0) == 0:
                self._on_delta(_d(choice.get("delta")))
                if choice.get("finish_reason"):
                    self._stop = stop_from_openai(choice["finish_reason"])

    def _on_delta(self, delta: dict[str, Any]) -> None:
        for text in (delta.get("content"), delta.get("refusal")):
            if isinstance(text, str) and text:
                if not self._open_text:
                    self._open_block({"type": "text", "text": ""})
                    self._open_text = True
                self._emit("content_block_delta", {"index": self._open,
                                                   "delta": {"type": "text_delta", "text": text}})
        for call in map(_d, _l(delta.get("tool_calls"))):
            function = _d(call.get("function"))
            position = _i(call.get("index"))
            if position not in self._tools:
                self._tools[position] = self._open_block({"type": "tool_use",
                                                          "id": _s(call.get("id")) or new_id("toolu"),
                                                          "name": _s(function.get("name")), "input": {}})
            if _s(function.get("arguments")):
                self._emit("content_block_delta", {"index": self._tools[position], "delta": {
                    "type": "input_json_delta", "partial_json": function["arguments"]}})

    def _stopped(self) -> bool:
        return self._stop is not None

    def _finish(self) -> None:
        self._start()
        self._close_block()
        self._emit("message_delta", {"delta": {"stop_reason": self._stop or "end_turn", "stop_sequence": None},
                                     "usage": dict(self._usage)})
        self._emit("message_stop", {})
        self.finished = True


class AnthropicToOpenAIStream(_Translator):
    """anthropic Messages events in, Chat Completions chunks out (a usage chunk if ``include_usage``).

    ``usage``: tokens seen so far, in anthropic's sense (``input_tokens`` excludes the cached ones).
    """

    def __init__(self, model: str, include_usage: bool = True, *, completion_id: str | None = None,
                 created: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.include_usage = include_usage
        self._id = completion_id or new_id("chatcmpl")
        self._created = int(time.time()) if created is None else created
        self._started = False
        self._tools: dict[int, int] = {}  # anthropic block index -> openai tool_calls index
        self._finish_reason: str | None = None
        self._usage: dict[str, int] = {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0,
                                       "cache_creation_input_tokens": 0}

    @property
    def usage(self) -> dict[str, int]:
        return dict(self._usage)

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> None:
        body = {"id": self._id, "object": "chat.completion.chunk", "created": self._created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        self._out.append(f"data: {_dump(body)}\n\n")

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self._chunk({"role": "assistant", "content": ""})

    def _take_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            for key in self._usage:
                value = usage.get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    self._usage[key] = value

    def _on_event(self, event: str, data: str) -> None:
        body = _json(data)
        if body is None:
            return
        kind = body.get("type") or event
        if kind == "error":
            error = error_to_openai(stream_error_status(body), body)
            self._out.append(f"data: {_dump(error)}\n\ndata: [DONE]\n\n")
            self.finished = True
        elif kind == "message_start":
            self._take_usage(_d(body.get("message")).get("usage"))
            self._start()
        elif kind == "content_block_start":
            self._on_block_start(_i(body.get("index")), _d(body.get("content_block")))
        elif kind == "content_block_delta":
            self._on_block_delta(_i(body.get("index")), _d(body.get("delta")))
        elif kind == "message_delta":
            self._take_usage(body.get("usage"))
            stop = _d(body.get("delta")).get("stop_reason")
            if stop:
                self._finish_reason = finish_from_anthropic(stop)
        elif kind == "message_stop":
            self._finish()
        elif kind == "ping":
            self._out.append(_KEEP_ALIVE.decode())

    def _on_block_start(self, index: int, block: dict[str, Any]) -> None:
        self._start()
        kind = block.get("type")
        if kind == "text" and _s(block.get("text")):
            self._chunk({"content": block["text"]})
        elif kind == "tool_use":
            position = self._tools[index] = len(self._tools)
            self._chunk({"tool_calls": [{"index": position, "id": _s(block.get("id")) or new_id("call"),
                                         "type": "function",
                                         "function": {"name": _s(block.get("name")), "arguments": ""}}]})
        elif kind not in ("text", "thinking", "redacted_thinking"):  # reasoning the caller did not ask for
            error = {"error": {"message": f"content block {kind!r} cannot be expressed in openai",
                               "type": "api_error", "param": None, "code": None}}
            self._out.append(f"data: {_dump(error)}\n\ndata: [DONE]\n\n")
            self.finished = True

    def _on_block_delta(self, index: int, delta: dict[str, Any]) -> None:
        kind = delta.get("type")
        if kind == "text_delta" and _s(delta.get("text")):
            self._chunk({"content": delta["text"]})
        elif kind == "input_json_delta" and _s(delta.get("partial_json")) and index in self._tools:
            self._chunk({"tool_calls": [{"index": self._tools[index],
                                         "function": {"arguments": delta["partial_json"]}}]})

    def _stopped(self) -> bool:
        return self._finish_reason is not None

    def _finish(self) -> None:
        self._start()
        self._chunk({}, self._finish_reason or "stop")
        if self.include_usage:
            body = {"id": self._id, "object": "chat.completion.chunk", "created": self._created,
                    "model": self.model, "choices": [], "usage": usage_from_anthropic(self._usage)}
            self._out.append(f"data: {_dump(body)}\n\n")
        self._out.append("data: [DONE]\n\n")
        self.finished = True
