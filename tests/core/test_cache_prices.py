"""Prompt-cache tokens priced (issue 28): usage read once from each provider's fields, cost per answer =
uncached input x input price + cache writes x write price + cache reads x read price + output x output price."""

from __future__ import annotations

import pytest

from pooltui.client.pool_client import UsageRecord
from pooltui.core.budget import Prices
from pooltui.core.sse import SSEScanner
from pooltui.core.usage import Usage, usage_of
from pooltui.providers.profiles import ApiRequest, ProviderProfile
from pooltui.sim.wiring import client_for_scenario
from tests.conftest import keys, make_scenario

ANTHROPIC_BODY = {"usage": {"input_tokens": 100, "cache_creation_input_tokens": 2000, "cache_read_input_tokens": 5000,
                            "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 1000},
                            "output_tokens": 50}}
OPENAI_BODY = {"usage": {"prompt_tokens": 3000, "completion_tokens": 100, "total_tokens": 3100,
                         "prompt_tokens_details": {"cached_tokens": 2048}}}


def test_usage_reads_each_providers_cache_fields() -> None:
    assert usage_of(ANTHROPIC_BODY) == Usage(7100, 50, 5000, 2000, 1000, 7000)
    assert usage_of(OPENAI_BODY) == Usage(3000, 100, 2048, 0, 0, 2944)  # 1,024 + 15 steps of 128
    assert usage_of({"message": ANTHROPIC_BODY}).cache_read == 5000  # a stream's message_start


def test_a_stream_reports_its_cache_usage() -> None:
    scanner = SSEScanner()
    scanner.feed(b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":10,'
                 b'"cache_creation_input_tokens":0,"cache_read_input_tokens":1500,"output_tokens":1}}}\n\n')
    scanner.feed(b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":7}}\n\n')
    assert scanner.usage == Usage(1510, 7, 1500, 0, 0, 1500)
    assert (scanner.tokens_in, scanner.tokens_out) == (1510, 7)


def test_anthropic_cost_by_hand_with_the_default_multipliers() -> None:
    prices = Prices.from_dict({"claude-sonnet-4-5": {"input_per_mtok": 3, "output_per_mtok": 15}})
    # 100 uncached x 3 + 1,000 5-min writes x 3.75 + 1,000 1-hour writes x 6 + 5,000 reads x 0.3 + 50 out x 15
    assert prices.cost_of("claude-sonnet-4-5-20250929", usage_of(ANTHROPIC_BODY)) == pytest.approx(12300 / 1e6)
    assert prices.cost("claude-sonnet-4-5", 7100, 50) == pytest.approx((7100 * 3 + 50 * 15) / 1e6)  # no cache use


def test_openai_cost_by_hand_read_discount_by_family() -> None:
    prices = Prices.from_dict({"gpt-4o": {"input_per_mtok": 2.5, "output_per_mtok": 10},
                               "gpt-5": {"input_per_mtok": 1.25, "output_per_mtok": 10}})
    usage = usage_of(OPENAI_BODY)
    assert prices.cost_of("gpt-4o", usage) == pytest.approx((952 * 2.5 + 2048 * 1.25 + 100 * 10) / 1e6)  # 0.5x
    assert prices.cost_of("gpt-5", usage) == pytest.approx((952 * 1.25 + 2048 * 0.125 + 100 * 10) / 1e6)  # 0.1x


def test_configured_cache_prices_win_and_round_trip() -> None:
    table = {"claude-haiku-4-5": {"input_per_mtok": 1.0, "output_per_mtok": 5.0, "cache_write_per_mtok": 1.5,
                                  "cache_read_per_mtok": 0.2}}
    prices = Prices.from_dict(table)
    # 100 x 1 + 1,000 x 1.5 + 1,000 x 2 (1-hour writes: the default 2x) + 5,000 x 0.2 + 50 x 5
    assert prices.cost_of("claude-haiku-4-5", usage_of(ANTHROPIC_BODY)) == pytest.approx(4850 / 1e6)
    assert prices.to_dict() == table
    with pytest.raises(ValueError, match="cache_read_per_mtok"):
        Prices.from_dict({"m": {"input_per_mtok": 1, "cache_read_per_mtok": "cheap"}})


@pytest.mark.asyncio
async def test_the_client_prices_cache_reads_and_records_them(serve) -> None:
    sc = make_scenario({"name": "a", "dialect": "anthropic", "keys": keys("k", 1)})
    server = serve(sc)
    records: list[UsageRecord] = []
    system = [{"type": "text", "text": "stay on task. " * 2000, "cache_control": {"type": "ephemeral"}}]

    def build(question: str):
        def make(profile: ProviderProfile) -> ApiRequest:
            body = {"model": "claude-sim-1", "max_tokens": 4, "system": system,
                    "messages": [{"role": "user", "content": question}]}
            return ApiRequest("POST", profile.chat_path, body)
        return make

    async with client_for_scenario(sc, server, seed=1) as client:
        client.prices = Prices.from_dict({"claude-sim-1": {"input_per_mtok": 3, "output_per_mtok": 15}})
        client.usage_listeners.append(records.append)
        first = await client.send(build("one"))
        second = await client.send(build("two"))
    assert first.usage.cache_write > 1024 and second.usage.cache_read == first.usage.cache_write
    write, read = records
    assert (read.cache_read, read.cache_write, read.cacheable) == (first.usage.cache_write, 0, first.usage.cache_write)
    uncached = read.tokens_in - read.cache_read
    assert read.cost == pytest.approx((uncached * 3 + read.cache_read * 0.3 + read.tokens_out * 15) / 1e6)
    assert read.cost < read.cost_no_cache < write.cost  # a hit saves; a write costs more than no cache at all
