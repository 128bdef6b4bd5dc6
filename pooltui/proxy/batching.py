"""Items taken off the request path and handed on in batches: when ``max_batch`` are waiting, after ``delay_s``
otherwise, and everything at a flush or at shutdown. ``BatchThread``: a thread hands them on (the request path only
appends to a deque: no lock, no wake-up until a batch is full). ``PipeBatches``: the request's own thread writes
each batch down a pipe without blocking (no thread at all)."""

from __future__ import annotations

import asyncio
import logging
import os
import select
import threading
import time
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


PIPE_BYTES = 1 << 20  # what the pipe to a reader holds (Linux: the unprivileged most); a larger batch waits here


class PipeBatches(Generic[T]):
    """Items ``put`` on the request's path go down a pipe in batches written by the putting thread itself, with no
    thread of their own (no hand-off of the interpreter lock, no wake-up): one frame (``encode(batch)``) and one
    non-blocking ``os.write`` when ``max_batch`` are waiting, else ``delay_s`` after the first (a timer of the
    running event loop, or a timer thread without one). What the pipe cannot take at once waits here, up to
    ``max_queue`` items; past that, a batch is dropped and counted (``on_drop`` is told the first time). ``flush``
    writes everything, waiting on the pipe; safe from any thread."""

    def __init__(self, fd: int, encode: Callable[[list[T]], bytes], *, delay_s: float, max_batch: int,
                 max_queue: int, on_drop: Callable[[int], None] | None = None) -> None:
        _grow_pipe(fd)
        os.set_blocking(fd, False)
        self._fd, self._encode, self._on_drop = fd, encode, on_drop
        self.delay_s, self.max_batch, self.max_queue = delay_s, max_batch, max_queue
        self._items: list[T] = []
        self._lock = threading.Lock()
        self._backlog = bytearray()  # written to the pipe, not yet taken by it
        self._waiting: deque[tuple[int, int]] = deque()  # per frame in the backlog: (its end, its items)
        self._written = self._queued = 0  # bytes through the pipe / into the backlog, so far
        self._due = 0.0  # when the armed timer fires (0: none armed)
        self.dropped = 0
        self.broken = False  # the reader is gone: items are thrown away

    def put(self, item: T) -> None:
        with self._lock:
            items = self._items
            items.append(item)
            if len(items) >= self.max_batch:
                self._write(self._take(), self.max_batch)
            elif len(items) == 1 and time.monotonic() > self._due:
                self._arm(self.delay_s)

    def flush(self, extra: bytes = b"", timeout_s: float = 10.0) -> bool:
        """Write what is queued, then ``extra`` (never dropped), waiting on the pipe up to ``timeout_s``; False if
        that took longer or the reader is gone."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            count = len(self._items)
            self._enqueue((self._encode(self._take()) if count else b"") + extra, count)
        poller = select.poll()
        poller.register(self._fd, select.POLLOUT)
        while True:
            with self._lock:
                if self._pump() or self.broken:
                    return not self.broken
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            poller.poll(min(left, 0.5) * 1000)

    def _take(self) -> list[T]:
        items, self._items = self._items, []
        return items

    def _write(self, items: list[T], count: int) -> None:
        """A batch's frame down the pipe, after what waits (the lock held); dropped when too much waits."""
        if self.broken:
            return
        if self._backlog and not self._pump() and sum(n for _, n in self._waiting) + count > self.max_queue:
            self.dropped += count
            if self._on_drop is not None and self.dropped == count:
                self._on_drop(count)
        else:
            self._enqueue(self._encode(items), count)
            if not self._pump():
                self._arm(min(self.delay_s, 0.02))  # the rest once the reader has taken some

    def _enqueue(self, data: bytes, count: int) -> None:
        if data:
            self._backlog += data
            self._queued += len(data)
            self._waiting.append((self._queued, count))

    def _pump(self) -> bool:
        """As much of the backlog as the pipe takes now (the lock held); True once it is all written."""
        backlog = self._backlog
        if not backlog or self.broken:
            return True
        try:
            n = os.write(self._fd, backlog)
        except BlockingIOError:
            n = 0
        except OSError:  # the reader is gone: nothing more goes
            self.broken = True
            backlog.clear()
            self._waiting.clear()
            return True
        del backlog[:n]
        self._written += n
        waiting = self._waiting
        while waiting and waiting[0][0] <= self._written:
            waiting.popleft()
        return not backlog

    def _arm(self, delay_s: float) -> None:
        """``_tick`` in ``delay_s``: on the running event loop, else from a timer thread."""
        self._due = time.monotonic() + delay_s
        try:
            asyncio.get_running_loop().call_later(delay_s, self._tick)
        except RuntimeError:  # no loop in this thread
            timer = threading.Timer(delay_s, self._tick)
            timer.daemon = True
            timer.start()

    def _tick(self) -> None:
        with self._lock:
            self._due = 0.0
            if self._items:
                count = len(self._items)
                self._write(self._take(), count)
            elif not self._pump():
                self._arm(min(self.delay_s, 0.02))


def _grow_pipe(fd: int) -> None:
    """Make the pipe hold ``PIPE_BYTES`` where the system lets it (Linux), so that a batch goes in one write."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except (ImportError, OSError):
        pass
