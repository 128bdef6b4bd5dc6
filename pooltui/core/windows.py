"""Budgets in sliding windows: the limits a user declares per key (issue 27) and the seam for shared ones.

A :class:`Slots` is a budget of ``limit`` units (requests or tokens) in any sliding window of ``window_s``
seconds. The pool holds one per declared window of a key (``rpm``: requests per 60 s, ``rpd``: per 86,400 s,
``tpm``/``itpm``/``otpm``: tokens per 60 s) and takes from it as it picks; the answer settles what was held
(tokens corrected from the usage the provider reported; 0 when the request was never sent). The pool builds
its windows through a :data:`WindowFactory` so another implementation (one shared across processes) plugs in
per key without touching the pool: it is called with (provider, key, what, limit, window_s), where ``key``
is the key's label, or ``label@model`` for a window declared for one model, and ``what`` is one of
:data:`WHATS`.

:class:`SlidingWindow` is the local one: a deque of (time, units), oldest first, pruned as it is read
(amortised O(1) per take; takes within 1/:data:`BUCKETS` of the window of the last one share its entry, moved
to the latest of them: at most about that many entries, and units leave at most that much later than the
truth, never sooner). A request larger than the whole budget fits an empty window only (it goes alone:
the provider answers it). A settle that gives units back takes them off the oldest units still counted, and
one that adds units counts them from now: either way what stays leaves no sooner than the truth would (the
window never believes it has more room than it has), though an answer slower than the window may give
back units its request no longer held. Pure: the clock is passed in as ``now``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Literal, Protocol, runtime_checkable

MINUTE_S = 60.0
DAY_S = 86_400.0
BUCKETS = 1024  # a window keeps at most about this many entries (takes close together share one)
What = Literal["requests", "tokens", "input_tokens", "output_tokens"]
WHATS: tuple[What, ...] = ("requests", "tokens", "input_tokens", "output_tokens")
#: ``what`` of the window a key's learnt limit (requests, from its 429s) is paced by when windows are shared
LEARNED = "learned"


class Slots(Protocol):
    """A budget of `limit` units (requests or tokens) in any sliding window of `window_s` seconds."""

    limit: int
    window_s: float

    def room(self, now: float) -> int:
        """Units this process may still take now."""
        ...

    def take(self, now: float, n: int = 1) -> bool:
        """Hold ``n`` units (False, taking nothing, if there is no room)."""
        ...

    def settle(self, now: float, held: int, used: int) -> None:
        """The answer came: ``used`` replaces ``held`` (tokens corrected from usage; used=0: never sent)."""
        ...

    def opens_in(self, now: float, n: int = 1) -> float:
        """Seconds until ``n`` units fit (0.0 if they fit now)."""
        ...


@runtime_checkable
class FleetSlots(Slots, Protocol):
    """A window held across processes: what this process holds in it, and what the whole fleet does."""

    def used(self, now: float) -> int:
        """Units this process holds in the window now."""
        ...

    def fleet_used(self, now: float) -> int:
        """Units the whole fleet holds in the window (as last seen)."""
        ...


#: builds the window of one key: (provider, key label or "label@model", what, limit, window_s) -> Slots
WindowFactory = Callable[[str, str, str, int, float], Slots]


class SlidingWindow:
    """The local :class:`Slots`: units taken in the last ``window_s`` seconds, oldest first."""

    __slots__ = ("_bucket_s", "_entries", "_total", "limit", "window_s")

    def __init__(self, limit: int, window_s: float) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError(f"a window needs a limit >= 1 and a length > 0, not {limit} per {window_s} s")
        self.limit = limit
        self.window_s = window_s
        self._entries: deque[list[float]] = deque()  # [taken at, units], oldest first
        self._total = 0
        self._bucket_s = window_s / BUCKETS

    def __repr__(self) -> str:
        return f"SlidingWindow({self._total}/{self.limit} per {self.window_s:g} s)"

    def _prune(self, now: float) -> None:
        entries, edge = self._entries, now - self.window_s
        while entries and entries[0][0] <= edge:
            self._total -= int(entries.popleft()[1])

    def used(self, now: float) -> int:
        """Units counted in the window at ``now``."""
        self._prune(now)
        return self._total

    def room(self, now: float) -> int:
        entries = self._entries
        if entries and entries[0][0] <= now - self.window_s:
            self._prune(now)
        left = self.limit - self._total
        return left if left > 0 else 0

    def take(self, now: float, n: int = 1) -> bool:
        entries = self._entries
        if entries:
            if entries[0][0] <= now - self.window_s:
                self._prune(now)
                if not entries:
                    return self._take_first(now, n)
            total = self._total
            if n <= 0:
                return True
            if total + n > self.limit and total > 0:
                return False
            last = entries[-1]
            if now - last[0] < self._bucket_s:  # what _add does, inline: the pick's hot path
                if now > last[0]:
                    last[0] = now
                last[1] += n
            else:
                entries.append([now, n])
            self._total = total + n
            return True
        return self._take_first(now, n)

    def _take_first(self, now: float, n: int) -> bool:
        """A take into an empty window: it fits (a request larger than the whole budget goes alone)."""
        if n > 0:
            self._entries.append([now, n])
            self._total += n
        return True

    def _add(self, now: float, n: int) -> None:
        entries = self._entries
        if entries and now - (last := entries[-1])[0] < self._bucket_s:  # close to the last take: one entry,
            if now > last[0]:  # counted from the latest (it leaves no sooner than any of its units)
                last[0] = now
            last[1] += n
        else:
            entries.append([now, n])
        self._total += n

    def settle(self, now: float, held: int, used: int) -> None:
        entries = self._entries
        if entries and entries[0][0] <= now - self.window_s:
            self._prune(now)
        if used > held:
            self._add(now, used - held)
            return
        back = held - used
        while back > 0 and entries:
            first = entries[0]
            if back < first[1]:  # the oldest entry holds more than what comes back (the usual case)
                first[1] -= back
                self._total -= back
                return
            part = int(first[1])
            self._total -= part
            back -= part
            entries.popleft()

    def opens_in(self, now: float, n: int = 1) -> float:
        self._prune(now)
        over = self._total + n - self.limit
        if over <= 0 or self._total == 0:
            return 0.0
        freed = 0
        for at, units in self._entries:
            freed += int(units)
            if freed >= over or freed >= self._total:
                return max(0.0, at + self.window_s - now)
        return 0.0  # not reached: the entries hold the whole total


def _fits_pruned(w: SlidingWindow, now: float, n: int) -> bool:
    """Whether ``n`` more units fit ``w`` once its expired units are gone (its running count, which counts them,
    said it may be full)."""
    entries = w._entries
    if not entries or entries[0][0] > now - w.window_s:
        return False
    w._prune(now)
    return w._total + n <= w.limit or w._total == 0


_BIG = 1 << 62  # the credit of a kind of units no window of the key counts
_CLOSED = float("-inf")  # no run of takes is open


class LocalWindows:
    """The windows of one key (or key and model) when every one is of this process alone (the usual case):
    :meth:`take` holds one request and its tokens in all of them in one call (the pick's hot path).

    Takes that follow each other within the smallest bucket of the windows (a *run*, opened by a take written into
    every window) are not written into the windows one by one: each would only add its units to every window's
    last entry and move that entry's time to its own. They are summed (``pend_*``) and written at once
    (:meth:`flush`) before anything else reads or changes the windows (but an answer's tokens given back from
    entries the sums do not change: :meth:`settle_tokens`), which then hold exactly what the takes one by one
    would have left. A take joins the run while the summed units fit each kind's *credit*: the room each window
    had when the run opened (a lower bound: units only leave a window meanwhile)."""

    __slots__ = ("chain_s", "credit_in", "credit_out", "credit_requests", "credit_tokens", "inputs", "kinds", "last",
                 "outputs", "pend_in", "pend_out", "pend_requests", "requests", "token_kinds", "tokens", "tokens_only",
                 "untokened")

    def __init__(self, requests: tuple[SlidingWindow, ...], tokens: tuple[SlidingWindow, ...],
                 inputs: tuple[SlidingWindow, ...], outputs: tuple[SlidingWindow, ...]) -> None:
        self.requests, self.tokens, self.inputs, self.outputs = requests, tokens, inputs, outputs
        #: (window, what it counts: 0 requests, 1 all tokens, 2 input, 3 output) of each, requests first
        self.kinds = tuple((w, kind) for kind, ws in enumerate((requests, tokens, inputs, outputs)) for w in ws)
        self.token_kinds = tuple((w, kind) for w, kind in self.kinds if kind)  # the windows that count tokens
        self.tokens_only = tokens[0] if len(tokens) == 1 and not inputs and not outputs else None
        #: a take joins the run while it comes within this of the run's latest (the smallest bucket)
        self.chain_s = min(w._bucket_s for w, _ in self.kinds) if self.kinds else 0.0
        self.untokened = not (tokens or inputs or outputs)  # a take touches every window whatever its tokens
        self.last = _CLOSED  # the run's latest take (-inf: none is open)
        self.pend_requests = self.pend_in = self.pend_out = 0  # the run's takes not yet written into the windows
        self.credit_requests = self.credit_tokens = self.credit_in = self.credit_out = 0

    def take(self, now: float, tokens_in: int, tokens_out: int) -> bool:
        """What ``room`` then ``take`` on each window would do: take one request and its tokens from every window
        if each has room, else take nothing and return False."""
        if now - self.last < self.chain_s and ((tokens_in > 0 and tokens_out > 0) or self.untokened):
            n = self.pend_requests + 1
            t_in = self.pend_in + tokens_in
            t_out = self.pend_out + tokens_out
            if n <= self.credit_requests and t_in + t_out <= self.credit_tokens and t_in <= self.credit_in \
                    and t_out <= self.credit_out:
                self.pend_requests, self.pend_in, self.pend_out = n, t_in, t_out
                if now > self.last:
                    self.last = now
                return True
        self.flush()
        if not self._take_now(now, tokens_in, tokens_out):
            self.last = _CLOSED
            return False
        # a take written into every window opens a run: the next ones within chain_s add to their last entries
        self.last = now if (tokens_in > 0 and tokens_out > 0) or self.untokened else _CLOSED
        self._credit()
        return True

    def _credit(self) -> None:
        """Each kind's credit: the least room of its windows by their running counts (expired units included)."""
        self.credit_requests = min((w.limit - w._total for w in self.requests), default=_BIG)
        self.credit_tokens = min((w.limit - w._total for w in self.tokens), default=_BIG)
        self.credit_in = min((w.limit - w._total for w in self.inputs), default=_BIG)
        self.credit_out = min((w.limit - w._total for w in self.outputs), default=_BIG)

    def flush(self) -> None:
        """Write the run's summed takes into the windows (their last entries: each take of the run would have added
        to it), as the takes one by one would have."""
        n = self.pend_requests
        if not n:
            return
        t_in, t_out, at = self.pend_in, self.pend_out, self.last
        units = (n, t_in + t_out, t_in, t_out)
        for w, kind in self.kinds:
            last = w._entries[-1]
            if at > last[0]:
                last[0] = at
            u = units[kind]
            last[1] += u
            w._total += u
        self.pend_requests = self.pend_in = self.pend_out = 0  # (the credit is counted again before the run goes on)

    def close(self) -> None:
        """Flush and end the run: the windows are read or changed otherwise than by a take (the next take is written
        into them as it comes)."""
        self.flush()
        self.last = _CLOSED

    def request_fits(self) -> bool:
        """Whether one more request fits every request window by its running count (expired units still counted, the
        run's takes not yet written counted too): room the windows have at least, read without ending the run."""
        n = self.pend_requests + 1
        return all(w._total + n <= w.limit for w in self.requests)

    def settle_tokens(self, now: float, back_in: int, back_out: int) -> bool:
        """Give back ``back_in`` input and ``back_out`` output tokens (the answer used fewer than were held) where
        the windows' settle would only take them off their oldest entry (one still in the window that holds more):
        that entry is not touched by the run's sums, or only added to, so the sums may stay. False (nothing done)
        otherwise."""
        if back_in < 0 or back_out < 0:
            return False
        last = self.last
        w = self.tokens_only
        if w is not None:  # one window of all tokens (tpm), the usual case: what the loops below do, without them
            n = back_in + back_out
            entries = w._entries
            if entries and n < (first := entries[0])[1] and \
                    (first[0] if len(entries) > 1 or first[0] > last else last) > now - w.window_s:
                first[1] -= n
                w._total -= n
                return True
            return n == 0
        units = (0, back_in + back_out, back_in, back_out)
        token_kinds = self.token_kinds
        for w, kind in token_kinds:
            n = units[kind]
            if n:
                entries = w._entries
                if not entries:
                    return False
                first = entries[0]
                if n >= first[1] or (first[0] if len(entries) > 1 or first[0] > last else last) <= now - w.window_s:
                    return False
        for w, kind in token_kinds:
            n = units[kind]
            if n:
                w._entries[0][1] -= n
                w._total -= n
        return True

    def _take_now(self, now: float, tokens_in: int, tokens_out: int) -> bool:
        """The take written into each window at once (the run's sums already flushed). A window is pruned only when
        its running count, expired units included, says it may be full, and when a take adds an entry (so it keeps
        at most about :data:`BUCKETS` of them)."""
        all_tokens = tokens_in + tokens_out
        for w in self.requests:
            if w._total >= w.limit and not _fits_pruned(w, now, 1):
                return False
        if all_tokens > 0:
            for w in self.tokens:
                if w._total + all_tokens > w.limit and w._total > 0 and not _fits_pruned(w, now, all_tokens):
                    return False
            if tokens_in > 0:
                for w in self.inputs:
                    if w._total + tokens_in > w.limit and w._total > 0 and not _fits_pruned(w, now, tokens_in):
                        return False
            if tokens_out > 0:
                for w in self.outputs:
                    if w._total + tokens_out > w.limit and w._total > 0 and not _fits_pruned(w, now, tokens_out):
                        return False
        units = (1, all_tokens, tokens_in, tokens_out)
        for w, kind in self.kinds:
            n = units[kind]
            if n > 0:
                entries = w._entries
                if entries and now - (last := entries[-1])[0] < w._bucket_s:
                    if now > last[0]:
                        last[0] = now
                    last[1] += n
                else:
                    entries.append([now, n])
                    if entries[0][0] <= now - w.window_s:
                        w._prune(now)
                w._total += n
        return True


def local_window(provider: str, key: str, what: str, limit: int, window_s: float) -> Slots:
    """The default :data:`WindowFactory`: a window of this process alone."""
    del provider, key, what
    return SlidingWindow(limit, window_s)


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """What is declared for one key (and one model): None where nothing is."""

    rpm: int | None = None
    rpd: int | None = None
    tpm: int | None = None
    itpm: int | None = None
    otpm: int | None = None
    max_concurrency: int | None = None

    def is_set(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))

    def over(self, base: KeyLimits | None) -> KeyLimits:
        """These limits where given, ``base``'s elsewhere (a key's over its provider's, a model's over its key's)."""
        if base is None:
            return self
        return KeyLimits(**{f.name: getattr(self, f.name) if getattr(self, f.name) is not None
                            else getattr(base, f.name) for f in fields(self)})

    def windows(self) -> tuple[tuple[What, int, float, str], ...]:
        """(what, limit, window_s, name) of each declared window, requests first."""
        spans: tuple[tuple[What, int | None, float, str], ...] = (
            ("requests", self.rpm, MINUTE_S, "rpm"), ("requests", self.rpd, DAY_S, "rpd"),
            ("tokens", self.tpm, MINUTE_S, "tpm"), ("input_tokens", self.itpm, MINUTE_S, "itpm"),
            ("output_tokens", self.otpm, MINUTE_S, "otpm"))
        return tuple((what, limit, span, name) for what, limit, span, name in spans if limit is not None)

    def as_dict(self) -> dict[str, int]:
        """The declared limits only, by name."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}

    def describe(self) -> str:
        """One line for people: "rpm 60 · tpm 20k" ("-" when nothing is declared)."""
        return " · ".join(f"{name} {amount(v)}" for name, v in self.as_dict().items()) or "-"


def amount(n: int) -> str:
    """A count in a few characters: 950, 20k, 1.5k, 2M."""
    for size, unit in ((1_000_000, "M"), (1_000, "k")):
        if n >= size:
            return f"{n / size:.1f}".removesuffix(".0") + unit
    return str(n)
