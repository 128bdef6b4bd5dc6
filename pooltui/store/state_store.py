"""Where a pool's shared state lives: one interface, two stores.

- :class:`MemoryState` (``[state] backend = "memory"``, the default): the pool objects in this process are
  the state; nothing to connect to, nothing shared, today's speed.
- :class:`~pooltui.store.shared_state.SharedKeyStates` (``backend = "redis"``): the same pools, kept in step
  with every other process on the same Redis (key states, per-model cooldowns, budgets and spend, usage
  counts, the outage breaker, events, the config).

Either way the pick reads only the local pool: strategies, the client and the UI do not change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from pooltui.core.pool import Pool
from pooltui.store.config import StateConfig
from pooltui.store.secrets import SecretStore, SecretStoreError


@runtime_checkable
class StateStore(Protocol):
    """What a session does with its state store."""

    connected: bool
    status: str  # "connected", or what is wrong: "auth failed", "TLS mismatch", "unreachable"

    def attach(self, pool: Pool) -> None:
        """Keep ``pool``'s state in this store."""

    def attach_client(self, client: Any) -> None:
        """Keep ``client``'s spend, outage breaker and events in this store."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def close(self) -> None: ...


class MemoryState:
    """The in-process store: the pools hold their own state; nothing leaves this process."""

    connected = True
    status = "connected"

    def __init__(self) -> None:
        self.pools: list[Pool] = []

    def attach(self, pool: Pool) -> None:
        self.pools.append(pool)

    def attach_client(self, client: Any) -> None:
        return None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def close(self) -> None:
        return None


def fleet_secret(cfg: StateConfig, store: SecretStore | None) -> str | None:
    """The fleet secret ``[state] secret`` names, read like a key's secret (None when none is set); raises
    ``SecretStoreError`` (one line, never the secret) when it cannot be read."""
    if cfg.secret is None:
        return None
    if store is None:
        raise SecretStoreError("no secret store to read [state] secret from")
    return store.get(cfg.secret)


def open_state(cfg: StateConfig, log: Callable[[str], None] = lambda line: None,
               store: SecretStore | None = None) -> StateStore:
    """The store ``[state]`` asks for (not connected yet: ``start`` connects). A fleet secret that cannot be
    read leaves this process on its own (one line says why): it would not be a member of the fleet."""
    if cfg.backend == "redis" and cfg.url is not None:
        from pooltui.store.shared_state import SharedKeyStates

        try:
            secret = fleet_secret(cfg, store)
        except SecretStoreError as exc:
            log(f"shared state: not shared, the fleet secret ([state] secret) cannot be read: {exc}")
            return MemoryState()
        return SharedKeyStates(cfg.url, cfg.prefix, log=log, ttl_s=cfg.ttl_s, secret=secret,
                               share_windows=cfg.share_windows)
    return MemoryState()
