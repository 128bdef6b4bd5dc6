"""Key health states and where a deadline came from."""

from __future__ import annotations

from enum import StrEnum


class KeyState(StrEnum):
    """Health of one key in a pool."""

    OK = "ok"
    COOLING = "cooling"
    EXHAUSTED = "exhausted"
    INVALID = "invalid"
    FORBIDDEN = "forbidden"
    DISABLED = "disabled"


class DeadlineSource(StrEnum):
    """Where a cooldown or parking deadline came from."""

    RETRY_AFTER = "retry-after"
    RESET_HEADER = "reset-header"
    BODY = "body"
    DEFAULT = "default"
    KNOWN_RESET = "known-reset"
    MANUAL = "manual"
    BUDGET = "budget"
    LEARNED = "learned"  # the key's limit as learnt from its 429s (no header states it): paced, not rejected
    DECLARED = "declared"  # a limit the user declared for the key is reached: paced until its window has room
    STATED = "stated"  # the token budget the provider's headers stated is spoken for: paced until its reset


class Outcome(StrEnum):
    """What one response means for the key that received it."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"
    QUOTA = "quota"
    INVALID = "invalid"
    FORBIDDEN = "forbidden"
    TRANSIENT = "transient"
    REQUEST_ERROR = "request_error"


#: Outcomes after which the client moves to another key at once, spending no retry budget.
ROTATE_NOW = frozenset({Outcome.RATE_LIMITED, Outcome.QUOTA, Outcome.INVALID, Outcome.FORBIDDEN})
