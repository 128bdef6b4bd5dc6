"""The simulated providers' prompt caches: per organization, a prefix cache with each provider's documented rules.

Pure logic over an injected monotonic clock. Token counts use the simulator's one estimate (``TOKEN_BYTES`` bytes
a token, as ``sim/app.py`` counts a request's input), applied to the prompt's blocks in the order the provider
reads them.

Anthropic (platform.claude.com/docs/en/build-with-claude/prompt-caching):

- explicit ``cache_control: {"type": "ephemeral"}`` breakpoints on tools, system blocks and message content blocks,
  or one top-level ``cache_control`` (automatic caching: the breakpoint goes on the last block); the prefix is read
  in the order tools, system, messages and is cached only up to a breakpoint, at most 4 breakpoints a request;
- a breakpoint looks back over at most 20 blocks before it for an earlier cached prefix (the longest is read);
- a prefix shorter than the model's minimum is not cached, with no error: 1,024 tokens for Sonnet/Opus-class
  models, 2,048 for Haiku 3/3.5, 4,096 for Opus 4.5/4.6 and Haiku 4.5 (the docs' table; they win over older
  "2,048 for every Haiku" notes);
- a 5-minute lifetime refreshed on each hit, or ``"ttl": "1h"``; usage reports ``cache_creation_input_tokens``
  and ``cache_read_input_tokens`` besides ``input_tokens``, which then counts only the uncached remainder
  (``cache_creation.ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens`` split the writes).

OpenAI (developers.openai.com/api/docs/guides/prompt-caching; the cookbook "Prompt Caching 201"):

- automatic for prompts of 1,024 tokens or more, hits in increments of 128 tokens (1,024, 1,152, ...) of an exact
  prefix (tools and messages); no write premium; cached prefixes stay for 5 to 10 minutes of inactivity (we take 5,
  refreshed on each hit); reported as ``usage.prompt_tokens_details.cached_tokens``, which ``prompt_tokens``
  includes; a stream reports the same in its final usage chunk.

A cache belongs to an organization (an Anthropic workspace, an OpenAI organization): keys of one org share it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TOKEN_BYTES = 16  # the simulator's token estimate: one token per 16 bytes of request
ANTHROPIC_TTL_S = {"5m": 300.0, "1h": 3600.0}
ANTHROPIC_MAX_BREAKPOINTS = 4
ANTHROPIC_LOOKBACK_BLOCKS = 20
OPENAI_MIN_TOKENS = 1024
OPENAI_INCREMENT = 128
OPENAI_TTL_S = 300.0


def tokens_of(n_bytes: int) -> int:
    """Tokens in ``n_bytes`` of request, by the simulator's estimate."""
    return n_bytes // TOKEN_BYTES


def anthropic_minimum(model: str) -> int:
    """The shortest prefix (tokens) Anthropic caches for ``model`` (per the docs' table by model family)."""
    name = model.lower()
    if any(family in name for family in ("opus-4-5", "opus-4-6", "haiku-4-5")):
        return 4096
    if "haiku" in name:
        return 2048
    return 1024


@dataclass(frozen=True, slots=True)
class CacheUsage:
    """What the cache did for one request, in tokens: read from it, written to it (of which with a 1-hour TTL),
    and the cacheable input (the prefix the rules allow to cache: read + written for Anthropic, the largest
    128-token step for OpenAI)."""

    read: int = 0
    written: int = 0
    written_1h: int = 0
    cacheable: int = 0


@dataclass(slots=True)
class _Block:
    digest: bytes  # hash of the prompt up to and including this block
    tokens: int  # tokens up to and including this block
    ttl: str | None  # "5m" / "1h" when the block carries a breakpoint


def _canonical(part: Any) -> bytes:
    return json.dumps(part, separators=(",", ":"), sort_keys=True).encode()


def _without_marker(block: Any) -> tuple[Any, str | None]:
    """(the block without its ``cache_control``, the breakpoint's TTL or None)."""
    if not isinstance(block, dict) or "cache_control" not in block:
        return block, None
    marker = block["cache_control"]
    ttl = marker.get("ttl", "5m") if isinstance(marker, dict) else "5m"
    return {k: v for k, v in block.items() if k != "cache_control"}, ttl if ttl in ANTHROPIC_TTL_S else "5m"


