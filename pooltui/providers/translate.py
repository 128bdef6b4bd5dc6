"""Dialect translation between anthropic Messages and openai Chat Completions: requests, answers, errors.

Pure functions, no I/O. Allow-lists throughout: a field or block not known to translate faithfully raises
:class:`Untranslatable` naming it (``messages[2].content[0].type 'document'``); nothing is dropped silently
except what is not content: ``cache_control`` (a caching hint, kept on text parts with ``keep_cache_control``),
``thinking: {"type": "disabled"}`` and fields set to their default (``n: 1``, ``stream_options``, ...).

Documented choices:
- ``max_tokens`` goes to openai as ``max_tokens`` (what OpenRouter and the compatible hosts read), or as
  ``max_completion_tokens`` with ``max_tokens_field="max_completion_tokens"``; anthropic requires it, so an
  openai caller that gave none gets :data:`DEFAULT_ANTHROPIC_MAX_TOKENS` (4096).
- a tool result's ``is_error`` becomes the prefix :data:`TOOL_ERROR_PREFIX` of the tool message, and back.
- tool call arguments that are not a JSON object are kept as ``{"_raw_arguments": "..."}``, and back.
- answers report ``model`` as the model the caller asked for (the ``model`` argument), else the upstream's;
  their ids are fresh ``msg_…`` / ``chatcmpl-…`` ids; reasoning text of an openai answer is not carried
  (thinking is refused in requests, so the caller never asked for it).
- ``temperature`` above 1 (openai allows 2) is refused for anthropic; ``top_k`` is refused for openai.
- enabled thinking, ``thinking``/``redacted_thinking``/``document`` blocks, ``output_config``, server tools,
  ``n`` > 1, logprobs, audio, json response formats, ``seed`` and penalties other than 0 are refused.
"""

from __future__ import annotations

import re
import time
from typing import Any, overload

from pooltui.providers.translate_base import (
    DEFAULT_ANTHROPIC_MAX_TOKENS,
    RAW_ARGUMENTS_KEY,
    TOOL_ERROR_PREFIX,
    Untranslatable,
    arguments_from_input,
    error_to_anthropic,
    error_to_openai,
    finish_from_anthropic,
    input_from_arguments,
    new_id,
    stop_from_openai,
    usage_from_anthropic,
    usage_from_openai,
)
from pooltui.providers.translate_stream import AnthropicToOpenAIStream, OpenAIToAnthropicStream

__all__ = [
    "DEFAULT_ANTHROPIC_MAX_TOKENS",
    "RAW_ARGUMENTS_KEY",
    "TOOL_ERROR_PREFIX",
    "AnthropicToOpenAIStream",
    "OpenAIToAnthropicStream",
    "Untranslatable",
    "anthropic_to_openai_request",
    "anthropic_to_openai_response",
    "error_to_anthropic",
    "error_to_openai",
    "openai_to_anthropic_request",
    "openai_to_anthropic_response",
]

_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_DATA_URL = re.compile(r"data:(?P<type>[\w/+.-]+);base64,(?P<data>.*)", re.S)


def _check_keys(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in obj:
        if key not in allowed:
            raise Untranslatable(f"{where}.{key}" if where else key, "has no equivalent in the other dialect")


def _expect(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, kind):
        raise Untranslatable(where, f"expected {getattr(kind, '__name__', 'a valid value')}")
    return value


_NUMBER = (int, float)
#: the scalar fields both dialects share, and the types they must have (None is "not given")
_SCALARS: dict[str, tuple[type, ...]] = {
    "max_tokens": (int,), "max_completion_tokens": (int,), "temperature": _NUMBER, "top_p": _NUMBER,
    "stream": (bool,), "user": (str,), "model": (str,),
}


def _check_scalars(body: dict[str, Any]) -> None:
    """Each shared scalar field of the right type, and stop sequences strings (bad input is refused by name)."""
    for field, kinds in _SCALARS.items():
        value = body.get(field)
        if value is not None and (not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool))):
            raise Untranslatable(field, f"{value!r} is not a valid {field}")
    for field in ("stop", "stop_sequences"):
        stop = body.get(field)
        if stop is not None and not isinstance(stop, str) and not (
                isinstance(stop, list) and all(isinstance(x, str) for x in stop)):
            raise Untranslatable(field, "expected a string or a list of strings")
    if isinstance(body.get("stop_sequences"), str):
        raise Untranslatable("stop_sequences", "expected a list of strings")


