"""The history's writes off the event loop: one thread with a connection of its own runs the statements in the
order they were asked for, all that waits at once in one transaction (see ``History.write_behind``). A read
waits until what was asked before it is written (``settle``); closing writes what is left first."""

from __future__ import annotations

import atexit
import logging
import queue
import sqlite3
import threading
import weakref
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any

#: one statement: its SQL, and its parameters (one row) or its rows (``executemany``)
Statement = tuple[str, Sequence[Any], bool]

log = logging.getLogger("pooltui.history")


#: the most parameters one statement takes on every SQLite build (999 before 3.32)
MAX_PARAMS = 999


def inserts(head: str, width: int, rows: Sequence[Sequence[Any]]) -> list[Statement]:
    """``rows`` (``width`` values each) as a few multi-row INSERTs, ``head`` being the statement up to VALUES. Each
    runs in one step with the interpreter lock released, where ``executemany`` steps once per row: a writer thread
    that gives the lock up and takes it back for every row keeps the event loop waiting for it, up to the switch
    interval (5 ms) each time (a second's rows, measured: 13-21 ms of the writer's wall time for 2 ms of its CPU, and
    callers' requests held 2-5 ms about once a second)."""
    per = max(1, MAX_PARAMS // width)
    one = "(" + ",".join("?" * width) + ")"
    full = head + ",".join([one] * per) if len(rows) >= per else ""
    out: list[Statement] = []
    for start in range(0, len(rows), per):
        chunk = rows[start:start + per]
        sql = full if len(chunk) == per else head + ",".join([one] * len(chunk))
        out.append((sql, list(chain.from_iterable(chunk)), False))
    return out


def run_statements(db: sqlite3.Connection, statements: Sequence[Statement]) -> None:
    """Each statement on ``db`` (inside whatever transaction is open)."""
    for sql, params, many in statements:
        if many:
            db.executemany(sql, params)
        else:
            db.execute(sql, params)


def _close_at_exit(ref: weakref.ref[HistoryWriter]) -> None:
    writer = ref()
    if writer is not None:
        writer.close()


class HistoryWriter:
    """A writer thread over its own connection (``connect`` is called in the thread)."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], name: str = "pooltui-history") -> None:
        self._connect = connect
        self._queue: queue.SimpleQueue[list[Statement] | None] = queue.SimpleQueue()
        self._pending = 0  # writes asked for and not yet done
        self._idle = threading.Condition()
        self.failures = 0  # writes that failed (logged): the next ones still go
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        # a process that exits without closing the history still writes what it was asked to (atexit runs
        # before daemon threads stop); a weak reference: a writer closed and dropped is not kept alive
        atexit.register(_close_at_exit, weakref.ref(self))

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, statements: list[Statement]) -> None:
        """Ask for ``statements`` (one transaction, or part of one), after what was asked before."""
        with self._idle:
            self._pending += 1
        self._queue.put(statements)

    def settle(self) -> None:
        """Wait until every write asked for so far is done."""
        if threading.current_thread() is self._thread:
            return
        with self._idle:
            self._idle.wait_for(lambda: self._pending == 0 or not self._thread.is_alive())

    def close(self) -> None:
        """Write what is left, then stop the thread (once; later calls return at once)."""
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._queue.put(None)
            self._thread.join()

    def _run(self) -> None:
        db = self._connect()
        try:
            stop = False
            while not stop:
                item = self._queue.get()
                if item is None:
                    return
                batch = [item]
                while True:  # whatever else waits goes in the same transaction
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    batch.append(more)
                self._write(db, batch)
        finally:
            db.close()
            with self._idle:
                self._idle.notify_all()

    def _write(self, db: sqlite3.Connection, batch: list[list[Statement]]) -> None:
        try:
            self._transaction(db, [s for statements in batch for s in statements])
        except Exception:  # one bad write does not take the others with it: each again, on its own
            for statements in batch:
                try:
                    self._transaction(db, statements)
                except Exception as exc:  # logged; the writer goes on with the next writes
                    self.failures += 1
                    log.warning("history: a write failed (%s)", exc)
        finally:
            with self._idle:
                self._pending -= len(batch)
                if self._pending == 0:
                    self._idle.notify_all()

    @staticmethod
    def _transaction(db: sqlite3.Connection, statements: Sequence[Statement]) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            run_statements(db, statements)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
