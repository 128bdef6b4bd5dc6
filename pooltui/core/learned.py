"""A key's limit learnt from its 429s, for providers that do not state it in headers (issue 12).

Model: the provider allows ``limit`` requests in any sliding window of ``window_s`` seconds (what most
providers without headers do; a token bucket looks the same from outside). Evidence: the times of the
requests the key accepted, and each 429's retry-after. When a 429 says "a slot frees in r s", the oldest
request still in the window was sent at ``t + r - window``, and the window held ``limit`` requests. So for
each k, "the window holds the k most recent requests" gives a window ``t + r - a_k`` (``a_k``: the k-th most
recent accepted request), valid when the (k+1)-th lies outside it (within a second when the retry-after is a
whole number of seconds: likely rounded up) and when the successes do not refute it (k + 1 of them accepted
within such a window). Each 429 votes for the pairs it allows (a window believed already first: providers
change limits, rarely windows), earlier votes halved at each 429, so a changed limit shows within a 429 or
two; the estimate is the count with most votes (ties: the window believed, else the smallest) and the median
window of its latest votes. Periodic traffic may leave "1 per 0.4 s" and "5 per 2 s" equally likely: they
allow the same rate, and the smaller paces more smoothly. After ``PROBE_WINDOWS`` windows (and at least
``PROBE_MIN_S``) at the limit with no 429 the estimate grows by one (additive increase, slow), so a raised
limit is found again; the next 429 re-fits it. A 429 is fitted only once every request sent before it has
been answered: under concurrency a 429 often comes back before the successes sent ahead of it (and, where
windows are shared, once the others' sends before it have been read). Pure: times are passed in.

A request counts from its send, when it was written, not from its pick: the provider counts it from its arrival,
and on a new connection the connect (a TLS handshake over the internet: 50-300 ms) comes between, longer than the
margin the pacing adds. In flight it holds a slot from its pick (:meth:`LearnedLimit.sent`); answered, it is
kept at its send time (``accept``, ``rate_limited``: the client tells the pool how long after the attempt's start
it was written), so its slot is held the window and its margin after that. The fleet is told the pick time
(:class:`FleetSends`: a send is told as it goes out, and its refusal by the same time).

Where windows are shared across processes (Redis), a fit reads the fleet's accepted sends of the key too
(:class:`FleetSends`, kept by the store): the provider's window held the whole fleet's requests, and fitted from
one process's third of them the estimate was a third of the limit.

A 429 that says tokens (a token budget per minute spent: "on tokens per min (TPM)", "input tokens per
minute", the token headers at 0; ``Classification.tokens``) is never fitted here: it says nothing of how many
requests the window holds (a few large prompts spend it as surely as many small ones), and fitting it would
teach a request limit far below the real one, which would then throttle small requests for good. The pool
only settles its slot (:meth:`LearnedLimit.answered`); the key cools by the provider's wait as for any 429,
and token budgets, declared or stated in headers, hold picks by their estimated tokens (core/declared.py).
"""
from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from heapq import merge
from operator import sub
from statistics import median
from typing import NamedTuple, Protocol, runtime_checkable

from pooltui.core.snapshot import LearnedSnapshot

ROUNDING_S = 1.0  # retry-after is often rounded up to whole seconds
JITTER_S = 0.05  # a precise retry-after still carries the network's jitter between our clock and the provider's
MAX_KEPT = 2048
WINDOWS_READ = 9  # the latest fitted windows of a limit its median reads (more are kept only until trimmed)
REFUTE_SPAN = 512  # the most recent accepted requests a fit is checked against (and the largest limit fitted)
MAX_WINDOW_S = 3600.0
PROBE_WINDOWS = 8  # windows at the limit without a 429 before the estimate tries one more
PROBE_MIN_S = 30.0  # and at least this long: a short window would otherwise be probed every few seconds
DECAY = 0.5  # each fitted 429 halves the weight of the earlier ones
MARGIN = 0.02  # at most this share of the window is added to an opening for the jitter between clocks
MIN_MARGIN_S = 0.02  # the provider's clock and ours disagree by a network's jitter at least
AGREE = 0.15  # limits whose rates differ by at most this share agree (for how sure the estimate is)
STALE_S = 600.0  # a request in flight that long was lost without a word: it no longer holds its slot


