"""Build the engine from the config: pools with their secrets, budgets and remembered key states,
a PoolClient over a provider and its fallbacks, and a recorder that writes history."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pooltui.client.pool_client import PoolClient, RequestRecord, Upstream, UsageRecord
from pooltui.core.accounts import group_of, shared_groups
from pooltui.core.clock import Clock
from pooltui.core.events import Event, EventLog
from pooltui.core.pool import KeySpec, Pool
from pooltui.store.config import Config, ProviderConfig
from pooltui.store.history import History, LearnedRow
from pooltui.store.secrets import SecretStore, SecretStoreError


@dataclass(slots=True)
class Built:
    """A client ready to send, and what could not be loaded (keys whose secret is missing)."""

    client: PoolClient
    problems: list[str] = field(default_factory=list)


LEARNED_KEPT_S = 86400.0  # a limit learnt within this long is paced by after a restart


def build_pool(p: ProviderConfig, store: SecretStore, history: History | None, events: EventLog,
               clock: Clock | None = None, problems: list[str] | None = None) -> Pool | None:
    """The provider's pool: None for a keyless endpoint (``local``) with no keys; a keyed provider always gets
    one, empty when it has no keys (it refuses to send without credentials; keys added later join it)."""
    specs = []
    for entry in p.pool_keys():
        try:
            limits, model_limits = p.key_limits(entry)
            specs.append(KeySpec(entry.label, store.get(entry.secret), entry.quota_group, limits=limits,
                                 model_limits=model_limits, cache_group=entry.cache_group))
        except SecretStoreError as exc:
            if problems is not None:
                problems.append(f"{p.name}/{entry.label}: {exc}")
    if not specs and p.profile.keyless:
        return None
    pool = Pool(p.name, specs, p.strategy, clock=clock, cooldown=p.cooldown, events=events,
                max_inflight=p.max_inflight_per_key, learn=p.learn_limits, affinity=p.affinity_mode,
                affinity_wait_s=p.affinity_wait_s)
    loaded = {s.label for s in specs}
    for entry in p.pool_keys():
        if entry.label not in loaded:
            continue
        if entry.budget.is_set():
            pool.set_budget(entry.label, entry.budget, history.spend(p.name, entry.label) if history else None)
        if entry.disabled:
            pool.disable(entry.label, reason="disabled in config")
    if history is not None:
        for (_, label), st in history.key_statuses(p.name).items():
            if label not in loaded:
                continue
            if st.fingerprint and st.fingerprint != pool.key(label).fingerprint:
                continue  # the key's secret changed since: what was learnt about the old one does not apply
            pool.restore(label, st.state, st.until, st.source, st.reason or "", st.status)
        pool.restore_rotation(*history.rotation(p.name))
        if pool.learn:  # limits learnt in the last day, on the same secrets: no 429 needed to learn them again
            for row in history.learned_limits(p.name, since=time.time() - LEARNED_KEPT_S):
                if row.key in loaded and row.fingerprint == pool.key(row.key).fingerprint:
                    pool.restore_learned(row.key, row.model, row.requests, row.window_s)
    return pool


def build_client(cfg: Config, provider: str, store: SecretStore, history: History | None = None,
                 clock: Clock | None = None, *, pools: dict[str, Pool | None] | None = None,
                 logs: dict[str, EventLog] | None = None, **client_kw) -> Built:
    """A PoolClient for ``provider`` with its configured fallbacks.

    Clients built with the same ``pools`` share one Pool per provider (a provider that is one client's
    primary and another's fallback has one set of keys, states and counters). ``logs`` names the event log of
    each provider that gets its own client: that client's events, and its pool's. A pool is built into its
    provider's log when it has one, else into the log of the first client that uses it (:func:`owned`)."""
    primary = cfg.provider(provider)
    events = logs.setdefault(provider, EventLog()) if logs is not None else EventLog()
    problems: list[str] = []
    ups = []
    for p in [primary, *(cfg.provider(name) for name in primary.fallback)]:
        if pools is not None and p.name in pools:
            pool = pools[p.name]
        else:
            log = logs.get(p.name, events) if logs is not None else events
            pool = build_pool(p, store, history, log, clock, problems)
            if pools is not None:
                pools[p.name] = pool
        ups.append(Upstream(p.profile, pool))
    client = PoolClient(ups[0], ups[1:], clock=clock, events=events, prices=cfg.prices,
                        rng=random.Random(), **{**client_limits(primary), **client_kw})
    return Built(client, problems)


def client_limits(p: ProviderConfig) -> dict[str, float | int]:
    """The PoolClient settings a provider's config gives (attribute names of the client)."""
    return {"deadline_s": p.request_timeout_s, "stream_idle_s": p.stream_idle_s,
            "max_body_bytes": int(p.max_body_mb * 2**20), "max_attempts": p.max_attempts}


def owned(client: PoolClient) -> list[Pool]:
    """The pools ``client`` looks after (records, re-verifies): those whose events go to its own log. A pool
    shared with other clients (see :func:`build_client`) is owned by exactly one of them."""
    return [up.pool for up in client.upstreams if up.pool is not None and up.pool.events is client.events]


class UsageSums:
    """The history's usage rows of a flush, summed as the usage records come: their figures (requests, ok, tokens in
    and out, cost, cache reads, writes, cacheable input, cost with no cache use, what round-robin without affinity
    would have paid more) per minute, provider, key and model, in the order each of those first appears. Each record
    is added while it is still in the cache (summed at the flush, a second's records were read cold: 0.7-1 ms of the
    event loop once a second, every caller's request then waiting)."""

    __slots__ = ("_sums",)

    def __init__(self) -> None:
        self._sums: dict[tuple[int, str, str, str], list] = {}

    def add(self, u: UsageRecord) -> None:
        at = (int(u.ts // 60) * 60, u.provider, u.key, u.model)
        acc = self._sums.get(at)
        if acc is None:
            self._sums[at] = list(u[4:])
            return
        acc[0] += u.requests
        acc[1] += u.ok
        acc[2] += u.tokens_in
        acc[3] += u.tokens_out
        acc[4] += u.cost
        acc[5] += u.cache_read
        acc[6] += u.cache_write
        acc[7] += u.cacheable
        acc[8] += u.cost_no_cache
        acc[9] += u.round_robin_extra

    def take(self) -> list[tuple]:
        """The rows summed so far; the sums start again from none."""
        sums, self._sums = self._sums, {}
        return [(*at, *acc) for at, acc in sums.items()]


class HistoryRecorder:
    """Buffers a client's events, usage and key states, and writes them to history in batches."""

    def __init__(self, history: History, client: PoolClient) -> None:
        self.history = history
        self.client = client
        self._events: list[Event] = []
        #: the usage since the last flush, summed per row as each record comes
        self._usage = UsageSums()
        self._dirty: set[tuple[str, str]] = set()
        self._pools: dict[str, Pool] = {}
        self._picks_seen: dict[str, int] = {}
        self.track()
        self._unsubscribe = client.events.subscribe(self._on_event)
        self._on_usage = self._usage.add  # (one bound method: the listener added, and removed at close)
        client.usage_listeners.append(self._on_usage)
        self._requests: list[RequestRecord] = []
        self._limits_seen: dict[tuple[str, str], tuple[int | None, int | None]] = {}
        self._learned_seen: dict[tuple[str, str, str], tuple[int, float]] = {}
        self._accounts_seen: dict[tuple[str, str], tuple[str | None, str | None]] = {}
        self._accounts_looked: dict[str, tuple[tuple[str | None, int, float], ...]] = {}
        #: (provider, label) -> whether the key's state came from another process (the shared store's
        #: ``remote``): such a state is not written to this host's history
        self.remote: Callable[[str, str], bool] = lambda provider, label: False
        client.request_listeners.append(self._requests.append)

    def track(self) -> None:
        """Follow the client's pools as they are now (a fallback added or removed by a config change)."""
        self._pools = {pool.name: pool for pool in owned(self.client)}  # a shared pool is written by its owner only
        self._picks_seen = {name: self._picks_seen.get(name, -1) for name in self._pools}

    def _on_event(self, event: Event) -> None:
        self._events.append(event)
        if event.key:
            self._dirty.add((event.provider, event.key))

    def flush(self) -> None:
        with self.history.gathered():  # one hand-over to the history's writer
            self._flush()

    def _flush(self) -> None:
        events, self._events = self._events, []
        usage = self._usage.take()
        dirty, self._dirty = self._dirty, set()
        self.history.add_events(events)
        self.history.add_usage(usage)
        requests, self._requests[:] = list(self._requests), []
        self.history.add_request_records(requests)
        self._save_limits()
        self._save_learned()
        self._save_accounts()
        for name, pool in self._pools.items():  # the rotation goes on where it stopped after a restart
            picks = sum(k.stats.requests for k in pool.keys)
            if picks != self._picks_seen[name]:
                self._picks_seen[name] = picks
                self.history.save_rotation(name, *pool.rotation_state())
        for provider, label in dirty:
            provider_pool = self._pools.get(provider)
            if provider_pool is None or self.remote(provider, label):
                continue
            try:
                key = provider_pool.key(label)
            except KeyError:
                continue
            self.history.set_key_status(provider, label, key.state.value, key.until,
                                        key.source.value if key.source else None, key.reason, key.status_code,
                                        key.changed_at, key.fingerprint)

    def _save_learned(self) -> None:
        """The limits learnt from 429s, when they changed (a restart paces by them at once; replay uses them)."""
        for name, pool in self._pools.items():
            changed = []
            for label, model, fingerprint, limit, window, sure in pool.learned_rows():
                seen = (limit, round(window, 2))
                if self._learned_seen.get((name, label, model)) != seen:
                    self._learned_seen[(name, label, model)] = seen
                    changed.append(LearnedRow(label, model, fingerprint, limit, window, sure))
            if changed:
                self.history.set_learned_limits(name, changed)

    def _save_accounts(self) -> None:
        """Each key's organization and the keys found to share its account (core/accounts.py), when they changed."""
        for name, pool in self._pools.items():
            seen_now = tuple((k.stats.org, len(k.stats.counters), k.stats.counters[-1].ts if k.stats.counters else 0.0)
                             for k in pool.keys)
            if self._accounts_looked.get(name) == seen_now:
                continue  # no answer named an organization or a budget since the last look
            self._accounts_looked[name] = seen_now
            groups = shared_groups({k.label: k.stats.org for k in pool.keys},
                                   {k.label: list(k.stats.counters) for k in pool.keys if k.stats.counters})
            changed = []
            for key in pool.keys:
                group = group_of(key.label, groups)
                seen = (key.stats.org, ",".join(group) if group else None)
                if seen != (None, None) and self._accounts_seen.get((name, key.label)) != seen:
                    self._accounts_seen[(name, key.label)] = seen
                    changed.append((key.label, *seen))
            if changed:
                self.history.set_accounts(name, changed)

    def _save_limits(self) -> None:
        """The limits the providers' headers stated, when they changed (``pooltui replay`` sizes keys by them)."""
        for name, pool in self._pools.items():
            changed = []
            for key in pool.keys:
                lim = key.stats.limits
                limits = (lim.requests_limit, lim.tokens_limit) if lim is not None else (None, None)
                if limits != (None, None) and self._limits_seen.get((name, key.label)) != limits:
                    self._limits_seen[(name, key.label)] = limits
                    changed.append((key.label, *limits))
            if changed:
                self.history.set_key_limits(name, changed)

    def close(self) -> None:
        self.flush()
        self._unsubscribe()
        if self._on_usage in self.client.usage_listeners:
            self.client.usage_listeners.remove(self._on_usage)
        if self._requests.append in self.client.request_listeners:
            self.client.request_listeners.remove(self._requests.append)
