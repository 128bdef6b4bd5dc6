"""Error bodies whose status lies about them: one table, read before the status is.

Each row is a signature seen on real responses (tests/corpus/): a status it arrives with, the codes or words
that identify it, and what it really means for the key. From PROVIDERS.md's "real bodies a status classifier
misreads": a dead key on a 400/412, billing on a 429, a request that can never succeed on a 429, an upstream's
shared overload on a 429, a rate limit on a 400, and usage walls whose wait is written only in words.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pooltui.core.health import Outcome

_LIMIT_NUMBERS = re.compile(r"limit\s+(\d+),\s*(?:used\s+(\d+),\s*)?requested\s+~?(\d+)", re.I)


def _never_fits(text: str) -> bool:
    """"Limit 7000, Used 0, Requested ~12903": one request larger than the whole limit can never pass."""
    match = _LIMIT_NUMBERS.search(text)
    return match is not None and int(match.group(3)) > int(match.group(1))


@dataclass(frozen=True, slots=True)
class Signature:
    """One misread body: where it arrives, how to know it, and what it means."""

    name: str  # for the reason and the event: "organization disabled"
    outcome: Outcome
    statuses: frozenset[int]
    codes: frozenset[str] = frozenset()  # error code, type or detail reason, lowercased
    phrases: tuple[str, ...] = ()  # words of the message (or OpenRouter's metadata.raw), lowercased
    dialects: frozenset[str] | None = None  # None: any dialect
    reset: str | None = None  # "month": the 1st, 00:00 UTC; "hour": one hour; "wall": a usage wall's default
    check: Callable[[str], bool] | None = None  # a last test on the whole text

    def matches(self, dialect: str, codes: set[str], text: str) -> bool:
        """Whether a response of one of its statuses carries it."""
        if self.dialects is not None and dialect not in self.dialects:
            return False
        if self.codes.isdisjoint(codes):
            for phrase in self.phrases:
                if phrase in text:
                    break
            else:
                return False
        return self.check is None or self.check(text)


def _sig(name: str, outcome: Outcome, statuses: tuple[int, ...], codes: tuple[str, ...] = (),
         phrases: tuple[str, ...] = (), **kw: Any) -> Signature:
    return Signature(name, outcome, frozenset(statuses), frozenset(codes), phrases, **kw)


#: In order: the first matching row decides. Statuses 401/403 keep their own meaning unless a row names them.
SIGNATURES: tuple[Signature, ...] = (
    # a dead key on a status other than 401/403: the key's, not the caller's
    _sig("organization disabled", Outcome.FORBIDDEN, (400,), phrases=("organization has been disabled",)),
    _sig("organization restricted", Outcome.FORBIDDEN, (400,), ("organization_restricted",),
         ("organization has been restricted",)),
    _sig("wrong key", Outcome.INVALID, (400,), phrases=("incorrect api key provided",)),
    _sig("account suspended", Outcome.QUOTA, (400, 412), phrases=("is suspended",)),
    # billing or quota sent as a 429 (or a 400/403): park, never cool
    _sig("billing not active", Outcome.QUOTA, (400, 403, 429), ("billing_not_active",),
         ("your account is not active",)),
    _sig("credits used up", Outcome.QUOTA, (403, 429), phrases=("used all available credits",
                                                                "doesn't have any credits")),
    _sig("account in arrears", Outcome.QUOTA, (400, 403, 429), ("1113", "arrearage"),
         ("insufficient balance or no resource package",)),
    _sig("credit balance insufficient", Outcome.QUOTA, (429,), ("insufficient_g1_credits_balance",)),
    _sig("monthly trial cap", Outcome.QUOTA, (429,), phrases=("api calls / month",), reset="month"),
    _sig("daily free allowance", Outcome.QUOTA, (429,), phrases=("free-models-per-day",)),
    _sig("hourly usage wall", Outcome.QUOTA, (429,), phrases=("hourly usage limit",), reset="hour"),
    # a request that can never succeed, sent as a 429: the caller's to fix, no key cooled
    _sig("request too large", Outcome.REQUEST_ERROR, (413, 429), phrases=("request too large for",)),
    _sig("long context needs extra usage", Outcome.REQUEST_ERROR, (429,),
         phrases=("extra usage is required for long context",)),
    _sig("request larger than the limit", Outcome.REQUEST_ERROR, (429,), phrases=("requested",),
         check=_never_fits),
    # an upstream's shared overload: transient, not this key's limit, never learnt
    _sig("upstream rate-limited", Outcome.TRANSIENT, (429,), phrases=("rate-limited upstream",),
         dialects=frozenset({"openrouter"})),
    _sig("model overloaded", Outcome.TRANSIENT, (429,), ("1305",), ("访问量过大",)),
    _sig("backend at capacity", Outcome.TRANSIENT, (429,), phrases=("service tier capacity exceeded",)),
    # a rate limit on a 400
    _sig("rate rising too fast", Outcome.RATE_LIMITED, (400,), phrases=("rate increased too quickly",)),
)

_BY_STATUS: dict[int, tuple[Signature, ...]] = {
    status: tuple(sig for sig in SIGNATURES if status in sig.statuses)
    for status in sorted({s for sig in SIGNATURES for s in sig.statuses})}


def _codes(body: Any, err: dict) -> set[str]:
    out = set()
    for value in (err.get("code"), err.get("type"), err.get("status")):
        if isinstance(value, str | int) and not isinstance(value, bool):
            out.add(str(value).lower())
    details = err.get("details")
    if isinstance(details, list):
        out.update(str(d.get("reason")).lower() for d in details if isinstance(d, dict) and d.get("reason"))
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        out.add(body["code"].lower())
    return out


def _text(body: Any, err: dict, message: str) -> str:
    parts = [message]
    meta = err.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("raw"), str):
        parts.append(meta["raw"][:2000])
    if isinstance(body, dict) and isinstance(body.get("message"), str) and body.get("message") != message:
        parts.append(body["message"][:2000])  # {"error": "Too Many Requests", "message": "..."}
    return " ".join(parts).lower()


def match(status: int, dialect: str, body: Any, err: dict, message: str) -> Signature | None:
    """The signature this error response carries, or None: then its status means what it says."""
    candidates = _BY_STATUS.get(status)
    if candidates is None:
        return None
    codes = _codes(body, err)
    text = _text(body, err, message)
    for sig in candidates:
        if sig.matches(dialect, codes, text):
            return sig
    return None