def _str(obj: dict[str, Any], key: str, where: str) -> str:
    return _expect(obj.get(key), str, f"{where}.{key}")


def _refuse_unless(body: dict[str, Any], field: str, harmless: tuple[Any, ...]) -> None:
    """``field`` is fine only at a value that means nothing (its default)."""
    if field in body and body[field] not in harmless:
        raise Untranslatable(field, f"{body[field]!r} cannot be expressed in the other dialect")


# =========================================================================== anthropic -> openai request
_ANTHROPIC_TOP = {"model", "messages", "max_tokens", "system", "tools", "tool_choice", "stop_sequences",
                  "temperature", "top_p", "stream", "metadata", "thinking", "cache_control"}


def anthropic_to_openai_request(body: dict[str, Any], model: str, *, keep_cache_control: bool = False,
                                max_tokens_field: str = "max_tokens") -> dict[str, Any]:
    """An anthropic Messages request as a Chat Completions request for ``model``."""
    _check_keys(_expect(body, dict, "request"), _ANTHROPIC_TOP, "")
    _check_scalars(body)
    thinking = body.get("thinking")
    if thinking is not None and thinking != {"type": "disabled"}:
        raise Untranslatable("thinking", "extended thinking has no faithful openai equivalent")
    out: dict[str, Any] = {"model": model}
    messages: list[dict[str, Any]] = []
    if body.get("system"):
        messages.append(_system_to_openai(body["system"], keep_cache_control))
    for i, message in enumerate(_expect(body.get("messages"), list, "messages")):
        messages.extend(_message_to_openai(message, f"messages[{i}]", keep_cache_control))
    out["messages"] = messages
    if "max_tokens" in body:
        out[max_tokens_field] = body["max_tokens"]
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    metadata = body.get("metadata")
    if metadata:
        _check_keys(_expect(metadata, dict, "metadata"), {"user_id"}, "metadata")
        if metadata.get("user_id") is not None:
            out["user"] = _str(metadata, "user_id", "metadata")
    if body.get("tools"):
        out["tools"] = [_tool_to_openai(t, f"tools[{i}]") for i, t in enumerate(_expect(body["tools"], list, "tools"))]
    if body.get("tool_choice") is not None:
        choice = _tool_choice_to_openai(body["tool_choice"])
        if out.get("tools"):  # openai refuses a tool choice without tools; without tools it means nothing
            out.update(choice)
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _text_part(block: dict[str, Any], where: str, keep_cache_control: bool) -> dict[str, Any]:
    _check_keys(block, {"type", "text", "cache_control", "citations"}, where)
    if block.get("citations"):
        raise Untranslatable(f"{where}.citations", "citations cannot be expressed in openai")
    part: dict[str, Any] = {"type": "text", "text": _expect(block.get("text"), str, f"{where}.text")}
    if keep_cache_control and block.get("cache_control"):
        part["cache_control"] = block["cache_control"]
    return part


