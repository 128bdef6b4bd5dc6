"""A thread that takes items off the request path and hands them on in batches: when ``max_batch`` are waiting,
after ``delay_s`` otherwise, and everything at a flush or at shutdown. The request path only appends to a deque
(no lock, no wake-up until a batch is full)."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class BatchThread(Generic[T]):
    """Queue ``put`` items (up to ``max_queue`` waiting: more are dropped and counted) for ``send`` in batches."""

    def __init__(self, send: Callable[[list[T]], None], *, delay_s: float, max_batch: int, max_queue: int,
                 name: str = "pooltui-batch") -> None:
        self._send = send
        self.delay_s, self.max_batch, self.max_queue = delay_s, max_batch, max_queue
        self._queue: deque[T] = deque()
        self._changed = threading.Condition()
        self._flush_wanted = False
        self._busy = False  # a batch is being sent
        self._stopping = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: T) -> None:
        if len(self._queue) >= self.max_queue:
            self.dropped += 1
            return
        self._queue.append(item)
        if len(self._queue) == self.max_batch:
            with self._changed:
                self._changed.notify_all()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Send what is queued now; False if that took longer than ``timeout_s``."""
        with self._changed:
            self._flush_wanted = True
            self._changed.notify_all()
            return self._changed.wait_for(lambda: not self._queue and not self._busy, timeout_s)

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Send what is queued and stop the thread (once; later calls do nothing)."""
        with self._changed:
            if self._stopping:
                return
            self._stopping = True
            self._changed.notify_all()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._stopping or self._flush_wanted
                                       or len(self._queue) >= self.max_batch, self.delay_s)
                batch = self._take()
                self._busy = bool(batch)
                stopping = self._stopping
                if not batch:
                    self._changed.notify_all()  # a flush of nothing is done
            while batch:
                try:
                    self._send(batch)
                except Exception:  # a failed export never stops the thread
                    log.exception("batch not sent")
                with self._changed:
                    more = stopping or self._flush_wanted or len(self._queue) >= self.max_batch
                    batch = self._take() if more else []
                    self._busy = bool(batch)
                    if not batch:
                        self._changed.notify_all()
            if stopping and not self._queue:
                return

    def _take(self) -> list[T]:
        """Up to a batch of the queued items (the lock held); a flush is over once nothing is left."""
        batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
        if not self._queue:
            self._flush_wanted = False
        return batch
