"""The proxy's log lines on stderr, through the standard ``logging``: one access line per caller request
(logger ``pooltui.access``) and operational lines (``pooltui.proxy``: config, shared store, breakers, key states),
human-readable or JSON (one object per line, made by the stdlib's ``json``: no dependency for ~30 lines).
Every line passes through the secret scrubber on its way out."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any

from pooltui.core.masking import scrub

ACCESS = "pooltui.access"
OPERATIONS = "pooltui.proxy"
#: the access line's fields, in the order the text form writes them
ACCESS_FIELDS = ("api", "method", "path", "model", "status", "latency_ms", "queue_wait_ms", "provider", "key",
                 "attempts", "fallback", "translated", "tokens_in", "tokens_out", "cost", "outcome", "trace_id")

IN_MESSAGE = ("api", "method", "path", "status")


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...fields}``: the record's ``fields`` (a dict) merged in."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"time": _utc(record.created), "level": record.levelname.lower(),
                               "logger": record.name, "message": record.getMessage()}
        out.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return scrub(json.dumps(out, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """``2026-12-06T14:35:33.120Z info  message key=value ...`` (empty fields left out)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None) or {}
        said = IN_MESSAGE if record.name == ACCESS else ()  # the access line's message says these already
        extra = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None and v != "" and k not in said)
        line = f"{_utc(record.created)} {record.levelname.lower():5} {record.getMessage()}"
        if extra:
            line += f" {extra}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return scrub(line)


def configure(fmt: str = "text", level: str = "info", stream: IO[str] | None = None) -> logging.Logger:
    """One stderr handler for the proxy's loggers (replacing an earlier one of ours); returns the operational
    logger."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.set_name("pooltui")
    for name in (ACCESS, OPERATIONS):
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == "pooltui"]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(level.upper())
    return logging.getLogger(OPERATIONS)

logging.getLogger("pooltui").addHandler(logging.NullHandler())  # nothing printed unless configured (the monitor)
