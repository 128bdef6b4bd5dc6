"""A request's task waits through the pool client's own frames only: ``send`` and ``open_stream`` hand back
``_run``'s coroutine rather than awaiting it in a frame of their own (every wake of the task resumes each frame on
its await chain: the upstream's head, its first event, for a stream its chunks)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.odd_upstream import OddUpstream, completion, head

pytestmark = pytest.mark.asyncio


def frames(task: asyncio.Task[Any]) -> list[str]:
    """The names of the coroutine frames a waiting task is suspended in, outermost first."""
    names: list[str] = []
    awaited: Any = task.get_coro()
    while awaited is not None and hasattr(awaited, "cr_code"):
        names.append(awaited.cr_code.co_name)
        awaited = awaited.cr_await
    return names


async def late(writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(0.3)
    body = completion()
    writer.write(head(content_type="application/json", length=len(body)) + body)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_waiting_request_is_suspended_in_run_not_in_send_or_open_stream(stream: bool) -> None:
    with OddUpstream(late) as up:
        async with up.client() as client:
            build = client.chat_builder("hi", stream=stream)
            task = asyncio.ensure_future(client.open_stream(build) if stream else client.send(build))
            await asyncio.sleep(0.15)  # the upstream has not answered: the task waits for its head
            chain = frames(task)
            await task
    assert chain[0] == "_run" and "open_stream" not in chain and "send" not in chain, chain
