"""Config changes reach a running proxy or monitor without a restart: keys added, removed, reordered,
disabled or enabled (by ``pooltui auth``, another monitor, or an editor) and a new strategy are applied to
the pools in place. Requests in flight finish on the key they hold (a removed key's late answer is
ignored by the pool); nothing is dropped. No UI in here."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pooltui.client.pool_client import PoolClient
from pooltui.core.health import KeyState
from pooltui.core.pool import KeySpec, Pool
from pooltui.store.config import ConfigError, load_config
from pooltui.store.secrets import SecretStore, SecretStoreError


@dataclass
class LiveConfig:
    """Watches the config file and applies its changes to the running clients' pools."""

    path: Path
    store: SecretStore
    clients: dict[str, PoolClient]
    log: Callable[[str], None] = lambda line: None
    interval_s: float = 0.25
    applied: int = 0
    _signature: tuple | None = None
    _tasks: list[asyncio.Task] = field(default_factory=list)

    def _stat(self) -> tuple | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def start(self) -> None:
        self._signature = self._stat()
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
        changes: list[str] = []
        for client in self.clients.values():
            for up in client.upstreams:
                if up.pool is not None and up.pool.name in cfg.providers:
                    changes += self._apply(up.pool, cfg.providers[up.pool.name])
        for line in changes:
            self.log(f"config reloaded: {line}")
        self.applied += len(changes)
        return changes

    def _apply(self, pool: Pool, p) -> list[str]:
        out: list[str] = []
        wanted = p.pool_keys()
        labels = [e.label for e in wanted]
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
            if key is None:
                pool.add_key(KeySpec(entry.label, secret, entry.quota_group))
                out.append(f"{pool.name}/{entry.label} added")
                key = pool.key(entry.label)
            if entry.disabled and key.state is not KeyState.DISABLED:
                pool.disable(entry.label, reason="disabled in config")
                out.append(f"{pool.name}/{entry.label} disabled")
            elif not entry.disabled and key.state is KeyState.DISABLED:
                pool.enable(entry.label)
                out.append(f"{pool.name}/{entry.label} enabled")
        order = [label for label in labels if label in {k.label for k in pool.keys}]
        if order != [k.label for k in pool.keys]:
            pool.set_order(order)
            out.append(f"{pool.name} order {', '.join(order)}")
        if p.strategy != pool.strategy:
            pool.set_strategy(p.strategy)
            out.append(f"{pool.name} strategy {pool.strategy}")
        return out
