"""Token budgets learnt from 429s that say tokens (issue 27 item 4), read from real captured bodies
(tests/corpus/): the stated limit when the body gives one, else fitted from the tokens the key's answers used in
the minute before; then held like a declared tpm (a pick whose tokens do not fit waits, before another 429)."""

from __future__ import annotations

import pytest

from pooltui.core import KeySpec, Pool
from pooltui.core.classify import Classification, classify
from pooltui.core.clock import FakeClock
from pooltui.core.declared import TokenHold
from pooltui.core.events import StateChange
from pooltui.core.learned_tokens import stated_budget
from pooltui.sim.corpus import case, raw_body

SECRET = "sk-test-learntokens-0000000000000000001"


@pytest.mark.parametrize(("case_id", "stated"), [
    ("openai-tpm-rate-limit-644ms-429", ("tpm", 30000)),
    ("groq-tpm-rate-limit-429", ("tpm", 6000)),
    ("anthropic-itpm-per-model-429", ("itpm", 30000)),
    ("anthropic-itpm-org-429", ("itpm", 40000)),
    ("cerebras-tpm-429", None),  # "Tokens per minute limit exceeded": no figure
])
def test_the_budget_a_429_states_is_read(case_id: str, stated: tuple[str, int] | None) -> None:
    c = case(case_id)
    result = classify(c["dialect"], c["status"], c["headers"], raw_body(c), 1_790_000_000.0)
    assert result.tokens
    assert stated_budget(result.reason) == stated


def test_a_stated_budget_holds_the_key_before_the_next_429() -> None:
    clock = FakeClock()
    pool = Pool("p", [KeySpec("k0", SECRET)], "round-robin", clock=clock)
    c = case("openai-tpm-rate-limit-644ms-429")
    key = pool.pick()
    assert key is not None and not pool.counts_tokens
    pool.report(key, answer_of(c, clock))
    assert key.declared is not None and key.declared.limits.tpm == 30000 and pool.counts_tokens
    assert any(e.change is StateChange.TOKENS_LEARNED for e in pool.events.recent())
    clock.advance(1.0)  # the cooldown (644 ms) is over: requests of 12,000 tokens each (input 11,744 + 256 out)
    served = 0
    while (key := pool.pick(hold=(hold := TokenHold(11_744, 256)))) is not None:
        served += 1
        pool.report(key, classify("openai", 200, {}, b'{"usage": {"prompt_tokens": 11744, "completion_tokens": 256}}',
                                  clock.now()), tokens_in=11_744, tokens_out=256, hold=hold)
    assert served == 2  # 24,000 of 30,000: the third would be over the budget, so it waits instead of a 429


def test_a_budget_without_a_figure_is_fitted_from_the_answers_tokens() -> None:
    clock = FakeClock()
    pool = Pool("p", [KeySpec("k0", SECRET)], "round-robin", clock=clock)
    for _ in range(5):  # 5 answers of 1,000 tokens within the minute
        key = pool.pick()
        assert key is not None
        pool.report(key, classify("openai", 200, {}, b"{}", clock.now()), tokens_in=900, tokens_out=100)
        clock.advance(2.0)
    key = pool.pick()
    assert key is not None
    pool.report(key, answer_of(case("cerebras-tpm-429"), clock))
    assert key.declared is not None and key.declared.limits.tpm == 5000
    # its window starts with those answers' tokens: the provider's holds them too
    assert key.declared.in_use(clock.now())["tpm"] == (5000, 5000)


def answer_of(c: dict, clock: FakeClock) -> Classification:
    """The corpus case's answer, classified as it came."""
    return classify(c["dialect"], c["status"], c["headers"], raw_body(c), clock.now())
