"""An exception as one line a person reads."""

from __future__ import annotations


def no_keys(provider: str) -> str:
    """Why a keyed provider with no keys refuses to send (a request without credentials would only be a 401)."""
    return f"provider {provider!r} has no keys: add one with `pooltui auth add {provider} --pool LABEL`"


def message_of(exc: BaseException) -> str:
    """``str(exc)``, except that a KeyError's message is not wrapped in quotes."""
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc)
