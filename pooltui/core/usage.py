"""Token usage from response bodies and stream events, per dialect."""

from __future__ import annotations

from typing import Any


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def usage_from_body(body: Any) -> tuple[int, int]:
    """(input tokens, output tokens) from a parsed response body of any dialect."""
    if not isinstance(body, dict):
        return 0, 0
    usage = body.get("usage")
    if isinstance(usage, dict):
        if "input_tokens" in usage or "output_tokens" in usage:
            return _int(usage.get("input_tokens")), _int(usage.get("output_tokens"))
        return _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))
    meta = body.get("usageMetadata")
    if isinstance(meta, dict):
        return _int(meta.get("promptTokenCount")), _int(meta.get("candidatesTokenCount"))
    message = body.get("message")  # anthropic message_start
    if isinstance(message, dict):
        return usage_from_body(message)
    return 0, 0