def _flatten(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """One plain text part is a string; anything else stays a list of parts."""
    if len(parts) == 1 and parts[0]["type"] == "text" and set(parts[0]) == {"type", "text"}:
        return parts[0]["text"]
    return parts


def _system_to_openai(system: Any, keep_cache_control: bool) -> dict[str, Any]:
    if isinstance(system, str):
        return {"role": "system", "content": system}
    blocks = _expect(system, list, "system")
    parts = []
    for j, block in enumerate(blocks):
        where = f"system[{j}]"
        if _expect(block, dict, where).get("type") != "text":
            raise Untranslatable(f"{where}.type", f"{block.get('type')!r} in a system prompt")
        parts.append(_text_part(block, where, keep_cache_control))
    return {"role": "system", "content": _flatten(parts)}


def _image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    _check_keys(block, {"type", "source", "cache_control"}, where)
    source = _expect(block.get("source"), dict, f"{where}.source")
    kind = source.get("type")
    if kind == "base64":
        _check_keys(source, {"type", "media_type", "data"}, f"{where}.source")
        media, data = _str(source, "media_type", f"{where}.source"), _str(source, "data", f"{where}.source")
        return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}
    if kind == "url":
        _check_keys(source, {"type", "url"}, f"{where}.source")
        return {"type": "image_url", "image_url": {"url": _str(source, "url", f"{where}.source")}}
    raise Untranslatable(f"{where}.source.type", f"{kind!r} images cannot be expressed in openai")


def _tool_result_content(block: dict[str, Any], where: str, keep_cache_control: bool) -> str | list[dict]:
    content = block.get("content", "")
    if isinstance(content, str):
        parts = [{"type": "text", "text": content}]
    else:
        parts = []
        for k, inner in enumerate(_expect(content, list, f"{where}.content")):
            inner_where = f"{where}.content[{k}]"
            if _expect(inner, dict, inner_where).get("type") != "text":
                raise Untranslatable(f"{inner_where}.type",
                                     f"{inner.get('type')!r} in a tool result (openai tool messages hold text)")
            parts.append(_text_part(inner, inner_where, keep_cache_control))
        if not parts:
            parts = [{"type": "text", "text": ""}]
    if block.get("is_error"):
        parts[0] = {**parts[0], "text": TOOL_ERROR_PREFIX + parts[0]["text"]}
    if keep_cache_control and block.get("cache_control"):
        parts[-1] = {**parts[-1], "cache_control": block["cache_control"]}
    return _flatten(parts)


def _message_to_openai(message: Any, where: str, keep_cache_control: bool) -> list[dict[str, Any]]:
    """One anthropic message as one or more openai messages (tool results become tool messages)."""
    _check_keys(_expect(message, dict, where), {"role", "content"}, where)
    role, content = message.get("role"), message.get("content")
    if role not in ("user", "assistant"):
        raise Untranslatable(f"{where}.role", f"{role!r}")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    blocks = _expect(content, list, f"{where}.content")
    if role == "assistant":
        return [_assistant_to_openai(blocks, where, keep_cache_control)]
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        bwhere = f"{where}.content[{j}]"
        kind = _expect(block, dict, bwhere).get("type")
        if kind == "text":
            parts.append(_text_part(block, bwhere, keep_cache_control))
        elif kind == "image":
            parts.append(_image_part(block, bwhere))
        elif kind == "tool_result":
            _check_keys(block, {"type", "tool_use_id", "content", "is_error", "cache_control"}, bwhere)
            if parts:
                out.append({"role": "user", "content": _flatten(parts)})
                parts = []
            out.append({"role": "tool", "tool_call_id": _expect(block.get("tool_use_id"), str, f"{bwhere}.tool_use_id"),
                        "content": _tool_result_content(block, bwhere, keep_cache_control)})
        else:
            raise Untranslatable(f"{bwhere}.type", f"{kind!r} cannot be expressed in openai")
    if parts or not out:
        out.append({"role": "user", "content": _flatten(parts) if parts else ""})
    return out


def _assistant_to_openai(blocks: list[Any], where: str, keep_cache_control: bool) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        bwhere = f"{where}.content[{j}]"
        kind = _expect(block, dict, bwhere).get("type")
        if kind == "text":
            parts.append(_text_part(block, bwhere, keep_cache_control))
        elif kind == "tool_use":
            _check_keys(block, {"type", "id", "name", "input", "cache_control"}, bwhere)
            for key in ("id", "name"):
                _str(block, key, bwhere)
            _expect(block.get("input"), dict, f"{bwhere}.input")
            calls.append(_openai_call(block))
        else:
            raise Untranslatable(f"{bwhere}.type", f"{kind!r} cannot be expressed in openai")
    out: dict[str, Any] = {"role": "assistant", "content": _flatten(parts) if parts else (None if calls else "")}
    if calls:
        out["tool_calls"] = calls
    return out


