"""Conversations and the keys that hold their prompt cache.

A provider caches a prompt's prefix per organization, so a conversation sent to the key that served its
last turn (or a key of the same ``cache_group``) reads its prefix from the cache instead of writing it again.
:func:`conversation_of` recognises a conversation once per request (an explicit session id, else a hash of
its stable head: bounded work, however large the body); :class:`AffinityMap` remembers, for a bounded number
of conversations, which key holds each. Only hashes are kept, never prompt text.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

#: ``affinity`` per provider: "prefix" (a session id, else the prompt's head), "session" (session ids only), "off"
AFFINITY_MODES = ("prefix", "session", "off")
#: provider kinds whose API caches prompts per organization: affinity is on for them unless configured off
CACHING_KINDS = frozenset({"anthropic", "anthropic-compatible", "openai"})
#: the header a caller names its conversation with (taken off the request before it goes upstream)
SESSION_HEADER = "x-pooltui-session"
#: a provider's prompt cache lives this long without use (Anthropic 5 min, refreshed on a hit; OpenAI 5-10 min)
CACHE_TTL_S = 300.0
CONVERSATIONS_KEPT = 10_000
#: characters of one part (system prompt, tools, first message) that go into the prefix hash, and the
#: JSON nodes walked per part: the hash costs the same for a 100 MB body as for a 100 kB one
PART_CHARS = 8192
PART_NODES = 256
SESSION_ID_CHARS = 256
#: a request body shorter than this cannot hold a cacheable prompt (Anthropic and OpenAI cache from 1,024 tokens,
#: about 4 characters each): no cache to keep warm, so its prefix is not followed (explicit session ids still are)
MIN_CACHEABLE_BYTES = 4096
#: never part of a conversation's identity: a breakpoint moves from turn to turn
_SKIPPED_FIELDS = frozenset({"cache_control"})


def default_affinity(kind: str) -> str:
    """The affinity of a provider of ``kind`` unless its config says: on where the provider caches prompts."""
    return "prefix" if kind in CACHING_KINDS else "off"


def check_affinity(value: object) -> str:
    """``value`` as an affinity mode, or ValueError naming the choices."""
    if not isinstance(value, str) or value.strip().lower() not in AFFINITY_MODES:
        raise ValueError(f"affinity must be one of {', '.join(AFFINITY_MODES)}, not {value!r}")
    return value.strip().lower()


@dataclass(frozen=True, slots=True)
class Conversation:
    """A request's conversation: an opaque token (a hash) and what it was recognised by."""

    token: str
    source: str  # "header", "metadata.user_id", "prompt_cache_key", "user" or "prefix"


class _Feed:
    """A bounded walk of JSON values into a hash: strings cut at ``PART_CHARS`` (their length hashed too)."""

    __slots__ = ("chars", "digest")

    def __init__(self) -> None:
        self.digest = hashlib.blake2b(digest_size=12)
        self.chars = 0  # characters hashed so far, all parts together (what the bounded work is measured by)

    def part(self, value: Any) -> None:
        self.digest.update(b"\x1e")
        budget = [PART_CHARS, PART_NODES]
        self._walk(value, budget)

    def _walk(self, value: Any, budget: list[int]) -> None:
        if budget[1] <= 0 or budget[0] <= 0:
            return
        budget[1] -= 1
        update = self.digest.update
        if isinstance(value, str):
            cut = value[:budget[0]]
            budget[0] -= len(cut)
            self.chars += len(cut)
            update(b"s%d:" % len(value))
            update(cut.encode("utf-8", "surrogatepass"))
        elif isinstance(value, dict):
            update(b"{")
            for name, item in value.items():
                if name in _SKIPPED_FIELDS or budget[1] <= 0:
                    continue
                update(str(name)[:64].encode("utf-8", "surrogatepass") + b"=")
                self._walk(item, budget)
            update(b"}")
        elif isinstance(value, list):
            update(b"[%d" % len(value))
            for item in value:
                if budget[1] <= 0 or budget[0] <= 0:
                    break
                self._walk(item, budget)
            update(b"]")
        else:
            update(repr(value)[:32].encode())


def prefix_digest(body: Mapping[str, Any], dialect: str) -> tuple[str, int]:
    """The hash of a request's stable head, and the characters hashed: the system prompt and tools, then
    the messages up to and including the first user message (the model too: a cache belongs to one model).
    Later turns and ``cache_control`` marks (which agents move to the newest message) leave it unchanged."""
    feed = _Feed()
    feed.part(body.get("model"))
    if dialect == "anthropic":
        feed.part(body.get("system"))
    feed.part(body.get("tools"))
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages[:8]:  # system and developer messages come first; the first user message ends it
            feed.part(message)
            if isinstance(message, dict) and message.get("role") == "user":
                break
    return feed.digest.hexdigest(), feed.chars


def _session_id(value: object) -> str | None:
    return value[:SESSION_ID_CHARS] if isinstance(value, str) and value.strip() else None


