"""The proxy's buffered log handler: lines queued off the request's path all reach the stream at a flush and at
close (logging closes handlers at exit), and a line logged after a close still goes out; its batch thread writes a
line on its own within the delay, a full batch at once, sleeps while idle, and loses nothing under load."""

from __future__ import annotations

import io
import logging
import re
import threading
import time
from collections.abc import Callable

from pooltui.commands.cli import ScrubbedStream
from pooltui.proxy.batching import BatchThread
from pooltui.proxy.logs import BufferedHandler, JsonFormatter, TextFormatter


def record(i: int) -> logging.LogRecord:
    out = logging.LogRecord("pooltui.access", logging.INFO, __file__, 1, f"line {i} sk-{'a' * 40}", None, None)
    out.fields = {"n": i}  # type: ignore[attr-defined]
    return out


def test_every_queued_line_is_written_at_close_in_order_and_scrubbed() -> None:
    stream = io.StringIO()
    handler = BufferedHandler(stream, JsonFormatter(), delay_s=60)  # nothing would go out on the timer
    for i in range(2500):
        handler.handle(record(i))
    handler.close()
    lines = stream.getvalue().splitlines()
    assert [f'"n": {i}}}' in line for i, line in enumerate(lines)] == [True] * 2500
    assert "a" * 40 not in stream.getvalue()


def test_a_line_after_close_still_goes_out() -> None:
    stream = io.StringIO()
    handler = BufferedHandler(stream, TextFormatter(), delay_s=60)
    handler.handle(record(1))
    handler.close()  # as logging.config.dictConfig (uvicorn's) does to every handler
    handler.handle(record(2))
    handler.flush()
    assert [line.split(" info  ")[1][:6] for line in stream.getvalue().splitlines()] == ["line 1", "line 2"]
    handler.close()


def test_a_line_queued_by_a_thread_that_took_the_writer_just_before_close_still_goes_out() -> None:
    """Another thread's line can reach the writer that ``close`` is stopping (it took it just before): the line is
    written, not left in a stopped thread's queue."""
    stream = io.StringIO()
    handler = BufferedHandler(stream, TextFormatter(), delay_s=60)
    handler.handle(record(1))
    taken = handler._queue()  # another thread, between taking the writer and putting its line...
    handler.close()  # ...while this one closes the handler
    taken.put(record(2))
    assert [line.split(" info  ")[1][:6] for line in stream.getvalue().splitlines()] == ["line 1", "line 2"]


def _until(done: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_a_line_goes_out_on_its_own_and_an_idle_thread_sleeps() -> None:
    """No flush: a line reaches the stream within the delay, again after the thread fell asleep for want of
    lines (the next line wakes it); while idle the thread is not woken at all (no timer)."""
    stream = io.StringIO()
    handler = BufferedHandler(stream, TextFormatter(), delay_s=0.01)
    try:
        for i in range(3):
            handler.handle(record(i))
            assert _until(lambda n=i + 1: len(stream.getvalue().splitlines()) == n), f"line {i} not written"
            assert _until(lambda: handler._lines is not None and handler._lines._asleep)
            rounds = handler._lines.rounds
            time.sleep(0.2)  # twenty delays idle
            assert handler._lines.rounds == rounds
    finally:
        handler.close()


def test_a_full_batch_goes_at_once() -> None:
    sent: list[list[int]] = []
    batches = BatchThread(sent.append, delay_s=60, max_batch=4, max_queue=100)
    batches.put(0)
    assert _until(lambda: batches.rounds == 1)  # woken by the first: gathering for a minute
    for i in range(1, 9):
        batches.put(i)
    assert _until(lambda: sum(map(len, sent)) >= 8)  # not a minute later: the delay
    batches.shutdown()
    assert [x for b in sent for x in b] == list(range(9)) and all(len(b) <= 4 for b in sent)


def test_a_flush_waits_for_what_was_queued_before_it_while_more_keeps_coming() -> None:
    sent: list[int] = []
    batches = BatchThread(sent.extend, delay_s=60, max_batch=50, max_queue=1_000_000)
    stop = threading.Event()

    def produce() -> None:
        i = 0
        while not stop.is_set():
            batches.put(i)
            i += 1

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        time.sleep(0.05)
        for _ in range(5):
            with batches._changed:  # what was queued before the flush (the thread takes under this lock)
                before = batches._taken + len(batches._queue)
            assert batches.flush(5)
            assert len(sent) >= before
    finally:
        stop.set()
        producer.join()
    batches.shutdown()
    assert sent == list(range(len(sent))) and batches.dropped == 0


def test_no_line_is_lost_or_reordered_under_load_from_many_threads() -> None:
    """Access lines (values) and records from four threads at once, written in small batches: every line at
    close, each thread's in its order."""
    stream = io.StringIO()
    handler = BufferedHandler(stream, TextFormatter(), delay_s=0.005)
    values = ("openai", "POST", "/v1/chat/completions", "m", 200, 1.0, 0.0, "p", "k", 1, "", "", 1, 1, 0.0, "ok", "")

    def log(t: int) -> None:
        for i in range(3000):
            if i % 3:
                handler.put_access((time.time(), (*values[:16], f"{t}-{i}")))
            else:
                out = logging.LogRecord("pooltui.proxy", logging.INFO, __file__, 1, f"op {t}-{i}", None, None)
                handler.handle(out)

    threads = [threading.Thread(target=log, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handler.close()
    seen: dict[int, list[int]] = {t: [] for t in range(4)}
    for line in stream.getvalue().splitlines():
        t, i = re.search(r"(?:trace_id=|op )(\d)-(\d+)$", line).groups()  # type: ignore[union-attr]
        seen[int(t)].append(int(i))
    assert seen == {t: list(range(3000)) for t in range(4)}


def test_through_the_clis_scrubbing_stderr_the_lines_are_the_same_and_scrubbed_once() -> None:
    """``pooltui proxy`` logs to the CLI's stderr, which masks secrets itself: the handler writes past that wrapper
    (its own pass per batch is the one), and the bytes are those it writes to a plain stream."""
    plain, under = io.StringIO(), io.StringIO()
    records = [record(i) for i in range(5)]
    for stream in (plain, ScrubbedStream(under)):
        handler = BufferedHandler(stream, TextFormatter(), delay_s=60)
        for one in records:
            handler.handle(one)
        handler.close()
    assert under.getvalue() == plain.getvalue() and len(plain.getvalue().splitlines()) == 5
    assert "a" * 40 not in under.getvalue() and "sk-\u2026aaaa" in under.getvalue()


def test_first_lines_from_many_threads_at_once_start_one_writer() -> None:
    """Threads logging their first lines at the same moment: one writing thread is started, not one each, so a
    flush (and the close at exit) writes every one of those lines (an orphaned writer's lines waited for its
    delay, a minute here, and were lost at exit)."""
    for _ in range(30):
        stream = io.StringIO()
        handler = BufferedHandler(stream, TextFormatter(), delay_s=60)
        start = threading.Barrier(8)

        def first(i: int, handler: BufferedHandler = handler, start: threading.Barrier = start) -> None:
            start.wait()
            handler.handle(record(i))

        threads = [threading.Thread(target=first, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        handler.flush()
        assert len(stream.getvalue().splitlines()) == 8
        handler.close()
