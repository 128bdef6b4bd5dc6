"""Words for counts: ``1 key``, ``2 keys``; the one place the CLI and the monitor pluralise."""

from __future__ import annotations


def plural(n: int, word: str, many: str | None = None) -> str:
    """``n`` and ``word``, in the plural unless ``n`` is 1 (``many`` when the plural is not ``word + "s"``)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"
