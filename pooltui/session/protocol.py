"""The one type the monitor talks to: a :class:`Session`, local (``MonitorSession``, the engine runs in
this process) or attached (``RemoteSession``, the engine runs in a proxy). Test traffic and adding keys
exist only where the engine runs: those are :class:`LocalControls`, which only the local session has."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pooltui.core.clock import Clock
from pooltui.core.events import Event
from pooltui.core.snapshot import KeySnapshot
from pooltui.providers.verify import VerifyResult
from pooltui.session.views import PanelView


@dataclass(frozen=True)
class SessionStatus:
    """What the status line says about the session itself (the pool's own state is in the panel view)."""

    title: str
    attached: bool = False  # the engine runs in a proxy this monitor is attached to
    demo: bool = False  # keys and changes live in this session only
    traffic: str = "none"  # "none" (no generator here), "off" or "on"
    traffic_rate: float = 0.0
    unencrypted: str | None = None  # path of a plaintext secrets file in use
    problem: str = ""  # e.g. the proxy stopped answering: the view is stale
    shared_store: str = ""  # the shared store's trouble ("auth failed", "TLS mismatch", "unreachable"), if any


@runtime_checkable
class Session(Protocol):
    """What the monitor renders and commands, whatever runs the engine."""

    clock: Clock
    listeners: list[Callable[[Event], None]]  # called with every new engine event
    current: str  # the provider in view

    @property
    def title(self) -> str: ...
    @property
    def providers(self) -> list[str]: ...
    @property
    def has_pool(self) -> bool:
        """The provider in view has keys (key and pool actions apply)."""
        ...

    def status(self) -> SessionStatus: ...
    def view(self, *, timeline: bool = True) -> PanelView:
        """The provider in view's panels (its timeline built only with ``timeline``: its chart is shown)."""
        ...
    def key(self, label: str) -> KeySnapshot | None:
        """One key of the provider in view (no whole panel built to read it)."""
        ...
    def recent_events(self, n: int | None = None) -> list[Event]: ...
    def trace_text(self, request_id: int | None = None) -> tuple[int, str] | None: ...
    def history_rows(self) -> tuple[list[dict], str]: ...

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    def toggle_key(self, label: str) -> str: ...
    def move(self, label: str, delta: int) -> object: ...
    def set_strategy(self, strategy: str) -> str: ...
    def cycle_strategy(self) -> str: ...
    def reset_cooldowns(self, label: str | None = None) -> object: ...
    def switch_provider(self) -> str: ...
    def show(self, provider: str) -> str:
        """Show ``provider`` (one of ``providers``): the monitor is told, nothing else changes what it shows."""
        ...
    async def verify(self, labels: list[str] | None = None) -> Sequence[VerifyResult]: ...


@runtime_checkable
class LocalControls(Protocol):
    """Test traffic and new keys: only where the engine runs in this process."""

    @property
    def traffic_running(self) -> bool: ...
    def toggle_traffic(self) -> bool: ...
    def change_rate(self, factor: float) -> float: ...
    def burst(self, n: int = 50) -> None: ...
    async def add_key(self, label: str, secret: str) -> VerifyResult: ...
