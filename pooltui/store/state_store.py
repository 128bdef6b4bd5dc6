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


@runtime_checkable
class StateStore(Protocol):
    """What a session does with its state store."""

    connected: bool

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


def open_state(cfg: StateConfig, log: Callable[[str], None] = lambda line: None) -> StateStore:
    """The store ``[state]`` asks for (not connected yet: ``start`` connects)."""
    if cfg.backend == "redis":
        from pooltui.store.shared_state import SharedKeyStates

        return SharedKeyStates(cfg.redis_url(), cfg.prefix, log=log)
    return MemoryState()
