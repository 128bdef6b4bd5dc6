"""A workload for the strategy lab: arrivals (when, which model, which prompt) drawn from a seed or rebuilt
from the history, and what each caller got.

A scenario whose ``[traffic]`` sets ``conversations`` gets a workload of conversations instead
(:func:`conversation_workload`): each turn re-sends the whole conversation so far, after a long system prompt and
tools, with prompt-cache breakpoints where agents put them (Hermes Agent's "system and 3": the system prompt and
the last three messages), after a think time."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pooltui.core.usage import Usage
from pooltui.providers.profiles import ApiRequest, ProviderProfile
from pooltui.session.traffic import PROMPTS
from pooltui.sim.prompt_cache import TOKEN_BYTES
from pooltui.sim.scenario import Scenario, TrafficDefaults

#: cache breakpoints on the last messages of a turn (with the system prompt's: 4, the most Anthropic takes)
CACHED_MESSAGES = 3
TOOLS = ("read_file", "write_file", "run_shell", "search_code", "list_dir", "fetch_url", "edit_file", "run_tests")
_WORDS = ("the", "agent", "reads", "file", "tests", "pass", "module", "config", "change", "review", "keys", "pool",
          "limit", "cache", "prefix", "request", "answer", "tool", "result", "diff")


@dataclass(frozen=True, slots=True)
class Arrival:
    """One request of a workload: seconds after the start, its model (None: the provider's default); a
    conversation's turn (``conversation`` set) re-sends the conversation up to ``turn``."""

    at_s: float
    model: str | None = None
    prompt: str = "ping"
    max_tokens: int = 16
    conversation: int | None = None
    turn: int = 0


def seeded_workload(scenario: Scenario, *, requests: int, rate: float, seed: int) -> list[Arrival]:
    """``requests`` arrivals at ``rate`` per second on average (Poisson; 0: all at once), the scenario's models
    in turn; the same seed gives the same list. A scenario of conversations gives its conversations instead."""
    if scenario.traffic.conversations:
        return conversation_workload(scenario, seed=seed)
    rng = random.Random(seed)
    models = scenario.traffic.models
    t, out = 0.0, []
    for i in range(requests):
        if rate > 0 and i:
            t += rng.expovariate(rate)
        out.append(Arrival(round(t, 6), models[i % len(models)] if models else None, rng.choice(PROMPTS)))
    return out


def conversation_workload(scenario: Scenario, *, seed: int, conversations: int | None = None,
                          think_scale: float = 1.0) -> list[Arrival]:
    """The scenario's conversations (or ``conversations`` of them), each of ``turns`` turns: they start spread
    over the first think time, then each turn follows the last after a think time drawn around ``think_s``
    (times ``think_scale``: below 1 the same conversations press harder). Sorted by time."""
    t = scenario.traffic
    rng = random.Random(seed)
    models = t.models
    think = t.think_s * think_scale
    out = []
    for c in range(conversations if conversations is not None else t.conversations):
        at = rng.uniform(0, think)
        model = models[c % len(models)] if models else None
        for turn in range(t.turns):
            if turn:
                at += think * rng.uniform(0.5, 1.5)
            out.append(Arrival(round(at, 6), model, f"conversation {c} turn {turn}", 16, c, turn))
    return sorted(out, key=lambda a: a.at_s)


@lru_cache(maxsize=4096)
def _text(tokens: int, *where: object) -> str:
    """About ``tokens`` tokens (the simulator's estimate) of words, the same for the same ``where``."""
    rng = random.Random(":".join(map(str, where)))
    words: list[str] = []
    size = 0
    while size < tokens * TOKEN_BYTES:
        word = rng.choice(_WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)


def _marked(block: dict[str, Any]) -> dict[str, Any]:
    return {**block, "cache_control": {"type": "ephemeral"}}


def conversation_body(dialect: str, model: str, a: Arrival, traffic: TrafficDefaults) -> dict[str, Any]:
    """Turn ``a.turn`` of conversation ``a.conversation`` in ``dialect``: tools, the system prompt (shared tools
    and instructions, then a line of its own), every earlier turn (the user's message, a tool result, and the
    answer), the new message; anthropic-style breakpoints on the system prompt and the last messages."""
    c = a.conversation
    system = _text(traffic.system_tokens, "system") + f"\nworking on project {c}."
    user_tokens, answer_tokens = traffic.turn_tokens * 3 // 4, traffic.turn_tokens // 4
    messages: list[dict[str, Any]] = []
    for turn in range(a.turn + 1):
        messages.append({"role": "user", "content": [{"type": "text", "text": _text(user_tokens, c, turn, "u")}]})
        if turn < a.turn:
            messages.append({"role": "assistant",
                             "content": [{"type": "text", "text": _text(answer_tokens, c, turn, "a")}]})
    tool_tokens = max(1, traffic.system_tokens // len(TOOLS))
    tools = [{"name": name, "description": _text(tool_tokens, "tool", name),
              "input_schema": {"type": "object", "properties": {"arg": {"type": "string"}}}} for name in TOOLS]
    if dialect == "anthropic":
        for message in messages[-CACHED_MESSAGES:]:
            message["content"] = [_marked(b) for b in message["content"]]
        return {"model": model, "max_tokens": a.max_tokens, "tools": tools,
                "system": [_marked({"type": "text", "text": system})], "messages": messages}
    flat = [{"role": m["role"], "content": m["content"][0]["text"]} for m in messages]  # openai caches by itself
    functions = [{"type": "function", "function": {"name": t["name"], "description": t["description"],
                                                   "parameters": t["input_schema"]}} for t in tools]
    return {"model": model, "max_tokens": a.max_tokens, "tools": functions,
            "messages": [{"role": "system", "content": system}, *flat]}


def request_for(profile: ProviderProfile, a: Arrival, traffic: TrafficDefaults) -> ApiRequest:
    """The request ``a`` makes of a provider: a small chat, or a conversation's turn in the provider's dialect."""
    if a.conversation is None or profile.dialect not in ("anthropic", "openai"):
        return profile.chat(a.prompt, model=a.model, max_tokens=a.max_tokens)
    body = conversation_body(profile.dialect, a.model or profile.default_model, a, traffic)
    return ApiRequest("POST", profile.chat_path, body)


@dataclass
class CallerResult:
    """What one caller got: served or not, by which provider, its tokens, why it failed."""

    ok: bool
    provider: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    error: str | None = None
    answer_s: float = 0.0  # the attempt that answered: the provider's own time (the rest of the latency is waiting)
    usage: Usage = field(default_factory=Usage)  # the answer's usage, prompt-cache fields included
