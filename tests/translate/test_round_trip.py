"""Property: a request both dialects can express keeps its meaning through a round trip, either way."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pooltui.providers.translate import anthropic_to_openai_request, openai_to_anthropic_request

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
NAME = st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True)
SCHEMA = st.fixed_dictionaries({"type": st.just("object"), "properties": st.dictionaries(
    NAME, st.fixed_dictionaries({"type": st.sampled_from(["string", "integer", "boolean"])}), max_size=2)})
JSONISH = st.dictionaries(NAME, st.one_of(st.integers(-5, 5), TEXT, st.booleans(), st.none()), max_size=3)


def text_block() -> st.SearchStrategy[dict]:
    return st.builds(lambda t: {"type": "text", "text": t}, TEXT)


IMAGE = st.one_of(
    st.builds(lambda m, d: {"type": "image", "source": {"type": "base64", "media_type": m, "data": d}},
              st.sampled_from(["image/png", "image/jpeg", "image/gif", "image/webp"]),
              st.from_regex(r"[A-Za-z0-9+/]{4,16}={0,2}", fullmatch=True)),
    st.builds(lambda p: {"type": "image", "source": {"type": "url", "url": f"https://img.example/{p}.png"}}, NAME),
)


@st.composite
def conversation(draw) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    pending: list[str] = []  # tool_use ids the next user turn answers
    ids = iter(range(10_000))
    for _ in range(draw(st.integers(1, 3))):
        if pending:
            results = [{"type": "tool_result", "tool_use_id": tid,
                        "content": draw(st.one_of(TEXT, st.lists(text_block(), min_size=1, max_size=2))),
                        **({"is_error": True} if draw(st.booleans()) else {})} for tid in pending]
            content: Any = results + draw(st.lists(text_block(), max_size=1))
        else:
            content = draw(st.one_of(TEXT, st.lists(st.one_of(text_block(), IMAGE), min_size=1, max_size=3)))
        messages.append({"role": "user", "content": content})
        calls = [{"type": "tool_use", "id": f"toolu_{next(ids)}", "name": draw(NAME), "input": draw(JSONISH)}
                 for _ in range(draw(st.integers(0, 2)))]
        texts = draw(st.lists(text_block(), max_size=2))
        if not calls and not texts:
            messages.append({"role": "assistant", "content": draw(TEXT)})
        else:
            messages.append({"role": "assistant", "content": texts + calls})
        pending = [c["id"] for c in calls]
    if pending or draw(st.booleans()):
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": t, "content": "ok"}
                                                     for t in pending] or draw(TEXT)})
    return messages


@st.composite
def anthropic_request(draw) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "claude-x", "max_tokens": draw(st.integers(1, 8192)),
                            "messages": draw(conversation())}
    system = draw(st.one_of(st.none(), TEXT, st.lists(text_block(), min_size=1, max_size=3)))
    if system is not None:
        body["system"] = system
    tools = draw(st.lists(st.builds(lambda n, d, s: {"name": n, "description": d, "input_schema": s},
                                    NAME, TEXT, SCHEMA), max_size=2, unique_by=lambda t: t["name"]))
    if tools:
        body["tools"] = tools
        choice = draw(st.one_of(st.none(), st.sampled_from([{"type": "auto"}, {"type": "any"}, {"type": "none"}]),
                                st.just({"type": "tool", "name": tools[0]["name"]})))
        if choice is not None:
            if choice["type"] != "none" and draw(st.booleans()):
                choice = {**choice, "disable_parallel_tool_use": True}
            body["tool_choice"] = choice
    for field, strategy in (("temperature", st.floats(0, 1)), ("top_p", st.floats(0, 1)),
                            ("stop_sequences", st.lists(TEXT, min_size=1, max_size=3)),
                            ("stream", st.just(True)), ("metadata", st.builds(lambda u: {"user_id": u}, NAME))):
        if draw(st.booleans()):
            body[field] = draw(strategy)
    return body


def texts(content: Any) -> list[str]:
    return [content] if isinstance(content, str) else [b["text"] for b in content]


def normal(body: dict[str, Any]) -> dict[str, Any]:
    """What an anthropic request means: string and one-block contents alike, defaults spelt out."""
    messages = []
    for m in body["messages"]:
        blocks = [{"type": "text", "text": m["content"]}] if isinstance(m["content"], str) else m["content"]
        norm = []
        for b in blocks:
            if b["type"] == "tool_result":
                b = {"type": "tool_result", "tool_use_id": b["tool_use_id"], "content": texts(b["content"]),
                     "is_error": bool(b.get("is_error"))}
            norm.append(b)
        messages.append({"role": m["role"], "content": norm})
    choice = body.get("tool_choice")
    if choice is not None and choice["type"] == "none":
        choice = {"type": "none"}
    return {"model": body["model"], "max_tokens": body["max_tokens"], "messages": messages,
            "system": texts(body["system"]) if body.get("system") else [], "tools": body.get("tools", []),
            "tool_choice": choice, "temperature": body.get("temperature"), "top_p": body.get("top_p"),
            "stop": body.get("stop_sequences") or [], "stream": bool(body.get("stream")),
            "user": (body.get("metadata") or {}).get("user_id")}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(anthropic_request())
def test_anthropic_openai_anthropic_keeps_the_meaning(body) -> None:
    there = anthropic_to_openai_request(body, "gpt-x")
    back = openai_to_anthropic_request(there, "claude-x")
    assert normal(back) == normal(body)


def openai_variant(body: dict[str, Any], draw_developer: bool, stop_as_string: bool, completion_field: bool):
    """The same openai request spelt the other ways openai allows."""
    body = dict(body)
    if draw_developer and body["messages"][0]["role"] == "system":
        body["messages"] = [{**body["messages"][0], "role": "developer"}, *body["messages"][1:]]
    if stop_as_string and len(body.get("stop") or []) == 1:
        body["stop"] = body["stop"][0]
    if completion_field:
        body["max_completion_tokens"] = body.pop("max_tokens")
    return body


def openai_normal(body: dict[str, Any]) -> dict[str, Any]:
    out = dict(body)
    out["messages"] = [{**m, "role": "system"} if m["role"] == "developer" else m for m in body["messages"]]
    if isinstance(out.get("stop"), str):
        out["stop"] = [out["stop"]]
    if "max_completion_tokens" in out:
        out["max_tokens"] = out.pop("max_completion_tokens")
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(anthropic_request(), st.booleans(), st.booleans(), st.booleans())
def test_openai_anthropic_openai_keeps_the_meaning(seed_body, developer, stop_as_string, completion_field) -> None:
    body = openai_variant(anthropic_to_openai_request(seed_body, "gpt-x"), developer, stop_as_string,
                          completion_field)
    back = anthropic_to_openai_request(openai_to_anthropic_request(body, "claude-x"), "gpt-x")
    assert back == openai_normal(body)
