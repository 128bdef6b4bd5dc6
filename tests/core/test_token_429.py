"""A 429 that says tokens is told apart from one that says requests (issue 27 item 2), from the providers' own
words as captured in tests/corpus/ (and the simulator's, which copies them)."""

from __future__ import annotations

import pytest

from pooltui.core import Outcome, classify
from pooltui.sim import corpus
from pooltui.sim.limits import Verdict
from pooltui.sim.shapes import error_response, rate_headers

TOKENS = ["openai-tpm-rate-limit-644ms-429", "openai-tpm-rate-limit-18s-429", "anthropic-itpm-org-429",
          "anthropic-itpm-per-model-429", "groq-tpm-rate-limit-429", "cerebras-tpm-429",
          "azure-token-rate-limit-7s-429"]
REQUESTS = ["mistral-requests-rate-limit-429", "bedrock-throttling-requests-429", "azure-rate-limit-try-again-2s-429"]


@pytest.mark.parametrize("case_id", TOKENS + REQUESTS)
def test_the_captured_429s_say_tokens_or_requests(case_id: str) -> None:
    c = corpus.case(case_id)
    result = classify(c["dialect"], c["status"], c.get("headers") or {}, corpus.raw_body(c), 1_700_000_000.0)
    assert result.outcome is Outcome.RATE_LIMITED
    assert result.tokens is (case_id in TOKENS), result.reason


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_the_simulators_token_429_reads_as_the_real_one(dialect: str) -> None:
    for what, tokens in (("tokens", True), (None, False)):
        v = Verdict("rate_limited", 429, 2.0, 60, 10, 2.0, tokens_what=what and ("input_tokens" if dialect ==
                    "anthropic" else "tokens"), tokens_limit=20_000 if what else None, tokens_remaining=300,
                    tokens_reset_s=2.0, requested=1_017, model="m")
        status, body, headers = error_response(dialect, v, "sk-...")
        headers.update(rate_headers(dialect, v, 1_700_000_000.0))
        result = classify(dialect, status, headers, body, 1_700_000_000.0)
        assert result.outcome is Outcome.RATE_LIMITED and result.tokens is tokens, result.reason
