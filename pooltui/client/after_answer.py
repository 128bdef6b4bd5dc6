"""Work a caller's answer need not wait for, done once it has been written.

A server that writes each request's answer itself (the proxy) gives the request's context a list
(:func:`answer_first`); while it is set, the pool client puts a success's accounting there (its usage read from the
body, the key's report, the usage, outcome and request listeners; a stream's opening records and, at its end, its
closing accounting) and the proxy's observer its access line and spans, instead of doing them before the answer
leaves. The server runs the list (:func:`settle_after`) as soon as the answer (a stream's first chunk, then its end)
is written, before anything else runs on its event loop: no other request can see the pool between the two, so the
order of everything it observes is kept, and the caller has its answer that much sooner. Without the list (the
monitor, the lab, the CLI) the client does the same work at once, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar

__all__ = ["AFTER_ANSWER", "answer_first", "settle_after"]

#: the current request's work to do once its answer is written; None: do it at once
AFTER_ANSWER: ContextVar[list[Callable[[], object]] | None] = ContextVar("pooltui_after_answer", default=None)


def answer_first() -> list[Callable[[], object]]:
    """Start deferring the current request's accounting (in its own task's context); returns its list."""
    after: list[Callable[[], object]] = []
    AFTER_ANSWER.set(after)
    return after


def settle_after(after: list[Callable[[], object]], log: logging.Logger) -> None:
    """Run what was deferred, in order (work deferred meanwhile runs too); one that fails goes to ``log`` with its
    traceback and the rest still run: the answer has already gone."""
    i = 0
    while i < len(after):
        try:
            after[i]()
        except Exception:
            log.exception("accounting after an answer failed")
        i += 1
    after.clear()
