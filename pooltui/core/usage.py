"""Token usage from response bodies and stream events, per dialect: the one place that reads usage fields.

Prompt-cache fields as each provider names them: anthropic ``cache_read_input_tokens`` and
``cache_creation_input_tokens`` (its ``input_tokens`` counts only the uncached rest; ``cache_creation``
splits the writes by TTL), openai ``prompt_tokens_details.cached_tokens`` (included in ``prompt_tokens``;
OpenRouter adds ``cache_write_tokens``), gemini ``cachedContentTokenCount`` (included in ``promptTokenCount``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


@dataclass(frozen=True, slots=True)
class Usage:
    """One answer's tokens: ``input`` is the whole prompt, cache reads and writes included (as openai counts)."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0  # of cache_write: written with a 1-hour TTL (anthropic), priced higher
    cacheable: int = 0  # the input the provider's rules let it cache (a hit rate's denominator)

    @property
    def uncached(self) -> int:
        """Input tokens neither read from nor written to a prompt cache."""
        return max(0, self.input - self.cache_read - self.cache_write)

    def merged(self, other: Usage) -> Usage:
        """What two reports of one answer say together (a stream reports parts in several events)."""
        return Usage(max(self.input, other.input), max(self.output, other.output),
                     max(self.cache_read, other.cache_read), max(self.cache_write, other.cache_write),
                     max(self.cache_write_1h, other.cache_write_1h), max(self.cacheable, other.cacheable))


def openai_cacheable(prompt_tokens: int) -> int:
    """The part of an OpenAI prompt its automatic cache can hold: from 1,024 tokens, in steps of 128."""
    return 0 if prompt_tokens < 1024 else prompt_tokens - (prompt_tokens - 1024) % 128


def usage_of(body: Any) -> Usage:
    """The usage a parsed response body (or stream event) of any dialect reports; zeros when it reports none."""
    if not isinstance(body, dict):
        return Usage()
    usage = body.get("usage")
    if isinstance(usage, dict):
        if "input_tokens" in usage or "output_tokens" in usage or "cache_read_input_tokens" in usage:
            read, written = _int(usage.get("cache_read_input_tokens")), _int(usage.get("cache_creation_input_tokens"))
            split = usage.get("cache_creation")
            written_1h = _int(split.get("ephemeral_1h_input_tokens")) if isinstance(split, dict) else 0
            return Usage(_int(usage.get("input_tokens")) + read + written, _int(usage.get("output_tokens")), read,
                         written, min(written_1h, written), read + written)
        details = usage.get("prompt_tokens_details")
        details = details if isinstance(details, dict) else {}
        prompt, read = _int(usage.get("prompt_tokens")), _int(details.get("cached_tokens"))
        written = _int(details.get("cache_write_tokens"))
        return Usage(prompt, _int(usage.get("completion_tokens")), read, written, 0,
                     max(read + written, openai_cacheable(prompt)))
    meta = body.get("usageMetadata")
    if isinstance(meta, dict):
        read = _int(meta.get("cachedContentTokenCount"))
        return Usage(_int(meta.get("promptTokenCount")), _int(meta.get("candidatesTokenCount")), read, 0, 0, read)
    message = body.get("message")  # anthropic message_start
    if isinstance(message, dict):
        return usage_of(message)
    return Usage()


def usage_from_body(body: Any) -> tuple[int, int]:
    """(input tokens, output tokens) from a parsed response body of any dialect; input includes cached tokens."""
    usage = usage_of(body)
    return usage.input, usage.output
