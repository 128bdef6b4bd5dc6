"""An exception as one line a person reads."""

from __future__ import annotations


def message_of(exc: BaseException) -> str:
    """``str(exc)``, except that a KeyError's message is not wrapped in quotes."""
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc)
