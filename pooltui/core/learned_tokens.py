"""A key's token budget learnt from a 429 that says tokens (issue 27): held like a declared ``tpm``.

A 429 that says a token budget per minute was spent (``Classification.tokens``) teaches nothing of the request
count (core/learned.py) but says the key has a token budget. Its size is the one the body states when it does:
OpenAI and Groq "Rate limit reached ... on tokens per min (TPM): Limit 30000, Used 29937, Requested 385",
Anthropic "... rate limit of 30,000 input tokens per minute" (``itpm``; tests/corpus/). Else it is fitted from
the tokens the key's accepted answers used within the minute before the 429 (:class:`TokenLog`; what the window
held when it refused: at most the true budget). The pool then holds the key's picks by their estimated tokens in
a window of that size, as for a declared one (core/declared.py), and fills it with those answers' tokens at their
times (the provider's window holds them too). Pure: times are passed in.
"""

from __future__ import annotations

import re
from collections import deque

from pooltui.core.windows import MINUTE_S

_STATED = (  # (window name, pattern whose group 1 is the limit)
    ("tpm", re.compile(r"on tokens per min(?:ute)? \(tpm\):\s*limit\s+([\d,]{1,16})", re.IGNORECASE)),
    ("itpm", re.compile(r"on input tokens per min(?:ute)? \((?:i?tpm)\):\s*limit\s+([\d,]{1,16})", re.IGNORECASE)),
    ("itpm", re.compile(r"rate limit\b[^.]{0,160}? of ([\d,]{1,16}) input tokens per minute", re.IGNORECASE)),
    ("otpm", re.compile(r"rate limit\b[^.]{0,160}? of ([\d,]{1,16}) output tokens per minute", re.IGNORECASE)),
)
MAX_TOKENS_LIMIT = 10**10  # a stated budget larger than this is not one
MAX_LOGGED = 4096  # answers a key's log keeps (a minute's worth at most)


def stated_budget(message: str) -> tuple[str, int] | None:
    """(window name: ``tpm``, ``itpm`` or ``otpm``, limit) a 429's message states, else None."""
    for name, pattern in _STATED:
        found = pattern.search(message)
        if found is not None:
            digits = found.group(1).replace(",", "")
            if digits.isdigit() and 1 <= int(digits) <= MAX_TOKENS_LIMIT:
                return name, int(digits)
    return None


def spent_window(message: str) -> str:
    """The window a 429 that says tokens without a limit speaks of: input tokens (Anthropic's usual binding
    limit) or all tokens."""
    lowered = message.lower()
    return "itpm" if "input tokens" in lowered else "otpm" if "output tokens" in lowered else "tpm"


class TokenLog:
    """The tokens a key's accepted answers used in the last minute: (time, input, output), oldest first."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        #: the oldest leave on their own past MAX_LOGGED (the deque's maxlen), and by time when read
        self.entries: deque[tuple[float, int, int]] = deque(maxlen=MAX_LOGGED)

    def add(self, at: float, tokens_in: int, tokens_out: int) -> None:
        """An answer at ``at`` used these tokens (the pool appends to ``entries`` itself: its answers' hot path)."""
        self.entries.append((at, tokens_in, tokens_out))

    def _prune(self) -> None:
        """Those more than a minute older than the latest leave (as if each answer had pruned as it came)."""
        entries = self.entries
        if entries:
            edge = entries[-1][0] - MINUTE_S
            while entries[0][0] <= edge:
                entries.popleft()

    def within(self, now: float, name: str) -> list[tuple[float, int]]:
        """(time, tokens counted by the window ``name``) of each answer within the minute before ``now``."""
        self._prune()
        return [(at, units) for at, tokens_in, tokens_out in self.entries if now - MINUTE_S < at <= now
                and (units := _counted(name, tokens_in, tokens_out))]

    def fitted(self, now: float, name: str) -> int:
        """The budget the window ``name`` held when the 429 came: the tokens counted in the minute before it."""
        return sum(units for _, units in self.within(now, name))


def _counted(name: str, tokens_in: int, tokens_out: int) -> int:
    return tokens_in if name == "itpm" else tokens_out if name == "otpm" else tokens_in + tokens_out
