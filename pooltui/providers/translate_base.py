"""What the anthropic <-> openai translators share: the refusal, the mapping tables, usage, ids, errors.

Pure functions, no I/O. ``translate.py`` is the public face; ``translate_stream.py`` uses this too.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from pooltui.core.masking import redact, scrub

#: where a tool call's arguments go when they are not a JSON object (``input`` must be an object):
#: ``{"_raw_arguments": "<the string as sent>"}``; translated back, such an input is the string again
RAW_ARGUMENTS_KEY = "_raw_arguments"

#: a tool result's ``is_error: true`` has no openai field: the tool message's text starts with this
#: prefix instead, and a tool message starting with it becomes ``is_error: true`` again
TOOL_ERROR_PREFIX = "[tool error] "

#: anthropic requires ``max_tokens``; an openai caller that gave none gets this (the SDKs' usual default)
DEFAULT_ANTHROPIC_MAX_TOKENS = 4096


class Untranslatable(ValueError):
    """A request (or answer) the other dialect cannot express without losing something."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


# ----------------------------------------------------------------------------------- finish reasons
#: openai finish_reason -> anthropic stop_reason
STOP_FROM_OPENAI: dict[str | None, str | None] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
    None: None,
}

#: anthropic stop_reason -> openai finish_reason
FINISH_FROM_ANTHROPIC: dict[str | None, str | None] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    None: None,
}


def stop_from_openai(finish: Any) -> str | None:
    """The anthropic stop reason for an openai finish reason (an unknown one ends the turn)."""
    return STOP_FROM_OPENAI.get(finish, "end_turn") if finish is None or isinstance(finish, str) else "end_turn"


def finish_from_anthropic(stop: Any) -> str | None:
    """The openai finish reason for an anthropic stop reason (an unknown one is a plain stop)."""
    return FINISH_FROM_ANTHROPIC.get(stop, "stop") if stop is None or isinstance(stop, str) else "stop"


# ---------------------------------------------------------------------------------------------- usage
def _n(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_from_openai(usage: Any) -> dict[str, int]:
    """openai usage -> anthropic usage. ``prompt_tokens`` INCLUDES cached (and cache-written) tokens;
    anthropic's ``input_tokens`` excludes them."""
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), dict) else {}
    cached, written = _n(details.get("cached_tokens")), _n(details.get("cache_write_tokens"))
    return {
        "input_tokens": max(0, _n(usage.get("prompt_tokens")) - cached - written),
        "output_tokens": _n(usage.get("completion_tokens")),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": written,
    }


def usage_from_anthropic(usage: Any) -> dict[str, Any]:
    """anthropic usage -> openai usage (``prompt_tokens`` = input + cache read + cache creation).
    Cache writes are reported as ``prompt_tokens_details.cache_write_tokens``, OpenRouter's name."""
    usage = usage if isinstance(usage, dict) else {}
    cached, written = _n(usage.get("cache_read_input_tokens")), _n(usage.get("cache_creation_input_tokens"))
    prompt = _n(usage.get("input_tokens")) + cached + written
    completion = _n(usage.get("output_tokens"))
    details: dict[str, int] = {"cached_tokens": cached}
    if written:
        details["cache_write_tokens"] = written
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": details}


# ------------------------------------------------------------------------------------------ tool calls
def input_from_arguments(arguments: Any) -> dict[str, Any]:
    """An openai ``function.arguments`` string as an anthropic ``input`` object; never raises.
    An empty string is ``{}``; anything that is not a JSON object is kept under :data:`RAW_ARGUMENTS_KEY`."""
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or arguments == "":
        return {}
    try:
        parsed = json.loads(arguments)
    except (TypeError, ValueError):
        parsed = None
    return parsed if isinstance(parsed, dict) else {RAW_ARGUMENTS_KEY: str(arguments)}


def arguments_from_input(value: Any) -> str:
    """An anthropic ``input`` object as an openai arguments string (the raw string kept as it was)."""
    if isinstance(value, dict) and set(value) == {RAW_ARGUMENTS_KEY} and isinstance(value[RAW_ARGUMENTS_KEY], str):
        return value[RAW_ARGUMENTS_KEY]
    return json.dumps(value if value is not None else {}, ensure_ascii=False, separators=(",", ":"))


# ------------------------------------------------------------------------------------------------- ids
def new_id(prefix: str) -> str:
    """``msg_…`` / ``chatcmpl-…`` / ``toolu_…`` / ``call_…``: a fresh id for a translated object."""
    sep = "-" if prefix == "chatcmpl" else "_"
    return f"{prefix}{sep}{secrets.token_hex(12)}"


# ---------------------------------------------------------------------------------------------- errors
#: status -> anthropic error type (and the openai type used when the upstream gave none)
ANTHROPIC_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
OPENAI_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    529: "server_error",
}


def _error_type(table: dict[int, str], status: int) -> str:
    if status in table:
        return table[status]
    if status >= 500:
        return "api_error" if table is ANTHROPIC_ERROR_TYPES else "server_error"
    return "invalid_request_error"


def _parsed(body: bytes | str | dict | None) -> tuple[dict[str, Any], str]:
    """(the error body as a dict, its text when it was not JSON)."""
    if isinstance(body, dict):
        return body, ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else str(body or "")
    try:
        parsed = json.loads(text)
    except ValueError:
        return {}, text
    return (parsed, "") if isinstance(parsed, dict) else ({}, text)


def error_message(status: int, body: bytes | str | dict | None) -> str:
    """The upstream's error message, whatever its shape, with any secret masked."""
    parsed, text = _parsed(body)
    err = parsed.get("error")
    candidates = [err.get("message") if isinstance(err, dict) else err, parsed.get("message"), parsed.get("detail"),
                  text.strip()[:500]]
    message = next((c for c in candidates if isinstance(c, str) and c), f"upstream error (HTTP {status})")
    return scrub(redact(message))


def _upstream_error(body: bytes | str | dict | None) -> dict[str, Any]:
    err = _parsed(body)[0].get("error")
    return err if isinstance(err, dict) else {}


def error_to_anthropic(status: int, body: bytes | str | dict | None) -> dict[str, Any]:
    """An upstream error (any dialect) as an anthropic error body; the type follows the status."""
    return {"type": "error", "error": {"type": _error_type(ANTHROPIC_ERROR_TYPES, status),
                                       "message": error_message(status, body)}}


def error_to_openai(status: int, body: bytes | str | dict | None) -> dict[str, Any]:
    """An upstream error (any dialect) as an openai error body. The type follows the status; ``param`` and
    ``code`` are the upstream's when it gave them (an anthropic upstream gives its error type as ``code``)."""
    upstream = _upstream_error(body)
    code = upstream.get("code")
    if code is None and isinstance(upstream.get("type"), str):
        code = upstream["type"]
    param = upstream.get("param")
    return {"error": {"message": error_message(status, body), "type": _error_type(OPENAI_ERROR_TYPES, status),
                      "param": param if isinstance(param, str) else None,
                      "code": code if isinstance(code, str | int) and not isinstance(code, bool) else None}}