def _openai_call(block: dict[str, Any]) -> dict[str, Any]:
    """A ``tool_use`` block as an openai tool call."""
    return {"id": block.get("id"), "type": "function",
            "function": {"name": block.get("name"), "arguments": arguments_from_input(block.get("input"))}}


def _tool_to_openai(tool: Any, where: str) -> dict[str, Any]:
    _check_keys(_expect(tool, dict, where), {"name", "description", "input_schema", "cache_control", "type",
                                             "strict"}, where)
    if tool.get("type") not in (None, "custom"):
        raise Untranslatable(f"{where}.type", f"server tool {tool['type']!r} cannot be expressed in openai")
    function: dict[str, Any] = {"name": _expect(tool.get("name"), str, f"{where}.name")}
    if tool.get("description") is not None:
        function["description"] = tool["description"]
    function["parameters"] = _expect(tool.get("input_schema"), dict, f"{where}.input_schema")
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


_CHOICE_TO_OPENAI = {"auto": "auto", "any": "required", "none": "none"}


def _tool_choice_to_openai(choice: Any) -> dict[str, Any]:
    kind = _expect(choice, dict, "tool_choice").get("type")
    if kind != "tool" and kind not in _CHOICE_TO_OPENAI:
        raise Untranslatable("tool_choice.type", f"{kind!r}")
    _check_keys(choice, {"type", "name", "disable_parallel_tool_use"} if kind == "tool"
                else {"type", "disable_parallel_tool_use"}, "tool_choice")
    if kind == "tool":
        out: dict[str, Any] = {"tool_choice": {"type": "function",
                                               "function": {"name": _str(choice, "name", "tool_choice")}}}
    else:
        out = {"tool_choice": _CHOICE_TO_OPENAI[kind]}
    if choice.get("disable_parallel_tool_use"):
        out["parallel_tool_calls"] = False
    return out


# =========================================================================== openai -> anthropic request
_OPENAI_TOP = {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop",
               "stream", "stream_options", "tools", "tool_choice", "parallel_tool_calls", "user",
               # harmless at their defaults only (checked below)
               "n", "logprobs", "top_logprobs", "frequency_penalty", "presence_penalty", "response_format", "store",
               "modalities"}
_OPENAI_DEFAULTS: dict[str, tuple[Any, ...]] = {
    "n": (None, 1), "logprobs": (None, False), "top_logprobs": (None, 0), "frequency_penalty": (None, 0),
    "presence_penalty": (None, 0), "response_format": (None, {"type": "text"}), "store": (None, False),
    "modalities": (None, ["text"]), "parallel_tool_calls": (None, True, False),
}


def openai_to_anthropic_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    """A Chat Completions request as an anthropic Messages request for ``model``."""
    _check_keys(_expect(body, dict, "request"), _OPENAI_TOP, "")
    _check_scalars(body)
    for field, harmless in _OPENAI_DEFAULTS.items():
        _refuse_unless(body, field, harmless)
    options = body.get("stream_options")
    if options:
        _check_keys(_expect(options, dict, "stream_options"), {"include_usage"}, "stream_options")
        if not isinstance(options.get("include_usage", False), bool):
            raise Untranslatable("stream_options.include_usage", "expected true or false")
    system, messages = _messages_to_anthropic(_expect(body.get("messages"), list, "messages"))
    out: dict[str, Any] = {"model": model}
    if system is not None:
        out["system"] = system
    out["messages"] = messages
    out["max_tokens"] = next((body[f] for f in ("max_completion_tokens", "max_tokens") if body.get(f) is not None),
                             DEFAULT_ANTHROPIC_MAX_TOKENS)
    temperature = body.get("temperature")
    if temperature is not None:
        if temperature > 1:
            raise Untranslatable("temperature", f"{temperature} is above anthropic's maximum of 1")
        out["temperature"] = temperature
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("user") is not None:
        out["metadata"] = {"user_id": body["user"]}
    if body.get("tools"):
        out["tools"] = [_tool_to_anthropic(t, f"tools[{i}]")
                        for i, t in enumerate(_expect(body["tools"], list, "tools"))]
    choice = _tool_choice_to_anthropic(body.get("tool_choice"), body.get("parallel_tool_calls") is False)
    if choice is not None and out.get("tools"):  # without tools no call is made: any choice means nothing
        out["tool_choice"] = choice
    if body.get("stream"):
        out["stream"] = True
    return out


