"""An answer that reports no usage (issue 27): the tokens its request held stay counted in the key's token
window (as used), and no longer count as in flight: the key is not held back for good by a request long done."""

from __future__ import annotations

import asyncio
import json

from pooltui.core.windows import KeyLimits
from tests.odd_upstream import OddUpstream, head


async def without_usage(writer: asyncio.StreamWriter) -> None:
    body = json.dumps({"id": "c1", "object": "chat.completion", "created": 0, "model": "m",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": "plain"},
                                    "finish_reason": "stop"}]}).encode()
    writer.write(head(content_type="application/json", length=len(body)) + body)


def test_an_answer_without_usage_settles_what_its_request_held() -> None:
    with OddUpstream(without_usage) as up:
        client = up.client()
        pool = client.primary.pool
        assert pool is not None
        pool.set_limits("k0", KeyLimits(tpm=1_000_000))

        async def two() -> None:
            for _ in range(2):
                resp = await client.chat("x" * 4_000, max_tokens=50)
                assert resp.status == 200
            await client.aclose()

        asyncio.run(two())
        key = pool.key("k0")
        assert key.tokens_inflight == 0  # both answered: nothing in flight
        assert key.declared is not None
        used, _ = key.declared.in_use(pool.clock.now())["tpm"]
        assert used >= 2 * 1_000  # what they held (about 1,000 input tokens each, and 50 out) stays counted
