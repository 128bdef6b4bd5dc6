"""The proxy's loggers configured for a test, and put back as they were after it."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

from pooltui.proxy.logs import ACCESS, OPERATIONS, configure


def drop_log_handlers() -> None:
    """The proxy's own handlers closed and taken off its loggers, their level and filters reset."""
    for name in (ACCESS, OPERATIONS):
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if h.get_name() == "pooltui"]:
            logger.removeHandler(handler)
            handler.close()
        logger.setLevel(logging.NOTSET)
        logger.filters.clear()


def configured_log(fmt: str) -> Iterator[io.StringIO]:
    """For a fixture: the proxy's log lines in ``fmt`` ("text" or "json") at info, into the stream it yields."""
    stream = io.StringIO()
    configure(fmt, "info", stream)
    yield stream
    drop_log_handlers()
