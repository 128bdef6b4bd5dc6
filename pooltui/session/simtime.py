"""Simulated time for the strategy lab: a coroutine run on a fast-forwarded event loop, so a scenario's
minutes take seconds. Whenever every task waits on a timer (a request's arrival, the simulator's latency, a
cooldown, a backoff), the loop's clock jumps to the next timer instead of sleeping; nothing waits on a socket
(the simulator answers in-process), so only computing takes real time.

The loop is ``looptime``'s (PyPI, "fast-forward asyncio event loop time"), chosen over aiotools'
``VirtualClock``: looptime is an event-loop class (``looptime.new_event_loop``) made to be run as it is,
where VirtualClock patches a running loop's selector and ``time`` with ``unittest.mock`` (meant for tests) and
moves its clock by every select's timeout even when I/O is ready; looptime moves time only when nothing is
ready, steps in real time while an executor's thread works, and gave the same results run after run
(``python -m pooltui.bench lab``). uvloop has no selector to fast-forward: simulated time runs on asyncio's
own loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import looptime

T = TypeVar("T")


def new_simulated_loop() -> asyncio.AbstractEventLoop:
    """An asyncio loop whose clock starts at 0 and jumps to the next timer whenever nothing is ready."""
    return looptime.new_event_loop(start=0.0, noop_cycles=1)


def run_simulated(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end on a new fast-forwarded loop (in this thread) and close the loop."""
    with asyncio.Runner(loop_factory=new_simulated_loop) as runner:
        return runner.run(coro)


def is_simulated(loop: asyncio.AbstractEventLoop | None = None) -> bool:
    """Whether ``loop`` (default: the running one) fast-forwards its time."""
    loop = loop or asyncio.get_running_loop()
    return bool(getattr(loop, "looptime_on", False))
