"""What a local session's user drives: test traffic, and the key and pool commands, saved to the config when
there is one (the controls part of :class:`~pooltui.session.local.MonitorSession`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pooltui.core.events import Event, EventKind
from pooltui.core.pool import KeySpec
from pooltui.core.strategies import STRATEGIES
from pooltui.providers.verify import VerifyResult
from pooltui.session.local_state import SessionState
from pooltui.session.traffic import TrafficGenerator, TrafficResult

if TYPE_CHECKING:
    from pooltui.store.config import ProviderConfig


@dataclass
class TrafficControls:
    """Test traffic to the client of the provider in view."""

    state: SessionState
    rate: float = 10.0
    concurrency: int = 16
    seed: int | None = None
    models: list[str] = field(default_factory=list)
    generator: TrafficGenerator | None = None
    _task: asyncio.Task[TrafficResult] | None = None

    @property
    def running(self) -> bool:
        return self.generator is not None and self.generator.running

    def start(self) -> None:
        if self.running:
            return
        self.generator = TrafficGenerator(self.state.client, rate=self.rate, concurrency=self.concurrency,
                                          models=self.models,
                                          seed=self.seed)
        self._task = asyncio.create_task(self.generator.run(None))

    def stop(self) -> None:
        if self.generator is not None:
            self.generator.stop()

    async def end(self) -> None:
        """Stopped and dropped, not drained (a quit returns to the shell in a fraction of a second)."""
        self.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 1)

    def toggle(self) -> bool:
        if self.running:
            self.stop()
            return False
        self.start()
        return True

    def change_rate(self, factor: float) -> float:
        self.rate = max(0.5, min(5000.0, round(self.rate * factor, 1)))
        if self.generator is not None:
            self.generator.rate = self.rate
        return self.rate

    def burst(self, n: int = 50) -> None:
        if self.running and self.generator is not None:
            self.generator.burst(n)


@dataclass
class PoolControls:
    """Key and pool commands, saved to the config when there is one. Each acts on ``provider`` when given (the
    proxy's, for an attached monitor), else on the provider in view: a command never changes what is shown."""

    state: SessionState
    traffic: TrafficControls

    def toggle_key(self, label: str, provider: str | None = None) -> str:
        """Disable an enabled key, enable a disabled one; returns the new state."""
        pool = self.state.require_pool(provider)
        key = pool.key(label)
        if key.state.value == "disabled":
            pool.enable(label)
            self._save_key(label, disabled=False, provider=provider)
        else:
            pool.disable(label)
            self._save_key(label, disabled=True, provider=provider)
        return key.state.value

    def move(self, label: str, delta: int, provider: str | None = None) -> list[str]:
        pool = self.state.require_pool(provider)
        pool.move(label, delta)

        def change(p: ProviderConfig) -> None:
            # the same move applied to the order on disk: keys another process added meanwhile stay in it
            order = list(p.credential_pool) if p.credential_pool is not None else [k.label for k in p.keys]
            if label in order:
                i = order.index(label)
                order.insert(max(0, min(len(order) - 1, i + delta)), order.pop(i))
                p.credential_pool = order

        self._save(change, provider)
        return [k.label for k in pool.keys]

    def set_strategy(self, strategy: str, provider: str | None = None) -> str:
        pool = self.state.require_pool(provider)
        pool.set_strategy(strategy)
        self._save(lambda p: setattr(p, "strategy", pool.strategy), provider)
        return pool.strategy

    def cycle_strategy(self, provider: str | None = None) -> str:
        pool = self.state.require_pool(provider)
        i = STRATEGIES.index(pool.strategy)
        return self.set_strategy(STRATEGIES[(i + 1) % len(STRATEGIES)], provider)

    def reset_cooldowns(self, label: str | None = None, provider: str | None = None) -> int:
        """Clear cooldowns and quota parking of every pool of this provider, or of one key of its own pool."""
        state = self.state
        name = provider or state.current
        if label is not None:
            n = state.require_pool(name).reset(label)
        else:  # a client's primary: its fallbacks' pools too
            owner = state.owner_of(name)
            ups = state.clients[owner].upstreams if name == owner else [state.upstream_of(name)]
            n = sum(up.pool.reset() for up in ups if up.pool is not None)
        if state.history is not None:
            state.history.clear_key_status(name, label, ("cooling", "exhausted"))
        return n

    def switch_provider(self) -> str:
        """The next provider in view; test traffic follows to its client (a fallback's view keeps it)."""
        state = self.state
        names = state.providers
        return self.show(names[(names.index(state.current) + 1) % len(names)] if state.current in names else names[0])

    def show(self, provider: str) -> str:
        """Show ``provider`` (one of the session's providers); test traffic follows to its client."""
        state = self.state
        if provider not in state.providers:
            raise ValueError(f"unknown provider {provider!r}")
        owner, was_running = state.owner, self.traffic.running
        state.current = provider
        if state.owner != owner and was_running:
            self.traffic.stop()
            self.traffic.start()
        return state.current

    async def verify(self, labels: list[str] | None = None, provider: str | None = None) -> list[VerifyResult]:
        """Verify keys (zero tokens) and apply the results to the pool; returns the results."""
        from pooltui.providers.verify import verify_key

        state = self.state
        name = provider or state.current
        pool = state.require_pool(name)
        profile = state.upstream_of(name).profile
        http = state.clients[state.owner_of(name)].http
        keys = [pool.key(label) for label in labels] if labels else pool.keys
        results = await asyncio.gather(*(verify_key(http, profile, k.label, k.secret) for k in keys))
        for r in results:
            if r.classification is not None:
                pool.mark_verified(r.label, r.classification)
            else:
                pool.events.emit(Event(state.clock.now(), pool.name, r.label, EventKind.TRANSPORT, None,
                                       f"verify: {r.detail}", "verify failed"))
            if state.history is not None:
                state.history.set_verified(pool.name, r.label, r.result, org=r.org)
        return results

    async def add_key(self, label: str, secret: str) -> VerifyResult:
        """Verify a new key, store its secret, save it to the config and put it in the pool."""
        from pooltui.core import validate
        from pooltui.providers.verify import verify_key
        from pooltui.store.config import validate_label
        from pooltui.store.keys import add_key, forget

        state = self.state
        pool = state.require_pool()
        label = validate_label(label)
        secret = validate.secret(secret)
        if label in {k.label for k in pool.keys}:
            raise ValueError(f"{pool.name} already has a key labelled {label!r}")
        same = next((k.label for k in pool.keys if k.secret == secret), None)
        if same is not None:
            raise ValueError(f"that key is already in the pool as {same}")
        result = await verify_key(state.client.http, state.upstream.profile, label, secret)
        if result.result in ("invalid", "forbidden"):
            raise ValueError(f"not added: the key is {result.result} ({result.status}: {result.detail})")
        if state.config is not None:
            store = state.config.store
            if store is None:
                raise ValueError("not added: this session has no secret store")
            added: list[str] = []
            try:  # under the config lock: check, store the secret, add the entry
                self._save(lambda p: add_key(p, store, label, secret=secret, stored=added))
            except Exception:
                forget(store, added)
                raise
        pool.add_key(KeySpec(label, secret))
        if result.classification is not None:
            pool.mark_verified(label, result.classification)
        if state.history is not None:
            state.history.set_verified(pool.name, label, result.result, org=result.org)
        return result

    # ------------------------------------------------------------------ accounts
    def shared_accounts(self, provider: str | None = None) -> list[list[str]]:
        """Keys of the pool found to share an account (core/accounts.py) and not yet in one quota group."""
        from pooltui.core.accounts import shared_groups

        pool = self.state.upstream_of(provider or self.state.current).pool
        if pool is None:
            return []
        groups = shared_groups({k.label: k.stats.org for k in pool.keys},
                               {k.label: list(k.stats.counters) for k in pool.keys if k.stats.counters})
        group_of = {k.label: k.quota_group for k in pool.keys}
        return [g for g in groups if len({group_of[x] for x in g}) > 1 or group_of[g[0]] is None]

    def group_shared(self, provider: str | None = None) -> list[list[str]]:
        """Each group :meth:`shared_accounts` finds put in one quota group (``account-FIRST``), in the pool and in
        the config: they cool down together, as the provider limits them."""
        groups = self.shared_accounts(provider)
        pool = self.state.require_pool(provider)
        for group in groups:
            name = f"account-{group[0]}"
            for label in group:
                pool.key(label).quota_group = name

            def change(p: ProviderConfig, group: list[str] = group, name: str = name) -> None:
                for label in group:
                    entry = p.key(label)
                    if entry is not None:
                        entry.quota_group = name

            self._save(change, provider)
        return groups

    def advice(self, provider: str | None = None, since_s: float = 7 * 86400) -> str:
        """``pooltui advise``'s verdict on the provider (in view), from the history; what is missing, else."""
        import time

        from pooltui.session.advice import advise, gather

        history = self.state.history
        name = provider or self.state.current
        if history is None:
            return "Needs the history: this session records none (see `pooltui advise` where the proxy runs)."
        client = self.state.clients.get(self.state.owner_of(name))
        pool = self.state.upstream_of(name).pool
        labels = [k.label for k in pool.keys] if pool is not None else []
        fallbacks = tuple(up.name for up in client.fallbacks) if client is not None else ()
        result = advise(gather(history, name, time.time() - since_s, labels, fallbacks))
        return f"{name}: {result.verdict}\n\n{result.text()}"

    # ------------------------------------------------------------------ config
    def _save(self, change: Callable[[ProviderConfig], object], provider: str | None = None) -> None:
        if self.state.config is None:
            return
        from pooltui.store.config import ConfigEditor

        with ConfigEditor(self.state.config.path) as cfg:
            change(cfg.provider(provider or self.state.current))

    def _save_key(self, label: str, *, disabled: bool, provider: str | None = None) -> None:
        def change(p: ProviderConfig) -> None:
            entry = p.key(label)
            if entry is not None:
                entry.disabled = disabled

        self._save(change, provider)
