"""The history writing behind (issue 31): the writes of a busy second leave the event loop for a thread of their
own; nothing is lost at a clean stop, and what the session reads sees what it wrote."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pooltui.client.pool_client import RequestRecord
from pooltui.store.history import History
from tests.conftest import config_on_simulator, until


def _records(n: int, ts: float) -> list[RequestRecord]:
    return [RequestRecord(ts + i * 1e-6, "p", "m", 10, 5, "ok", 0.01) for i in range(n)]


_WRITER = """
import os, sys, time
from pooltui.client.pool_client import RequestRecord
from pooltui.core.events import Event, EventKind
from pooltui.store.history import History
h = History(__import__("pathlib").Path(sys.argv[1]))
h.write_behind()
now = float(sys.argv[2])
for _ in range(20):
    h.add_request_records([RequestRecord(now, "p", "m", 10, 5, "ok", 0.01) for _ in range(1000)])
h.add_events([Event(now, "p", "a", EventKind.RATE_LIMITED, 429, "slow down", "cooled 1 s")])
if sys.argv[3] == "close":
    h.close()
    os._exit(0)  # no interpreter shutdown: what close wrote is all there is
"""


@pytest.mark.parametrize("how", ["close", "exit"])
def test_a_process_that_ends_cleanly_has_written_everything_it_was_asked_to(tmp_path: Path, how: str) -> None:
    """``close`` writes what is left before it returns; a process that ends without closing writes it at exit."""
    now = time.time()
    subprocess.run([sys.executable, "-c", _WRITER, str(tmp_path / "h.db"), str(now), how], check=True, timeout=30)
    again = History(tmp_path / "h.db")
    assert len(again.request_records(now - 1)) == 20_000
    assert [e["reason"] for e in again.events(now - 1)] == ["slow down"]


def test_a_read_sees_the_writes_asked_before_it(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db")
    h.write_behind()
    now = time.time()
    h.add_request_records(_records(50_000, now))  # far more than the writer can have done by the next line
    assert len(h.request_records(now - 1)) == 50_000
    h.set_key_status("p", "a", "cooling", now + 30, reason="429")
    assert h.key_statuses("p")[("p", "a")].state == "cooling"
    h.close()


def test_the_writes_are_not_made_on_the_callers_thread(tmp_path: Path) -> None:
    """With write-behind the caller's connection runs no INSERT: the writer thread's own connection does."""
    h = History(tmp_path / "h.db")
    h.write_behind()
    seen: list[tuple[str, str]] = []
    h.db.set_trace_callback(lambda sql: seen.append((threading.current_thread().name, sql)))
    now = time.time()
    h.add_request_records(_records(10, now))
    h.add_usage([(int(now) // 60 * 60, "p", "a", "m", 1, 1, 10, 5, 0.0)])
    assert len(h.request_records(now - 1)) == 10
    assert not [sql for _, sql in seen if sql.lstrip().upper().startswith("INSERT")]
    h.close()


def test_a_flushs_rows_go_in_a_few_statements_not_one_per_row(tmp_path: Path) -> None:
    """A second's requests (and events) are written as a few multi-row INSERTs: each statement's step gives the
    interpreter lock up once, where one step per row had the writer thread and the event loop pass it to and fro
    for every row (callers' requests held 2-5 ms about once a second). The values are kept exactly."""
    from pooltui.core.events import Event, EventKind

    h = History(tmp_path / "h.db")
    steps: list[str] = []
    h.db.set_trace_callback(lambda sql: steps.append(sql) if sql.lstrip().upper().startswith("INSERT") else None)
    now = time.time()
    records = [RequestRecord(now + i / 7, "p", f"m{i % 3}", i, 2 * i, "ok", i / 1000) for i in range(1000)]
    h.add_request_records(records)
    h.add_events([Event(now + i, "p", f"k{i}", EventKind.ROTATED, 429, "slow down", "rotated", i) for i in range(300)])
    assert len(steps) == 8 + 4, len(steps)  # 142 requests a statement (999 parameters), 99 events
    got = h.request_records(now - 1)
    assert [(r["ts"], r["model"], r["tokens_in"], r["tokens_out"], r["latency_ms"]) for r in got] == \
        [(r.ts, r.model, r.tokens_in, r.tokens_out, r.latency_s * 1000) for r in records]
    assert len(h.events(now - 1)) == 300
    h.close()


def test_one_bad_write_does_not_take_the_others_with_it(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db")
    h.write_behind()
    now = time.time()
    h.add_request_records(_records(3, now))
    h.add_request_records([RequestRecord(now, "p", "m", 1, 1, None, 0.01)])  # type: ignore[arg-type]  # NOT NULL
    h.add_request_records(_records(2, now + 1))
    assert len(h.request_records(now - 1)) == 5
    assert h.writer is not None and h.writer.failures == 1
    h.close()


async def test_a_session_stopped_cleanly_has_its_requests_in_the_history(serve, tmp_path: Path) -> None:
    """Requests served by a session writing behind are all in the history once the session has stopped, however
    recently they ended."""
    from pooltui.session.local import config_session
    from pooltui.store.config import load_config

    path, store, _ = config_on_simulator(serve, tmp_path)
    history = History(tmp_path / "history.db")
    session, _ = config_session(load_config(path), store, history)
    session.start_background()
    client = next(iter(session.clients.values()))
    started = time.time()
    try:
        assert history.writer is not None  # the running session writes behind
        await asyncio.gather(*(client.chat("hi") for _ in range(40)))
        await until(lambda: len(history.request_records(started - 1)) > 0, "a first flush")
        await asyncio.gather(*(client.chat("again") for _ in range(25)))  # left in the recorder's buffer
    finally:
        session.stop_background()
        for c in session.clients.values():
            await c.aclose()
    reopened = History(tmp_path / "history.db")
    assert len(reopened.request_records(started - 1)) == 65
    history.close()