def _text_block(part: Any, where: str) -> dict[str, Any]:
    _check_keys(_expect(part, dict, where), {"type", "text", "cache_control"}, where)
    if part.get("type") != "text":
        raise Untranslatable(f"{where}.type", f"{part.get('type')!r} where only text fits")
    block: dict[str, Any] = {"type": "text", "text": _expect(part.get("text"), str, f"{where}.text")}
    if part.get("cache_control"):
        block["cache_control"] = part["cache_control"]
    return block


def _text_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [_text_block(p, f"{where}[{k}]") for k, p in enumerate(_expect(content, list, where))]


def _image_block(part: dict[str, Any], where: str) -> dict[str, Any]:
    _check_keys(part, {"type", "image_url"}, where)
    image = _expect(part.get("image_url"), dict, f"{where}.image_url")
    _check_keys(image, {"url", "detail"}, f"{where}.image_url")
    if image.get("detail") not in (None, "auto"):
        raise Untranslatable(f"{where}.image_url.detail", f"{image['detail']!r} has no anthropic equivalent")
    url = _expect(image.get("url"), str, f"{where}.image_url.url")
    data = _DATA_URL.fullmatch(url)
    if data:
        if data["type"] not in _IMAGE_TYPES:
            raise Untranslatable(f"{where}.image_url.url", f"media type {data['type']!r} is not an anthropic image")
        return {"type": "image", "source": {"type": "base64", "media_type": data["type"], "data": data["data"]}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise Untranslatable(f"{where}.image_url.url", "neither a data: URL nor an http(s) URL")


def _user_blocks(content: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    blocks = []
    for k, part in enumerate(_expect(content, list, f"{where}.content")):
        pwhere = f"{where}.content[{k}]"
        kind = _expect(part, dict, pwhere).get("type")
        if kind == "text":
            blocks.append(_text_block(part, pwhere))
        elif kind == "image_url":
            blocks.append(_image_block(part, pwhere))
        else:
            raise Untranslatable(f"{pwhere}.type", f"{kind!r} cannot be expressed in anthropic")
    return blocks


def _tool_result_block(message: dict[str, Any], where: str) -> dict[str, Any]:
    _check_keys(message, {"role", "content", "tool_call_id"}, where)
    blocks = _text_blocks(message.get("content") or "", f"{where}.content")
    is_error = bool(blocks) and blocks[0]["text"].startswith(TOOL_ERROR_PREFIX)
    if is_error:
        blocks[0] = {**blocks[0], "text": blocks[0]["text"][len(TOOL_ERROR_PREFIX):]}
    content: str | list[dict[str, Any]] = blocks
    if len(blocks) == 1 and set(blocks[0]) == {"type", "text"}:
        content = blocks[0]["text"]
    block: dict[str, Any] = {"type": "tool_result",
                             "tool_use_id": _expect(message.get("tool_call_id"), str, f"{where}.tool_call_id"),
                             "content": content}
    if is_error:
        block["is_error"] = True
    return block


def _assistant_blocks(message: dict[str, Any], where: str) -> str | list[dict[str, Any]]:
    _check_keys(message, {"role", "content", "tool_calls", "refusal"}, where)
    if message.get("refusal") is not None:
        raise Untranslatable(f"{where}.refusal", "an assistant refusal cannot be expressed in anthropic")
    content, calls = message.get("content"), message.get("tool_calls") or []
    if isinstance(content, str) and not calls:
        return content
    blocks = [b for b in _text_blocks(content, f"{where}.content") if b["text"]] if content else []
    for k, call in enumerate(_expect(calls, list, f"{where}.tool_calls")):
        cwhere = f"{where}.tool_calls[{k}]"
        _check_keys(_expect(call, dict, cwhere), {"id", "type", "function"}, cwhere)
        if call.get("type", "function") != "function":
            raise Untranslatable(f"{cwhere}.type", f"{call.get('type')!r}")
        function = _expect(call.get("function"), dict, f"{cwhere}.function")
        _check_keys(function, {"name", "arguments"}, f"{cwhere}.function")
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            raise Untranslatable(f"{cwhere}.function.arguments", "expected a JSON string")
        blocks.append({"type": "tool_use", "id": _str(call, "id", cwhere),
                       "name": _str(function, "name", f"{cwhere}.function"), "input": input_from_arguments(arguments)})
    return blocks


@overload
def _marked(content: list[dict[str, Any]], marker: Any) -> list[dict[str, Any]]: ...
@overload
def _marked(content: str | list[dict[str, Any]], marker: Any) -> str | list[dict[str, Any]]: ...
def _marked(content: str | list[dict[str, Any]], marker: Any) -> str | list[dict[str, Any]]:
    """``content`` with a message-level ``cache_control`` moved onto its last block, where anthropic reads it."""
    if not marker:
        return content
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
    return [*blocks[:-1], {**blocks[-1], "cache_control": marker}] if blocks else blocks


def _messages_to_anthropic(messages: list[Any]) -> tuple[Any, list[dict[str, Any]]]:
    """(the system prompt, the messages): leading system/developer messages become the system prompt,
    tool messages become tool_result blocks of one user message (with the user text that follows them).
    A message-level ``cache_control`` (as Hermes and OpenRouter send it) goes on the message's last block."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    after_tools = False  # the last anthropic message was made of tool results
    for i, original in enumerate(messages):
        where = f"messages[{i}]"
        role = _expect(original, dict, where).get("role")
        marker = original.get("cache_control")
        message = {k: v for k, v in original.items() if k != "cache_control"}
        if role in ("system", "developer"):
            if out:
                raise Untranslatable(f"{where}.role", f"{role!r} after the conversation began (anthropic has one "
                                                      "system prompt, before the messages)")
            _check_keys(message, {"role", "content"}, where)
            system.extend(_marked(_text_blocks(message.get("content"), f"{where}.content"), marker))
        elif role == "tool":
            block = _tool_result_block(message, where)
            if marker:
                block["cache_control"] = marker
            if after_tools:
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
            after_tools = True
            continue
        elif role == "user":
            _check_keys(message, {"role", "content"}, where)
            content = _marked(_user_blocks(message.get("content"), where), marker)
            if after_tools:
                out[-1]["content"].extend([{"type": "text", "text": content}] if isinstance(content, str) else content)
            else:
                out.append({"role": "user", "content": content})
        elif role == "assistant":
            out.append({"role": "assistant", "content": _marked(_assistant_blocks(message, where), marker)})
        else:
            raise Untranslatable(f"{where}.role", f"{role!r} cannot be expressed in anthropic")
        after_tools = False
    if not system:
        return None, out
    if len(system) == 1 and set(system[0]) == {"type", "text"}:
        return system[0]["text"], out
    return system, out


def _tool_to_anthropic(tool: Any, where: str) -> dict[str, Any]:
    if _expect(tool, dict, where).get("type") != "function":
        raise Untranslatable(f"{where}.type", f"{tool.get('type')!r} tools cannot be expressed in anthropic")
    _check_keys(tool, {"type", "function", "cache_control"}, where)
    function = _expect(tool.get("function"), dict, f"{where}.function")
    _check_keys(function, {"name", "description", "parameters", "strict"}, f"{where}.function")
    out: dict[str, Any] = {"name": _expect(function.get("name"), str, f"{where}.function.name")}
    if function.get("description") is not None:
        out["description"] = function["description"]
    out["input_schema"] = _expect(function.get("parameters") or {"type": "object", "properties": {}}, dict,
                                  f"{where}.function.parameters")
    if function.get("strict") is not None:
        out["strict"] = function["strict"]
    if tool.get("cache_control"):  # as Hermes marks its last tool; anthropic reads it there
        out["cache_control"] = tool["cache_control"]
    return out


_CHOICE_TO_ANTHROPIC = {"auto": "auto", "required": "any", "none": "none"}


def _tool_choice_to_anthropic(choice: Any, no_parallel: bool) -> dict[str, Any] | None:
    if choice is None:
        out: dict[str, Any] | None = {"type": "auto"} if no_parallel else None
    elif isinstance(choice, str):
        if choice not in _CHOICE_TO_ANTHROPIC:
            raise Untranslatable("tool_choice", f"{choice!r}")
        out = {"type": _CHOICE_TO_ANTHROPIC[choice]}
    else:
        if _expect(choice, dict, "tool_choice").get("type") != "function":
            raise Untranslatable("tool_choice.type", f"{choice.get('type')!r}")
        _check_keys(choice, {"type", "function"}, "tool_choice")
        function = _expect(choice.get("function"), dict, "tool_choice.function")
        _check_keys(function, {"name"}, "tool_choice.function")
        out = {"type": "tool", "name": _str(function, "name", "tool_choice.function")}
    if out is not None and no_parallel and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


# ========================================================================================== answers
def openai_to_anthropic_response(body: dict[str, Any], model: str) -> dict[str, Any]:
    """A Chat Completions answer as an anthropic Message (model: the caller's, else the upstream's)."""
    choices = _expect(_expect(body, dict, "answer").get("choices") or [], list, "choices")
    if len(choices) != 1:
        raise Untranslatable("choices", f"{len(choices)} choices (an anthropic message is one)")
    choice = _expect(choices[0], dict, "choices[0]")
    message = _expect(choice.get("message") or {}, dict, "choices[0].message")
    content: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, list):
        text = "".join(p["text"] for p in text if isinstance(p, dict) and isinstance(p.get("text"), str))
    for said in (text, message.get("refusal")):
        if said:
            content.append({"type": "text", "text": _expect(said, str, "choices[0].message.content")})
    for k, call in enumerate(_expect(message.get("tool_calls") or [], list, "choices[0].message.tool_calls")):
        where = f"choices[0].message.tool_calls[{k}]"
        function = _expect(_expect(call, dict, where).get("function") or {}, dict, f"{where}.function")
        content.append({"type": "tool_use", "id": call.get("id") or new_id("toolu"),
                        "name": _expect(function.get("name"), str, f"{where}.function.name"),
                        "input": input_from_arguments(function.get("arguments"))})
    return {"id": new_id("msg"), "type": "message", "role": "assistant", "model": model or body.get("model"),
            "content": content, "stop_reason": stop_from_openai(choice.get("finish_reason")),
            "stop_sequence": None, "usage": usage_from_openai(body.get("usage"))}


def anthropic_to_openai_response(body: dict[str, Any], model: str) -> dict[str, Any]:
    """An anthropic Message as a Chat Completions answer (model: the caller's, else the upstream's)."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(_expect(_expect(body, dict, "answer").get("content") or [], list, "content")):
        kind = _expect(block, dict, f"content[{j}]").get("type")
        if kind == "text":
            texts.append(_expect(block.get("text", ""), str, f"content[{j}].text"))
        elif kind == "tool_use":
            _expect(block.get("name"), str, f"content[{j}].name")
            calls.append(_openai_call(block))
        elif kind not in ("thinking", "redacted_thinking"):  # reasoning the openai caller did not ask for
            raise Untranslatable(f"content[{j}].type", f"{kind!r} cannot be expressed in openai")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return {"id": new_id("chatcmpl"), "object": "chat.completion", "created": int(time.time()),
            "model": model or body.get("model"),
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish_from_anthropic(body.get("stop_reason"))}],
            "usage": usage_from_anthropic(body.get("usage"))}
