"""A credential pool: keys, their health, and per-request rotation.

All mutable pool state lives here behind ``pick``/``report`` and a handful of commands, so a shared
store could replace it later without touching strategies' callers or the UI. Pure Python, no I/O;
time comes from an injected clock.

Cost per pick+report is O(log n) in the number of keys: available keys are kept in a sorted list of
pool positions, timed recoveries in a heap, and least-used/headroom use lazily invalidated heaps.
"""

from __future__ import annotations

import itertools
import random
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import IntEnum
from heapq import heapify, heappop, heappush, heapreplace

from pooltui.core.affinity import CACHE_TTL_S, AffinityMap, AffinityStore, Holder
from pooltui.core.budget import Budget, Spend
from pooltui.core.classify import Classification
from pooltui.core.clock import Clock, SystemClock
from pooltui.core.cooldown import CooldownPolicy
from pooltui.core.declared import DeclaredWindows, TokenHold
from pooltui.core.events import Event, EventKind, EventLog, StateChange
from pooltui.core.headers import RateLimits
from pooltui.core.health import DeadlineSource, KeyState, Outcome
from pooltui.core.learned import MAX_KEPT, Fitted, FleetSends, LearnedLimit, SendLogs
from pooltui.core.learned_tokens import TokenLog, spent_window, stated_budget
from pooltui.core.masking import fingerprint, mask, remember, scrub
from pooltui.core.snapshot import KeySnapshot
from pooltui.core.stats import KeyStats, RollingCounter
from pooltui.core.strategies import normalize_strategy
from pooltui.core.timefmt import clock, duration
from pooltui.core.trace import Exclusion, RequestTrace
from pooltui.core.windows import LEARNED, KeyLimits, Slots, WindowFactory, local_window

_OK = KeyState.OK
_OUTCOME_OK = Outcome.OK
#: our own pacing ends quietly (no probe, no "back in rotation" event)
_PACED = frozenset({DeadlineSource.LEARNED, DeadlineSource.DECLARED, DeadlineSource.STATED})
_EXCLUSIONS_SHOWN = 16
_HEAP_STRATEGIES = frozenset({"least-used", "headroom"})
#: answers the provider counted in its window (a 429 is fitted instead; others only end the request in flight)
_COUNTED = frozenset({Outcome.OK, Outcome.REQUEST_ERROR})
#: a learnt limit keeps up to this many accepted sends before it trims them (LearnedLimit.accept)
_ACCEPTED_KEPT = 2 * MAX_KEPT
_PROBE_WAIT_S = 0.05  # how soon to look again while a recovering key's probe is in flight
#: a cooldown shorter than this reads "0.0 s": applied, but too short to be an event
SHORTEST_COOL_TOLD_S = 0.05


class Probe(IntEnum):
    """Where a key stands with its recovery probe."""

    NONE = 0  # nothing special: picked like any other key
    NEXT = 1  # back from a cooldown: the next pick probes it alone before the queue may follow
    HELD = 2  # a probe (or the last request its budget allows) is in flight: held until an answer comes


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What a pool needs to know about a key when it is built."""

    label: str
    secret: str
    quota_group: str | None = None
    #: declared limits of the key (its own over its provider's default), None when nothing is declared
    limits: KeyLimits | None = None
    #: declared limits for one model: (model, limits already merged over the key's), where given
    model_limits: tuple[tuple[str, KeyLimits], ...] = ()
    cache_group: str | None = None  # keys sharing a prompt cache (one organization); default: the quota group


_NONE, _NEXT, _HELD = Probe.NONE, Probe.NEXT, Probe.HELD  # bound once: the pick reads them often


class PoolKey:
    """One key in a pool with its health and counters. The secret never appears in repr."""

    __slots__ = (
        "affinity_hits",
        "affinity_moves",
        "allow",
        "budget",
        "cache_group",
        "cache_read",
        "cache_write",
        "cacheable",
        "changed_at",
        "cool_model",
        "cost_round_robin_extra",
        "declared",
        "fingerprint",
        "gen",
        "headroom",
        "inflight",
        "label",
        "learned",
        "learned_models",
        "learned_tokens",
        "masked",
        "pos",
        "probe",
        "quota_group",
        "ratios",
        "reason",
        "secret",
        "source",
        "spend",
        "state",
        "stated",
        "stats",
        "status_code",
        "streams",
        "strikes",
        "token_allow",
        "token_log",
        "token_reset_at",
        "token_seq",
        "tokens_inflight",
        "until",
        "used_before",
        "ver",
    )

    def __init__(self, spec: KeySpec, pos: int) -> None:
        self.label = spec.label
        self.secret = spec.secret
        remember(spec.secret)  # from now on no text leaving the process carries it in clear
        self.masked = mask(spec.secret) if spec.secret else "(none)"
        self.fingerprint = fingerprint(spec.secret) if spec.secret else ""
        self.pos = pos
        self.quota_group = spec.quota_group
        #: the prompt cache it shares (its organization): its own unless a cache or quota group is named
        self.cache_group = spec.cache_group or spec.quota_group or f"\x00{spec.label}"
        self.affinity_hits = 0  # requests that stayed on it because it holds their conversation's cache
        self.affinity_moves = 0  # conversations that left it because it had no room
        self.cache_read = self.cache_write = 0  # prompt tokens its answers read from / wrote to its org's cache
        self.cacheable = 0  # prompt tokens the provider's rules let it cache (the hit rate's denominator)
        #: USD round-robin without affinity would have paid more on its answers (core/round_robin_cost.py)
        self.cost_round_robin_extra = 0.0
        self.state = _OK
        self.until: float | None = None
        self.source: DeadlineSource | None = None
        self.reason = ""
        self.status_code: int | None = None
        self.changed_at: float | None = None
        self.strikes = 0
        #: the model a key-wide cooldown spoke of (a 429 or a spent budget of a provider that limits per model):
        #: when traffic first mixes models, that cooldown becomes the key's for that model only
        self.cool_model: str | None = None
        self.inflight = 0
        self.streams = 0  # streams flowing on this key after their first event
        self.gen = 0  # bumped on every state change: a recovery timer for an older state is ignored
        self.ver = 0  # bumped when the strategy heap's view of the key changes: older heap entries are stale
        self.headroom = 1.0
        self.probe = _NONE
        self.allow: int | None = None  # requests the provider's last answer still allows, less those sent since
        self.stats = KeyStats()
        self.used_before = 0  # requests served in earlier runs (least-used counts them after a restart)
        self.learned: LearnedLimit | None = None  # its limit learnt from 429s, when no header states it
        self.learned_models: dict[str, LearnedLimit] | None = None  # per model, where 429s speak of one model
        self.stated = False  # its successes state the budget in headers: nothing to learn, headers win
        self.token_log: TokenLog | None = None  # its answers' tokens in the last minute (while it learns)
        self.learned_tokens: dict[str, int] | None = None  # token budgets learnt from its 429s: "tpm" -> limit
        self.budget: Budget | None = None
        self.spend: Spend | None = None
        self.declared: DeclaredWindows | None = None  # the windows of its declared limits (None: none declared)
        self.ratios: dict[str, float] = {}  # per model ("": any): input tokens used per token estimated from bodies
        self.token_allow: int | None = None  # tokens the headers last stated left, less those held since
        self.token_reset_at: float | None = None  # when the stated token budget is back in full
        self.tokens_inflight = 0  # tokens (input and output) held by its requests in flight
        self.token_seq = -1  # the latest-sent request whose answer stated its token budget (older answers: stale)

    def __repr__(self) -> str:
        return f"PoolKey({self.label!r}, {self.masked}, {self.state.value})"

    def estimates(self) -> list[Fitted]:
        """Its fitted learnt limits: the key's own (model "") and the key's per model, models sorted."""
        pairs = [("", self.learned), *sorted((self.learned_models or {}).items())]
        return [Fitted(m, est.limit, est.window_s, est) for m, est in pairs
                if est is not None and est.limit is not None and est.window_s]


def _prefix(holder: Holder) -> str:
    """`` (3,900-token prefix)`` when an answer said how large the conversation's cached prefix is."""
    return f" ({holder.prefix_tokens:,}-token prefix)" if holder.prefix_tokens else ""


@dataclass(frozen=True, slots=True)
class PoolFigures:
    """The pool's headline figures, each worked out once (:meth:`Pool.figures`: a monitor refresh reads them all)."""

    usable: int
    paced: int
    next_ready_in: float | None
    summary: str


