"""The proxy's log lines on stderr, through the standard ``logging``: one access line per caller request
(logger ``pooltui.access``) and operational lines (``pooltui.proxy``: config, shared store, breakers, key states),
human-readable or JSON (one object per line, made by the stdlib's ``json``: no dependency for ~30 lines),
formatted and written in batches by a thread off the request's path. Every line passes through the secret scrubber
on its way out. An access line goes to our handler as its plain values (``AccessLine``), with no ``LogRecord``,
when that handler alone gets the access logger's lines (``direct_handler``): its formatter writes it straight from
them, the same bytes as from a record."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import IO, Any

from pooltui.core.masking import scrub
from pooltui.proxy.batching import BatchThread

ACCESS = "pooltui.access"
OPERATIONS = "pooltui.proxy"
#: the access line's fields, in the order the text form writes them
ACCESS_FIELDS = ("api", "method", "path", "model", "status", "latency_ms", "queue_wait_ms", "provider", "key",
                 "attempts", "fallback", "translated", "tokens_in", "tokens_out", "cost", "outcome", "trace_id")

IN_MESSAGE = ("api", "method", "path", "status")
#: an access line as the observer queues it: its time (seconds) and its fields' values in ``ACCESS_FIELDS`` order
AccessLine = tuple[float, tuple[Any, ...]]
FLUSH_EVERY_S = 0.1  # queued lines are written at least this often
MAX_WAITING = 100_000  # lines queued at most (past that they are dropped, and counted in a last line)


_second: tuple[int, str] = (-1, "")
_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1001))  # a line's milliseconds and zone, made once


def _utc(ts: float) -> str:
    global _second
    whole = int(ts)
    if whole != _second[0]:  # a busy proxy writes many lines per second: the date is formatted once for them
        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    # ts - whole is ts % 1 for a time since 1970 (exact both), without the float modulo
    return _second[1] + _MILLIS[int((ts - whole if ts >= 0 else ts % 1) * 1000)]


class LineFormatter(logging.Formatter):
    """A formatter whose ``render`` gives the line before the scrubber (the buffered handler scrubs its lines
    in one pass per batch); ``format`` is the scrubbed line."""

    def render(self, record: logging.LogRecord) -> str:
        raise NotImplementedError

    def render_access(self, created: float, values: tuple[Any, ...]) -> str:
        """The access line of ``values`` (``ACCESS_FIELDS`` order) as ``render`` gives it from its record."""
        raise NotImplementedError

    def format(self, record: logging.LogRecord) -> str:
        return scrub(self.render(record))


_JSON = json.JSONEncoder(default=str, ensure_ascii=False)  # made once: json.dumps with options makes one per call
# the C encoder that JSONEncoder.encode makes on each call, made once (a line's fields are flat: no cycle check)
_C_ENCODER = c_make_encoder(None, str, encode_basestring, None, ": ", ", ", False, False, True) \
    if c_make_encoder is not None else None


def _encoded(out: dict[str, Any]) -> str:
    return "".join(_C_ENCODER(out, 0)) if _C_ENCODER is not None else _JSON.encode(out)


class JsonFormatter(LineFormatter):
    """``{"time", "level", "logger", "message", ...fields}``: the record's ``fields`` (a dict) merged in."""

    def render(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"time": _utc(record.created), "level": record.levelname.lower(),
                               "logger": record.name, "message": record.getMessage()}
        out.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return _encoded(out)

    def render_access(self, created: float, values: tuple[Any, ...]) -> str:
        (api, method, path, model, status, latency_ms, queue_wait_ms, provider, key, attempts, fallback, translated,
         tokens_in, tokens_out, cost, outcome, trace_id) = values
        if latency_ms - latency_ms or queue_wait_ms - queue_wait_ms or cost - cost:  # inf or nan: json's words
            return _encoded({"time": _utc(created), "level": "info", "logger": ACCESS,
                             "message": f"{api} {method} {path} {status}",
                             **dict(zip(ACCESS_FIELDS, values, strict=True))})
        s = encode_basestring
        return (f'{{"time": "{_utc(created)}", "level": "info", "logger": "{ACCESS}", '
                f'"message": {s(f"{api} {method} {path} {status}")}, "api": {s(api)}, "method": {s(method)}, '
                f'"path": {s(path)}, "model": {s(model)}, "status": {status!r}, "latency_ms": {latency_ms!r}, '
                f'"queue_wait_ms": {queue_wait_ms!r}, "provider": {s(provider)}, "key": {s(key)}, '
                f'"attempts": {attempts!r}, "fallback": {s(fallback)}, "translated": {s(translated)}, '
                f'"tokens_in": {tokens_in!r}, "tokens_out": {tokens_out!r}, "cost": {cost!r}, '
                f'"outcome": {s(outcome)}, "trace_id": {s(trace_id)}}}')


class TextFormatter(LineFormatter):
    """``2026-12-06T14:35:33.120Z info  message key=value ...`` (empty fields left out)."""

    def render(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None) or {}
        said = IN_MESSAGE if record.name == ACCESS else ()  # the access line's message says these already
        extra = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None and v != "" and k not in said)
        line = f"{_utc(record.created)} {record.levelname.lower():5} {record.getMessage()}"
        if extra:
            line += f" {extra}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line

    def render_access(self, created: float, values: tuple[Any, ...]) -> str:
        (api, method, path, model, status, latency_ms, queue_wait_ms, provider, key, attempts, fallback, translated,
         tokens_in, tokens_out, cost, outcome, trace_id) = values
        # the string fields are left out when empty; the numbers never are (0 is written)
        return (f"{_utc(created)} info  {api} {method} {path} {status}{' model=' + model if model else ''}"
                f" latency_ms={latency_ms} queue_wait_ms={queue_wait_ms}{' provider=' + provider if provider else ''}"
                f"{' key=' + key if key else ''} attempts={attempts}{' fallback=' + fallback if fallback else ''}"
                f"{' translated=' + translated if translated else ''} tokens_in={tokens_in} tokens_out={tokens_out}"
                f" cost={cost}{' outcome=' + outcome if outcome else ''}{' trace_id=' + trace_id if trace_id else ''}")


