"""What makes two requests one conversation, exactly: every part of the prompt's head counts (model, system,
tools, the first user message), each id names its own conversation, the walk's budgets hold to the node and
the character, and the map keeps what an answer taught it. Written from the mutation run's survivors."""

from __future__ import annotations

from typing import Any

from pooltui.core.affinity import PART_CHARS, PART_NODES, SESSION_HEADER, AffinityMap, conversation_of, prefix_digest

BIG = 100_000
T0 = 1_790_000_000.0


def head(**change: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4", "system": "you are a careful engineer",
        "tools": [{"name": "read", "input_schema": {}}],
        "messages": [{"role": "user", "content": "fix the bug"}, {"role": "assistant", "content": "done"}],
    }
    body.update(change)
    return body


def token(body: dict[str, Any], dialect: str = "anthropic", headers: dict[str, str] | None = None) -> str:
    found = conversation_of(body, headers or {}, dialect, "prefix", size=BIG)
    assert found is not None
    return found.token


def test_every_part_of_the_head_names_the_conversation() -> None:
    base = token(head())
    assert token(head(model="claude-opus-4")) != base  # a cache belongs to one model
    assert token(head(tools=[{"name": "write", "input_schema": {}}])) != base
    assert token(head(system="you are a hasty engineer")) != base
    assert token(head(messages=[{"role": "user", "content": "fix the tests"}])) != base
    openai = {"model": "gpt-4o", "messages": [{"role": "system", "content": "rules A"},
                                              {"role": "user", "content": "task"}]}
    other_rules = {**openai, "messages": [{"role": "system", "content": "rules B"}, openai["messages"][1]]}
    assert token(openai, "openai") != token(other_rules, "openai")  # the system message comes before the user's


def test_each_session_id_names_its_own_conversation() -> None:
    chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    one, two = token(chat, "openai", {SESSION_HEADER: "agent-1"}), token(chat, "openai", {SESSION_HEADER: "agent-2"})
    assert one != two and len(one) == 24 and int(one, 16) >= 0  # a 12-byte hash, in hex
    assert token(head(metadata={"user_id": "u1"})) != token(head(metadata={"user_id": "u2"}))
    assert token({**chat, "prompt_cache_key": "c1"}, "openai") != token({**chat, "prompt_cache_key": "c2"}, "openai")
    assert token({**chat, "user": "u1"}, "openai") != token({**chat, "user": "u2"}, "openai")


def test_a_long_system_prompt_counts_to_its_character_budget_not_its_node_budget() -> None:
    text = "a" * 10_000
    changed = text[:300] + "b" + text[301:]  # past PART_NODES characters, well inside PART_CHARS
    assert prefix_digest(head(system=text), "anthropic")[0] != prefix_digest(head(system=changed), "anthropic")[0]


def test_the_walk_takes_exactly_its_node_budget_per_part() -> None:
    def with_tool_changed(at: int) -> str:
        tools: list[Any] = [0] * (PART_NODES + 40)
        tools[at] = 1
        return prefix_digest(head(tools=tools), "anthropic")[0]

    plain = prefix_digest(head(tools=[0] * (PART_NODES + 40)), "anthropic")[0]
    # the list is one node, its items the next ones: the last item walked is number PART_NODES - 1
    assert with_tool_changed(PART_NODES - 2) != plain
    assert with_tool_changed(PART_NODES - 1) == plain


def test_nothing_past_the_character_budget_is_hashed_not_even_a_length() -> None:
    def system(tail: str) -> str:
        return prefix_digest(head(system=[{"text": "x" * (PART_CHARS + 10), "tail": tail}]), "anthropic")[0]

    assert system("a") == system("abc")  # the budget ran out on the first text: the next value is not walked


def test_the_map_keeps_what_an_answer_taught_it() -> None:
    m = AffinityMap(capacity=10, ttl_s=300.0)
    m.learned("never-seen", 3900)  # no holder: nothing to teach, nothing raised
    m.put("c", "k0", "org-a", T0)
    m.learned("c", 3900)
    m.learned("c", None)  # an answer that did not say keeps what an earlier one said
    m.put("c", "k1", "org-a", T0 + 1)  # the same cache group: the cached prefix is still there
    held = m.get("c", T0 + 1)
    assert held is not None and held.label == "k1" and held.prefix_tokens == 3900
    m.put("c", "k2", "org-b", T0 + 2)  # another organization: its cache starts cold
    moved = m.get("c", T0 + 2)
    assert moved is not None and moved.prefix_tokens is None


def test_an_entry_lives_exactly_its_ttl() -> None:
    m = AffinityMap(capacity=10, ttl_s=300.0)
    m.put("old", "k0", "g", T0)
    m.put("new", "k1", "g", T0 + 300.0)  # "old" was used exactly one TTL ago: still held
    assert m.get("old", T0 + 300.0) is not None
    assert m.get("old", T0 + 300.5) is None


def test_a_lone_surrogate_in_a_prompt_or_a_field_name_is_hashed_not_raised() -> None:
    odd = head(system="before \ud800 after", tools=[{"na\udfffme": "read"}])  # JSON may carry either
    assert prefix_digest(odd, "anthropic")[0] != prefix_digest(head(), "anthropic")[0]


def test_the_head_ends_after_eight_messages_even_without_a_user_one() -> None:
    leading = [{"role": "developer", "content": f"rule {i}"} for i in range(8)]
    one = {"model": "gpt-4o", "messages": [*leading, {"role": "user", "content": "task one"}]}
    two = {"model": "gpt-4o", "messages": [*leading, {"role": "user", "content": "task two"}]}
    assert token(one, "openai") == token(two, "openai")  # bounded: the ninth message is not read


def test_odd_messages_and_ids_are_read_not_raised() -> None:
    assert token(head(messages=["plain text", {"role": "user", "content": "hi"}]))  # a message that is no object
    assert token(head(metadata={"user_id": "user-\ud800"}))  # an id with a lone surrogate, as JSON allows


def test_a_put_answers_its_holder_and_counts_each_eviction_for_room() -> None:
    m = AffinityMap(capacity=1, ttl_s=300.0)
    first = m.put("a", "k0", "g", T0)
    assert first is not None and first.label == "k0"
    assert m.put("b", "k1", "g", T0 + 300.0) is not None  # "a" is exactly one TTL old: alive, evicted for room
    m.put("c", "k2", "g", T0 + 301.0)
    assert m.evicted == 2 and len(m) == 1