class Pool:
    """The keys of one provider and the rotation over them."""

    def __init__(
        self,
        name: str,
        keys: Iterable[KeySpec] = (),
        strategy: str = "round-robin",
        *,
        clock: Clock | None = None,
        cooldown: CooldownPolicy | None = None,
        rng: random.Random | None = None,
        events: EventLog | None = None,
        picks_kept: int = 32,
        preempt: bool = True,
        max_inflight: int | None = None,
        learn: bool = True,
        windows: WindowFactory | None = None,
        affinity: str = "off",
        affinity_wait_s: float = 0.0,
        affinity_ttl_s: float = CACHE_TTL_S,
    ) -> None:
        self.name = name
        #: builds each declared window of a key: (provider, key label or "label@model", what, limit, window_s)
        self.windows: WindowFactory = windows or local_window
        #: label -> the fleet's window of the key's learnt limit (only with a shared factory: see use_windows)
        self._learned_windows: dict[str, Slots] = {}
        self._share_learned = windows is not None and windows is not local_window
        self._listening: set[str] = set()  # keys (label or label@model) whose fleet's sends this pool listens to
        self._tokens_counted = False  # some key declares a token limit, or its headers stated one
        #: "prefix" | "session" | "off": how a request's conversation is recognised (the client reads it)
        self.affinity = affinity
        #: how long a request may wait for its conversation's key rather than move on (0: never waits)
        self.affinity_wait_s = affinity_wait_s
        self._affinity: AffinityMap | None = AffinityMap(ttl_s=affinity_ttl_s) if affinity != "off" else None
        self.affinity_new = 0  # conversations seen for the first time (or after their cache expired)
        #: the fleet's map of conversations (store/shared_affinity.py), None in one process alone
        self.affinity_store: AffinityStore | None = None
        self._cache_groups: dict[str, list[PoolKey]] = {}
        self.cache_shares: tuple[float, ...] = ()  # each cache group's share of the keys (core/round_robin_cost.py)
        self.preempt = preempt
        #: learn each key's limit from its 429s where successes state no budget, and pace picks by it
        self.learn = learn
        #: soft cap of requests (and open streams) per key: a pick prefers keys under it, never blocks
        self.max_inflight = max_inflight
        #: per-model cooldowns (providers limit per key and model): model -> {key: until}; empty when none
        self._model_cool: dict[str, dict[PoolKey, float]] = {}
        #: models this pool has served (a 429 cools per model only once traffic mixes models: with one model,
        #: a per-model cooldown is the key's own, and the monitor shows it as the key's state)
        self._models: set[str] = set()
        #: its provider limits per model (an answer said so): what keys learn from one model is that model's
        self._scoped = False
        self.clock = clock or SystemClock()
        self.cooldown = cooldown or CooldownPolicy()
        self.events = events if events is not None else EventLog()
        self._rng = rng or random.Random()
        self._keys: list[PoolKey] = []
        self._by_label: dict[str, PoolKey] = {}
        self._avail: list[int] = []
        self._unavail: dict[PoolKey, None] = {}
        self._timers: list[tuple[float, int, PoolKey, int]] = []
        self._heap: list[tuple] = []
        self._seq = itertools.count()
        self._cursor = -1
        self._held = 0  # keys whose recovery probe is in flight
        self._excl_cache: tuple[Exclusion, ...] | None = None
        self.picks: deque[str] = deque(maxlen=picks_kept)
        self.per_second = RollingCounter(60)
        self._rr = self._heaped = self._least = False  # what the strategy is, for the pick (see strategy)
        self.strategy = normalize_strategy(strategy)
        for spec in keys:
            self._append(spec)
        self._rebuild()

    # ----------------------------------------------------------------- structure
    def _append(self, spec: KeySpec) -> PoolKey:
        if not spec.label or spec.label in self._by_label:
            raise ValueError(f"duplicate or empty key label {spec.label!r} in pool {self.name}")
        key = PoolKey(spec, len(self._keys))
        self._declare(key, spec)
        self._keys.append(key)
        self._by_label[key.label] = key
        return key

    def _declare(self, key: PoolKey, spec: KeySpec) -> None:
        """Build the windows of what ``spec`` declares for the key (and per model)."""
        key.declared = None
        if spec.limits is None and not spec.model_limits:
            return
        from_key = spec.limits or KeyLimits()
        declared = DeclaredWindows(from_key, self.name, key.label, self.windows)
        if spec.model_limits:
            declared.models = {model: DeclaredWindows(limits.over(from_key), self.name, f"{key.label}@{model}",
                                                      self.windows) for model, limits in spec.model_limits}
        key.declared = declared
        self._tokens_counted = self._tokens_counted or declared.counts_tokens

    def set_limits(self, label: str, limits: KeyLimits | None,
                   model_limits: tuple[tuple[str, KeyLimits], ...] = ()) -> bool:
        """Declare (or change, or with None and no models remove) the key's limits; changed windows start empty.
        Returns True when it changed anything."""
        key = self.key(label)
        d = key.declared
        had = (d.limits, tuple((m, w.limits) for m, w in (d.models or {}).items())) if d is not None else (None, ())
        base = limits or KeyLimits()
        want = (base, tuple((m, lim.over(base)) for m, lim in model_limits)) if limits or model_limits else (None, ())
        if had == want:
            return False
        self._declare(key, KeySpec(key.label, "", limits=limits, model_limits=model_limits))
        return True

    @property
    def counts_tokens(self) -> bool:
        """Its picks want each request's token estimate: a key declares a token limit or its headers state one."""
        return self._tokens_counted

    def _rebuild(self) -> None:
        """Recompute positions, the available list and the strategy heap (after structural changes)."""
        self._cache_groups = {}
        for i, key in enumerate(self._keys):
            key.pos = i
            self._cache_groups.setdefault(key.cache_group, []).append(key)
        self.cache_shares = tuple(len(group) / len(self._keys) for group in self._cache_groups.values())
        self._avail = [k.pos for k in self._keys if k.state is _OK and k.probe is not _HELD]
        self._unavail = {k: None for k in self._keys if k.state is not _OK}
        self._excl_cache = None
        self._rebuild_heap()

    def _rebuild_heap(self) -> None:
        if self._least:
            self._heap = [(k.used_before + k.stats.requests, k.pos, k.ver, k) for k in self._keys if k.state is _OK]
        elif self._heaped:
            self._heap = [(-k.headroom, k.used_before + k.stats.requests, k.pos, k.ver, k)
                          for k in self._keys if k.state is _OK]
        else:
            self._heap = []
        heapify(self._heap)

    def _push(self, key: PoolKey) -> None:
        if self._least:
            heappush(self._heap, (key.used_before + key.stats.requests, key.pos, key.ver, key))
        elif self._heaped:
            heappush(self._heap, (-key.headroom, key.used_before + key.stats.requests, key.pos, key.ver, key))
        else:
            return
        if len(self._heap) > 4 * len(self._keys) + 64:
            self._rebuild_heap()

    @property
    def strategy(self) -> str:
        """The rotation strategy's canonical name (core/strategies.py)."""
        return self._strategy

    @strategy.setter
    def strategy(self, name: str) -> None:
        self._strategy = name
        self._rr = name == "round-robin"
        self._heaped = name in _HEAP_STRATEGIES
        self._least = name == "least-used"

    @property
    def keys(self) -> list[PoolKey]:
        return list(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def key(self, label: str) -> PoolKey:
        try:
            return self._by_label[label]
        except KeyError:
            raise KeyError(f"no key {label!r} in pool {self.name}") from None

    def add_key(self, spec: KeySpec) -> PoolKey:
        key = self._append(spec)
        self._rebuild()
        return key

    def remove_key(self, label: str) -> None:
        """Take a key out (its requests in flight settle later as no-ops: see :meth:`detached`)."""
        key = self.key(label)
        self._keys.remove(key)
        del self._by_label[label]
        key.pos = -1
        if self._affinity is not None:
            self._affinity.forget_key(label)
        if key.probe is _HELD:  # its probe's answer will change nothing here: the pool stops waiting for it
            key.probe = _NONE
            self._held -= 1
        self._rebuild()

    def detached(self, key: PoolKey) -> bool:
        """Whether ``key`` was removed from this pool (or replaced by a new secret under its label) while a
        request it served was in flight: settling that request updates nothing here and raises nothing.
        A key that never was in this pool is refused by name (a programming error)."""
        if self._by_label.get(key.label) is key:
            return False
        if key.pos < 0:
            return True
        raise ValueError(f"key {key.label!r} is not a key of pool {self.name!r}")

    def set_order(self, labels: list[str]) -> None:
        """Put the keys in this order (every label exactly once)."""
        if sorted(labels) != sorted(self._by_label):
            raise ValueError("the new order must name every key of the pool exactly once")
        last = self._keys[self._cursor] if 0 <= self._cursor < len(self._keys) else None
        self._keys = [self._by_label[label] for label in labels]
        self._rebuild()
        self._cursor = last.pos if last is not None else -1

    def move(self, label: str, delta: int) -> None:
        """Move a key ``delta`` places up (negative) or down (positive) in the pool order."""
        order = [k.label for k in self._keys]
        i = order.index(self.key(label).label)
        j = max(0, min(len(order) - 1, i + delta))
        order.insert(j, order.pop(i))
        self.set_order(order)

    def models_seen(self) -> list[str]:
        """The models this pool has served (at most 64), sorted."""
        return sorted(self._models)

    def learned_rows(self) -> list[tuple[str, str, str, int, float, float]]:
        """Every fitted estimate as (key, model or "", fingerprint, limit, window, sure), to keep across runs."""
        return [(k.label, fit.model, k.fingerprint, fit.limit, fit.window_s, fit.estimate.sure)
                for k in self._keys for fit in k.estimates()]

    def use_windows(self, windows: WindowFactory) -> None:
        """Build budget windows with ``windows`` from now on (a shared store's: held across the fleet); the key's
        learnt limit is then paced by a window of that factory too (``what`` :data:`LEARNED`), since a learnt
        limit is the key's, not this process's."""
        self.windows = windows
        self._learned_windows = {}
        self._share_learned = windows is not local_window
        self._listening = set()
        for key in self._keys:  # the fleet's sends are this factory's from now on
            for learned in (key.learned, *(key.learned_models or {}).values()):
                if learned is not None:
                    learned.fleet = None
        for key in self._keys:  # the declared windows are built again by it (they start from what it holds)
            d = key.declared
            if d is not None:
                self._declare(key, KeySpec(key.label, "", limits=d.limits,
                                           model_limits=tuple((m, w.limits) for m, w in (d.models or {}).items())))

    def _learned_window(self, key: PoolKey, learned: LearnedLimit, model: str | None = None) -> Slots | None:
        """The fleet's window of ``key``'s learnt limit, the key's own or (``learned`` being the key's estimate
        for ``model``) that model's (None without a shared factory or an estimate)."""
        limit, window_s = learned.limit, learned.window_s
        if not self._share_learned or limit is None or window_s is None:
            return None
        # the provider counts a request from its arrival, a little after our pick: the fleet's window takes it at
        # the pick (a lease counts down there), so a new connection's connect before its write is not in it; this
        # process's own estimate holds its requests from their writes (LearnedLimit.accept)
        window_s += learned.margin_s
        scope = key.label if learned is key.learned or model is None else f"{key.label}@{model}"
        slots = self._learned_windows.get(scope)
        if slots is None or slots.limit != limit or slots.window_s != window_s:
            slots = self._learned_windows[scope] = self.windows(self.name, scope, LEARNED, limit, window_s)
        return slots

    def _learned_full(self, key: PoolKey, learned: LearnedLimit, now: float) -> bool:
        """The key's learnt limit leaves no room now: in this process's own window, or in the fleet's."""
        if learned.full(now):
            return True
        shared = self._learned_window(key, learned) if self._share_learned else None
        return shared is not None and shared.room(now) < 1

    def restore_learned(self, label: str, model: str, limit: int, window_s: float) -> bool:
        """An estimate learnt in an earlier run (the caller checks the secret's fingerprint): picks are paced by
        it from the first request; the next 429 re-fits it. False when the key is not here or states budgets."""
        key = self._by_label.get(label)
        if key is None or key.stated or limit < 1 or not 0 < window_s <= 3600:
            return False
        held = (key.learned_models or {}).get(model) if model else key.learned
        if held is not None:  # what this process sent and saw stays: only the estimate changes
            held.adopt(limit, window_s)
            return True
        est = LearnedLimit.restored(limit, window_s)
        if model:
            if key.learned_models is None:
                key.learned_models = {}
            key.learned_models[model] = est
            self._models.add(model)
        else:
            key.learned = est
        return True

    def set_learning(self, on: bool) -> None:
        """Learn limits from 429s and pace picks by them, or stop (forgetting what was learnt, ending its rests)."""
        self.learn = on
        if not on:
            for key in self._keys:
                key.learned = key.learned_models = None
                if key.source is DeadlineSource.LEARNED and key.state is KeyState.COOLING:
                    self._set_state(key, _OK, reason="learned limits off")

    def set_affinity(self, mode: str, wait_s: float | None = None) -> None:
        """Turn conversation affinity on ("prefix", "session") or off; what was held is kept while it stays on."""
        self.affinity = mode
        if wait_s is not None:
            self.affinity_wait_s = wait_s
        if mode == "off":
            self._affinity = None
        elif self._affinity is None:
            self._affinity = AffinityMap(store=self.affinity_store)

    def use_affinity_store(self, store: AffinityStore | None) -> None:
        """Share the conversations' keys through ``store`` (a fleet's) from now on; None: this process alone."""
        self.affinity_store = store
        if self._affinity is not None:
            self._affinity.store = store

    def knows_conversation(self, token: str) -> bool:
        """Whether this pool holds a key for ``token``'s conversation now."""
        return self._affinity is not None and self._affinity.get(token, self.clock.now()) is not None

    def adopt_conversation(self, token: str, label: str) -> bool:
        """The fleet placed ``token``'s conversation on ``label``: keep it there here too (False: no such key,
        or affinity off)."""
        key = self._by_label.get(label)
        if key is None or self._affinity is None:
            return False
        self._affinity.put(token, label, key.cache_group, self.clock.now(), tell=False)
        return True

    @property
    def conversations(self) -> int:
        """Conversations whose key this pool remembers now."""
        return len(self._affinity) if self._affinity is not None else 0

    def conversation_prefix(self, token: str, tokens: int | None) -> None:
        """An answer said how many tokens of ``token``'s prompt the provider cached (the trace shows it)."""
        if self._affinity is not None:
            self._affinity.learned(token, tokens)

    def set_strategy(self, strategy: str) -> None:
        self.strategy = normalize_strategy(strategy)
        self._rebuild_heap()

    # ----------------------------------------------------------------- rotation
    def _expire(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, key, gen = heappop(timers)
            if key.gen == gen and key.pos >= 0 and key.state is not _OK:
                was = key.state
                if key.source in _PACED:  # our own pacing: no probe, no event
                    self._set_state(key, _OK, reason=f"{key.source.value} window has room")
                    continue
                self._set_state(key, _OK, reason=f"{was.value} ended")
                key.probe = _NEXT  # one request probes it before the queue may follow
                self._emit(key, EventKind.STATE, None, f"{was.value} over", "back in rotation",
                           change=StateChange.RECOVERED if was is KeyState.COOLING else StateChange.RELEASED)

    def _choose(self) -> PoolKey:
        strategy, avail, keys = self._strategy, self._avail, self._keys
        if strategy == "round-robin":
            i = bisect_right(avail, self._cursor)
            pos = avail[i] if i < len(avail) else avail[0]
            self._cursor = pos
            return keys[pos]
        if strategy == "failover":
            return keys[avail[0]]
        if strategy == "random":
            return keys[avail[int(self._rng.random() * len(avail))]]
        heap = self._heap  # entries end with (version, key): an entry is stale once its key's version moved on
        while heap:
            top = heap[0]
            key = top[-1]
            if key.ver == top[-2] and key.pos >= 0 and key.state is _OK and key.probe is not _HELD:
                return key
            heappop(heap)
        self._rebuild_heap()
        return self._heap[0][-1]

    def _under_cap(self, key: PoolKey, cap: int, trace: RequestTrace | None, now: float) -> PoolKey:
        """The next available key (in pool order after ``key``) with fewer than ``cap`` in flight, else ``key``."""
        avail, keys = self._avail, self._keys
        start = bisect_right(avail, key.pos)
        for j in range(len(avail)):
            other = keys[avail[(start + j) % len(avail)]]
            if other.inflight + other.streams < cap:
                if trace is not None:
                    trace.add(now, "spill", self.name, other.label,
                              reason=f"{key.label} has {key.inflight + key.streams} in flight (soft cap {cap})")
                return other
        return key  # every key is at the cap: a soft cap never blocks

    def stream_opened(self, key: PoolKey) -> None:
        """A stream committed to ``key`` is flowing: it counts against the in-flight cap until it closes."""
        if not self.detached(key):
            key.streams += 1

    def stream_closed(self, key: PoolKey) -> None:
        if key.streams > 0 and not self.detached(key):
            key.streams -= 1
            if key.probe is _HELD and key.declared is not None and key.inflight == 0 and self._under_concurrency(key):
                self._unhold(key)

    def _model_cooling(self, model: str, now: float) -> dict[PoolKey, float] | None:
        """The keys cooling for ``model`` now (expired entries dropped), or None."""
        cooling = self._model_cool.get(model)
        if cooling is None:
            return None
        for k in [k for k, until in cooling.items() if until <= now or k.pos < 0]:
            del cooling[k]
        if not cooling:
            del self._model_cool[model]
            return None
        return cooling

    def _for_model(self, key: PoolKey, cooling: dict[PoolKey, float], avoid: PoolKey | None = None
                   ) -> PoolKey | None:
        """``key`` unless it cools for the request's model: then the next available key that does not, other
        than ``avoid`` (the key that just failed) while another is left."""
        if key not in cooling:
            return key
        avail, keys = self._avail, self._keys
        start = bisect_right(avail, key.pos)
        fallback = None
        for j in range(len(avail)):
            other = keys[avail[(start + j) % len(avail)]]
            if other not in cooling:
                if other is not avoid:
                    return other
                fallback = other
        return fallback

    def pick(self, trace: RequestTrace | None = None, avoid: PoolKey | None = None,
             model: str | None = None, hold: TokenHold | None = None, affinity: str | None = None
             ) -> PoolKey | None:
        """Choose the key for the next attempt, or None when no key is available.

        ``avoid``: a key that just failed transiently; another available key is preferred for the retry.
        ``model``: the request's model; keys cooling for that model (a 429 of that model) are skipped.
        ``hold``: the request's estimated tokens, held against token budgets (declared or stated) until its
        answer settles them (pass the same ``hold`` to ``report``, ``release``, ``report_transport``, ``add_usage``).
        ``affinity``: the request's conversation token (see ``core/affinity.py``): with affinity on, the key
        that holds its cache (or one of its cache group) while it has room, else the strategy's choice, which
        then holds it.

        One function on purpose (issue 27: pick+report in a few µs, where each call costs as much as a dozen
        lines): the strategy's key (paced by learnt limits, away from ``avoid``, from keys cooling for ``model``
        and over the in-flight cap) and the pick's bookkeeping, without calls in the usual case.
        """
        while True:  # a second turn only when the key chosen was held back by a declared limit (it left the rotation)
            now = self.clock.now()
            timers = self._timers
            if timers and timers[0][0] <= now:
                self._expire(now)
            models = self._models
            if model is not None and len(models) == 1 and model not in models:
                self._split_by_model(next(iter(models)), now)
            avail = self._avail
            if not avail:
                self._none_picked(now, trace)
                return None
            aff = self._affinity if affinity is not None else None
            stayed = None
            if aff is not None and affinity is not None:
                key_or_wait = self._stay(aff, affinity, now, model, avoid, trace)
                if key_or_wait is True:
                    return None  # the conversation's key is back within affinity_wait_s: the caller waits for it
                if isinstance(key_or_wait, PoolKey):
                    stayed = key_or_wait
            if stayed is not None:
                key = stayed
                if model is not None and model not in models and len(models) < 64:
                    models.add(model)
                candidates = len(avail)
            else:
                keys, heap = self._keys, self._heap  # what _choose does, without its call where it can
                if self._rr:
                    i = bisect_right(avail, self._cursor)
                    pos = self._cursor = avail[i] if i < len(avail) else avail[0]
                    key = keys[pos]
                elif not heap or (key := (first := heap[0])[-1]).ver != first[-2] or key.state is not _OK \
                        or key.probe is _HELD:  # (a heap strategy's top, when it is fresh)
                    key = self._choose()
                learn = self.learn
                if learn:
                    while not key.stated and (learned := key.learned) is not None and \
                            (learned.full(now) or (self._share_learned and self._learned_full(key, learned, now))) \
                            and self._pace(key, learned, now, trace):
                        if not avail:  # every key at its learnt limit: the caller waits for the first opening
                            self._none_picked(now, trace)
                            return None
                        key = self._choose()
                candidates = len(avail)
                if key is avoid and candidates > 1:
                    key = self._keys[avail[bisect_right(avail, key.pos) % candidates]]
                    if trace is not None:
                        trace.add(now, "skip", self.name, avoid.label,
                                  reason=f"{avoid.label} just failed: retried elsewhere")
                if model is not None:
                    if model not in models and len(models) < 64:
                        models.add(model)
                    if learn and len(models) > 1 and (lm := key.learned_models) is not None \
                            and (est := lm.get(model)) is not None and (self._share_learned or (
                                (limit := est.limit) is not None and len(est.accepted) + len(est.outstanding) >= limit
                                and est.full(now))):  # (fewer held than the limit, in the window or not: not full)
                        self._pace_model(model, key, now)  # shared: the fleet's window may be full, not this one
                    model_cool = self._model_cool
                    if model_cool and model in model_cool:
                        cooling = self._model_cooling(model, now)
                        if cooling is not None:
                            chosen = self._for_model(key, cooling, avoid)
                            if chosen is None:
                                if trace is not None:
                                    trace.add(now, "pick", self.name, None, candidates=0,
                                              excluded=self._model_exclusions(model, cooling),
                                              excluded_total=len(cooling))
                                return None
                            if chosen is not key and trace is not None:
                                wait = max(0.0, cooling[key] - now)
                                trace.add(now, "skip", self.name, key.label,
                                          reason=f"{key.label} cooling for {model} {wait:.1f} s")
                            key = chosen
                cap = self.max_inflight
                if cap is not None and key.inflight + key.streams >= cap and candidates > 1:
                    key = self._under_cap(key, cap, trace, now)
                if aff is not None and affinity is not None:
                    self._follow(aff, affinity, key, now, model, avoid, trace)
            if self._rr:  # (candidates: what the strategy saw, before any hold below)
                self._cursor = key.pos  # a retry or spill went elsewhere: the rotation goes on from the key used
            # the request's slot and tokens taken from the key's declared windows, or the key held back quietly
            # (until its window has room, its stated token budget resets, or an answer frees a concurrency slot)
            declared = key.declared
            if hold is None and declared is None:
                break
            tokens_in = tokens_out = 0
            if hold is not None:
                ratios = key.ratios
                if ratios:
                    ratio = ratios.get(model or "")
                    tokens_in = int(hold.body_in * (ratio if ratio is not None else ratios.get("", 1.0)))
                else:
                    tokens_in = hold.body_in  # int(body_in * 1.0)
                tokens_out = hold.out
                stated = key.token_allow  # a stated budget counts both (openai's; anthropic's most restrictive)
                if stated is not None and tokens_in + tokens_out > stated and \
                        self._short_of_tokens(key, tokens_in + tokens_out, now, trace):
                    continue
            windows = None
            if declared is not None:
                cap = declared.max_concurrency
                if cap is not None and key.inflight + key.streams >= cap:
                    self._hold_until_answer(key, now, trace, f"declared max_concurrency {cap} reached "
                                            f"({key.inflight + key.streams} in flight)")
                    continue
                by_model = declared.models
                windows = declared if by_model is None or model is None else by_model.get(model, declared)
                local = windows.local
                if local is not None and now - local.last < local.chain_s and \
                        ((tokens_in > 0 and tokens_out > 0) or local.untokened) and \
                        (n := local.pend_requests + 1) <= local.credit_requests and \
                        (t_in := local.pend_in + tokens_in) + (t_out := local.pend_out + tokens_out) <= \
                        local.credit_tokens and t_in <= local.credit_in and t_out <= local.credit_out:
                    # the take joins the key's run of takes within its credit: LocalWindows.take's usual case,
                    # without its call
                    local.pend_requests, local.pend_in, local.pend_out = n, t_in, t_out
                    if now > local.last:
                        local.last = now
                elif (local is None or not local.take(now, tokens_in, tokens_out)) and \
                        (full := windows.claim(now, tokens_in, tokens_out)) is not None:  # (claim's first step first)
                    wait, name, limit = full
                    self._rest(key, model if windows is not declared else None, wait, DeadlineSource.DECLARED,
                               f"declared {name} {limit} reached", now, trace)
                    continue
            if hold is not None:
                hold.on, hold.held, hold.model, hold.ratio_of = windows, (tokens_in, tokens_out), model, key.ratios
                hold.seq = key.stats.requests
                key.tokens_inflight += tokens_in + tokens_out
                if key.token_allow is not None:
                    key.token_allow -= tokens_in + tokens_out
            break
        key.inflight += 1
        allow = key.allow
        if allow is not None:
            allow = key.allow = allow - 1
        est = None
        if self.learn and not key.stated:
            if model is not None and len(models) > 1:  # what _estimate finds, without its call when it exists
                lm = key.learned_models
                est = (lm.get(model) if lm is not None else None) or self._estimate(key, model)
            else:
                est = key.learned or self._estimate(key, model)
            outstanding = est.outstanding
            if not outstanding and est.fleet is None:  # what est.sent does when none is in flight, without its call
                outstanding.append(now)
            else:
                est.sent(now)
            if self._share_learned and (fleet := self._learned_window(key, est, model)) is not None \
                    and not fleet.take(now):
                fleet.settle(now, 0, 1)  # sent all the same (a retry's spill): counted in the fleet's window
        probe = key.probe
        if probe is _NEXT or (probe is not _HELD and (
                (allow is not None and allow <= 0) or (declared is not None and declared.max_concurrency is not None
                                                       and key.inflight + key.streams >= declared.max_concurrency))):
            key.probe = _HELD  # probing after a cooldown, or its budget is spoken for: hold it until an answer
            self._held += 1
            self._excl_cache = None
            self._avail_remove(key.pos)
        stats = key.stats
        stats.requests += 1
        stats.last_used = now
        sec = int(now)  # RollingCounter.add on the key's and the pool's, without their calls in the same second
        counter = stats.per_second
        if counter._sec == sec:
            counter.now_count += 1
        else:
            counter.add(now)
        counter = self.per_second
        if counter._sec == sec:
            counter.now_count += 1
        else:
            counter.add(now)
        self.picks.append(key.label)
        if self._heaped:
            limits = stats.limits
            if limits is not None and limits.requests_limit:
                key.headroom = max(0.0, key.headroom - 1.0 / limits.requests_limit)
            ver = key.ver = key.ver + 1
            heap = self._heap
            top = heap[0] if heap else None
            if top is not None and top[-1] is key and top[-2] == ver - 1:
                # its entry is the top (the usual case): replaced in one step rather than left to be popped stale
                count = key.used_before + stats.requests
                heapreplace(heap, (count, key.pos, ver, key) if self._least else
                            (-key.headroom, count, key.pos, ver, key))
            else:
                self._push(key)
        if trace is not None:
            excluded = self._excl_cache
            if excluded is None:
                excluded = self.exclusions()
            # its record: its step is built when the trace is read
            if est is not None and (limit := est.limit) is not None and (window := est.window_s) is not None:
                accepted = est.accepted  # the learnt limit paced by, and its room: est.held(now), without its calls
                trace.entries.append((now, self.name, key.label, candidates, excluded, len(self._unavail), limit,
                                      window, len(accepted) - bisect_right(accepted, now - est.reach_s)
                                      + len(est.outstanding)))
            else:
                trace.entries.append((now, self.name, key.label, candidates, excluded, len(self._unavail), None,
                                      0.0, 0))
            trace.raw = True
        return key

    def _none_picked(self, now: float, trace: RequestTrace | None) -> None:
        """No key is available: the trace says why (the keys excluded)."""
        if trace is not None:
            trace.add(now, "pick", self.name, None, candidates=0, excluded=self.exclusions(),
                      excluded_total=len(self._unavail))

    def _room(self, key: PoolKey, now: float, model: str | None, avoid: PoolKey | None) -> str | None:
        """Why ``key`` cannot take a request now (None: it can): its state, a held probe, the key that just
        failed, its in-flight cap, its learnt or declared limit, a cooldown for ``model``."""
        if key.pos < 0:
            return "removed"
        if key.state is not _OK:
            return key.state.value
        if key.probe is _HELD:
            return "held"
        if key is avoid:
            return "just failed"
        cap = self.max_inflight
        if cap is not None and key.inflight + key.streams >= cap:
            return f"{key.inflight + key.streams} in flight, cap {cap}"
        if self.learn and not key.stated and key.learned is not None and self._learned_full(key, key.learned, now):
            return "at its learned limit"
        declared = key.declared
        if declared is not None and (not self._under_concurrency(key) or
                                     declared.for_model(model).full(now, 0, 0) is not None):
            return "at its declared limit"
        if model is not None and self._model_cool and model in self._model_cool:
            cooling = self._model_cooling(model, now)
            if cooling is not None and key in cooling:
                return f"cooling for {model}"
        return None

    def _stay(self, held_map: AffinityMap, token: str, now: float, model: str | None, avoid: PoolKey | None,
              trace: RequestTrace | None) -> PoolKey | bool | None:
        """The key that holds ``token``'s cache, or another of its cache group, when one has room; True when
        none has but the holder is back within ``affinity_wait_s`` (the caller waits); else None."""
        holder = held_map.get(token, now)
        if holder is None:
            return None
        held = self._by_label.get(holder.label)
        if held is not None and held.cache_group == holder.group and self._room(held, now, model, avoid) is None:
            held.affinity_hits += 1
            if trace is not None:
                trace.add(now, "affinity", self.name, held.label, stayed=True, prefix_tokens=holder.prefix_tokens,
                          reason=f"stayed on {held.label}: its cache holds this conversation{_prefix(holder)}")
            held_map.put(token, held.label, held.cache_group, now)
            return held
        for other in self._cache_groups.get(holder.group, ()):
            if other is not held and self._room(other, now, model, avoid) is None:
                other.affinity_hits += 1
                if trace is not None:
                    trace.add(now, "affinity", self.name, other.label, stayed=True,
                              prefix_tokens=holder.prefix_tokens,
                              reason=f"went to {other.label}: it shares {holder.label}'s cache, which holds this "
                                     f"conversation{_prefix(holder)}")
                held_map.put(token, other.label, other.cache_group, now)
                return other
        wait_s = self.affinity_wait_s
        if wait_s > 0 and held is not None and held.state is _OK and held.pos >= 0 and self.learn and \
                not held.stated and (learned := held.learned) is not None and self._learned_full(held, learned, now):
            self._pace(held, learned, now, trace)  # at its learnt limit: it rests until its opening, as a pick rests it
        if wait_s > 0 and held is not None and held.state is KeyState.COOLING and held.until is not None \
                and held.until - now <= wait_s:
            if trace is not None:
                trace.add(now, "affinity", self.name, held.label, stayed=False, waits=True,
                          reason=f"waits for {held.label} (cooling {held.until - now:.1f} s): its cache holds this "
                                 f"conversation (affinity_wait_s {wait_s:g})")
            return True
        return None

    def _follow(self, held_map: AffinityMap, token: str, key: PoolKey, now: float, model: str | None,
                avoid: PoolKey | None, trace: RequestTrace | None) -> None:
        """The strategy chose ``key`` for ``token``'s request: the conversation's affinity moves to it."""
        holder = held_map.get(token, now)
        if holder is None:
            self.affinity_new += 1
            held_map.put(token, key.label, key.cache_group, now)
            return
        was = self._by_label.get(holder.label)
        if was is key:  # no key had room: the strategy's spill came back to it (a soft cap never blocks)
            key.affinity_hits += 1
            held_map.put(token, key.label, key.cache_group, now)
            return
        why = self._room(was, now, model, avoid) if was is not None else "removed"
        if was is not None:
            was.affinity_moves += 1
        if trace is not None:
            trace.add(now, "affinity", self.name, key.label, stayed=False, moved_from=holder.label,
                      reason=f"moved from {holder.label} ({why or 'no room'}): affinity follows")
        held_map.put(token, key.label, key.cache_group, now)

    def _short_of_tokens(self, key: PoolKey, need: int, now: float, trace: RequestTrace | None) -> bool:
        """The request needs ``need`` tokens, more than the key's stated budget has left: the key rests until the
        budget resets, or (its reset passed, the rest held by requests in flight) until an answer. False when the
        budget is back in full and has room after all."""
        allow = key.token_allow
        if allow is None or need <= allow:
            return False
        reason = f"stated tokens: {max(0, allow)} left, the request needs ~{need}"
        reset_at = key.token_reset_at
        if reset_at is not None and reset_at > now:
            return self._rest(key, None, reset_at - now, DeadlineSource.STATED, reason, now, trace)
        limits = key.stats.limits  # its reset has passed: the whole budget is back, less what is in flight
        if limits is not None and limits.tokens_limit is not None:
            allow = key.token_allow = limits.tokens_limit - key.tokens_inflight
        if need > allow and key.tokens_inflight > 0:
            return self._hold_until_answer(key, now, trace, f"{reason} (the rest is in flight)")
        return False

    def _hold_until_answer(self, key: PoolKey, now: float, trace: RequestTrace | None, reason: str) -> bool:
        """The key's budget is spoken for by its requests in flight: it is held until one is answered."""
        key.probe = _HELD
        self._held += 1
        self._excl_cache = None
        self._avail_remove(key.pos)
        if trace is not None:
            trace.add(now, "skip", self.name, key.label, reason=f"{key.label}: {reason}")
        return True

    def _rest(self, key: PoolKey, model: str | None, wait: float, source: DeadlineSource, reason: str, now: float,
              trace: RequestTrace | None) -> bool:
        """The key rests ``wait`` seconds (for ``model`` only, when the full window is that model's), quietly."""
        if model is not None:
            cooling = self._model_cool.setdefault(model, {})
            cooling[key] = max(cooling.get(key, 0.0), now + wait)
            if len(self._models) < 64:
                self._models.add(model)
        else:
            self._set_state(key, KeyState.COOLING, now + wait, source, reason)
        if trace is not None:
            what = f" for {model}" if model is not None else ""
            trace.add(now, "skip", self.name, key.label, reason=f"{key.label}: {reason}{what}: opens in {wait:.1f} s")
        return True

    @staticmethod
    def _under_concurrency(key: PoolKey) -> bool:
        declared = key.declared
        cap = declared.max_concurrency if declared is not None else None
        return cap is None or key.inflight + key.streams < cap

    @staticmethod
    def _settle_hold(key: PoolKey, hold: TokenHold | None, used: tuple[int, int] | None, now: float) -> None:
        """The answer to the request holding ``hold`` came: its tokens become ``used`` (None: keep what was held,
        as used), the key's ratio learns from the usage."""
        if hold is None or hold.ratio_of is None:
            return
        if used is None:
            hold.drop(key)
        else:
            hold.settle(key, now, *used)

    def _split_by_model(self, first: str, now: float) -> None:
        """Traffic mixes models for the first time: a key cooling for what the first model's 429s (or spent
        budget) said, on a provider that limits per model, now cools for that model only; what each key learnt
        so far was learnt for that model. A storm on model A from the first request leaves model B served."""
        for key in self._keys:
            if self._scoped and key.learned is not None and key.pos >= 0:
                models = key.learned_models if key.learned_models is not None else {}
                models.setdefault(first, key.learned)
                key.learned_models, key.learned = models, None
            if key.state is KeyState.COOLING and key.cool_model == first and (key.until or 0) > now:
                cooling = self._model_cool.setdefault(first, {})
                cooling[key] = max(cooling.get(key, 0.0), key.until or now)
                self._set_state(key, _OK)
                self._emit(key, EventKind.STATE, None, f"a second model is served: its cooldown is {first}'s",
                           f"cools for {first} only", None, StateChange.SCOPED)

    def _estimate(self, key: PoolKey, model: str | None) -> LearnedLimit:
        """The estimate a request of ``model`` on ``key`` counts against: the key's, or the key's for that model
        once the pool serves several models (429s then speak of one model)."""
        if model is not None and len(self._models) > 1:
            models = key.learned_models
            if models is None:
                models = key.learned_models = {}
            learned = models.get(model)
            if learned is None:
                learned = models[model] = LearnedLimit()
            if learned.fleet is None and self._share_learned:  # new, restored, or built before the store came
                learned.fleet = self._sends(key, model)
            return learned
        learned = key.learned
        if learned is None:
            learned = key.learned = LearnedLimit()
        if learned.fleet is None and self._share_learned:
            learned.fleet = self._sends(key, None)
        return learned

    def _sends(self, key: PoolKey, model: str | None) -> FleetSends | None:
        """The fleet's sends of ``key`` (for ``model``) where windows are shared: learnt limits are fitted from
        them (learned.py: FleetSends); a 429 waiting for them is fitted when they are read."""
        windows = self.windows
        if not self._share_learned or not isinstance(windows, SendLogs):
            return None
        scope = key.label if model is None else f"{key.label}@{model}"
        log = windows.sends(self.name, scope)
        if scope not in self._listening:  # once per key (and model): estimates built again find it there
            self._listening.add(scope)
            label = key.label
            log.when_read(lambda: self._refit(label, model))
        return log

    def _pace(self, key: PoolKey, learned: LearnedLimit, now: float, trace: RequestTrace | None) -> bool:
        """The key's learnt window is full: it rests until the window has room again, instead of collecting a
        429. Returns False when it has room after all."""
        wait = learned.opens_in(now)
        fleet = self._learned_window(key, learned) if self._share_learned else None
        if fleet is not None:
            wait = max(wait, fleet.opens_in(now))
        if wait <= 0:
            return False
        reason = f"learned limit {learned.limit} per {learned.window_s:.1f} s reached"
        self._set_state(key, KeyState.COOLING, now + wait, DeadlineSource.LEARNED, reason)
        if trace is not None:
            trace.add(now, "skip", self.name, key.label, reason=f"{key.label}: {reason}, room in {wait:.1f} s")
        return True

    def _pace_model(self, model: str, key: PoolKey, now: float) -> None:
        """Keys whose learnt window for ``model`` is full rest for that model (a per-model cooldown, quiet)."""
        models = key.learned_models
        learned = models.get(model) if models is not None else None
        if learned is None:
            return
        fleet = self._learned_window(key, learned, model) if self._share_learned else None
        if not learned.full(now) and (fleet is None or fleet.room(now) >= 1):
            return
        wait = learned.opens_in(now)
        if fleet is not None:  # the fleet's window of the model's learnt limit, held like the key's own
            wait = max(wait, fleet.opens_in(now))
        if wait > 0:
            cooling = self._model_cool.setdefault(model, {})
            cooling[key] = max(cooling.get(key, 0.0), now + wait)
            for other in self._keys:  # the others of the pool whose window for it is full too
                lm = other.learned_models
                est = lm.get(model) if lm is not None and other is not key else None
                if est is not None and other.pos >= 0 and est.full(now) and (w := est.opens_in(now)) > 0:
                    cooling[other] = max(cooling.get(other, 0.0), now + w)

    def _learn(self, key: PoolKey, result: Classification, picked_at: float, request_id: int | None,
               model: str | None, written_s: float = 0.0) -> None:
        """What this answer teaches about the key's limit (only where successes state no budget: a provider that
        sends its limits only with its 429s, or none at all), for a request picked at ``picked_at`` and written
        ``written_s`` later (a request counts from its send)."""
        if result.outcome is not Outcome.RATE_LIMITED and result.limits is not None and \
                result.limits.requests_remaining is not None:
            key.stated = True  # successes state the budget: headers always win over a guess
            key.learned = key.learned_models = None
            return
        learned = self._estimate(key, model)
        before = learned.limit
        sent_at = picked_at + written_s
        picked = picked_at if written_s else None
        if result.outcome is Outcome.RATE_LIMITED and result.tokens:
            fitted = learned.answered(picked_at)  # a token budget spent says nothing of the request count (learned.py)
            self._learn_tokens(key, result.reason, sent_at, request_id)
        elif result.outcome is Outcome.RATE_LIMITED:
            fitted = learned.rate_limited(sent_at, result.retry_after_s, picked)
        elif result.outcome in _COUNTED:
            fitted = learned.accept(sent_at, picked)
        else:
            fitted = learned.answered(picked_at)
        if fitted and learned.limit != before:
            self._learnt(key, learned, model, request_id)

    def _learn_tokens(self, key: PoolKey, message: str, sent_at: float, request_id: int | None) -> None:
        """A 429 that says tokens: the key has a token budget, the one the message states, else what its answers
        used in the minute before (core/learned_tokens.py); held like a declared one from now on."""
        stated = stated_budget(message)
        if stated is not None:
            name, limit = stated
        else:
            name = spent_window(message)
            limit = key.token_log.fitted(sent_at, name) if key.token_log is not None else 0
        if limit > 0:
            self.learn_token_budget(key.label, name, limit, request_id)

    def learn_token_budget(self, label: str, name: str, limit: int, request_id: int | None = None) -> bool:
        """Hold ``label``'s picks within a token budget ``name`` (``tpm``, ``itpm``, ``otpm``) of ``limit`` per
        minute, learnt (here from a 429, or by another process of the fleet); a smaller one known already, declared
        or learnt, is kept. Its window starts with the tokens the key's answers used in the last minute. True when
        it changed anything."""
        key = self._by_label.get(label)
        if key is None or limit < 1 or name not in ("tpm", "itpm", "otpm") or self.detached(key):
            return False
        d = key.declared
        base = d.limits if d is not None else KeyLimits()
        held = getattr(base, name)
        if held is not None and held <= limit:
            return False
        models = tuple((m, w.limits) for m, w in (d.models or {}).items()) if d is not None else ()
        self._declare(key, KeySpec(key.label, "", limits=replace(base, **{name: limit}), model_limits=models))
        key.learned_tokens = {**(key.learned_tokens or {}), name: limit}
        now = self.clock.now()
        if key.declared is not None and key.token_log is not None:
            windows = {"tpm": key.declared.tokens, "itpm": key.declared.inputs, "otpm": key.declared.outputs}[name]
            for at, units in key.token_log.within(now, name):  # the provider's window holds them: ours too
                for _, slots in windows:
                    slots.settle(at, 0, units)
        self._emit(key, EventKind.STATE, None, f"learned token limit {name} {limit}", "picks hold their tokens",
                   request_id, StateChange.TOKENS_LEARNED)
        return True

    def _learnt(self, key: PoolKey, learned: LearnedLimit, model: str | None, request_id: int | None) -> None:
        what = f" for {model}" if model is not None else ""
        self._emit(key, EventKind.STATE, None, f"learned limit{what} {learned.limit} per "
                   f"{learned.window_s:.1f} s (sure {learned.sure:.0%})", "picks paced by it", request_id,
                   StateChange.LEARNED)

    def _refit(self, label: str, model: str | None) -> None:
        """The fleet's sends of the key were read: a 429 that waited for them is fitted now."""
        key = self._by_label.get(label)
        if key is None:
            return
        learned = (key.learned_models or {}).get(model) if model is not None else key.learned
        if learned is None or not learned.pending:
            return
        before = learned.limit
        if learned.refit() and learned.limit != before:
            self._learnt(key, learned, model, None)

    def peek(self) -> str | None:
        """The label the next pick will get (None for random or an empty pool)."""
        now = self.clock.now()
        if self._timers and self._timers[0][0] <= now:
            self._expire(now)
        avail = self._avail
        if not avail or self.strategy == "random":
            return None
        if self.strategy == "round-robin":
            i = bisect_right(avail, self._cursor)
            return self._keys[avail[i] if i < len(avail) else avail[0]].label
        if self.strategy == "failover":
            return self._keys[avail[0]].label
        return self._choose().label

    def release(self, key: PoolKey, model: str | None = None, latency_s: float = 0.0,
                hold: TokenHold | None = None) -> None:
        """The attempt on ``key`` (for ``model``, sent ``latency_s`` ago: 0 for one never sent) ended without a
        response to report (cancelled, past its deadline)."""
        if self.detached(key):
            key.inflight = max(0, key.inflight - 1)
            return
        if key.inflight > 0:
            key.inflight -= 1
        if latency_s <= 0:  # never sent: its slot and tokens come back
            if key.declared is not None:
                key.declared.for_model(model).give_back_request(self.clock.now())
            self._settle_hold(key, hold, (0, 0), self.clock.now())
        else:
            self._settle_hold(key, hold, None, self.clock.now())
        if self.learn and not key.stated:
            est = self._estimate(key, model)
            est.answered(self.clock.now() - latency_s)
            if latency_s == 0 and self._share_learned and \
                    (fleet := self._learned_window(key, est, model)) is not None:
                fleet.settle(self.clock.now(), 1, 0)  # never sent: its slot is free again for the fleet
        if key.allow is not None:
            key.allow += 1
        if key.probe is _HELD and self._under_concurrency(key):
            self._unhold(key)

    def _answered(self, key: PoolKey) -> None:
        """An answer came back: a held key rejoins unless its budget is still spoken for by others in flight."""
        if key.probe is _HELD and (key.allow is None or key.allow > 0 or key.inflight == 0) and \
                (key.declared is None or self._under_concurrency(key)):
            self._unhold(key)

    def _unhold(self, key: PoolKey) -> None:
        """The recovery probe on ``key`` came back: the key rejoins the rotation if it is still ok."""
        key.probe = _NONE
        self._held -= 1
        self._excl_cache = None
        if key.state is _OK and key.pos >= 0:
            self._avail_add(key.pos)
            key.ver += 1
            self._push(key)

    def _avail_remove(self, pos: int) -> None:
        i = bisect_right(self._avail, pos) - 1
        if 0 <= i < len(self._avail) and self._avail[i] == pos:
            del self._avail[i]

    def _avail_add(self, pos: int) -> None:
        i = bisect_right(self._avail, pos)
        if not (i and self._avail[i - 1] == pos):
            self._avail.insert(i, pos)

    def report(
        self,
        key: PoolKey,
        result: Classification,
        latency_s: float = 0.0,
        tokens_in: int = 0,
        tokens_out: int = 0,
        request_id: int | None = None,
        cost: float | None = None,
        model: str | None = None,
        hold: TokenHold | None = None,
        written_s: float = 0.0,
    ) -> None:
        """Record what the provider answered to the attempt that ``key`` served (for ``model``, if known:
        a 429 then cools the key for that model only; quota, invalid and forbidden stay per key). ``hold``: the
        request's tokens held by the pick, settled from the usage (a stream's with ``add_usage``). ``latency_s``:
        from the attempt's start (its pick) to the answer; ``written_s``: from its start to the request's write
        (a new connection's connect first), when the provider began counting it (its learnt limit counts from
        there)."""
        if self._by_label.get(key.label) is not key and self.detached(key):
            key.inflight = max(0, key.inflight - 1)  # removed or given a new secret meanwhile: the answer goes
            return  # to its caller
        if key.inflight > 0:
            key.inflight -= 1
        now = self.clock.now()
        limits = result.limits
        outcome = result.outcome
        seq = key.token_seq
        if hold is not None and hold.ratio_of is not None:
            seq = hold.seq
            if outcome is not _OUTCOME_OK:
                hold.settle(key, now, 0, 0)  # refused: no tokens counted
            elif tokens_in or tokens_out:
                hold.settle(key, now, tokens_in, tokens_out)
        if result.model_scoped and model is not None:
            self._scoped = True
        # headers and 429s speak of that model only when the pool serves several
        per_model = model if model is not None and len(self._models) > 1 else None
        if limits is not None:
            # the budget an answer states counts what was sent before it: an answer overtaken by a later one's is
            # stale
            if limits.tokens_remaining is not None and seq >= key.token_seq:
                self._tokens_counted = True
                key.token_seq = seq
                key.token_allow = limits.tokens_remaining - key.tokens_inflight
                key.token_reset_at = now + limits.tokens_reset_s if limits.tokens_reset_s else None
            if limits.requests_remaining is not None and per_model is None:
                key.allow = limits.requests_remaining - key.inflight
        if key.probe is _HELD:
            self._answered(key)
        stats = key.stats
        stats.latencies.append(latency_s)
        if limits is not None:
            stats.saw(result.org, limits if outcome is _OUTCOME_OK else None, now)
            stats.limits = limits
            headroom = limits.headroom()
            if headroom != key.headroom:
                key.headroom = headroom
                if self._heaped and not self._least and key.state is _OK:  # headroom's heap orders by it
                    key.ver += 1
                    self._push(key)
            # (otherwise the key's heap entry, fresh since its pick, already holds its headroom and count)
        elif result.org is not None:
            stats.saw(result.org, None, now)
        if self.learn and not key.stated:
            if outcome is _OUTCOME_OK and (limits is None or limits.requests_remaining is None):
                # what _learn does for a success that states no budget, without its calls
                if per_model is not None:
                    lm = key.learned_models
                    est = lm.get(per_model) if lm is not None else None
                else:
                    est = key.learned
                if est is None or (est.fleet is None and self._share_learned):
                    est = self._estimate(key, per_model)
                sent_at = now - latency_s  # its pick; its send is a connect later on a new connection
                if written_s:
                    sent_at += written_s
                out, accepted = est.outstanding, est.accepted
                if len(out) == 1 and est.fleet is None and not est.pending and \
                        (not accepted or sent_at >= accepted[-1]) and len(accepted) < _ACCEPTED_KEPT and \
                        ((limit := est.limit) is None or len(accepted) + 1 < limit):
                    # LearnedLimit.accept's usual case, without its call: the one request in flight answered, in
                    # order, nothing to trim, below the limit (no additive increase to time), no 429 to fit
                    out.pop()
                    accepted.append(sent_at)
                    if limit is not None and est._full_since is not None:
                        est._full_since = None
                else:
                    before = est.limit
                    if est.accept(sent_at, now - latency_s if written_s else None) and est.limit != before:
                        self._learnt(key, est, per_model, request_id)
            else:
                self._learn(key, result, now - latency_s, request_id, per_model, written_s)
        if outcome is _OUTCOME_OK:
            stats.ok += 1
            if tokens_in or tokens_out:
                stats.tokens_in += tokens_in
                stats.tokens_out += tokens_out
                if self.learn and not key.stated:  # a 429 for tokens may fit from them
                    if key.token_log is None:
                        key.token_log = TokenLog()
                    key.token_log.entries.append((now, tokens_in, tokens_out))  # (TokenLog.add, without its call)
            if cost:
                stats.cost += cost
            key.strikes = 0
            if key.spend is not None:
                self._spend(key, tokens_in + tokens_out, cost or 0.0, request_id)
            if limits is not None and self.preempt and key.state is _OK and key.pos >= 0:
                if per_model is not None:
                    self._preempt_model(key, per_model, limits, request_id)
                else:
                    self._preempt(key, limits, request_id)
                    if result.model_scoped and key.state is KeyState.COOLING:
                        key.cool_model = model
            return
        if self._timers and self._timers[0][0] <= now:
            self._expire(now)  # a cooldown that has ended is over before this new signal counts
        if outcome is Outcome.RATE_LIMITED:
            stats.rate_limited += 1
            if per_model is not None:
                self._cool_model(key, per_model, result, now, request_id)
            else:
                self._cool(key, result, now, request_id, model if result.model_scoped else None)
        elif outcome is Outcome.QUOTA:
            stats.quota += 1
            self._park(key, result, now, request_id)
        elif outcome in (Outcome.INVALID, Outcome.FORBIDDEN):
            self._bar(key, result, request_id)
        elif outcome is Outcome.TRANSIENT:
            stats.server_errors += 1
            self._emit(key, EventKind.SERVER_ERROR, result.status, result.reason, "backed off (key not blamed)",
                       request_id)
        else:
            stats.request_errors += 1

    def _park(self, key: PoolKey, result: Classification, now: float, request_id: int | None) -> None:
        """Quota or billing: the key (and its quota group) is parked until the reset, else until re-verified."""
        until = now + result.retry_after_s if result.retry_after_s is not None else None
        targets = self._group(key)
        for k in targets:
            if k.state in (_OK, KeyState.COOLING):
                self._set_state(k, KeyState.EXHAUSTED, until, result.source, result.reason, result.status)
        action = f"parked until {clock(until, utc=True)}" if until else "parked until re-verified"
        if len(targets) > 1:
            action += f" with quota group {key.quota_group}"
        self._emit(key, EventKind.QUOTA, result.status, result.reason, action, request_id, StateChange.PARKED)

    def _bar(self, key: PoolKey, result: Classification, request_id: int | None) -> None:
        """Invalid (401 class) or forbidden (403 class): the key stops serving until verified again."""
        invalid = result.outcome is Outcome.INVALID
        if invalid:
            key.stats.invalid += 1
        else:
            key.stats.forbidden += 1
        state = KeyState.INVALID if invalid else KeyState.FORBIDDEN
        if key.state is not KeyState.DISABLED:
            self._set_state(key, state, None, None, result.reason, result.status)
        self._emit(key, EventKind.INVALID if invalid else EventKind.FORBIDDEN, result.status, result.reason,
                   f"marked {state.value}", request_id, StateChange.BARRED)

    def report_transport(self, key: PoolKey, error: str, latency_s: float = 0.0,
                         request_id: int | None = None, model: str | None = None,
                         hold: TokenHold | None = None) -> None:
        """The attempt on ``key`` failed below HTTP (timeout, connection refused...)."""
        if self.detached(key):  # removed or given a new secret meanwhile: the answer goes to its caller
            key.inflight = max(0, key.inflight - 1)
            return
        if key.inflight > 0:
            key.inflight -= 1
        self._settle_hold(key, hold, None, self.clock.now())  # it may have been served: what it held stays counted
        if self.learn and not key.stated:
            est = self._estimate(key, model)
            est.answered(self.clock.now() - latency_s)
            if latency_s == 0 and self._share_learned and \
                    (fleet := self._learned_window(key, est, model)) is not None:
                fleet.settle(self.clock.now(), 1, 0)  # never sent: its slot is free again for the fleet
        self._answered(key)
        key.stats.transport += 1
        key.stats.latencies.append(latency_s)
        self._emit(key, EventKind.TRANSPORT, None, error, "backed off (key not blamed)", request_id)

    def add_usage(self, key: PoolKey, tokens_in: int, tokens_out: int, cost: float | None = None,
                  hold: TokenHold | None = None) -> None:
        """Tokens learnt after the report (the tail of a stream); they settle what ``hold`` held."""
        if self.detached(key):
            return
        self._settle_hold(key, hold, (tokens_in, tokens_out) if tokens_in or tokens_out else None, self.clock.now())
        key.stats.tokens_in += tokens_in
        key.stats.tokens_out += tokens_out
        if cost:
            key.stats.cost += cost
        if key.spend is not None and key.pos >= 0:
            self._spend(key, tokens_in + tokens_out, cost or 0.0, None)

    def add_cache(self, key: PoolKey, read: int, written: int, cacheable: int, round_robin_extra: float = 0.0
                  ) -> None:
        """What an answer on ``key`` said its prompt cache did, in tokens (its hit rate: read / cacheable), and
        what round-robin without affinity would have paid more for it (USD)."""
        if not self.detached(key):
            key.cache_read += read
            key.cache_write += written
            key.cacheable += cacheable
            key.cost_round_robin_extra += round_robin_extra

    def restore(self, label: str, state: str, until: float | None, source: str | None, reason: str,
                status: int | None = None) -> bool:
        """Re-apply a state remembered from an earlier run (if it has not ended). Returns True if applied."""
        key = self._by_label.get(label)
        try:
            st = KeyState(state)
            src = DeadlineSource(source) if source else None
        except ValueError:
            return False
        if key is None or st is _OK or (until is not None and until <= self.clock.now()):
            return False
        if st in (KeyState.COOLING,) and until is None:
            return False
        self._set_state(key, st, until, src, reason, status)
        return True

    def restore_model_cooldown(self, label: str, model: str, until: float) -> bool:
        """Cool ``label`` for ``model`` until ``until`` (learnt elsewhere: another process, a restart); a
        longer cooldown already known is kept. Returns True if it changed anything."""
        key = self._by_label.get(label)
        if key is None or until <= self.clock.now() or not model:
            return False
        cooling = self._model_cool.setdefault(model, {})
        if cooling.get(key, 0.0) >= until:
            return False
        cooling[key] = until
        if len(self._models) < 64:
            self._models.add(model)
        return True

    def rotation_state(self) -> tuple[str | None, dict[str, int]]:
        """Where the rotation stands: the last key picked, and each key's request count (to persist)."""
        last = self._keys[self._cursor].label if 0 <= self._cursor < len(self._keys) else None
        return last, {k.label: k.used_before + k.stats.requests for k in self._keys}

    def restore_rotation(self, last: str | None, requests: dict[str, int]) -> None:
        """Go on where an earlier run stopped: round-robin after ``last``, least-used from those counts."""
        for label, count in requests.items():
            key = self._by_label.get(label)
            if key is not None and isinstance(count, int) and not isinstance(count, bool) and count >= 0:
                key.used_before = max(0, count - key.stats.requests)  # this run's own counters stay its own
        key = self._by_label.get(last) if last is not None else None
        if key is not None:
            self._cursor = key.pos
        self._rebuild_heap()

    def set_budget(self, label: str, budget: Budget | None, spent: Spend | None = None) -> None:
        """Give a key a budget (None removes it); ``spent`` seeds what it already spent this period."""
        key = self.key(label)
        if budget is None or not budget.is_set():
            key.budget = key.spend = None
            return
        key.budget = budget
        key.spend = spent or Spend()
        self._spend(key, 0, 0.0, None)

    def check_budget(self, label: str) -> None:
        """Park the key if what it spent (here, or across processes when a shared store fed its counters)
        has reached its budget."""
        key = self.key(label)
        if key.budget is not None and key.spend is not None:
            self._spend(key, 0, 0.0, None)

    def _spend(self, key: PoolKey, tokens: int, cost: float, request_id: int | None) -> None:
        """Count what the key spent and park it if that reaches its budget (a key without one: nothing)."""
        spend, budget = key.spend, key.budget
        if spend is None or budget is None:
            return
        now = self.clock.now()
        spend.add(now, tokens, cost)
        over = spend.over(budget, now)
        if over is not None and key.state in (_OK, KeyState.COOLING):
            what, reset = over
            self._set_state(key, KeyState.EXHAUSTED, reset, DeadlineSource.BUDGET, f"budget: {what} reached")
            self._emit(key, EventKind.QUOTA, None, f"budget: {what} reached",
                       f"parked until {clock(reset, utc=True)}", request_id, StateChange.PARKED)

    def _preempt(self, key: PoolKey, limits: RateLimits, request_id: int | None) -> None:
        """A success that says the budget is spent: cool the key until the reset, before it 429s."""
        reset = None
        if limits.requests_remaining == 0 and limits.requests_reset_s:
            reset = limits.requests_reset_s
        elif limits.tokens_remaining == 0 and limits.tokens_reset_s:
            reset = limits.tokens_reset_s
        if reset is None:
            return
        self._set_state(key, KeyState.COOLING, self.clock.now() + reset, DeadlineSource.RESET_HEADER,
                        "budget spent (remaining 0)", 200)
        self._emit(key, EventKind.STATE, 200, "budget spent (remaining 0)",
                   f"cooled {reset:.1f} s before a 429 (reset-header)", request_id, StateChange.COOLED)

    def _preempt_model(self, key: PoolKey, model: str, limits: RateLimits, request_id: int | None) -> None:
        """A success whose headers say this model's budget is spent: cool the key for that model only."""
        reset = limits.reset_s() if (limits.requests_remaining == 0 or limits.tokens_remaining == 0) else None
        if not reset:
            return
        until = self.clock.now() + reset
        cooling = self._model_cool.setdefault(model, {})
        before = cooling.get(key, 0.0)
        cooling[key] = max(before, until)
        if reset < SHORTEST_COOL_TOLD_S or until <= before:
            return  # nothing (that a person could see) starts cooling: not an event
        self._emit(key, EventKind.STATE, 200, f"{model}: budget spent (remaining 0)",
                   f"cooled {reset:.1f} s for {model} before a 429 (reset-header)", request_id,
                   StateChange.MODEL_COOLED)

    def _group(self, key: PoolKey) -> list[PoolKey]:
        if key.quota_group is None:
            return [key]
        return [k for k in self._keys if k.quota_group == key.quota_group]

    def _cool_model(self, key: PoolKey, model: str, result: Classification, now: float,
                    request_id: int | None) -> None:
        """A 429 for one model: the key (and its quota group) cools for that model; other models still use it.
        A second model's 429 while the first still cools on the key says the limit is the key's: it cools whole."""
        if result.model_scoped and any(m != model and keys.get(key, 0.0) > now
                                       for m, keys in self._model_cool.items()):
            self._cool(key, result, now, request_id)
            return
        if result.retry_after_s is None:
            key.strikes += 1
        seconds, source, floor_note = self._cooldown_for(key, result)
        until = now + seconds
        cooling = self._model_cool.setdefault(model, {})
        for k in self._group(key):
            cooling[k] = max(cooling.get(k, 0.0), until)
        action = f"cooled {duration(seconds, spaced=True)} for {model} ({source.value}); other models still use it"
        self._emit(key, EventKind.RATE_LIMITED, result.status, result.reason, action + floor_note, request_id,
                   StateChange.MODEL_COOLED)

    def _cooldown_for(self, key: PoolKey, result: Classification) -> tuple[float, DeadlineSource, str]:
        """How long a 429 cools: the provider's wait raised to the floor ("retry at once" is how a storm
        starts), else the default that escalates with the key's strikes; and a note when the floor applied."""
        said = result.retry_after_s
        if said is None:
            return self.cooldown.default_for(max(1, key.strikes), len(self._keys)), DeadlineSource.DEFAULT, ""
        floor = self.cooldown.floor_s
        note = f"; floor {floor:g} s applied (provider said {said:g} s)" if said < floor else ""
        return max(said, floor), result.source or DeadlineSource.RETRY_AFTER, note

    def _cool(self, key: PoolKey, result: Classification, now: float, request_id: int | None,
              model: str | None = None) -> None:
        """A 429 of the key (``model``: the one model it spoke of, on a provider that limits per model)."""
        if key.state is _OK:
            key.strikes += 1
        seconds, source, floor_note = self._cooldown_for(key, result)
        until = now + seconds
        changed = []
        for k in self._group(key):
            if k.state is _OK or (k.state is KeyState.COOLING and (k.until or 0) < until):
                extended = k.state is KeyState.COOLING
                self._set_state(k, KeyState.COOLING, until, source, result.reason, result.status)
                k.cool_model = model
                changed.append((k, extended))
        if not changed:
            left = (key.until or now) - now
            action = f"already cooling, {left:.1f} s left" if key.state is KeyState.COOLING else \
                f"already {key.state.value}"
        elif changed[0][1] and len(changed) == 1:
            action = f"cooldown extended to {duration(seconds, spaced=True)} ({source.value})"
        else:
            action = f"cooled {duration(seconds, spaced=True)} ({source.value})"
            if len(changed) > 1:
                action += f"; quota group {key.quota_group}: {len(changed)} keys"
        self._emit(key, EventKind.RATE_LIMITED, result.status, result.reason, action + floor_note, request_id,
                   StateChange.COOLED if changed else None)

    # ----------------------------------------------------------------- state
    def _set_state(
        self,
        key: PoolKey,
        state: KeyState,
        until: float | None = None,
        source: DeadlineSource | None = None,
        reason: str = "",
        status: int | None = None,
    ) -> None:
        was_ok = key.state is _OK
        key.state = state
        key.cool_model = None
        key.until = until
        key.source = source
        key.reason = scrub(reason) if reason else reason
        key.status_code = status
        key.changed_at = self.clock.now()
        key.gen += 1
        self._excl_cache = None
        if until is not None:
            heappush(self._timers, (until, next(self._seq), key, key.gen))
        if was_ok and state is not _OK:
            self._avail_remove(key.pos)
            self._unavail[key] = None
        elif not was_ok and state is _OK:
            self._forget_spent(key)
            if key.probe is not _HELD:
                self._avail_add(key.pos)
            self._unavail.pop(key, None)
            key.ver += 1
            self._push(key)

    @staticmethod
    def _forget_spent(key: PoolKey) -> None:
        """A key back from a cooldown or parking: the headers' "0 remaining" of before no longer holds."""
        limits = key.stats.limits
        if limits is not None and (limits.requests_remaining == 0 or limits.tokens_remaining == 0):
            key.stats.limits = replace(limits, requests_remaining=None, tokens_remaining=None)
            key.headroom = 1.0
        key.allow = None
        # its stated token budget rested until its reset: the whole budget is back (less what is in flight)
        key.token_allow = limits.tokens_limit - key.tokens_inflight if key.token_allow is not None and \
            limits is not None and limits.tokens_limit is not None else None

    def _emit(self, key: PoolKey | None, kind: EventKind, status: int | None, reason: str, action: str,
              request_id: int | None = None, change: StateChange | None = None) -> None:
        self.events.emit(Event(self.clock.now(), self.name, key.label if key else None, kind, status,
                               reason, action, request_id, change))

    def disable(self, label: str, until: float | None = None, reason: str = "disabled by hand") -> None:
        key = self.key(label)
        self._set_state(key, KeyState.DISABLED, until, DeadlineSource.MANUAL if until else None, reason)
        self._emit(key, EventKind.STATE, None, reason,
                   f"disabled until {clock(until, utc=True)}" if until else "disabled", change=StateChange.DISABLED)

    def enable(self, label: str) -> None:
        key = self.key(label)
        if key.state is KeyState.DISABLED:
            self._set_state(key, _OK, reason="enabled by hand")
            self._emit(key, EventKind.STATE, None, "enabled by hand", "back in rotation", change=StateChange.ENABLED)

    def reset(self, label: str | None = None) -> int:
        """Clear cooldowns and quota parking (all keys, or one). Returns how many keys came back."""
        keys = [self.key(label)] if label else self._keys
        n = 0
        for key in keys:
            key.strikes = 0
            if key.state in (KeyState.COOLING, KeyState.EXHAUSTED):
                self._set_state(key, _OK, reason="reset by hand")
                self._emit(key, EventKind.STATE, None, "cooldown reset by hand", "back in rotation",
                           change=StateChange.RESET)
                n += 1
        return n

    def mark_verified(self, label: str, result: Classification) -> None:
        """Apply a verification result: a valid key comes back (unless disabled), a bad one is parked."""
        key = self.key(label)
        if result.outcome is Outcome.OK:
            action = "verified"
            if key.state not in (_OK, KeyState.DISABLED):
                self._set_state(key, _OK, reason="verified")
                action = "back in rotation"
            self._emit(key, EventKind.STATE, result.status, "verified valid", action, change=StateChange.VERIFIED)
            if result.limits is not None:
                key.stats.limits = result.limits
            return
        key.inflight += 1  # report() decrements: verification is an attempt of its own
        self.report(key, result)

    # ----------------------------------------------------------------- views
    def paced(self) -> int:
        """Keys resting at their learnt limit until their window has room (healthy, not counted as usable)."""
        return sum(1 for k in self._unavail if k.source in _PACED) if self._unavail else 0

    def usable(self) -> int:
        """Keys that can serve (a key whose recovery probe is in flight counts)."""
        self._expire_due()
        return len(self._avail) + self._held

    def _expire_due(self) -> None:
        """Keys whose deadline has passed are back (every view of the pool starts here)."""
        now = self.clock.now()
        if self._timers and self._timers[0][0] <= now:
            self._expire(now)

    def figures(self) -> PoolFigures:
        """Usable and paced keys, the next recovery and the summary line, each worked out once."""
        usable = self.usable()
        wait = self.next_ready_in()
        return PoolFigures(usable, self.paced(), wait, self._summary(wait))

    def _model_exclusions(self, model: str, cooling: dict[PoolKey, float]) -> tuple[Exclusion, ...]:
        return tuple(Exclusion(k.label, f"cooling for {model}", until, DeadlineSource.RETRY_AFTER.value, "")
                     for k, until in itertools.islice(cooling.items(), _EXCLUSIONS_SHOWN))

    def model_cooldowns(self, key: PoolKey) -> dict[str, float]:
        """The models ``key`` is cooling for, with their deadlines (the monitor shows them under the key)."""
        now = self.clock.now()
        return {m: until for m, cooling in self._model_cool.items() if (until := cooling.get(key, 0.0)) > now}

    def next_ready_in(self, model: str | None = None) -> float | None:
        """Seconds until the earliest timed recovery (cooldown, quota reset, timed disable), or None.

        With ``model``: when every available key cools for that model, the earliest of those ends counts too.
        """
        if model is not None and self._model_cool:
            cooling = self._model_cooling(model, self.clock.now())
            if cooling is not None and self._avail and all(self._keys[p] in cooling for p in self._avail):
                return max(0.0, min(cooling[self._keys[p]] for p in self._avail) - self.clock.now())
        timers = self._timers
        while timers and (timers[0][2].gen != timers[0][3] or timers[0][2].pos < 0):
            heappop(timers)
        probe = _PROBE_WAIT_S if self._held else None
        if not timers:
            return probe
        wait = max(0.0, timers[0][0] - self.clock.now())
        return wait if probe is None else min(wait, probe)

    def answer_time_s(self) -> float:
        """The quickest median answer time of its keys (0 before any answer): a wait that leaves less than this
        before a request's deadline would only spend a slot of the provider's window on an answer nobody takes."""
        medians = [m for k in self._keys if k.stats.latencies and (m := k.stats.p50()) is not None]
        return min(medians) if medians else 0.0

    def wait_reason(self, model: str | None = None) -> tuple[str, bool]:
        """Why a request waits now (the pool in one line, led by what it waits for), and whether the first
        opening is a learnt limit's room rather than a provider's reset."""
        now = self.clock.now()
        summary = self.summary()
        if model is not None and self._model_cool:
            cooling = self._model_cooling(model, now)
            if cooling is not None and self._avail and all(self._keys[p] in cooling for p in self._avail):
                key = min((self._keys[p] for p in self._avail), key=lambda k: cooling[k])
                est = (key.learned_models or {}).get(model)
                if est is not None and est.full(now):
                    return (f"a learned opening: {key.label} has room for {model} in "
                            f"{max(0.0, cooling[key] - now):.1f} s (learned limit {est.limit} per "
                            f"{est.window_s:.1f} s); {summary}", True)
                return f"{key.label} cooling for {model}; {summary}", False
        self.next_ready_in()  # drops stale timers
        if self._timers:
            until, _, key, _ = self._timers[0]
            if key.source is DeadlineSource.LEARNED and key.learned is not None:
                return (f"a learned opening: {key.label} has room in {max(0.0, until - now):.1f} s (learned limit "
                        f"{key.learned.limit} per {key.learned.window_s:.1f} s); {summary}", True)
            if key.source in _PACED:
                return (f"a {key.source.value} opening: {key.reason}: {key.label} has room in "
                        f"{max(0.0, until - now):.1f} s; {summary}", True)
        return summary, False

    def exclusions(self) -> tuple[Exclusion, ...]:
        """Up to 16 keys that cannot be picked now, and why (cached until a state or a hold changes): keys not
        ok, then ok keys held back (their recovery probe, or a budget spoken for by requests in flight)."""
        cache = self._excl_cache
        if cache is None:
            out = [Exclusion(k.label, k.state.value, k.until, k.source.value if k.source else None, k.reason)
                   for k in itertools.islice(self._unavail, _EXCLUSIONS_SHOWN)]
            if self._held:
                out += [Exclusion(k.label, "held", None, None, self._why_held(k))
                        for k in self._keys if k.probe is _HELD and k.state is _OK][:_EXCLUSIONS_SHOWN - len(out)]
            cache = self._excl_cache = tuple(out)
        return cache

    @staticmethod
    def _why_held(key: PoolKey) -> str:
        if key.allow is not None and key.allow <= 0:
            return f"budget spoken for: {key.inflight} in flight, the provider allowed no more"
        if key.declared is not None and key.declared.limits.max_concurrency is not None and \
                key.inflight + key.streams >= key.declared.limits.max_concurrency:
            return f"declared max_concurrency {key.declared.limits.max_concurrency} reached"
        if key.token_allow is not None and key.tokens_inflight:
            return f"stated tokens spoken for: {key.tokens_inflight} held by requests in flight"
        return "recovery probe in flight"

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in KeyState}
        for k in self._keys:
            out[k.state.value] += 1
        return out

    def summary(self) -> str:
        """``3 keys cooling, next ready in 12 s; 1 invalid`` - the pool in one line."""
        self._expire_due()
        return self._summary(self.next_ready_in())

    def _summary(self, wait: float | None) -> str:
        """The summary line, with the next recovery (``wait``) already read."""
        counts = self.counts()
        if not self._keys:
            return "no keys"
        parts: list[str] = []
        held = sum(1 for k in self._keys if k.probe is _HELD and k.state is _OK) if self._held else 0
        if counts["ok"] - held:
            parts.append(f"{counts['ok'] - held} available")
        if held:
            parts.append(f"{held} held (recovery probe or budget in flight)")
        for state in ("cooling", "exhausted", "invalid", "forbidden", "disabled"):
            n = counts[state]
            if n:
                text = f"{n} {'key' if n == 1 else 'keys'} {state}"
                if state == "cooling" and (paced := self.paced()):
                    text += f" ({paced} at a learned limit)"
                if state == "cooling" and wait is not None:
                    text += f", next ready in {duration(wait, spaced=True, whole=True)}"
                parts.append(text)
        return "; ".join(parts)

    def snapshot(self, only: str | None = None) -> list[KeySnapshot]:
        """Plain data about every key (or the key labelled ``only``), in pool order (for JSON and the monitor).
        No secrets."""
        now = self.clock.now()
        self._expire_due()
        out: list[KeySnapshot] = []
        for k in self._keys if only is None else [k for k in self._keys if k.label == only]:
            s = k.stats
            lim = s.limits
            p50, p95 = s.p50(), s.p95()
            out.append(
                {
                    "label": k.label,
                    "masked": k.masked,
                    "fingerprint": k.fingerprint,
                    "state": k.state.value,
                    "until": k.until,
                    "remaining_s": None if k.until is None else max(0.0, k.until - now),
                    "source": k.source.value if k.source else None,
                    "reason": k.reason,
                    "models": {m: max(0.0, u - now) for m, u in self.model_cooldowns(k).items()},
                    "quota_group": k.quota_group,
                    "affinity_hits": k.affinity_hits,
                    "affinity_moves": k.affinity_moves,
                    "cache_read": k.cache_read,
                    "cache_write": k.cache_write,
                    "cacheable": k.cacheable,
                    "cost_round_robin": s.cost + k.cost_round_robin_extra,
                    "inflight": k.inflight,
                    "probing": k.probe is _HELD,
                    "rpm": s.rpm(now),
                    "p50_ms": None if p50 is None else p50 * 1000,
                    "p95_ms": None if p95 is None else p95 * 1000,
                    "last_used": s.last_used,
                    "requests_remaining": lim.requests_remaining if lim else None,
                    "requests_limit": lim.requests_limit if lim else None,
                    "tokens_remaining": lim.tokens_remaining if lim else None,
                    "learned": k.learned.as_dict(now) if k.learned is not None else None,
                    "learned_models": {fit.model: shown for fit in k.estimates()
                                       if fit.model and (shown := fit.estimate.as_dict(now))},
                    "declared": k.declared.limits.as_dict() if k.declared is not None else {},
                    "budgets": k.declared.budgets(now) if k.declared is not None else {},
                    **s.as_dict(),
                }
            )
        return out
