"""RemoteSession: the monitor attached to a running proxy: views from ``/pooltui/state``, key and pool
commands through ``/pooltui/command``. It is a :class:`~pooltui.session.protocol.Session` without
:class:`~pooltui.session.protocol.LocalControls`: test traffic and new keys belong where the engine runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from pooltui.core.clock import Clock, SystemClock
from pooltui.core.events import Event, EventKind
from pooltui.core.snapshot import KeySnapshot
from pooltui.providers.verify import VerifyResult
from pooltui.session.protocol import SessionStatus
from pooltui.session.views import PanelView, StateView, empty_panel, event_from


class AttachError(Exception):
    """The proxy could not be reached or refused us."""


def admin_headers(admin_token: str | None) -> dict[str, str]:
    return {"x-pooltui-admin-token": admin_token} if admin_token else {}


async def fetch_state(url: str, admin_token: str | None, timeout_s: float = 3.0) -> StateView:
    headers = admin_headers(admin_token)
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as http:
            r = await http.get(url.rstrip("/") + "/pooltui/state", headers=headers)
    except httpx.HTTPError as exc:
        raise AttachError(f"cannot reach {url}: {type(exc).__name__}") from None
    if r.status_code == 401:
        raise AttachError(f"{url} wants its admin token: on the proxy's machine it is read from the data dir; "
                          "elsewhere pass --admin-token (see `pooltui proxy --show-admin-token`)")
    try:
        data = r.json()
    except ValueError:
        data = None
    if r.status_code != 200 or not isinstance(data, dict) or "providers" not in data:
        raise AttachError(f"{url} is not a pooltui proxy (GET /pooltui/state answered {r.status_code})")
    return data  # type: ignore[return-value]  # the proxy serves StateView


@dataclass
class RemoteSession:
    """A Session whose views come from the proxy and whose commands run there."""

    url: str
    admin_token: str | None = None
    poll_s: float = 0.5
    clock: Clock = field(default_factory=SystemClock)
    listeners: list[Callable[[Event], None]] = field(default_factory=list)
    current: str = ""
    error: str = ""
    _state: StateView | None = None
    _events: deque[Event] = field(default_factory=lambda: deque(maxlen=500))
    _last_seq: int = 0
    _task: asyncio.Task | None = None
    _pending: set[asyncio.Task] = field(default_factory=set)

    @property
    def title(self) -> str:
        return f"pooltui · proxy {self.url}" + (f" · {self.error}" if self.error else "")

    @property
    def providers(self) -> list[str]:
        return list(self._state["providers"] if self._state else []) or [self.current]

    @property
    def has_pool(self) -> bool:
        found = self._state["providers"].get(self.current) if self._state else None
        return found is not None and not found["keyless"]

    def status(self) -> SessionStatus:
        return SessionStatus(self.title, attached=True, problem=self.error)

    def _absorb(self, state: StateView) -> None:
        self._state = state
        if not self.current or self.current not in state["providers"]:
            self.current = next(iter(state["providers"]), "")
        for raw in state.get("events", []):
            seq = int(raw.get("seq") or 0)
            if seq > self._last_seq:
                self._last_seq = seq
                event = event_from(raw)
                self._events.append(event)
                for listener in self.listeners:
                    listener(event)

    async def start(self) -> None:
        """Read the proxy's state, then keep polling it; a first read that fails (the proxy restarting, or slower
        than the read's timeout) is said in ``error`` and the polling goes on, as it does after any failed read."""
        try:
            self._absorb(await fetch_state(self.url, self.admin_token))
        except AttachError as exc:
            self.error = f"not reached yet: {exc}"
        self._task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                self._absorb(await fetch_state(self.url, self.admin_token))
                self.error = ""
            except AttachError as exc:
                self.error = f"stale: {exc}"

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def view(self, *, timeline: bool = True) -> PanelView:
        """The provider in view as the proxy last served it (its timeline comes with it, shown or not)."""
        found = self._state["providers"].get(self.current) if self._state else None
        return found or empty_panel(self.current)

    def key(self, label: str) -> KeySnapshot | None:
        found = self._state["providers"].get(self.current) if self._state else None
        return next((k for k in found["keys"] if k["label"] == label), None) if found else None

    def recent_events(self, n: int | None = None) -> list[Event]:
        events = list(self._events)
        return events if n is None else events[-n:]

    def trace_text(self, request_id: int | None = None) -> tuple[int, str] | None:
        traces = self._state["traces"].get(self.current, []) if self._state else []
        found = next((t for t in reversed(traces) if t["request_id"] == request_id), None) if request_id else None
        found = found or (traces[-1] if traces else None)
        return None if found is None else (found["request_id"], found["text"])

    def history_rows(self) -> tuple[list[dict], str]:
        rows = [dict(e) for e in self._state["events"]] if self._state else []
        return rows, f"the proxy's recent events ({self.url})"

    # ------------------------------------------------------------------ commands (sent to the proxy)
    async def _command(self, **cmd: Any) -> Any:
        headers = admin_headers(self.admin_token)
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.post(self.url.rstrip("/") + "/pooltui/command", json={"provider": self.current, **cmd},
                                headers=headers)
        data = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        if r.status_code != 200:
            raise ValueError(data.get("error") or f"the proxy answered {r.status_code}")
        return data.get("result")

    def _send(self, **cmd: Any) -> str:
        """Fire a command; a failure comes back as an event in the events panel."""
        async def run() -> None:
            try:
                await self._command(**cmd)
            except (ValueError, httpx.HTTPError) as exc:
                self._fail(f"{cmd['action']} failed: {exc}")

        self._pending.add(task := asyncio.create_task(run()))
        task.add_done_callback(self._pending.discard)
        return "sent to the proxy"

    def _fail(self, message: str) -> None:
        event = Event(self.clock.now(), self.current, None, EventKind.STATE, None, message, "nothing changed")
        for listener in self.listeners:
            listener(event)

    def toggle_key(self, label: str) -> str:
        return self._send(action="toggle", label=label)

    def move(self, label: str, delta: int) -> str:
        return self._send(action="move", label=label, delta=delta)

    def cycle_strategy(self) -> str:
        return self._send(action="strategy")

    def set_strategy(self, strategy: str) -> str:
        return self._send(action="strategy", strategy=strategy)

    def reset_cooldowns(self, label: str | None = None) -> str:
        return self._send(action="reset", label=label)

    async def verify(self, labels: list[str] | None = None) -> list[VerifyResult]:
        result = await self._command(action="verify", label=labels[0] if labels and len(labels) == 1 else None)
        return [VerifyResult.from_dict(r) for r in result or [] if isinstance(r, dict)]

    def switch_provider(self) -> str:
        names = self.providers
        return self.show(names[(names.index(self.current) + 1) % len(names)] if self.current in names else names[0])

    def show(self, provider: str) -> str:
        if provider not in self.providers:
            raise ValueError(f"unknown provider {provider!r}")
        self.current = provider
        return self.current
