"""The proxy's buffered log handler: lines queued off the request's path all reach the stream at a flush and at
close (logging closes handlers at exit), and a line logged after a close still goes out."""

from __future__ import annotations

import io
import logging

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
