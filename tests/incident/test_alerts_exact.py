"""Alerts, field by field: what the command sees in its environment, what from_config carries over, what the
watcher sends and when (issue 25, item 6: mutation survivors in session/alerts.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from pooltui.core.events import Event, EventKind, StateChange
from pooltui.session.alerts import AlertSender, AlertWatcher, payload
from pooltui.store.config import parse_alerts
from tests.incident.test_alerts import Receiver, drain

NOW = 1_700_000_000.0


def view(provider: str = "p", states: tuple[str, ...] = ("ok", "ok", "ok"), outage: bool = False,
         fallback: str | None = None, incident: str | None = None) -> dict[str, Any]:
    """One provider's panel view, as the monitor builds it, with only what alerts read."""
    usable = sum(s == "ok" for s in states)
    return {"provider": provider, "usable": usable, "total": len(states), "capacity_alert": 2, "next_ready_in": None,
            "queued": 0, "keys": [{"label": f"k{i}", "state": s} for i, s in enumerate(states)],
            "outage": {"provider": provider, "since": NOW - 60} if outage else None,
            "fallback": fallback, "fallback_served": 3 if fallback else 0,
            "incident": {"summary": incident} if incident else None}


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_from_config_carries_every_setting_and_the_extras() -> None:
    assert AlertSender.from_config(None) is None
    assert AlertSender.from_config(parse_alerts({})) is None  # nothing to send to: no sender
    alerts = parse_alerts({"command": ["true"], "webhook": "https://hooks.example.com/x", "min_interval_s": 7.5,
                           "timeout_s": 1.5, "retries": 4})
    clock: Callable[[], float] = lambda: 42.0  # noqa: E731
    sender = AlertSender.from_config(alerts, clock=clock)
    assert sender is not None
    assert (sender.command, sender.webhook, sender.min_interval_s, sender.timeout_s, sender.retries) == (
        ["true"], "https://hooks.example.com/x", 7.5, 1.5, 4)
    assert sender.clock is clock


@pytest.mark.asyncio
async def test_the_command_gets_each_field_in_its_environment(tmp_path) -> None:
    out = tmp_path / "env.txt"
    sender = AlertSender(["sh", "-c", f"env > {out}"], retries=0)
    alert = payload("prov-a", "capacity", "amber", "CAPACITY 1/3 usable", ["k1", "k2"], NOW)
    assert await sender.deliver(alert) == []
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if line.startswith("POOLTUI_ALERT_"))
    assert env == {"POOLTUI_ALERT_PROVIDER": "prov-a", "POOLTUI_ALERT_KIND": "capacity",
                   "POOLTUI_ALERT_SEVERITY": "amber", "POOLTUI_ALERT_SUMMARY": "CAPACITY 1/3 usable",
                   "POOLTUI_ALERT_KEYS": "k1,k2"}
    assert "PATH=" in out.read_text()  # the rest of the environment is kept


@pytest.mark.asyncio
async def test_the_command_never_writes_on_the_terminal(capfd) -> None:
    sender = AlertSender(["sh", "-c", "echo leaked-out; echo leaked-err >&2"], retries=0)
    assert await sender.deliver(payload("p", "outage", "red", "x", [], NOW)) == []
    captured = capfd.readouterr()
    assert "leaked" not in captured.out and "leaked" not in captured.err


@pytest.mark.asyncio
async def test_a_command_failing_is_told_apart() -> None:
    alert = payload("p", "outage", "red", "x", [], NOW)
    assert await AlertSender(["sh", "-c", "exit 3"], retries=0).deliver(alert) == ["command sh: exited 3"]
    missing = AlertSender(["/nonexistent/alert-cmd"], retries=0)
    assert await missing.deliver(alert) == ["command /nonexistent/alert-cmd: cannot run it (FileNotFoundError)"]
    started = time.perf_counter()
    slow = AlertSender(["sleep", "30"], timeout_s=0.3, retries=0)
    assert await slow.deliver(alert) == ["command sleep: still running after 0.3 s: stopped"]
    assert time.perf_counter() - started < 5