def anthropic_blocks(body: dict[str, Any]) -> list[tuple[Any, str | None]]:
    """The request's blocks in the order Anthropic caches them (tools, system, messages), each with its
    breakpoint's TTL (None: no breakpoint)."""
    out: list[tuple[Any, str | None]] = []
    for tool in body.get("tools") or []:
        out.append(_without_marker(tool))
    system = body.get("system")
    if isinstance(system, str):
        out.append(({"type": "text", "text": system, "role": "system"}, None))
    elif isinstance(system, list):
        out.extend(_without_marker(b) for b in system)
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        role, content = message.get("role"), message.get("content")
        if isinstance(content, list):
            for block in content:
                plain, ttl = _without_marker(block)
                out.append(({"role": role, "block": plain}, ttl))
        else:
            out.append(({"role": role, "block": content}, None))
    return out


class PromptCache:
    """The prompt caches of one provider's organizations (``org`` names one), on ``clock`` (seconds)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._expires: dict[tuple[str, str, bytes], tuple[float, float]] = {}  # -> (expiry, ttl)

    def _alive(self, entry: tuple[str, str, bytes], now: float) -> bool:
        held = self._expires.get(entry)
        if held is None:
            return False
        if held[0] <= now:
            del self._expires[entry]
            return False
        return True

    def _keep(self, entry: tuple[str, str, bytes], ttl_s: float, now: float) -> None:
        held = self._expires.get(entry)
        ttl_s = max(ttl_s, held[1]) if held is not None and held[0] > now else ttl_s
        self._expires[entry] = (now + ttl_s, ttl_s)

    def _refresh(self, entry: tuple[str, str, bytes], now: float) -> None:
        self._keep(entry, self._expires[entry][1], now)

    def anthropic(self, org: str, model: str, body: dict[str, Any]) -> CacheUsage:
        """Read and write ``org``'s cache for one Messages request, as Anthropic does."""
        now, minimum = self._clock(), anthropic_minimum(model)
        blocks, running, size = [], hashlib.sha256(), 0
        for part, ttl in anthropic_blocks(body):
            raw = _canonical(part)
            running.update(raw)
            size += len(raw)
            blocks.append(_Block(running.copy().digest(), tokens_of(size), ttl))
        if blocks and isinstance(body.get("cache_control"), dict) and blocks[-1].ttl is None:
            blocks[-1].ttl = _without_marker({"cache_control": body["cache_control"]})[1]
        points = [i for i, b in enumerate(blocks) if b.ttl is not None][:ANTHROPIC_MAX_BREAKPOINTS]
        points = [i for i in points if blocks[i].tokens >= minimum]
        read, hit = 0, None
        for point in points:
            for j in range(point, max(-1, point - ANTHROPIC_LOOKBACK_BLOCKS - 1), -1):
                entry = (org, model, blocks[j].digest)
                if self._alive(entry, now):
                    if blocks[j].tokens > read:
                        read, hit = blocks[j].tokens, entry
                    break
        if hit is not None:
            self._refresh(hit, now)
        written = written_1h = 0
        done = read
        for point in points:
            block = blocks[point]
            entry = (org, model, block.digest)
            if not self._alive(entry, now):  # a new write; a hit was refreshed above
                self._keep(entry, ANTHROPIC_TTL_S[block.ttl or "5m"], now)
            if block.tokens > done:
                written += block.tokens - done
                written_1h += block.tokens - done if block.ttl == "1h" else 0
                done = block.tokens
        return CacheUsage(read, written, written_1h, max(read, done))

    def openai(self, org: str, model: str, body: dict[str, Any]) -> CacheUsage:
        """Read and write ``org``'s cache for one Chat Completions request, as OpenAI does (automatic)."""
        now = self._clock()
        prompt = _canonical({"tools": body.get("tools") or [], "messages": body.get("messages") or []})
        total = tokens_of(len(prompt))
        if total < OPENAI_MIN_TOKENS:
            return CacheUsage()
        steps = range(OPENAI_MIN_TOKENS, total + 1, OPENAI_INCREMENT)
        running, start, read = hashlib.sha256(), 0, 0
        entries: list[tuple[int, tuple[str, str, bytes]]] = []
        for step in steps:
            running.update(prompt[start:step * TOKEN_BYTES])
            start = step * TOKEN_BYTES
            entries.append((step, (org, model, running.copy().digest())))
        for step, entry in entries:
            if self._alive(entry, now):
                read = step
        for _, entry in entries:
            self._keep(entry, OPENAI_TTL_S, now)
        return CacheUsage(read, 0, 0, entries[-1][0])

    def serve(self, dialect: str, org: str, model: str, body: dict[str, Any]) -> CacheUsage:
        """One request's cache usage in ``dialect`` ("anthropic" or "openai")."""
        return self.anthropic(org, model, body) if dialect == "anthropic" else self.openai(org, model, body)