class FleetSends(Protocol):
    """The sends of one key (or key and model) across the fleet, where its windows are shared: a 429 says how
    many requests the *provider's* window held, and with several processes on the key most of them were sent
    by the others. Fitted from this process's sends alone, "8 per 5 s" over three processes read as about 3 per
    5 s, and the fleet, keeping the smaller of equally sure estimates, paced at that. Sends are told as they go
    out (an answer can take seconds; the others' requests sent before a 429 must be in its fit) and withdrawn
    when refused (a 429 is not counted by the provider)."""

    def add(self, at: float) -> None:
        """This process sends a request at ``at`` (the others are told)."""
        ...

    def refused(self, at: float) -> None:
        """This process's request sent at ``at`` was refused (a 429): it no longer counts."""
        ...

    def others(self) -> Sequence[float]:
        """The other processes' sends not refused, as last read (local clock), oldest first."""
        ...

    def known_until(self) -> float:
        """The local time up to which the others' sends are known (what they sent before it has been read)."""
        ...

    def when_read(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after each read of the others' sends (a 429 waiting for them is fitted then)."""
        ...


@runtime_checkable
class SendLogs(Protocol):
    """A window factory that also keeps the fleet's sends per key (the shared store's)."""

    def sends(self, provider: str, key: str) -> FleetSends:
        """The log of ``provider``'s key ``key`` (its label, or ``label@model``)."""
        ...


class Fitted(NamedTuple):
    """A learnt limit once a 429 was fitted: ``limit`` requests per ``window_s`` (model "": the key's own)."""

    model: str
    limit: int
    window_s: float
    estimate: LearnedLimit


@dataclass
class LearnedLimit:
    """What one key (or key and model) is learnt to allow: ``limit`` requests per ``window_s``."""

    #: send times (when each request was written: the provider counts it from its arrival), oldest first (the
    #: latest MAX_KEPT or so)
    accepted: list[float] = field(default_factory=list)
    outstanding: list[float] = field(default_factory=list)  # pick times of requests not answered yet, sorted
    pending: list[tuple[float, float]] = field(default_factory=list)  # 429s (sent at, retry-after) to fit
    votes: dict[int, float] = field(default_factory=dict)  # decayed: the latest 429s weigh most
    windows: dict[int, list[float]] = field(default_factory=dict)
    precise: dict[int, list[float]] = field(default_factory=dict)  # windows fitted from unrounded retry-afters
    limit: int | None = None
    window_s: float | None = None
    observed: int = 0  # 429s with a retry-after that fitted
    probes: int = 0  # times the estimate grew by one
    _full_since: float | None = None  # the window has been at the limit since (for the additive increase)
    fleet: FleetSends | None = None  # the fleet's sends of this key, where windows are shared (fits read them)
    #: how long the pacing holds a request's slot after its send: the window and its margin (None: not worked out
    #: since the estimate last changed)
    _reach: float | None = field(default=None, repr=False)

    @classmethod
    def restored(cls, limit: int, window_s: float) -> LearnedLimit:
        """An estimate kept from an earlier run: counted as one fitted 429 (so a third sure at most)."""
        return cls(votes={limit: 1.0}, windows={limit: [window_s]}, limit=limit, window_s=window_s, observed=1)

    def adopt(self, limit: int, window_s: float) -> None:
        """An estimate learnt elsewhere (another process of the fleet, surer): picks are paced by it from now
        on; this key's history stays and the next 429 re-fits."""
        self.limit, self.window_s = limit, window_s
        self.votes[limit] = max(self.votes.values(), default=0.0) + 1.0
        _kept(self.windows.setdefault(limit, []), window_s)
        self.observed = max(1, self.observed)
        self._reach = None

    @property
    def sure(self) -> float:
        """How sure the estimate is, 0 to 1: the share of the 429s' votes for limits whose rate (requests per
        second) is within ``AGREE`` of the estimate's (8 per 5 s and 16 per 10 s allow the same traffic), damped
        while fewer than 3 429s were fitted."""
        limit, window = self.limit, self.window_s
        if limit is None or not window or not self.observed:
            return 0.0
        rate, total, agree = limit / window, 0.0, 0.0
        for k, n in self.votes.items():
            total += n
            windows = self.windows.get(k)
            w = window if k == limit else median(windows[-WINDOWS_READ:]) if windows else None
            if w and abs(k / w / rate - 1) <= AGREE:
                agree += n
        return round(min(1.0, agree / max(1e-9, total)) * min(1.0, self.observed / 3), 2)

    def sent(self, at: float) -> None:
        """A request is picked at ``at``: it holds a slot of the window until its answer says whether it counts
        (and from when: its send, a connect later on a new connection)."""
        out = self.outstanding
        if not out and self.fleet is None:  # none in flight (the usual case): nothing to sort in, nothing stale
            out.append(at)
            return
        if out and at < out[-1]:
            insort(out, at)
        else:
            out.append(at)
        if self.fleet is not None:
            self.fleet.add(at)
        if len(out) > MAX_KEPT or out[0] < at - STALE_S:
            del out[:max(len(out) - MAX_KEPT, bisect_right(out, at - STALE_S))]

    def accept(self, sent_at: float, picked_at: float | None = None) -> bool:
        """A request sent at ``sent_at`` was accepted (not rate-limited); ``picked_at``: when it was picked (its
        slot in flight), if earlier than its send (written once its connection was made: the provider counts it
        from then). Returns True when a 429 waiting for it was fitted."""
        out = self.outstanding
        if len(out) == 1:  # what _settle finds when one request is in flight
            out.pop()
        elif out:
            self._settle(sent_at if picked_at is None else picked_at)
        accepted = self.accepted
        if accepted and sent_at < accepted[-1]:  # answers arrive out of order
            insort(accepted, sent_at)
        else:
            accepted.append(sent_at)
        if len(accepted) > 2 * MAX_KEPT:
            del accepted[:-MAX_KEPT]
        limit = self.limit
        if limit is not None:
            if self.fleet is None and len(accepted) < limit:  # fewer kept than the limit: not at it (_grow)
                if self._full_since is not None:
                    self._full_since = None
            else:
                self._grow(sent_at)
        return self._fit_ready() if self.pending else False

    def rate_limited(self, sent_at: float, retry_after_s: float | None, picked_at: float | None = None) -> bool:
        """A 429 for a request sent at ``sent_at`` (picked at ``picked_at``, if earlier) that said a slot frees
        after ``retry_after_s`` (from its arrival: the fit counts from its send). It is fitted once the requests
        picked before its send are answered. Returns True when a 429 was fitted now."""
        sent = self._settle(sent_at if picked_at is None else picked_at)
        self._full_since = None
        if self.fleet is not None:
            self.fleet.refused(sent)  # the send time it was told with (the answer's own is a little later)
        if retry_after_s is not None and retry_after_s >= 0:
            insort(self.pending, (sent_at, retry_after_s))
        return self._fit_ready()

    def answered(self, sent_at: float) -> bool:
        """A request sent at ``sent_at`` ended without telling anything about the limit (a transport error, a
        cancellation, its deadline): it no longer holds a slot."""
        self._settle(sent_at)
        return self._fit_ready()

    def refit(self) -> bool:
        """Fit the 429s that were waiting only for the fleet's sends (now read). True when one was fitted."""
        return self._fit_ready()

    def _settle(self, sent_at: float) -> float:
        """The answer to the request in flight picked nearest ``sent_at`` came back: its time as picked (what the
        fleet was told)."""
        out = self.outstanding
        if not out:
            return sent_at
        i = bisect_right(out, sent_at)
        if i == len(out) or (i > 0 and sent_at - out[i - 1] <= out[i] - sent_at):
            i -= 1
        return out.pop(i)

    def _fit_ready(self) -> bool:
        """Fit the 429s whose earlier requests have all been answered."""
        fitted = False
        pending, out, fleet = self.pending, self.outstanding, self.fleet
        while pending and (not out or out[0] >= pending[0][0]) and (
                fleet is None or fleet.known_until() >= pending[0][0]):  # and the others' sends before it are read
            sent_at, retry_after_s = pending.pop(0)
            fitted = self._fit(sent_at, retry_after_s) or fitted
        return fitted

    def _all_accepted(self) -> list[float]:
        """The accepted sends a fit reads: this process's, and the others' where windows are shared."""
        others = self.fleet.others() if self.fleet is not None else ()
        return list(merge(self.accepted, others)) if others else self.accepted

    def _fit(self, sent_at: float, retry_after_s: float) -> bool:
        """Vote for the (limit, window) pairs this 429 allows and the successes do not refute."""
        accepted = self._all_accepted()
        if not accepted:
            return False
        free_at = sent_at + retry_after_s
        # a whole number of seconds is likely rounded up: the slot may free up to a second sooner
        rounded = retry_after_s >= 1 and retry_after_s == int(retry_after_s)
        slack = ROUNDING_S if rounded else JITTER_S
        recent = [a for a in reversed(accepted) if a <= sent_at]  # most recent first
        fits = []
        for k, a_k in enumerate(recent[:REFUTE_SPAN], start=1):
            window = free_at - a_k
            if window > MAX_WINDOW_S:
                break
            outside = recent[k] if k < len(recent) else None
            if window > 0 and (outside is None or outside <= sent_at - window + slack):
                fits.append((k, window))
        if not fits:
            return False
        # the successes refute a pair when more were accepted within its window; after a 429 the estimate did
        # not expect (the limit was lowered, or it was never right) only those still in its window count
        limit, believed = self.limit, self.window_s
        history = recent[:REFUTE_SPAN][::-1]  # oldest first
        contradicted = False
        if limit is not None and believed is not None and \
                len(accepted) - bisect_right(accepted, sent_at - believed) < limit:  # a surprise
            history = history[bisect_right(history, sent_at - believed - slack):]
            # a 429 the estimate allowed even with the clocks' jitter: it was too generous, its votes go (a 429
            # just at the window's edge is a race of clocks, not evidence against it)
            edge = sent_at - believed - slack - self.margin_s
            contradicted = len(accepted) - bisect_right(accepted, edge) < limit
        fits = [(k, w) for k, w in fits if not _refuted(history, k, w - slack)] or fits
        # a window believed already is the likeliest (providers change limits, rarely windows), unless the
        # estimate was just proven too generous (a 429 it did not expect)
        if believed is not None and not contradicted:
            tolerance = max(slack, believed * MARGIN)
            fits = [(k, w) for k, w in fits if abs(w - believed) <= tolerance] or fits
        self.observed += 1
        self.votes = {k: n * DECAY for k, n in self.votes.items() if n * DECAY >= 0.01 and
                      not (contradicted and k == limit)}
        share = 1.0 / len(fits)  # a 429 that many counts explain says little about any one of them
        for k, window in fits:
            self.votes[k] = self.votes.get(k, 0.0) + share
            _kept(self.windows.setdefault(k, []), window)
            if not rounded:
                _kept(self.precise.setdefault(k, []), window)
        best = max(self.votes.values())
        tied = [k for k, n in self.votes.items() if n >= best - 1e-9 and self.windows.get(k)]
        if believed is not None:  # ties: the window believed already, else the smallest limit
            self.limit = min(tied, key=lambda k: (abs(median(self.windows[k][-WINDOWS_READ:]) - believed), k))
        else:
            self.limit = min(tied)
        self.window_s = median(self.windows[self.limit][-WINDOWS_READ:])
        self._reach = None
        return True

    @property
    def margin_s(self) -> float:
        """Added to an opening: how far the windows fitted from precise retry-afters spread above the estimate
        (the jitter between our send times and the provider's clock), at least 20 ms, at most ``MARGIN`` of the
        window. Windows fitted from rounded retry-afters are long already."""
        window = self.window_s or 0.0
        precise = self.precise.get(self.limit or 0, [])[-WINDOWS_READ:]
        spread = max(precise) - median(precise) if len(precise) > 1 else window * MARGIN
        return min(window * MARGIN, max(MIN_MARGIN_S, spread))

    def in_window(self, now: float) -> int:
        """Accepted requests the provider may still count at ``now`` (sent within the window and its margin: what
        the pacing holds)."""
        if self.window_s is None:
            return 0
        return len(self.accepted) - bisect_right(self.accepted, now - self.reach_s)

    def held(self, now: float) -> int:
        """Slots of the window taken at ``now``: accepted requests still counted, and those in flight."""
        return self.in_window(now) + len(self.outstanding)

    @property
    def reach_s(self) -> float:
        """How long the pacing holds an accepted request's slot after its send: the window and its margin (the
        provider counts it from its arrival, up to the margin after our send)."""
        reach = self._reach
        if reach is None:
            reach = self._reach = (self.window_s or 0.0) + self.margin_s
        return reach

    def full(self, now: float) -> bool:
        """The learnt window has no room now: accepted requests the provider may still count (sent within the
        window and its margin) plus those in flight fill it. Room exactly when :meth:`opens_in` says 0."""
        limit = self.limit
        if limit is None:
            return False
        out = len(self.outstanding)
        if self.window_s is None:
            return out >= limit
        accepted = self.accepted  # without calls where it can: the pick asks on every request
        held = len(accepted) + out
        if held < limit:
            return False
        reach = self._reach
        return held - bisect_right(accepted, now - (reach if reach is not None else self.reach_s)) >= limit

    def opens_in(self, now: float) -> float:
        """Seconds until the key has learnt room for one more request (0: now). The window holds the accepted
        requests the provider may still count and those in flight (they count from their send); the opening is
        when enough of them have left it, the window and a small margin for the provider's clock after their send
        (a request sent within that margin of an opening does not slip in: regression, the restarted replay's
        second request of each key went 12 to 25 ms after the window, not 40)."""
        limit = self.limit
        if limit is None or self.window_s is None:
            return 0.0
        reach = self.reach_s
        start = bisect_right(self.accepted, now - reach)
        counted = len(self.accepted) - start
        over = counted + len(self.outstanding) - limit
        if over < 0:
            return 0.0
        held = sorted([*self.accepted[start:], *self.outstanding]) if self.outstanding else None
        leaves = held[over] if held is not None else self.accepted[start + over]
        return max(0.0, leaves + reach - now)

    def as_dict(self, now: float) -> LearnedSnapshot | None:
        """The estimate as plain data (None until a 429 was fitted)."""
        if self.limit is None or self.window_s is None:
            return None
        return {"limit": self.limit, "window_s": round(self.window_s, 3), "sure": self.sure,
                "in_window": self.held(now), "observed": self.observed,
                "probes": self.probes}

    def _grow(self, now: float) -> None:
        """Additive increase: ``PROBE_WINDOWS`` windows at the learnt limit without a 429: try one more (the
        fleet's sends count where windows are shared: the key is at its limit when the fleet's window is)."""
        if self.limit is None or self.window_s is None:
            return
        counted = self.in_window(now)
        if self.fleet is not None and (others := self.fleet.others()):
            counted += len(others) - bisect_right(others, now - self.reach_s)
        if counted < self.limit:
            self._full_since = None
        elif self._full_since is None:
            self._full_since = now
        elif now - self._full_since >= max(PROBE_MIN_S, self.window_s * PROBE_WINDOWS):
            self.limit += 1
            self.probes += 1
            self.votes[self.limit] = self.votes.get(self.limit - 1, 0.0)  # the trust it was built on
            self.windows.setdefault(self.limit, list(self.windows.get(self.limit - 1, [])))
            self.precise.setdefault(self.limit, list(self.precise.get(self.limit - 1, [])))
            self._full_since = now
            self._reach = None


def _kept(windows: list[float], window: float) -> None:
    """Add a fitted window; only the latest ``WINDOWS_READ`` are ever read, so a key 429ing for days keeps a few."""
    windows.append(window)
    if len(windows) > 2 * WINDOWS_READ:
        del windows[:-WINDOWS_READ]


def _refuted(history: list[float], k: int, window: float) -> bool:
    """The successes refute "k per window": k + 1 of them were accepted within less than the window."""
    if k >= len(history) or window <= 0:
        return False
    return min(map(sub, history[k:], history[:-k])) < window