@pytest.mark.asyncio
async def test_run_started_first_delivers_and_keeps_the_timeout(receiver) -> None:
    sender = AlertSender(webhook=receiver.url, min_interval_s=0)
    task = asyncio.create_task(sender.run())  # before anything was sent: run makes the queue
    await asyncio.sleep(0.05)
    assert sender.send(payload("p", "outage", "red", "x", [], NOW))
    for _ in range(100):
        if sender.sent:
            break
        await asyncio.sleep(0.05)
    task.cancel()
    assert sender.sent == 1 and receiver.posts[0]["kind"] == "outage"
    slow = Receiver(delay_s=3.0)
    logged: list[str] = []
    try:
        sender = AlertSender(webhook=slow.url, timeout_s=0.3, retries=0, log=logged.append)
        sender.send(payload("p", "outage", "red", "x", [], NOW))
        await drain(sender, lambda: bool(logged), timeout_s=2.0)  # the timeout holds in run's own client
        assert logged and "ReadTimeout" in logged[0] and sender.sent == 0
    finally:
        slow.close()


@pytest.mark.asyncio
async def test_an_invalid_key_alert_carries_every_field(receiver) -> None:
    sender = AlertSender(webhook=receiver.url, min_interval_s=0, clock=lambda: NOW)
    watcher = AlertWatcher(sender, dict, lambda: NOW)
    watcher.event(Event(NOW - 5, "prov-b", "k7", EventKind.INVALID, 401, "bad key", "x", change=StateChange.BARRED))
    watcher.event(Event(NOW - 4, "prov-c", "", EventKind.INVALID, 403, "no key", "x", change=StateChange.BARRED))
    await drain(sender, lambda: len(receiver.posts) == 2)
    first, keyless = receiver.posts
    assert first == payload("prov-b", "invalid", "red", "k7 marked invalid (401: bad key)", ["k7"], NOW - 5)
    assert first["time"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - 5))
    assert keyless["keys"] == [] and keyless["provider"] == "prov-c"


@pytest.mark.asyncio
async def test_the_watcher_sends_each_new_alert_once_with_its_keys(receiver) -> None:
    views = {"p": view(outage=True)}
    sender = AlertSender(webhook=receiver.url, min_interval_s=0, clock=lambda: NOW)
    watcher = AlertWatcher(sender, lambda: views, lambda: NOW)
    assert watcher.check() == 1
    assert watcher.check() == 0  # still the same alert: the watcher, not the rate limit, holds it back
    views["p"] = view(states=("ok", "cooling", "invalid"), outage=True, incident="since 10:00: 9 x 429")
    views["q"] = view("q", states=("ok", "ok", "cooling"), fallback="backup")  # a key down, capacity fine
    assert watcher.check() == 2  # the outage (red, first) is still on and skipped; capacity after it is new
    await drain(sender, lambda: len(receiver.posts) == 3)
    outage, capacity, fallback = receiver.posts
    assert outage["kind"] == "outage" and outage["keys"] == [] and outage["ts"] == NOW
    assert outage["summary"].startswith("OUTAGE p since ") and "(" not in outage["summary"]
    assert capacity == payload("p", "capacity", "amber", "CAPACITY 1/3 usable (since 10:00: 9 x 429)",
                               ["k1", "k2"], NOW)
    assert fallback == payload("q", "fallback", "amber", "FALLBACK ACTIVE backup served 3 in 1 min", [], NOW)


@pytest.mark.asyncio
async def test_the_watcher_checks_about_once_a_second(receiver) -> None:
    sender = AlertSender(webhook=receiver.url, clock=lambda: NOW)
    watcher = AlertWatcher(sender, lambda: {"p": view(outage=True)}, lambda: NOW)
    task = asyncio.create_task(watcher.run())
    started = time.perf_counter()
    try:
        await drain(sender, lambda: bool(receiver.posts), timeout_s=1.8)
    finally:
        task.cancel()
    assert receiver.posts and time.perf_counter() - started < 1.8
