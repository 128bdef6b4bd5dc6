"""Config changes reach a running proxy or monitor without a restart: keys added, removed, reordered,
disabled or enabled (by ``pooltui auth``, another monitor, or an editor) and a new strategy are applied to
the pools in place; a provider added gets a client, a removed one is no longer routed to, and a changed
provider's settings (kind, base URL, fallbacks, limits, cooldowns, ...) apply to its running client
(:mod:`pooltui.session.live_providers`). Requests in flight finish on the key they hold (a removed key's
late answer is ignored by the pool); nothing is dropped. No UI in here."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from pooltui.client.pool_client import PoolClient
from pooltui.core.events import EventLog
from pooltui.core.health import KeyState
from pooltui.core.pool import KeySpec, Pool
from pooltui.core.terminal import printable
from pooltui.session.build import build_client, build_pool
from pooltui.session.live_providers import apply_settings
from pooltui.store.config import Config, ConfigError, ProviderConfig, load_config
from pooltui.store.secrets import SecretStore, SecretStoreError
from pooltui.store.shared_config import merge_shared, shared_part


@dataclass
class LiveConfig:
    """Watches the config file and applies its changes to the running clients' pools."""

    path: Path
    store: SecretStore
    clients: dict[str, PoolClient]
    log: Callable[[str], None] = lambda line: None
    #: called with the config's text after a changed file was reloaded (the shared store tells other hosts)
    publish: Callable[[str, str], None] | None = None
    interval_s: float = 0.25
    history: Any = None  # where a provider added while running records (a History), as the others do
    #: the MonitorSession whose clients these are: it wires a provider added or removed (recorder, series,
    #: re-verification, shared store) and tells its listeners (the proxy's routing) of every change
    session: Any = None
    #: one pool per provider, shared by every client that uses it (see build_client), and each provider's log
    pools: dict[str, Pool | None] = field(default_factory=dict)
    logs: dict[str, EventLog] = field(default_factory=dict)
    applied: int = 0
    _signature: tuple | None = None
    #: per provider, what the config said last time (strategy, key order, disabled keys): only what the
    #: config changes is applied, so a hand action taken since (here or from the fleet) stays
    _said: dict[str, tuple[str, list[str], set[str]]] = field(default_factory=dict)
    _tasks: list[asyncio.Task] = field(default_factory=list)

    def _stat(self) -> tuple | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def start(self) -> None:
        self._signature = self._stat()
        with contextlib.suppress(ConfigError):
            for p in load_config(self.path).providers.values():
                self._said[p.name] = self._what_it_says(p)
        self._tasks = [asyncio.create_task(self.run())]

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def run(self) -> None:
        """Check the file every ``interval_s`` (a stat: cheap) and apply what changed."""
        while True:
            await asyncio.sleep(self.interval_s)
            signature = self._stat()
            if signature is None or signature == self._signature:
                continue
            self._signature = signature
            with contextlib.suppress(Exception):  # a reload never takes the proxy down
                self.reload()

    def reload(self) -> list[str]:
        """Apply the config on disk to every pool; returns one line per change (also logged)."""
        try:
            cfg = load_config(self.path)
        except ConfigError as exc:
            self.log(f"config not reloaded: {exc} (serving on as before)")
            return []
        changes = self._apply_all(cfg, "config reloaded")
        if self.publish is not None:  # only what is safe to share: no URL, password, alert destination
            self.publish(shared_part(cfg), f"{socket.gethostname()}:{self.path}")
        return changes

    def apply_shared(self, text: str, origin: str, at: float) -> list[str]:
        """What another host shared of its config (:mod:`pooltui.store.shared_config`): its strategies, pool
        orders and the keys this host has with the same references apply here, unless this host's own file
        changed after it (the latest change wins)."""
        signature = self._stat()
        if signature is not None and signature[0] / 1e9 >= at:
            return []
        origin = printable(origin)
        try:
            cfg, notes = merge_shared(load_config(self.path), text)
        except (ConfigError, ValueError) as exc:
            self.log(f"shared config from {origin} not applied: {printable(str(exc))}")
            return []
        for note in notes:
            self.log(f"shared config from {origin}: {note}")
        return self._apply_all(cfg, f"config from {origin}")

    def _apply_all(self, cfg, said: str) -> list[str]:
        changes = self._apply_providers(cfg)
        for client in self.clients.values():
            for up in client.upstreams:
                if up.pool is not None and up.pool.name in cfg.providers:
                    changes += self._apply(up.pool, cfg.providers[up.pool.name])
        for line in changes:
            self.log(f"{said}: {line}")
        self.applied += len(changes)
        return changes

    def _apply_providers(self, cfg: Config) -> list[str]:
        """Providers added, removed or changed: clients built, dropped from routing, or updated in place."""
        out: list[str] = []
        for name in [n for n in self.clients if n not in cfg.providers]:
            if self.session is not None and len(self.clients) == 1:
                out.append(f"{name} removed from the config: still served, it is the only provider")
                continue
            self._remove(name)
            out.append(f"{name} removed: no longer routed to (requests in flight finish)")
        for p in cfg.providers.values():
            if p.name not in self.clients and p.keys:  # as config_session: each provider with keys
                try:
                    self.logs.setdefault(p.name, EventLog())
                    built = build_client(cfg, p.name, self.store, self.history, pools=self.pools, logs=self.logs)
                except (KeyError, ValueError) as exc:
                    out.append(f"{p.name} not added: {exc}")
                    continue
                self._add(p.name, built.client)
                n = len(p.pool_keys())
                out.append(f"{p.name} added ({p.kind}, {n} key{'' if n == 1 else 's'})")
                out += [f"{problem} (not loaded)" for problem in built.problems]
        for client in self.clients.values():
            out += apply_settings(client, cfg, partial(self._pool, client=client))
        if self.session is not None:
            self.session.settings_changed(cfg)
        return out

    def _pool(self, p: ProviderConfig, client: PoolClient) -> Pool | None:
        """A new pool for ``client`` (a fallback added, or keys given to a provider that had none), built as its
        own were (history, remembered states)."""
        if p.name in self.pools and self.pools[p.name] is not None:  # one pool per provider, whoever uses it
            return self.pools[p.name]
        pool = build_pool(p, self.store, self.history, self.logs.get(p.name, client.events), client.clock)
        self.pools[p.name] = pool
        return pool

    def _add(self, name: str, client: PoolClient) -> None:
        if self.session is not None:
            self.session.add_client(name, client)
        else:
            self.clients[name] = client

    def _remove(self, name: str) -> None:
        if self.session is not None:
            self.session.remove_client(name)
        else:
            self.clients.pop(name, None)

    @staticmethod
    def _what_it_says(p) -> tuple[str, list[str], set[str]]:
        wanted = p.pool_keys()
        return p.strategy, [e.label for e in wanted], {e.label for e in wanted if e.disabled}

    def _apply(self, pool: Pool, p) -> list[str]:
        out: list[str] = []
        wanted = p.pool_keys()
        labels = [e.label for e in wanted]
        said = self._said.get(pool.name)
        self._said[pool.name] = self._what_it_says(p)
        was_disabled = said[2] if said is not None else None
        have = {k.label: k for k in pool.keys}
        for label in [label for label in have if label not in labels]:
            pool.remove_key(label)
            out.append(f"{pool.name}/{label} removed")
        for entry in wanted:
            key = have.get(entry.label)
            try:
                secret = self.store.get(entry.secret)
            except SecretStoreError as exc:
                out.append(f"{pool.name}/{entry.label} not loaded: {exc}")
                continue
            if key is not None and key.secret != secret:  # a new secret behind the same label
                pool.remove_key(entry.label)
                key = None
            added = key is None
            if key is None:
                pool.add_key(KeySpec(entry.label, secret, entry.quota_group, cache_group=entry.cache_group))
                out.append(f"{pool.name}/{entry.label} added")
                key = pool.key(entry.label)
            if pool.set_limits(entry.label, *p.key_limits(entry)) and not added:
                out.append(f"{pool.name}/{entry.label} declared limits changed")
            newly = was_disabled is None or added or (entry.label in was_disabled) != entry.disabled
            if entry.disabled and newly and key.state is not KeyState.DISABLED:
                pool.disable(entry.label, reason="disabled in config")
                out.append(f"{pool.name}/{entry.label} disabled")
            elif not entry.disabled and newly and key.state is KeyState.DISABLED:
                pool.enable(entry.label)
                out.append(f"{pool.name}/{entry.label} enabled")
        order = [label for label in labels if label in {k.label for k in pool.keys}]
        if (said is None or said[1] != labels) and order != [k.label for k in pool.keys]:
            pool.set_order(order)
            out.append(f"{pool.name} order {', '.join(order)}")
        if (said is None or said[0] != p.strategy) and p.strategy != pool.strategy:
            pool.set_strategy(p.strategy)
            out.append(f"{pool.name} strategy {pool.strategy}")
        if p.learn_limits != pool.learn:
            pool.set_learning(p.learn_limits)
            out.append(f"{pool.name} learned limits {'on' if pool.learn else 'off'}")
        return out