def _token(source: str, text: str) -> str:
    return hashlib.blake2b(f"{source}\x00{text}".encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def conversation_of(body: object, headers: Mapping[str, str], dialect: str, mode: str, *,
                    size: int = 0) -> Conversation | None:
    """The conversation a request belongs to under ``mode`` (None: affinity off, or nothing recognised).

    First an explicit id: the ``x-pooltui-session`` header; Anthropic's ``metadata.user_id``; OpenAI's
    ``prompt_cache_key``, then its older ``user``. Then, with mode "prefix", the hash of the prompt's head,
    when the body (``size`` bytes) is long enough for a provider to cache any of it."""
    if mode == "off":
        return None
    said = _session_id(headers.get(SESSION_HEADER))
    if said is not None:
        return Conversation(_token("header", said), "header")
    if not isinstance(body, dict):
        return None
    if dialect == "anthropic":
        meta = body.get("metadata")
        said = _session_id(meta.get("user_id")) if isinstance(meta, dict) else None
        if said is not None:
            return Conversation(_token("metadata.user_id", said), "metadata.user_id")
    else:
        for name in ("prompt_cache_key", "user"):
            said = _session_id(body.get(name))
            if said is not None:
                return Conversation(_token(name, said), name)
    if mode != "prefix" or size < MIN_CACHEABLE_BYTES or not isinstance(body.get("messages"), list):
        return None
    digest, _ = prefix_digest(body, dialect)
    return Conversation(digest, "prefix")


@dataclass(slots=True)
class Holder:
    """Which key served a conversation last, when, and its cached prefix in tokens (when an answer said)."""

    label: str
    group: str
    used: float
    prefix_tokens: int | None = None


class AffinityStore(Protocol):
    """Where a fleet of processes keeps its conversations' keys (``store/shared_affinity.py``): told each
    placement (it never makes the pick wait), asked for a conversation this process has not seen."""

    def placed(self, token: str, label: str, moved: bool, now: float) -> None:
        """``label`` holds ``token``'s conversation now (``moved``: another key held it here before)."""

    async def fetch(self, token: str) -> str | None:
        """The label of the key the fleet placed ``token`` on, if any (bounded: a slow store is no answer)."""


class AffinityMap:
    """Conversation token -> the key that holds its cache: least recently used first out past ``capacity``,
    and an entry unused for ``ttl_s`` (the provider's cache is gone by then) is forgotten. With a ``store``
    (a fleet's), each placement is told to it."""

    def __init__(self, capacity: int = CONVERSATIONS_KEPT, ttl_s: float = CACHE_TTL_S,
                 store: AffinityStore | None = None) -> None:
        self.capacity = capacity
        self.ttl_s = ttl_s
        self.store = store
        self._held: OrderedDict[str, Holder] = OrderedDict()
        self.evicted = 0  # entries dropped for room (not for age)
        #: no entry was last used before this (a lower bound): while it is within the TTL and the map within its
        #: capacity, a put has nothing to age out and skips looking
        self._floor = math.inf

    def __len__(self) -> int:
        return len(self._held)

    def get(self, token: str, now: float) -> Holder | None:
        """The holder of ``token``'s cache, or None (never seen, or its cache has expired)."""
        held = self._held.get(token)
        if held is None:
            return None
        if now - held.used > self.ttl_s:
            del self._held[token]
            return None
        return held

    def put(self, token: str, label: str, group: str, now: float, tell: bool = True) -> Holder:
        """``label`` (of cache group ``group``) now holds ``token``'s cache; older entries age out. ``tell``: say
        so to the store (not for a placement the store itself reported)."""
        held = self._held.get(token)
        if tell and self.store is not None:
            self.store.placed(token, label, held is not None and held.label != label, now)
        if held is not None and held.group == group:
            held.label, held.used = label, now
            self._held.move_to_end(token)
        else:
            held = self._held[token] = Holder(label, group, now)
            self._held.move_to_end(token)
        if now < self._floor:
            self._floor = now
        entries, edge = self._held, now - self.ttl_s
        if self._floor >= edge and len(entries) <= self.capacity:
            return held  # nothing to age out, and room: the usual put
        while entries:
            oldest = next(iter(entries.values()))
            if oldest.used >= edge and len(entries) <= self.capacity:
                break
            if oldest.used >= edge:
                self.evicted += 1
            entries.popitem(last=False)
        self._floor = next(iter(entries.values())).used if entries else math.inf  # the oldest: entries are in
        return held  # the order of their last use

    def learned(self, token: str, prefix_tokens: int | None) -> None:
        """An answer said how large ``token``'s cached prefix is."""
        held = self._held.get(token)
        if held is not None and prefix_tokens:
            held.prefix_tokens = prefix_tokens

    def forget_key(self, label: str) -> None:
        """A key left the pool: its conversations go to whichever key the strategy picks next."""
        for token in [t for t, h in self._held.items() if h.label == label]:
            del self._held[token]
