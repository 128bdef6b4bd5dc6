"""The simulated provider's bookkeeping: sliding-window RPM and tokens per window, daily quotas, revocations,
outages. A request is admitted when its key's request window and token windows (``tpm``: input and output,
``itpm``, ``otpm``, per key or quota group, per model when the provider limits per model) all have room for
it; a token window that has none answers a 429 that says tokens, as the real providers word it (shapes.py).

Pure logic over an injectable monotonic clock, so scenarios behave the same in tests and demos.
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pooltui.sim import corpus
from pooltui.sim.prompt_cache import CacheUsage, PromptCache
from pooltui.sim.scenario import Scenario, SimKey, SimProvider


@dataclass(slots=True)
class Verdict:
    """What the simulator answers to one request."""

    kind: str  # ok | rate_limited | quota | invalid | forbidden | outage | server_error | corpus
    status: int = 200
    retry_after_s: float | None = None
    limit: int | None = None
    remaining: int | None = None
    reset_s: float | None = None
    #: the token window that refused it, or the tightest one on a success: tokens | input_tokens | output_tokens
    tokens_what: str | None = None
    tokens_limit: int | None = None
    tokens_remaining: int | None = None
    tokens_reset_s: float | None = None
    requested: int = 0  # the tokens the refused request asked for
    model: str = ""


class _Window:
    """Sliding window of request times (and of their tokens), shared by the keys of one quota group."""

    __slots__ = ("times", "tokens")

    def __init__(self) -> None:
        self.times: deque[float] = deque()
        #: (time, input tokens, output tokens) of the requests admitted within the window
        self.tokens: deque[tuple[float, int, int]] = deque()

    def tokens_used(self, horizon: float) -> tuple[int, int]:
        """(input, output) tokens admitted after ``horizon``."""
        toks = self.tokens
        while toks and toks[0][0] <= horizon:
            toks.popleft()
        return sum(t[1] for t in toks), sum(t[2] for t in toks)

    def tokens_free_in(self, now: float, window_s: float, pick: Callable[[tuple[float, int, int]], int],
                       over: int) -> float:
        """Seconds until ``over`` tokens (as ``pick`` counts them) have left the window."""
        freed = 0
        for entry in self.tokens:
            freed += pick(entry)
            if freed >= over:
                return max(0.001, entry[0] + window_s - now)
        return window_s


class KeyCounters:
    """What the simulator did with one key (tests compare this with the engine's counters)."""

    __slots__ = ("admitted", "by_status", "cache_read", "cache_written", "cacheable", "day", "permitted", "requests",
                 "revoked", "successes_today")

    def __init__(self) -> None:
        #: (time, input tokens, output tokens) of the requests it admitted, the latest 10,000 (tests count them
        #: per window: a declared limit is never exceeded)
        self.admitted: deque[tuple[float, int, int]] = deque(maxlen=10_000)
        self.by_status: Counter[int] = Counter()
        self.requests = 0
        self.successes_today = 0
        self.day = ""
        self.revoked = False
        self.permitted = False  # a 403 key whose permission was restored
        self.cache_read = self.cache_written = self.cacheable = 0  # prompt-cache tokens of its successes


class ProviderState:
    """Live state of one simulated provider."""

    def __init__(self, spec: SimProvider, seed: int, mono: Callable[[], float], wall: Callable[[], float]) -> None:
        self.spec = spec
        self.by_secret = spec.key_by_secret()
        self.rng = random.Random(seed)
        self._mono = mono
        self._wall = wall
        self.started = mono()
        self.counters: dict[str, KeyCounters] = {k.label: KeyCounters() for k in spec.keys}
        self._windows: dict[str, _Window] = {}
        for k in spec.keys:
            self._windows.setdefault(k.budget, _Window())
        self.outage_override: int | None = None
        self.prompt_cache = PromptCache(mono)
        #: (second since start, status) -> responses sent: what the provider saw over time, the last hour
        self.timeline: Counter[tuple[int, int]] = Counter()

    def record(self, label: str, status: int) -> None:
        """A response with ``status`` was sent for the key ``label``."""
        self.counters[label].by_status[status] += 1
        second = int(self._mono() - self.started)
        self.timeline[(second, status)] += 1
        if len(self.timeline) > 20_000:  # a long demo: forget what is over an hour old
            for old in [k for k in self.timeline if k[0] < second - 3600]:
                del self.timeline[old]

    def cache_for(self, key: SimKey, model: str, body: dict) -> CacheUsage:
        """Serve one successful request's prompt from the cache of ``key``'s organization, and count it."""
        used = self.prompt_cache.serve(self.spec.dialect, key.cache_org, model, body)
        c = self.counters[key.label]
        c.cache_read += used.read
        c.cache_written += used.written
        c.cacheable += used.cacheable
        return used

    def window_of(self, key: SimKey, model: str | None = None) -> _Window:
        """The sliding window a request counts against: per key (or quota group), and per model when the
        provider limits per model (``per_model``), as OpenAI and Anthropic do."""
        name = key.budget
        if self.spec.per_model and model:
            name = f"{name}|{model}"
        window = self._windows.get(name)
        if window is None:
            window = self._windows[name] = _Window()
        return window

    def outage_status(self) -> int | None:
        if self.outage_override is not None:
            return self.outage_override
        if not self.spec.outages:
            return None
        elapsed = self._mono() - self.started
        if self.spec.cycle_s > 0:
            elapsed %= self.spec.cycle_s
        for o in self.spec.outages:
            if o.start_s <= elapsed < o.end_s:
                return o.status
        return None

    def revoke(self, label: str) -> None:
        self.counters[label].revoked = True

    def restore(self, label: str) -> None:
        """The account was topped up and its permissions restored: quota, revocation and 403 lifted."""
        c = self.counters[label]
        c.revoked, c.successes_today, c.permitted = False, 0, True

    def decide(self, key: SimKey | None, consume: bool = True, spend_quota: bool = True,
               model: str | None = None, tokens: tuple[int, int] = (0, 0)) -> Verdict:
        """Decide the fate of one request by ``key`` (None: unknown key) that takes ``tokens`` (input, output)."""
        if key is None or key.invalid:
            return Verdict("invalid", 401)
        c = self.counters[key.label]
        c.requests += 1
        if key.corpus_case is not None:  # a captured real response, replayed as it came (tests/corpus/)
            return Verdict("corpus", corpus.case(key.corpus_case)["status"])
        if key.forbidden and not c.permitted:
            return Verdict("forbidden", 403)
        if c.revoked or (key.revoke_after is not None and c.requests > key.revoke_after):
            c.revoked = True
            return Verdict("invalid", 401)
        outage = self.outage_status()
        if outage is not None:
            return Verdict("outage", outage, self.spec.outage_retry_after)
        if key.daily_quota is not None:
            day = datetime.fromtimestamp(self._wall(), UTC).strftime("%Y-%m-%d")
            if c.day != day:
                c.day, c.successes_today = day, 0
            if c.successes_today >= key.daily_quota:
                return Verdict("quota", self.spec.quota_status)
        limit = key.rpm
        remaining = reset_s = None
        window = self.window_of(key, model) if limit is not None or _counts_tokens(key) else None
        stated: Verdict | None = None
        if window is not None:
            now = self._mono()
            win = window.times
            horizon = now - self.spec.window_s
            while win and win[0] <= horizon:
                win.popleft()
            if limit is not None and len(win) >= limit:
                wait = win[0] + self.spec.window_s - now if win else self.spec.window_s
                said = key.retry_after if key.retry_after is not None else max(0.001, wait)
                return Verdict("rate_limited", 429, said, limit, 0, max(0.001, wait))
            if _counts_tokens(key):
                stated = self._tokens(key, window, now, tokens, model or "")
                if stated.kind == "rate_limited":
                    stated.limit, stated.remaining = limit, (limit - len(win)) if limit is not None else None
                    return stated
            if consume:
                if limit is not None:
                    win.append(now)
                if _counts_tokens(key):
                    window.tokens.append((now, tokens[0], tokens[1]))
            if limit is not None:
                remaining = limit - len(win)
                reset_s = (win[0] + self.spec.window_s - now) if win else 0.0
        if self.spec.error_rate and self.rng.random() < self.spec.error_rate:
            return Verdict("server_error", 529 if self.spec.dialect == "anthropic" else 500)
        if consume and spend_quota and key.daily_quota is not None:
            c.successes_today += 1
        if consume:
            c.admitted.append((self._mono(), tokens[0], tokens[1]))
        verdict = Verdict("ok", 200, None, limit, remaining, reset_s)
        if stated is not None:
            verdict.tokens_what, verdict.tokens_limit = stated.tokens_what, stated.tokens_limit
            verdict.tokens_remaining = max(0, (stated.tokens_remaining or 0) - stated.requested) if consume else \
                stated.tokens_remaining
            # when the window is empty again (the budget back in full, as the providers' reset headers say):
            # when the last request it admitted leaves it
            toks = window.tokens if window is not None else None
            verdict.tokens_reset_s = (toks[-1][0] + self.spec.window_s - self._mono()) if toks else 0.0
        return verdict

    def _tokens(self, key: SimKey, window: _Window, now: float, tokens: tuple[int, int], model: str) -> Verdict:
        """A 429 verdict naming the token window that has no room for ``tokens``, else an "ok" one carrying the
        tightest token window's figures (before this request) for the headers."""
        span = self.spec.window_s
        used_in, used_out = window.tokens_used(now - span)
        checks = ((key.tpm, "tokens", used_in + used_out, tokens[0] + tokens[1], lambda e: e[1] + e[2]),
                  (key.itpm, "input_tokens", used_in, tokens[0], lambda e: e[1]),
                  (key.otpm, "output_tokens", used_out, tokens[1], lambda e: e[2]))
        tightest: Verdict | None = None
        for cap, what, used, asked, pick in checks:
            if cap is None:
                continue
            if used + asked > cap and used > 0:
                wait = window.tokens_free_in(now, span, pick, used + asked - cap)
                said = key.retry_after if key.retry_after is not None else wait
                return Verdict("rate_limited", 429, said, tokens_what=what, tokens_limit=cap,
                               tokens_remaining=max(0, cap - used), tokens_reset_s=wait, requested=asked, model=model)
            left = cap - used
            if tightest is None or left < (tightest.tokens_remaining or 0):
                reset = window.tokens_free_in(now, span, pick, used) if used else 0.0
                tightest = Verdict("ok", tokens_what=what, tokens_limit=cap, tokens_remaining=left,
                                   tokens_reset_s=reset, requested=asked, model=model)
        assert tightest is not None  # the key counts tokens: one window at least
        return tightest

    def latency_s(self) -> float:
        lo, hi = self.spec.latency_ms
        if hi <= 0:
            return 0.0
        return self.rng.uniform(lo, hi) / 1000.0


def _counts_tokens(key: SimKey) -> bool:
    return key.tpm is not None or key.itpm is not None or key.otpm is not None


class SimState:
    """All simulated providers of a scenario."""

    def __init__(
        self,
        scenario: Scenario,
        mono: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.scenario = scenario
        self.wall = wall
        self.providers = {
            p.name: ProviderState(p, scenario.seed + i, mono, wall) for i, p in enumerate(scenario.providers)
        }
        self.primary = self.providers[scenario.primary.name]
        self.request_seq = 0

    def stats(self) -> dict[str, dict[str, dict[str, int]]]:
        """Per provider, per key label: how many responses of each status were sent."""
        return {
            name: {label: {str(s): n for s, n in c.by_status.items()} for label, c in ps.counters.items()}
            for name, ps in self.providers.items()
        }
