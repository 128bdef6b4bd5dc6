"""Affinity in the engine (fake clock): cache groups share a conversation, the trace explains each choice,
the conversation map stays bounded, a huge body is hashed within bounded work, the config is checked."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pooltui.core import Classification, DeadlineSource, FakeClock, KeySpec, Outcome, Pool
from pooltui.core.affinity import (
    MIN_CACHEABLE_BYTES,
    PART_CHARS,
    SESSION_HEADER,
    AffinityMap,
    conversation_of,
    prefix_digest,
)
from pooltui.core.trace import RequestTrace, format_trace
from pooltui.store.config import ConfigError, parse_config

T0 = 1_790_000_000.0
BIG = 100_000  # a request body long enough to be cached


def pool(labels: list[tuple[str, str | None]], strategy: str = "round-robin", **kw: Any) -> Pool:
    specs = [KeySpec(label, f"sk-test-{label}-{'0' * 24}", cache_group=group) for label, group in labels]
    return Pool("p", specs, strategy, clock=FakeClock(T0), affinity="prefix", **kw)


def pick(p: Pool, token: str) -> tuple[str, str]:
    """The key picked for ``token``'s request (answered at once) and the trace's account of it."""
    trace = RequestTrace(1, p.clock.now(), p.strategy)
    key = p.pick(trace, affinity=token)
    assert key is not None
    p.release(key)
    return key.label, format_trace(trace)


def test_keys_of_one_cache_group_share_a_conversation() -> None:
    p = pool([("a0", "org-a"), ("b0", "org-b"), ("a1", "org-a")])
    assert pick(p, "conv")[0] == "a0"
    p.disable("a0")
    label, text = pick(p, "conv")  # round-robin alone would go to b0: a1 holds the same cache
    assert label == "a1"
    assert "went to a1: it shares a0's cache, which holds this conversation" in text
    assert p.key("a1").affinity_hits == 1 and p.key("a0").affinity_moves == 0
    p.disable("a1")
    label, text = pick(p, "conv")  # the whole organization is out: the conversation moves, and says why
    assert label == "b0" and "moved from a1 (disabled): affinity follows" in text
    p.enable("a0")
    assert pick(p, "conv")[0] == "b0"  # it stays where its cache is now


def test_a_key_without_a_group_shares_with_its_quota_group() -> None:
    specs = [KeySpec("q0", "sk-test-q0-" + "0" * 24, "proj"), KeySpec("x", "sk-test-x-" + "0" * 24),
             KeySpec("q1", "sk-test-q1-" + "0" * 24, "proj")]
    p = Pool("p", specs, "round-robin", clock=FakeClock(T0), affinity="prefix")
    assert pick(p, "c")[0] == "q0"
    p.disable("q0")
    assert pick(p, "c")[0] == "q1"


def test_the_trace_says_why_it_stayed_with_the_prefix_size() -> None:
    p = pool([("primary-1", None), ("primary-2", None)])
    assert pick(p, "conv")[0] == "primary-1"
    label, text = pick(p, "conv")
    assert label == "primary-1" and "stayed on primary-1: its cache holds this conversation" in text
    assert "-token prefix" not in text  # nothing said its size yet
    p.conversation_prefix("conv", 3900)
    assert "stayed on primary-1: its cache holds this conversation (3,900-token prefix)" in pick(p, "conv")[1]


def test_a_full_key_moves_the_conversation_at_once_and_the_trace_says_so() -> None:
    p = pool([("k0", None), ("k1", None)], max_inflight=1)
    first = p.pick(affinity="conv")
    assert first is not None and first.label == "k0"  # still in flight: k0 is at its cap
    trace = RequestTrace(2, p.clock.now(), p.strategy)
    moved = p.pick(trace, affinity="conv")
    assert moved is not None and moved.label == "k1"
    assert "moved from k0 (1 in flight, cap 1): affinity follows" in format_trace(trace)


def test_affinity_wait_waits_for_a_key_back_soon_and_not_for_one_back_late() -> None:
    p = pool([("k0", None), ("k1", None)], affinity_wait_s=5.0)
    assert pick(p, "conv")[0] == "k0"
    rate_limited(p, "k0", 3.0)
    trace = RequestTrace(2, T0, p.strategy)
    assert p.pick(trace, affinity="conv") is None  # back in 3 s: worth waiting for its cache
    assert "waits for k0 (cooling 3.0 s)" in format_trace(trace)
    assert p.next_ready_in() == pytest.approx(3.0)  # what the client waits for
    p.clock.advance(3.5)
    assert pick(p, "conv")[0] == "k0"
    rate_limited(p, "k0", 60.0)
    assert pick(p, "conv")[0] == "k1"  # back in a minute: it moves on


def test_affinity_wait_waits_for_a_key_at_its_learnt_limit_whose_opening_is_soon() -> None:
    """Regression: a conversation's key at its learnt limit (not cooling yet: nothing had picked it since its window
    filled) had no room, so the conversation moved to another key, however soon its opening: what the learnt
    margin held for every pick made of the key back from a 429 (tests/test_affinity.py's key waited for)."""
    p = pool([("k0", None), ("k1", None)], affinity_wait_s=5.0)
    assert p.restore_learned("k0", "", 1, 2.0) and p.restore_learned("k1", "", 1, 2.0)
    assert pick(p, "conv")[0] == "k0"
    p.report(p.key("k0"), Classification(Outcome.OK, 200))  # answered: its window holds it for 2 s and the margin
    p.clock.advance(1.5)
    trace = RequestTrace(2, p.clock.now(), p.strategy)
    assert p.pick(trace, affinity="conv") is None  # its opening in about 0.5 s: worth waiting for its cache
    assert "waits for k0 (cooling 0.5 s)" in format_trace(trace)
    assert p.next_ready_in() == pytest.approx(0.5 + p.key("k0").learned.margin_s)  # what the client waits for
    p.clock.advance(0.6)
    assert pick(p, "conv")[0] == "k0"


def rate_limited(p: Pool, label: str, retry_s: float) -> None:
    key = p.key(label)
    key.inflight += 1
    p.report(key, Classification(Outcome.RATE_LIMITED, 429, "slow down", retry_s, DeadlineSource.RETRY_AFTER))


def test_the_map_is_bounded_least_recently_used_first_out_and_expires() -> None:
    m = AffinityMap(capacity=3, ttl_s=300.0)
    for i, token in enumerate("abc"):
        m.put(token, f"k{i}", f"g{i}", T0)
    assert m.get("a", T0 + 1) is not None
    m.put("a", "k0", "g0", T0 + 1)  # a used again: b is now the oldest
    m.put("d", "k3", "g3", T0 + 2)
    assert len(m) == 3 and m.get("b", T0 + 2) is None and m.evicted == 1
    assert {t for t in "acd" if m.get(t, T0 + 2) is not None} == {"a", "c", "d"}
    assert m.get("c", T0 + 301) is None  # unused past the cache's TTL: gone
    m.put("e", "k4", "g4", T0 + 400)
    assert len(m) == 1  # the aged entries went when a new one came


def test_a_pool_forgets_conversations_past_the_cache_ttl() -> None:
    p = pool([("k0", None), ("k1", None)], affinity_ttl_s=300.0)
    assert pick(p, "conv")[0] == "k0"
    p.clock.advance(301)
    assert pick(p, "conv")[0] == "k1" and p.affinity_new == 2  # a cold cache: the strategy decides again


def body(system: str, messages: int, first: str = "fix the bug") -> dict[str, Any]:
    msgs: list[dict[str, Any]] = [{"role": "user", "content": [{"type": "text", "text": first}]}]
    for i in range(messages):
        msgs += [{"role": "assistant", "content": f"done {i}"}, {"role": "user", "content": f"next {i}"}]
    return {"model": "claude-sonnet-4", "system": system, "tools": [{"name": "read", "input_schema": {}}],
            "messages": msgs}


def test_a_huge_body_is_hashed_within_bounded_work() -> None:
    huge = body("x" * 50_000_000, 20_000)
    started = time.perf_counter()
    digest, chars = prefix_digest(huge, "anthropic")
    took = time.perf_counter() - started
    assert chars <= 4 * PART_CHARS  # model, system, tools, first message: each cut at PART_CHARS
    assert took < 0.5, f"{took:.3f} s"  # the same work as a small body: far under this on any machine
    tail_differs = body("x" * 49_999_999 + "y", 20_000)  # beyond the part's budget, same length
    assert prefix_digest(tail_differs, "anthropic")[0] == digest
    assert prefix_digest(body("x" * 49_999_999, 20_000), "anthropic")[0] != digest  # its length counts
    deep: Any = "leaf"
    for _ in range(100_000):
        deep = [deep]
    # walked no deeper than its node budget (only the role's 4 characters hashed): no recursion blow-up
    assert prefix_digest({"messages": [{"role": "user", "content": deep}]}, "openai")[1] == len("user")


def test_later_turns_and_moved_breakpoints_keep_the_conversation() -> None:
    one = body("sys", 0)
    one["messages"][0]["content"][0]["cache_control"] = {"type": "ephemeral"}  # the breakpoint on the newest message
    later = body("sys", 5)
    later["messages"][-1]["cache_control"] = {"type": "ephemeral"}
    first = conversation_of(one, {}, "anthropic", "prefix", size=BIG)
    assert first is not None and first.source == "prefix"
    assert conversation_of(later, {}, "anthropic", "prefix", size=BIG) == first
    assert conversation_of(body("sys", 5, first="another task"), {}, "anthropic", "prefix", size=BIG) != first
    assert conversation_of(body("another system", 0), {}, "anthropic", "prefix", size=BIG) != first


def test_explicit_ids_first_then_the_prefix() -> None:
    b = body("sys", 1)
    by_prefix = conversation_of(b, {}, "anthropic", "prefix", size=BIG)
    by_header = conversation_of(b, {SESSION_HEADER: "agent-1"}, "anthropic", "prefix", size=BIG)
    assert by_header is not None and by_header.source == "header" and by_header != by_prefix
    other = body("other", 3)
    assert conversation_of(other, {SESSION_HEADER: "agent-1"}, "anthropic", "prefix", size=BIG) == by_header
    meta = {**b, "metadata": {"user_id": "user_ab_session_12"}}
    user = conversation_of(meta, {}, "anthropic", "prefix", size=BIG)
    assert user is not None and user.source == "metadata.user_id"
    chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    keyed = conversation_of({**chat, "prompt_cache_key": "c1", "user": "u"}, {}, "openai", "prefix", size=BIG)
    assert keyed is not None and keyed.source == "prompt_cache_key"
    by_user = conversation_of({**chat, "user": "u"}, {}, "openai", "prefix", size=BIG)
    assert by_user is not None and by_user.source == "user"
    assert conversation_of(chat, {}, "openai", "session", size=BIG) is None  # session mode: explicit ids only
    assert conversation_of(chat, {SESSION_HEADER: "s"}, "openai", "off", size=BIG) is None
    token = conversation_of(chat, {SESSION_HEADER: "secret-looking-session"}, "openai", "prefix", size=BIG)
    assert token is not None and "secret-looking" not in token.token  # only hashes are kept


def test_a_prompt_too_short_to_cache_is_not_followed_but_a_session_id_is() -> None:
    chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "ping"}]}
    assert conversation_of(chat, {}, "openai", "prefix", size=MIN_CACHEABLE_BYTES - 1) is None
    assert conversation_of(chat, {}, "openai", "prefix", size=MIN_CACHEABLE_BYTES) is not None
    assert conversation_of(chat, {SESSION_HEADER: "s"}, "openai", "prefix", size=10) is not None


