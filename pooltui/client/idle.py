"""A bound on each wait for a stream's next chunk with one timer for the whole stream. ``asyncio.timeout`` per
chunk built a ``Timeout``, scheduled a timer handle and cancelled it again for every chunk; here the timer is set on
the first wait and, when it fires early (chunks came since), set again for the end of the wait going on then. Only
the waits are bounded: time the task spends elsewhere between two waits (its caller writing a chunk on) is not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

T = TypeVar("T")


class IdleLimit:
    """Each ``next`` of a stream bounded to ``idle_s``: past it, ``TimeoutError`` (as ``asyncio.timeout`` raises
    it); a cancellation from elsewhere stays a ``CancelledError``. ``close`` drops the timer (the stream's end)."""

    __slots__ = ("_fired", "_idle_s", "_since", "_task", "_timer", "_waiting")

    def __init__(self, idle_s: float) -> None:
        self._idle_s = idle_s
        self._task: asyncio.Task[object] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._since = 0.0
        self._waiting = False
        self._fired = False

    async def next(self, chunks: AsyncIterator[T]) -> T:
        """The next item of ``chunks`` (``StopAsyncIteration`` at their end), within ``idle_s``."""
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._since = since = loop.time()
        if self._timer is None:
            self._timer = loop.call_at(since + self._idle_s, self._check)
        self._waiting = True
        try:
            return await anext(chunks)
        except asyncio.CancelledError:
            task = self._task
            if self._fired and task is not None:
                self._fired = False
                if task.uncancel() == 0:  # this limit's own cancellation, and no other: a timeout
                    raise TimeoutError(f"nothing for {self._idle_s:g} s") from None
            raise
        finally:
            self._waiting = False

    def _check(self) -> None:
        """The timer: a wait that has lasted ``idle_s`` is cancelled; one begun since runs on to its own end; with
        no wait going on, the next wait sets the timer again."""
        self._timer = None
        task = self._task
        if not self._waiting or task is None or task.done():
            return
        loop = task.get_loop()
        end = self._since + self._idle_s
        if loop.time() < end:
            self._timer = loop.call_at(end, self._check)
            return
        self._fired = True
        task.cancel()

    def close(self) -> None:
        """No more waits: the timer dropped (it would hold the stream's task until it fires)."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self._task = None
