"""A key's limit learnt from its 429s, for providers that do not state it in headers (issue 12).

Model: the provider allows ``limit`` requests in any sliding window of ``window_s`` seconds (what most
providers without headers do; a token bucket looks the same from outside). Evidence: the times of the
requests the key accepted, and each 429's retry-after. When a 429 says "a slot frees in r s", the oldest
request still in the window was sent at ``t + r - window``, and the window held ``limit`` requests. So for
each k, "the window holds the k most recent requests" gives a window ``t + r - a_k`` (``a_k``: the k-th most
recent accepted request), valid when the (k+1)-th lies outside it. Each 429 votes for the (k, window)
pairs it allows, earlier votes halved at each 429 (a changed limit shows at once); the estimate is the
count with most votes (ties: the smallest) and the median window of its latest votes (a retry-after
rounded up to whole seconds makes it up to 1 s long: pacing stays on the safe side). After
``PROBE_WINDOWS`` windows at the limit with no 429 the estimate grows by one (additive increase, slow:
one extra 429 at most per that many windows when the limit has not changed), so a raised limit is found
again; the next 429 re-fits it. Pure: times are passed in.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from statistics import median

ROUNDING_S = 1.0  # retry-after is often rounded up to whole seconds
MAX_KEPT = 2048
MAX_WINDOW_S = 3600.0
PROBE_WINDOWS = 8  # windows at the limit without a 429 before the estimate tries one more
DECAY = 0.5  # each fitted 429 halves the weight of the earlier ones


@dataclass
class LearnedLimit:
    """What one key (or key and model) is learnt to allow: ``limit`` requests per ``window_s``."""

    accepted: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_KEPT))  # send times, oldest first
    votes: dict[int, float] = field(default_factory=dict)  # decayed: the latest 429s weigh most
    windows: dict[int, list[float]] = field(default_factory=dict)
    limit: int | None = None
    window_s: float | None = None
    observed: int = 0  # 429s with a retry-after that fitted
    probes: int = 0  # times the estimate grew by one
    _full_since: float | None = None  # the window has been at the limit since (for the additive increase)

    @property
    def sure(self) -> float:
        """How sure the estimate is, 0 to 1: the share of fitted 429s that agree with it, damped for few."""
        if self.limit is None or not self.observed:
            return 0.0
        agree = self.votes.get(self.limit, 0.0) / max(1e-9, sum(self.votes.values()))
        return round(min(1.0, agree) * min(1.0, self.observed / 3), 2)

    def accept(self, sent_at: float) -> None:
        """A request sent at ``sent_at`` was accepted (not rate-limited)."""
        if self.accepted and sent_at < self.accepted[-1]:  # answers arrive out of order
            items = list(self.accepted)
            items.insert(bisect_right(items, sent_at), sent_at)
            self.accepted = deque(items, maxlen=MAX_KEPT)
        else:
            self.accepted.append(sent_at)
        self._grow(sent_at)

    def rate_limited(self, sent_at: float, retry_after_s: float | None) -> bool:
        """A 429 for a request sent at ``sent_at`` that said a slot frees after ``retry_after_s``.
        Returns True when it fitted (the estimate may have changed)."""
        self._full_since = None
        if retry_after_s is None or retry_after_s < 0 or not self.accepted:
            return False
        free_at = sent_at + retry_after_s
        recent = [a for a in reversed(self.accepted) if a <= sent_at]  # most recent first
        fits = []
        for k, a_k in enumerate(recent, start=1):
            window = free_at - a_k
            if window > MAX_WINDOW_S:
                break
            outside = recent[k] if k < len(recent) else None
            if window > 0 and (outside is None or outside <= sent_at - window + ROUNDING_S):
                fits.append((k, window))
        if not fits:
            return False
        self.observed += 1
        self.votes = {k: n * DECAY for k, n in self.votes.items() if n * DECAY >= 0.01}
        for k, window in fits:
            self.votes[k] = self.votes.get(k, 0.0) + 1.0
            self.windows.setdefault(k, []).append(window)
        best = max(self.votes.values())
        self.limit = min(k for k, n in self.votes.items() if n == best)
        self.window_s = median(self.windows[self.limit][-9:])
        return True

    def in_window(self, now: float) -> int:
        """Accepted requests the provider still counts at ``now``."""
        if self.window_s is None:
            return 0
        return len(self.accepted) - bisect_right(self.accepted, now - self.window_s)

    def opens_in(self, now: float, inflight: int = 0) -> float:
        """Seconds until the key has learnt room for one more request (0: now), counting ``inflight``."""
        if self.limit is None or self.window_s is None:
            return 0.0
        over = self.in_window(now) + inflight - self.limit
        if over < 0:
            return 0.0
        start = bisect_right(self.accepted, now - self.window_s)
        oldest = self.accepted[min(len(self.accepted) - 1, start + over)]
        return max(0.0, oldest + self.window_s - now)

    def _grow(self, now: float) -> None:
        """Additive increase: ``PROBE_WINDOWS`` windows at the learnt limit without a 429: try one more."""
        if self.limit is None or self.window_s is None:
            return
        if self.in_window(now) < self.limit:
            self._full_since = None
        elif self._full_since is None:
            self._full_since = now
        elif now - self._full_since >= self.window_s * PROBE_WINDOWS:
            self.limit += 1
            self.probes += 1
            self.votes[self.limit] = self.votes.get(self.limit - 1, 0.0)  # the trust it was built on
            self.windows.setdefault(self.limit, list(self.windows.get(self.limit - 1, [])))
            self._full_since = now
