"""Incremental server-sent-events scanning: enough to find the first real data event and usage."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from pooltui.core.usage import Usage, usage_of

# a usage object, not `"usage":null` (which OpenAI sends in every chunk when usage is asked for)
_USAGE = re.compile(rb'"usage"\s*:\s*\{')


def _quiet_end(buf: bytes) -> int:
    """Where the whole events at the start of ``buf`` that say nothing a scanner acts on once data flows end (after
    their last blank line): before the first usage object (OpenAI's ``"usage":null`` in every chunk is none), error
    or end of stream in ``buf``. 0 when no such event ends in ``buf``. (A look at a chunk costs about its length,
    each: ``find`` costs less per call than ``in`` on bytes, and an ending blank line is found at once.)"""
    find = buf.find
    stop = len(buf)
    at = find(b'"usage"')
    while at >= 0 and buf.startswith(b'"usage":null', at):
        at = find(b'"usage"', at + 12)
    if at >= 0:
        stop = at
    for mark in (b"error", b"[DONE]", b"message_stop"):
        at = find(mark, 0, stop)
        if at >= 0:
            stop = at
    if stop == len(buf) and (buf.endswith(b"\n\n") or buf.endswith(b"\n\r\n")):
        return stop
    lf, crlf = buf.rfind(b"\n\n", 0, stop), buf.rfind(b"\n\r\n", 0, stop)
    return max(lf + 2 if lf >= 0 else 0, crlf + 3 if crlf >= 0 else 0)


#: the longest single SSE line held by default (a line is held whole until its newline)
DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024


class SSELineTooLongError(ValueError):
    """An upstream sent one SSE line longer than the scanner holds."""


class SSEScanner:
    """Feed raw bytes; learn when the first real data event arrived, errors, and token usage.

    A line is held until its newline, at most ``max_line`` bytes (``SSELineTooLongError`` past it); the
    pieces of a long line are kept apart and joined once, so a line arriving in many chunks costs its size.
    Once data flows, whole events that say nothing the scanner acts on (no usage object, no error, no end) are
    passed over in a few looks at the chunk rather than line by line, up to the first event that does.
    ``feed(chunk, until_data=True)`` stops at the first data event and keeps the chunk's later lines for the next
    ``feed`` or ``catch_up``: a stream's first event goes on to its caller before the rest of what came with it
    is read."""

    __slots__ = ("_buf", "_data", "_data_bytes", "_event", "_held", "_later", "_pieces", "done", "error", "max_line",
                 "saw_data", "tokens_in", "tokens_out", "usage")

    def __init__(self, max_line: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.max_line = max_line
        self._buf = b""
        self._pieces: list[bytes] = []  # a line's earlier chunks while it has no newline yet
        self._held = 0
        self._later = b""  # complete lines not read yet (``until_data`` stopped before them)
        self._data_bytes = 0  # the data of the event being read
        self._event = ""
        self._data: list[bytes] = []
        self.saw_data = False
        self.error: Any = None
        self.tokens_in = 0
        self.tokens_out = 0
        self.usage = Usage()  # everything the stream's events reported, cache fields included
        self.done = False

    def feed(self, chunk: bytes, until_data: bool = False) -> None:
        """Scan ``chunk``; with ``until_data``, only up to the end of the first data event (see the class)."""
        if self._later:
            self.catch_up()
        if b"\n" not in chunk:  # (part of) one long line: kept aside, not copied again per chunk
            self._held += len(chunk)
            if len(self._buf) + self._held > self.max_line:
                raise SSELineTooLongError(f"the upstream sent an SSE line longer than {self.max_line / 2**20:g} MiB")
            self._pieces.append(chunk)
            return
        if self._pieces:
            chunk = b"".join(self._pieces) + chunk
            self._pieces, self._held = [], 0
        self._scan(self._buf + chunk if self._buf else chunk, until_data)

    def catch_up(self) -> None:
        """Read the lines a ``feed(..., until_data=True)`` left for later."""
        later, self._later = self._later, b""
        if later:
            self._scan(later + self._buf, False)

    def _scan(self, buf: bytes, until_data: bool) -> None:
        """Read the complete lines of ``buf``; hold the rest (a line without its newline yet)."""
        if self.saw_data and not self._data and not self._event and len(buf) <= self.max_line:
            end = _quiet_end(buf)  # no event is half read: whole events with nothing to act on need no look
            if end:
                if end == len(buf):
                    self._buf = b""
                    return
                buf = buf[end:]
        *lines, self._buf = buf.split(b"\n")
        if len(self._buf) > self.max_line:
            raise SSELineTooLongError(f"the upstream sent an SSE line longer than {self.max_line / 2**20:g} MiB")
        if not until_data or self.saw_data:
            self._read(lines)
            return
        for n, line in enumerate(lines):  # a line at a time up to the first data event (a stream's first lines)
            self._read((line,))
            if self.saw_data:
                if n + 1 < len(lines):
                    self._later = b"\n".join(lines[n + 1:]) + b"\n"
                return

    def _read(self, lines: Iterable[bytes]) -> None:
        for line in lines:
            line = line.rstrip(b"\r")
            if not line:
                self._dispatch()
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value[:1] == b" " else value)  # exactly one space, as the spec says
                self._data_bytes += len(value)
                if self._data_bytes > self.max_line:  # endless data lines with no blank line: one endless event
                    raise SSELineTooLongError(
                        f"the upstream sent an SSE event longer than {self.max_line / 2**20:g} MiB")
            elif line.startswith(b"event:"):
                self._event = line[6:].strip().decode("utf-8", "replace")
            # comments (":") and other fields are keep-alives: they are not data

    def _dispatch(self) -> None:
        event, data = self._event, b"\n".join(self._data)
        self._event, self._data, self._data_bytes = "", [], 0
        if not data and not event:
            return
        if data == b"[DONE]":
            self.done = True
            return
        if event == "ping" or not data:
            return
        parsed: Any = None
        if event == "error" or b'"error"' in data or _USAGE.search(data) is not None:
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = None
        if isinstance(parsed, dict) and (event == "error" or "error" in parsed):
            if not self.saw_data:
                self.error = parsed
                return
            self.error = parsed
        if isinstance(parsed, dict):
            self.usage = self.usage.merged(usage_of(parsed))
            self.tokens_in, self.tokens_out = self.usage.input, self.usage.output
        if event == "message_stop":
            self.done = True
        self.saw_data = True


def stream_error_status(error: Any) -> int:
    """An HTTP status for an error that arrived as an SSE event (so it can be classified)."""
    err = error.get("error") if isinstance(error, dict) else None
    etype = err.get("type") if isinstance(err, dict) else None
    code = err.get("code") if isinstance(err, dict) else None
    mapping = {
        "overloaded_error": 529,
        "rate_limit_error": 429,
        "authentication_error": 401,
        "permission_error": 403,
        "api_error": 500,
        "server_error": 500,
        "insufficient_quota": 429,
        "rate_limit_exceeded": 429,
        "invalid_request_error": 400,
        "not_found_error": 404,
        "request_too_large": 413,
        "context_length_exceeded": 400,
    }
    if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599:
        return code
    if isinstance(code, str) and code.isdigit() and 100 <= int(code) <= 599:
        return int(code)
    return mapping.get(str(etype), mapping.get(str(code), 500))
