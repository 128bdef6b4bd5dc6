"""Alerts that leave the terminal: a command and/or a webhook, told when capacity runs low, an outage
starts, a fallback serves, or a key turns invalid.

:class:`AlertWatcher` looks at each client once a second (and at invalid-key events as they happen) and hands
new alerts to an :class:`AlertSender`, which queues them (bounded: the engine never waits), limits each
(provider, kind) to one per ``min_interval_s``, and delivers them with retries: the webhook gets the alert
POSTed as JSON, the command gets it as JSON on stdin (and as ``POOLTUI_ALERT_*`` variables).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict
from urllib.parse import urlsplit

import httpx

from pooltui.core.events import Event, EventKind, StateChange
from pooltui.core.masking import scrub
from pooltui.session.incident import alerts_of

#: what goes out: the alert kinds the status line knows, plus a key turning invalid
SENT_KINDS = frozenset({"capacity", "outage", "fallback", "invalid"})


class AlertPayload(TypedDict):
    provider: str
    kind: str
    severity: str
    keys: list[str]
    summary: str
    time: str  # ISO 8601, UTC
    ts: float


def payload(provider: str, kind: str, severity: str, summary: str, keys: list[str], ts: float) -> AlertPayload:
    return {"provider": provider, "kind": kind, "severity": severity, "keys": keys, "summary": scrub(summary),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)), "ts": ts}


def where(url: str) -> str:
    """A webhook as it may be shown: scheme and host only (its path often is its secret)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{'' if parts.port is None else f':{parts.port}'}/…"


@dataclass
class AlertSender:
    """Queues alerts and delivers them in the background; ``send`` never blocks."""

    command: list[str] | None = None
    webhook: str | None = None
    min_interval_s: float = 60.0
    timeout_s: float = 5.0
    retries: int = 2
    clock: Callable[[], float] = time.time
    log: Callable[[str], None] = lambda line: None
    queue_size: int = 100
    sent: int = 0
    dropped: int = 0
    _last: dict[tuple[str, str], float] = field(default_factory=dict)
    _queue: asyncio.Queue | None = None

    @classmethod
    def from_config(cls, alerts: Any, **kw: Any) -> AlertSender | None:
        if alerts is None or not alerts.enabled:
            return None
        return cls(alerts.command, alerts.webhook, alerts.min_interval_s, alerts.timeout_s, alerts.retries, **kw)

    def send(self, alert: AlertPayload) -> bool:
        """Queue ``alert`` unless the same (provider, kind) went out less than ``min_interval_s`` ago."""
        now = self.clock()
        key = (alert["provider"], alert["kind"])
        last = self._last.get(key)
        if last is not None and now - last < self.min_interval_s:
            return False
        self._last[key] = now
        if self._queue is None:
            self._queue = asyncio.Queue(self.queue_size)
        if self._queue.full():
            self._queue.get_nowait()  # the oldest goes: a flood never grows memory or blocks
            self.dropped += 1
        self._queue.put_nowait(alert)
        return True

    async def run(self) -> None:
        """Deliver queued alerts until cancelled."""
        if self._queue is None:
            self._queue = asyncio.Queue(self.queue_size)
        async with httpx.AsyncClient(timeout=self.timeout_s) as http:
            while True:
                alert = await self._queue.get()
                await self.deliver(alert, http)

    async def deliver(self, alert: AlertPayload, http: httpx.AsyncClient | None = None) -> list[str]:
        """Send one alert to every destination now (with retries); returns one problem line per failure."""
        problems = []
        if self.webhook:
            problem = await self._retry(lambda: self._post(alert, http))
            if problem:
                problems.append(f"webhook {where(self.webhook)}: {problem}")
        if self.command:
            problem = await self._retry(lambda: self._run(alert))
            if problem:
                problems.append(f"command {self.command[0]}: {problem}")
        for line in problems:
            self.log(f"alert not delivered: {line}")
        if not problems:
            self.sent += 1
        return problems

    async def _retry(self, attempt: Callable[[], Any]) -> str:
        problem = ""
        for n in range(self.retries + 1):
            problem = await attempt()
            if not problem:
                return ""
            if n < self.retries:
                await asyncio.sleep(min(5.0, 0.2 * 2 ** n))
        return problem

    async def _post(self, alert: AlertPayload, http: httpx.AsyncClient | None) -> str:
        assert self.webhook is not None
        try:
            if http is None:
                async with httpx.AsyncClient(timeout=self.timeout_s) as own:
                    r = await own.post(self.webhook, json=alert)
            else:
                r = await http.post(self.webhook, json=alert)
        except httpx.HTTPError as exc:
            return type(exc).__name__
        return "" if r.status_code < 300 else f"answered {r.status_code}"

    async def _run(self, alert: AlertPayload) -> str:
        assert self.command is not None
        env = {**os.environ, "POOLTUI_ALERT_PROVIDER": alert["provider"], "POOLTUI_ALERT_KIND": alert["kind"],
               "POOLTUI_ALERT_SEVERITY": alert["severity"], "POOLTUI_ALERT_SUMMARY": alert["summary"],
               "POOLTUI_ALERT_KEYS": ",".join(alert["keys"])}
        try:  # in a process group of its own, so what it started is stopped with it
            proc = await asyncio.create_subprocess_exec(
                *self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL, env=env, start_new_session=True)
        except OSError as exc:
            return f"cannot run it ({type(exc).__name__})"
        try:
            await asyncio.wait_for(proc.communicate(json.dumps(alert).encode()), self.timeout_s)
        except TimeoutError:
            kill_group(proc.pid)
            await proc.wait()
            return f"still running after {self.timeout_s:g} s: stopped"
        except BaseException:  # cancelled: the proxy or the monitor is stopping, and the command goes with it
            kill_group(proc.pid)
            raise
        return "" if proc.returncode == 0 else f"exited {proc.returncode}"


def kill_group(pgid: int) -> None:
    """SIGKILL every process of the group ``pgid`` (an alert command and whatever it started)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class AlertWatcher:
    """Turns what the status line would say into alerts for an :class:`AlertSender`, once per new alert."""

    def __init__(self, sender: AlertSender, views: Callable[[], dict[str, Any]], clock: Callable[[], float],
                 interval_s: float = 1.0) -> None:
        self.sender = sender
        self.views = views  # provider -> its current panel view
        self.clock = clock
        self.interval_s = interval_s
        self._active: dict[str, set[str]] = {}

    def event(self, event: Event) -> None:
        """A key marked invalid goes out at once."""
        if event.kind is EventKind.INVALID and event.change is StateChange.BARRED:
            self.sender.send(payload(event.provider, "invalid", "red",
                                     f"{event.key} marked invalid ({event.status}: {event.reason})",
                                     [event.key] if event.key else [], event.ts))

    def check(self) -> int:
        """Send the alerts that started since the last check; returns how many were queued."""
        queued = 0
        now = self.clock()
        for provider, view in self.views().items():
            alerts = [a for a in alerts_of(view, now) if a.kind in SENT_KINDS]
            before = self._active.get(provider, set())
            self._active[provider] = {a.kind for a in alerts}
            for a in alerts:
                if a.kind in before:
                    continue
                keys = [k["label"] for k in view["keys"] if k["state"] != "ok"] if a.kind == "capacity" else []
                incident = view.get("incident")
                summary = a.text + (f" ({incident['summary']})" if incident else "")
                queued += self.sender.send(payload(provider, a.kind, a.severity, summary, keys, now))
        return queued

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            with contextlib.suppress(Exception):  # an alert never takes the monitor or the proxy down
                self.check()
