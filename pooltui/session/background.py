"""What runs behind a local session's engine whether a monitor looks or not: services (the proxy), background
re-verification of parked keys, alerts, the shared state store and the config watcher (the background-tasks part
of :class:`~pooltui.session.local.MonitorSession`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from pooltui.client.pool_client import PoolClient
from pooltui.core.pool import Pool
from pooltui.session.local_state import SessionState
from pooltui.session.views import PanelView

if TYPE_CHECKING:
    from pooltui.session.alerts import AlertSender
    from pooltui.session.live_config import LiveConfig
    from pooltui.session.reverify import Reverifier, ReverifyPolicy
    from pooltui.store.state_store import StateStore


class Service(Protocol):
    """Something the session runs beside the engine until it stops (e.g. the proxy)."""

    async def run(self) -> None: ...
    async def stop(self) -> None: ...


@dataclass
class BackgroundTasks:
    """The session's background work and the tasks that run it."""

    state: SessionState
    services: list[Service] = field(default_factory=list)
    reverifiers: list[Reverifier] = field(default_factory=list)  # background re-verification of parked keys
    reverify_policies: dict[str, ReverifyPolicy] = field(default_factory=dict)  # per provider (shared by them)
    alerts: AlertSender | None = None  # when [alerts] is configured
    shared: StateStore | None = None  # in memory, or Redis when configured
    live: LiveConfig | None = None  # config changes applied while running
    running: bool = False
    _service_tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _reverify_tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _alert_tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _shared_started: asyncio.Task[None] | None = None
    _shared_kept: dict[int, Pool | PoolClient] = field(default_factory=dict)  # what the store keeps (by id), alive

    # ------------------------------------------------------------------ services
    def start_services(self) -> None:
        for service in self.services:
            self._service_tasks.append(asyncio.create_task(service.run()))

    async def stop_services(self) -> None:
        """Services (the proxy) finish what they serve."""
        for service in self.services:
            await service.stop()
        for task in self._service_tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5)

    # ------------------------------------------------------------------ the rest
    def start_store(self) -> None:
        """The shared state store connects, the config watcher starts."""
        self.running = True
        if self.shared is not None:
            self._shared_started = asyncio.create_task(self.shared.start())
            self._alert_tasks.append(self._shared_started)
        if self.live is not None:
            self.live.start()

    def start_watchers(self, views: Callable[[], dict[str, PanelView]]) -> None:
        """Re-verification of parked keys and alerts (the alert watcher reads every provider's ``views``)."""
        self._reverify_tasks = [asyncio.create_task(r.run()) for r in self.reverifiers]
        if self.alerts is not None:
            from pooltui.session.alerts import AlertWatcher

            watcher = AlertWatcher(self.alerts, views, self.state.clock.now)
            self.state.listeners.append(watcher.event)
            self._alert_tasks += [asyncio.create_task(self.alerts.run()), asyncio.create_task(watcher.run())]

    async def ready(self, timeout_s: float = 3.0) -> None:
        """Wait (bounded) until the shared state store has connected and read what the fleet learnt."""
        if self._shared_started is not None:
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(self._shared_started), timeout_s)

    def stop(self) -> None:
        """Stop what :meth:`start_store` and :meth:`start_watchers` started."""
        if self.shared is not None:
            self.shared.close()
        if self.live is not None:
            self.live.close()
        for task in [*self._reverify_tasks, *self._alert_tasks]:
            task.cancel()

    # ------------------------------------------------------------------ clients added and removed
    def share(self, client: PoolClient) -> None:
        """Keep ``client`` and its pools (those not kept yet: a fallback added later too) in the shared store."""
        if self.shared is None:
            return
        for up in client.upstreams:
            if up.pool is not None and id(up.pool) not in self._shared_kept:
                self._shared_kept[id(up.pool)] = up.pool
                self.shared.attach(up.pool)
        if id(client) not in self._shared_kept:
            self._shared_kept[id(client)] = client
            self.shared.attach_client(client)

    def reverify(self, client: PoolClient) -> None:
        """A client added while running: its parked keys re-verified as the others'."""
        from pooltui.session.build import owned
        from pooltui.session.reverify import Reverifier

        if self.reverifiers or self.reverify_policies:
            reverifier = Reverifier(client, self.reverify_policies, only=frozenset(p.name for p in owned(client)))
            self.reverifiers.append(reverifier)
            if self.running:
                self._reverify_tasks.append(asyncio.create_task(reverifier.run()))

    def forget(self, client: PoolClient) -> None:
        """A client removed while running: no longer re-verified."""
        for i, reverifier in enumerate(list(self.reverifiers)):
            if reverifier.client is client:
                self.reverifiers.remove(reverifier)
                if i < len(self._reverify_tasks):
                    self._reverify_tasks.pop(i).cancel()