def test_the_config_checks_affinity_and_defaults_it_by_kind(tmp_path: Path) -> None:
    text = """
[providers.claude]
kind = "anthropic"
[[providers.claude.keys]]
label = "a"
secret = "env:A_KEY"
cache_group = "org-1"
[providers.groq]
kind = "groq"
[providers.mine]
kind = "openai"
affinity = "session"
affinity_wait_s = 2.5
"""
    cfg = parse_config(text, tmp_path / "c.toml")
    assert cfg.providers["claude"].affinity_mode == "prefix" and cfg.providers["groq"].affinity_mode == "off"
    assert cfg.providers["claude"].keys[0].cache_group == "org-1"
    mine = cfg.providers["mine"]
    assert (mine.affinity_mode, mine.affinity_wait_s) == ("session", 2.5)
    assert (mine.to_dict()["affinity"], mine.to_dict()["affinity_wait_s"]) == ("session", 2.5)  # written back
    assert cfg.providers["claude"].keys[0].to_dict()["cache_group"] == "org-1"
    assert "affinity" not in cfg.providers["claude"].to_dict()  # the default stays unwritten
    with pytest.raises(ConfigError, match=r"affinity must be one of prefix, session, off, not 'sticky'") as err:
        parse_config(text.replace('"session"', '"sticky"'), tmp_path / "c.toml")
    assert err.value.line is not None and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="affinity_wait_s"):
        parse_config(text.replace("2.5", "-1"), tmp_path / "c.toml")