class BufferedHandler(logging.Handler):
    """Log lines written in batches by a thread: the request's path only queues the record (no lock, no
    formatting, no write that a slow terminal or disk could hold up). Lines go out within ``delay_s``, at
    ``flush()`` and at ``close()`` (logging closes its handlers at exit: no line is lost at a clean shutdown)."""

    def __init__(self, stream: IO[str], formatter: LineFormatter, *, delay_s: float = FLUSH_EVERY_S) -> None:
        super().__init__()
        # past the CLI's scrubbing wrapper of stderr (``cli.ScrubbedStream``): every batch is scrubbed in ``_out``,
        # once; the wrapper's second pass over the same text found nothing more
        self.stream: IO[str] = getattr(stream, "unscrubbed", stream)
        self.line_formatter = formatter
        self.setFormatter(formatter)
        self.delay_s = delay_s
        self._lines: BatchThread[logging.LogRecord | AccessLine] | None = None
        self._starting = threading.Lock()

    def _queue(self) -> BatchThread[logging.LogRecord | AccessLine]:
        """The writing thread, started on the first line (again after a ``close``: ``logging.config.dictConfig``,
        which uvicorn calls, closes every handler, and lines logged after that must still go out)."""
        lines = self._lines
        if lines is None:
            with self._starting:  # threads' first lines at once start one (another's would be orphaned)
                lines = self._lines
                if lines is None:
                    lines = self._lines = BatchThread(self._write, delay_s=self.delay_s, max_batch=1024,
                                                      max_queue=MAX_WAITING, name="pooltui-log")
        return lines

    def handle(self, record: logging.LogRecord) -> bool:
        """Queue ``record`` if the filters let it through (without the handler's lock: the queue needs none)."""
        if not self.filter(record):
            return False
        self._queue().put(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self._queue().put(record)

    def put_access(self, line: AccessLine) -> None:
        """Queue an access line as its values (``direct_handler`` says when: no record needed)."""
        self._queue().put(line)

    def flush(self) -> None:
        """Write every line queued so far (waits up to 10 s)."""
        if self._lines is not None:
            self._lines.flush(10.0)

    def close(self) -> None:
        """Write what is queued, then stop the thread (a later line starts it again)."""
        lines, self._lines = self._lines, None
        if lines is not None:
            lines.shutdown()
            if lines.dropped:
                self._out(f"{_utc(time.time())} error {lines.dropped} log lines dropped: the log's destination "
                          "could not keep up")
        super().close()

    def _write(self, items: list[logging.LogRecord | AccessLine]) -> None:
        lines = []
        access, render = self.line_formatter.render_access, self.line_formatter.render
        for item in items:
            try:
                lines.append(access(*item) if isinstance(item, tuple) else render(item))
            except Exception:
                self.handleError(item if isinstance(item, logging.LogRecord) else logging.makeLogRecord(
                    {"name": ACCESS, "msg": "an access line", "levelno": logging.INFO, "levelname": "INFO"}))
        if lines:
            self._out("\n".join(lines))

    def _out(self, text: str) -> None:
        try:
            self.stream.write(scrub(text) + "\n")  # one scrubber pass for the batch
            self.stream.flush()
        except (OSError, ValueError):  # the stream closed or full: nothing more to do with these lines
            pass


def direct_handler(logger: logging.Logger) -> BufferedHandler | None:
    """Our buffered handler when it alone gets ``logger``'s info lines, with no filter on the way (as ``configure``
    leaves the access logger): a line for it needs no ``LogRecord``. None when a handler of someone else's (pytest's
    caplog, a syslog handler) or a filter is there: they get a whole record."""
    handlers = logger.handlers
    if len(handlers) != 1 or logger.propagate or logger.filters or logger.disabled:
        return None
    handler = handlers[0]
    if type(handler) is not BufferedHandler or handler.filters or handler.level > logging.INFO:
        return None
    return handler


def configure(fmt: str = "text", level: str = "info", stream: IO[str] | None = None) -> logging.Logger:
    """One buffered handler on stderr (or ``stream``) for the proxy's loggers, replacing (and closing) an earlier
    one of ours; returns the operational logger."""
    handler = BufferedHandler(stream or sys.stderr, JsonFormatter() if fmt == "json" else TextFormatter())
    handler.set_name("pooltui")
    old: set[logging.Handler] = set()
    for name in (ACCESS, OPERATIONS):
        logger = logging.getLogger(name)
        for h in [h for h in logger.handlers if h.get_name() == "pooltui"]:
            logger.removeHandler(h)
            old.add(h)
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(level.upper())
    for h in old:
        h.close()
    return logging.getLogger(OPERATIONS)


def flush() -> None:
    """Write the proxy's log lines queued so far (its handlers are buffered)."""
    for name in (ACCESS, OPERATIONS):
        for handler in logging.getLogger(name).handlers:
            handler.flush()

logging.getLogger("pooltui").addHandler(logging.NullHandler())  # nothing printed unless configured (the monitor)
