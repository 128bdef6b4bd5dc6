"""IdleLimit (client/idle.py): each wait for a stream's next chunk bounded, with one timer for the whole stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from pooltui.client.idle import IdleLimit


async def _chunks(gaps: list[float]) -> AsyncIterator[int]:
    """One item after each gap (seconds of silence before it)."""
    for n, gap in enumerate(gaps):
        await asyncio.sleep(gap)
        yield n


async def _drain(limit: IdleLimit, chunks: AsyncIterator[int], pause_s: float = 0.0) -> list[int]:
    got: list[int] = []
    try:
        while True:
            try:
                got.append(await limit.next(chunks))
            except StopAsyncIteration:
                return got
            await asyncio.sleep(pause_s)  # the caller's own work between two waits
    finally:
        limit.close()


def test_a_silence_longer_than_the_gap_is_a_timeout_in_time() -> None:
    async def main() -> tuple[list[int], float]:
        got: list[int] = []
        t0 = time.perf_counter()
        limit = IdleLimit(0.15)
        with pytest.raises(TimeoutError):
            chunks = _chunks([0.0, 0.05, 5.0])
            while True:
                got.append(await limit.next(chunks))
        limit.close()
        return got, time.perf_counter() - t0

    got, took = asyncio.run(main())
    assert got == [0, 1] and 0.15 <= took < 1.0, (got, took)


def test_chunks_each_within_the_gap_pass_however_long_the_stream_lasts() -> None:
    """Twenty gaps of 0.05 s against a limit of 0.4 s: 1 s in all, more than twice the limit, and no timeout (the
    timer set on the first wait runs on to the end of the wait going on when it fires)."""
    got = asyncio.run(_drain(IdleLimit(0.4), _chunks([0.05] * 20)))
    assert got == list(range(20))


def test_time_the_caller_spends_between_waits_is_not_counted() -> None:
    """Chunks ready at once, the caller 0.5 s on each (a slow caller being written to): the limit of 0.2 s bounds
    the waits for the upstream only, as ``asyncio.timeout`` around each wait did."""
    got = asyncio.run(_drain(IdleLimit(0.2), _chunks([0.0] * 4), pause_s=0.5))
    assert got == [0, 1, 2, 3]


def test_a_cancel_from_elsewhere_stays_a_cancel_and_a_timeout_leaves_the_task_uncancelled() -> None:
    async def main() -> tuple[bool, int]:
        waiting = asyncio.create_task(_drain(IdleLimit(5.0), _chunks([60.0])))
        await asyncio.sleep(0.05)
        waiting.cancel()
        try:
            await waiting
        except asyncio.CancelledError:
            cancelled = True
        except TimeoutError:
            cancelled = False
        limit = IdleLimit(0.05)
        with pytest.raises(TimeoutError):
            await limit.next(_chunks([60.0]))
        limit.close()
        task = asyncio.current_task()
        assert task is not None
        return cancelled, task.cancelling()

    assert asyncio.run(main()) == (True, 0)
