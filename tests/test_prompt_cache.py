"""The simulator's prompt caches follow each provider's documented rules (sim/prompt_cache.py), and report usage
under the providers' own field names, as the official SDKs' typed usage objects read them."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from pooltui.sim.prompt_cache import TOKEN_BYTES, PromptCache
from tests.conftest import keys, make_scenario

SONNET, HAIKU = "claude-sonnet-4-5", "claude-3-5-haiku-latest"


class Clock:
    """Simulated seconds, moved by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def text(tokens: int, seed: str = "sys") -> str:
    """About ``tokens`` tokens of text by the simulator's estimate (distinct per ``seed``)."""
    return (f"{seed} the agent keeps reading. " * (tokens * TOKEN_BYTES // 20 + 1))[:tokens * TOKEN_BYTES]


def cached_system(tokens: int, ttl: str | None = None, question: str = "hi") -> dict[str, Any]:
    marker: dict[str, Any] = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    return {"system": [{"type": "text", "text": text(tokens), "cache_control": marker}],
            "messages": [{"role": "user", "content": question}]}


def test_anthropic_below_the_minimum_nothing_is_cached() -> None:
    cache = PromptCache(Clock())
    for _ in range(2):
        used = cache.anthropic("org", SONNET, cached_system(900))
        assert (used.read, used.written) == (0, 0)


def test_anthropic_minimum_depends_on_the_model_family() -> None:
    cache = PromptCache(Clock())
    body = cached_system(1500)
    assert cache.anthropic("org", SONNET, body).written >= 1500  # 1,024 for Sonnet-class
    assert cache.anthropic("org", HAIKU, body).written == 0  # 2,048 for Haiku 3.5
    assert cache.anthropic("org", "claude-haiku-4-5", cached_system(3000)).written == 0  # 4,096 for Haiku 4.5


def test_anthropic_breakpoint_caches_the_prefix_then_reads_it() -> None:
    cache = PromptCache(Clock())
    first = cache.anthropic("org", SONNET, cached_system(2000, question="one"))
    second = cache.anthropic("org", SONNET, cached_system(2000, question="two, a different question"))
    assert first.read == 0 and first.written >= 2000
    assert second.read == first.written and second.written == 0
    no_marker = {"system": text(2000), "messages": [{"role": "user", "content": "one"}]}
    assert cache.anthropic("org2", SONNET, no_marker).written == 0  # no breakpoint: nothing cached


def test_anthropic_ttl_five_minutes_refreshed_by_each_hit() -> None:
    clock = Clock()
    cache = PromptCache(clock)
    body = cached_system(1500)
    written = cache.anthropic("org", SONNET, body).written
    for clock.now in (240.0, 480.0, 720.0):  # each hit within 5 minutes of the last one
        assert cache.anthropic("org", SONNET, body).read == written
    clock.now = 720.0 + 301.0  # 5 minutes and a second after the last hit: cold
    cold = cache.anthropic("org", SONNET, body)
    assert cold.read == 0 and cold.written == written


def test_anthropic_one_hour_option() -> None:
    clock = Clock()
    cache = PromptCache(clock)
    first = cache.anthropic("org", SONNET, cached_system(1500, ttl="1h"))
    assert first.written_1h == first.written > 0
    clock.now = 3000.0
    assert cache.anthropic("org", SONNET, cached_system(1500, ttl="1h")).read == first.written
    clock.now = 3000.0 + 3601.0
    assert cache.anthropic("org", SONNET, cached_system(1500, ttl="1h")).read == 0


def turn(n: int) -> dict[str, Any]:
    """A conversation of ``n`` messages after a 1,200-token system prompt, breakpoints on both ends."""
    system = [{"type": "text", "text": text(1200), "cache_control": {"type": "ephemeral"}}]
    messages = [{"role": "user" if i % 2 == 0 else "assistant",
                 "content": [{"type": "text", "text": f"message {i} " + text(10, str(i))}]} for i in range(n)]
    messages[-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
    return {"system": system, "messages": messages}


def test_anthropic_lookback_reads_an_earlier_turn_within_20_blocks() -> None:
    cache = PromptCache(Clock())
    first = cache.anthropic("org", SONNET, turn(3))
    second = cache.anthropic("org", SONNET, turn(5))  # 2 blocks later: reads turn 1's whole prefix
    assert second.read == first.written and second.written > 0
    far = cache.anthropic("org", SONNET, turn(5 + 25))  # 25 blocks later: only the system breakpoint's prefix
    assert 1200 <= far.read < second.read + second.written


@pytest.mark.parametrize("orgs", [3, 11])
def test_round_robin_reads_the_turn_orgs_back_while_it_lies_within_the_lookback(orgs: int) -> None:
    """Why round-robin keeps most of a conversation's prompt warm (74% in the `conversations` scenario, not the
    third a cold write per turn would give). Anthropic's prompt-caching docs, "How automatic prefix checking
    works": a breakpoint "checks for cache hits at all previous content block boundaries (up to approximately 20
    blocks before your explicit breakpoint)" and "uses the longest matching prefix". A turn adds two blocks (the
    answer, the next message): over 3 organizations a turn finds in its own the prefix its turn 3 back wrote,
    6 blocks back; over 11, that prefix lies 22 blocks back, out of reach: only the system prompt is read."""
    cache = PromptCache(Clock())
    prefixes = []
    for t in range(orgs + 1):
        used = cache.anthropic(f"org{t % orgs}", SONNET, turn(1 + 2 * t))
        prefixes.append(used.read + used.written)
    if orgs == 3:
        assert used.read == prefixes[-1 - orgs] > 1200
    else:
        assert 1200 <= used.read < prefixes[-1 - orgs]


def test_openai_from_1024_tokens_in_128_token_increments() -> None:
    cache = PromptCache(Clock())

    def prompt(tokens: int, question: str) -> dict[str, Any]:
        return {"messages": [{"role": "system", "content": text(tokens)}, {"role": "user", "content": question}]}

    for _ in range(2):
        assert cache.openai("org", "gpt-4o", prompt(900, "q")).read == 0  # under 1,024: never cached
    cache.openai("org", "gpt-4o", prompt(1300, "first"))
    again = cache.openai("org", "gpt-4o", prompt(1300, "second question"))
    assert again.read == 1280 and again.read % 128 == 0  # the shared 1,300-token prefix, to its 128 step
    assert again.written == 0
    assert cache.openai("other-org", "gpt-4o", prompt(1300, "second question")).read == 0


def test_orgs_do_not_share_keys_of_one_org_do_through_the_sdks(serve) -> None:
    sc = make_scenario(
        {"name": "a", "dialect": "anthropic",
         "keys": keys("s", 2, org="acme") + keys("x", 1)},
        {"name": "o", "dialect": "openai", "keys": keys("o", 1)})
    server = serve(sc)

    def ask(label: str, question: str) -> Any:
        secret = next(k.secret for k in sc.primary.keys if k.label == label)
        client = anthropic.Anthropic(base_url=server.base_url("a"), api_key=secret, max_retries=0)
        return client.messages.create(model="claude-sim-1", max_tokens=4, **cached_system(2000, question=question))

    first = ask("s0", "one")
    assert first.usage.cache_creation_input_tokens >= 2000 and first.usage.cache_read_input_tokens == 0
    assert first.usage.cache_creation is not None
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == first.usage.cache_creation_input_tokens
    same_org = ask("s1", "two")
    assert same_org.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert same_org.usage.cache_creation_input_tokens == 0
    whole = first.usage.input_tokens + first.usage.cache_creation_input_tokens
    assert same_org.usage.input_tokens == whole - same_org.usage.cache_read_input_tokens  # only the uncached rest
    other_org = ask("x0", "three")
    assert other_org.usage.cache_read_input_tokens == 0 and other_org.usage.cache_creation_input_tokens > 0
    with anthropic.Anthropic(base_url=server.base_url("a"), api_key=next(
            k.secret for k in sc.primary.keys if k.label == "s0"), max_retries=0).messages.stream(
            model="claude-sim-1", max_tokens=4, **cached_system(2000, question="four")) as stream:
        final = stream.get_final_message()
    assert final.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens  # a stream says the same
    oa = openai.OpenAI(base_url=server.base_url("o"), api_key=sc.providers[1].keys[0].secret, max_retries=0)
    messages = [{"role": "system", "content": text(1500)}, {"role": "user", "content": "q"}]
    first_oa = oa.chat.completions.create(model="gpt-sim-1", messages=messages)  # type: ignore[arg-type]
    assert first_oa.usage is not None and first_oa.usage.prompt_tokens_details is not None
    assert first_oa.usage.prompt_tokens_details.cached_tokens == 0
    chunks = list(oa.chat.completions.create(model="gpt-sim-1", messages=messages,  # type: ignore[arg-type]
                                             stream=True, stream_options={"include_usage": True}))
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens_details is not None
    cached = usage.prompt_tokens_details.cached_tokens or 0
    assert cached >= 1024 and cached % 128 == 0 and usage.prompt_tokens >= cached
