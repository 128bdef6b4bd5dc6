"""Items taken off the request path and handed on in batches: when ``max_batch`` are waiting, after ``delay_s``
otherwise, and everything at a flush or at shutdown. ``BatchThread``: a thread hands them on (the request path only
appends to a deque: no lock; the thread sleeps while nothing is queued and is woken once per batch at most).
``PipeBatches``: the request's own thread writes each batch down a pipe without blocking (no thread at all)."""

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
    """Queue ``put`` items (up to ``max_queue`` waiting: more are dropped and counted) for ``send`` in batches, by a
    thread that gathers them for ``delay_s`` and hands on what came (at once when ``max_batch`` are waiting, at a
    flush or at shutdown), again and again while items keep coming; after a period with none it sleeps, with no
    timer, until the next item wakes it (a release of a plain lock: no ``Condition`` on the request's path). The
    request path only appends to a deque, and wakes the thread only then or when a batch is full."""

    def __init__(self, send: Callable[[list[T]], None], *, delay_s: float, max_batch: int, max_queue: int,
                 name: str = "pooltui-batch") -> None:
        self._send = send
        self.delay_s, self.max_batch, self.max_queue = delay_s, max_batch, max_queue
        self._queue: deque[T] = deque()
        self._wake = threading.Lock()  # released: the thread is woken (a released one stays so until it looks)
        self._wake.acquire()
        self._asleep = False  # the thread waits for a first item: a put into an empty queue wakes it
        self._changed = threading.Condition()  # taking a batch, and a flush waiting for its items to be sent
        self._taken = self._sent = 0  # items taken off the queue / handed on (or failed), so far
        self._flush_to = 0  # a flush waits until this many items are sent
        self._stopping = False
        self._stopped = False  # the thread has ended: ``put`` sends at once
        self.dropped = 0
        self.rounds = 0  # gathering rounds so far (none while idle)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: T) -> None:
        queue = self._queue
        n = len(queue)
        if n >= self.max_queue:
            self.dropped += 1
            return
        queue.append(item)
        if self._stopped:  # the thread is gone (a put that took this queue just before shutdown): sent from here
            self._hand_on(len(queue))
        elif (n == 0 and self._asleep) or n + 1 == self.max_batch:
            self._signal()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Send what is queued now; False if that took longer than ``timeout_s``."""
        with self._changed:
            target = self._taken + len(self._queue)
            if self._sent >= target:
                return True
            self._flush_to = max(self._flush_to, target)
            self._signal()
            return self._changed.wait_for(lambda: self._sent >= target, timeout_s)

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Send what is queued and stop the thread (once; later calls do nothing). An item put after it is sent by
        the thread that puts it."""
        with self._changed:
            if self._stopping:
                return
            self._stopping = True
        self._signal()
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self._stopped = True  # later puts send their own items; one that came before this is sent now
            self._hand_on(len(self._queue))

    def _signal(self) -> None:
        """Wake the thread (or keep it from sleeping): a second release of a released lock is an error, and
        harmless here (it is woken already)."""
        try:
            self._wake.release()
        except RuntimeError:
            pass

    def _urgent(self) -> bool:
        """A full batch, a flush or a shutdown waits: no more gathering."""
        return self._stopping or self._flush_to > self._taken or len(self._queue) >= self.max_batch

    def _run(self) -> None:
        queue, wake = self._queue, self._wake
        quiet = True  # the last gathering found nothing: sleep until woken (no timer while idle)
        while True:
            if quiet and not queue and not self._urgent():
                self._asleep = True
                if not queue and not self._urgent():  # again: a put in between saw the flag and woke us
                    wake.acquire()
                self._asleep = False
                continue  # a stale wake-up finds the queue empty and sleeps again
            self.rounds += 1
            deadline = time.monotonic() + self.delay_s  # gather for delay_s, unless it is urgent
            while not self._urgent():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wake.acquire(timeout=left)
            stopping, quiet = self._stopping, not queue  # items keep coming: gather again, on the timer alone
            self._hand_on(len(queue))
            if stopping and not queue:
                return

    def _hand_on(self, count: int) -> None:
        """The first ``count`` queued items to ``send``, in batches of ``max_batch`` at most."""
        while count > 0:
            with self._changed:
                queue = self._queue
                batch = [queue.popleft() for _ in range(min(self.max_batch, count, len(queue)))]
                self._taken += len(batch)
            if not batch:
                return
            count -= len(batch)
            try:
                self._send(batch)
            except Exception:  # a failed export never stops the thread
                log.exception("batch not sent")
            with self._changed:
                self._sent += len(batch)
                if self._sent - len(batch) < self._flush_to:  # a flush may wait for these
                    self._changed.notify_all()


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
