"""Alerts leave the terminal: a webhook and a command get capacity, outage, fallback and invalid-key alerts,
rate-limited, retried, never blocking; `pooltui alerts test` sends a sample (issue 8, item 8)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pooltui.core.events import Event, EventKind, StateChange
from pooltui.session.alerts import AlertSender, AlertWatcher, payload
from pooltui.store.config import parse_alerts
from tests.tui import scripted


class Receiver:
    """A webhook receiver on loopback: records each POST; answers the statuses it is given, then 200."""

    def __init__(self, statuses: list[int] | None = None, delay_s: float = 0.0) -> None:
        self.posts: list[dict] = []
        statuses = list(statuses or [])
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                time.sleep(delay_s)
                outer.posts.append(json.loads(body))
                self.send_response(statuses.pop(0) if statuses else 200)
                self.end_headers()

            def log_message(self, *a) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/s3cr3t-path"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


async def drain(sender: AlertSender, until, timeout_s: float = 5.0) -> None:
    task = asyncio.create_task(sender.run())
    try:
        for _ in range(int(timeout_s / 0.05)):
            if until():
                return
            await asyncio.sleep(0.05)
    finally:
        task.cancel()


@pytest.mark.asyncio
async def test_an_outage_and_its_fallback_reach_the_webhook_and_the_command(receiver, tmp_path) -> None:
    out = tmp_path / "alerts.jsonl"
    session = scripted.outage()
    sender = AlertSender(["sh", "-c", f"cat >> {out}; echo >> {out}"], receiver.url, clock=session.clock.now)
    watcher = AlertWatcher(sender, session.views, session.clock.now)
    assert watcher.check() == 2 and watcher.check() == 0  # once per new alert
    await drain(sender, lambda: len(receiver.posts) == 2 and sender.sent == 2)
    kinds = sorted(p["kind"] for p in receiver.posts)
    assert kinds == ["fallback", "outage"]
    outage = next(p for p in receiver.posts if p["kind"] == "outage")
    assert outage["provider"] == "sim-anthropic" and outage["severity"] == "red"
    assert outage["summary"].startswith("OUTAGE sim-anthropic since") and "fallback served 30" in outage["summary"]
    assert set(outage) == {"provider", "kind", "severity", "keys", "summary", "time", "ts"}
    lines = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    assert sorted(p["kind"] for p in lines) == ["fallback", "outage"]


@pytest.mark.asyncio
async def test_a_key_barred_alerts_on_its_change_not_on_the_word_marked(receiver) -> None:
    """Issue 25, item 1: the alert reads the event's change; its words are for people."""
    sender = AlertSender(webhook=receiver.url, min_interval_s=60, clock=lambda: 1000.0)
    watcher = AlertWatcher(sender, dict, lambda: 1000.0)
    watcher.event(Event(1000.0, "p", "k1", EventKind.INVALID, 401, "revoked", "gesperrt", change=StateChange.BARRED))
    watcher.event(Event(1000.0, "q", "k2", EventKind.INVALID, 401, "revoked", "marked invalid"))  # words, no change
    watcher.event(Event(1000.0, "r", "k3", EventKind.INVALID, 401, "revoked", "", change=StateChange.BARRED))
    await drain(sender, lambda: len(receiver.posts) == 2)
    assert [(p["provider"], p["keys"]) for p in receiver.posts] == [("p", ["k1"]), ("r", ["k3"])]


@pytest.mark.asyncio
async def test_an_invalid_key_goes_out_at_once_and_repeats_are_rate_limited(receiver) -> None:
    now = [1000.0]
    sender = AlertSender(webhook=receiver.url, min_interval_s=60, clock=lambda: now[0])
    watcher = AlertWatcher(sender, dict, lambda: now[0])

    def bad() -> Event:
        return Event(now[0], "p", "k1", EventKind.INVALID, 401, "invalid x-api-key", "marked invalid",
                     change=StateChange.BARRED)

    watcher.event(bad())
    now[0] += 30
    watcher.event(bad())  # the same alert again within a minute of the one sent: not sent
    now[0] += 61
    watcher.event(bad())  # 91 s after the one sent (61 s after the one held back): sent
    watcher.event(Event(now[0], "p", "k1", EventKind.RATE_LIMITED, 429, "slow", "cooled",
                        change=StateChange.COOLED))  # not an alert
    await drain(sender, lambda: len(receiver.posts) == 2)
    assert [p["keys"] for p in receiver.posts] == [["k1"], ["k1"]]
    assert [p["ts"] for p in receiver.posts] == [1000.0, 1091.0]  # the first and the last, not the first two
    assert receiver.posts[0]["summary"] == "k1 marked invalid (401: invalid x-api-key)"


@pytest.mark.asyncio
async def test_a_failing_webhook_is_retried_and_a_slow_one_never_blocks() -> None:
    flaky = Receiver(statuses=[500, 502])
    sender = AlertSender(webhook=flaky.url, retries=2)
    problems = await sender.deliver(payload("p", "outage", "red", "x", [], time.time()))
    flaky.close()
    assert problems == [] and len(flaky.posts) == 3
    gone = Receiver()
    gone.close()
    gone.server.server_close()  # nothing listens there any more
    logged: list[str] = []
    sender = AlertSender(webhook=gone.url, retries=1, log=logged.append)
    problems = await sender.deliver(payload("p", "outage", "red", "x", [], time.time()))
    assert problems and logged and "s3cr3t" not in problems[0]  # the webhook's path is never shown
    slow = Receiver(delay_s=2.0)
    try:
        sender = AlertSender(webhook=slow.url, min_interval_s=0, queue_size=3)
        task = asyncio.create_task(sender.run())
        started = time.perf_counter()
        for i in range(10):
            sender.send(payload("p", f"k{i}", "red", "x", [], time.time()))
        assert time.perf_counter() - started < 0.05  # queued, never awaited
        assert sender.dropped >= 6  # bounded: the oldest went
        task.cancel()
    finally:
        slow.close()


def test_the_config_checks_alerts_at_the_edge() -> None:
    a = parse_alerts({"command": "notify-send 'pool alert'", "webhook": "https://hooks.example.com/T/B/x"})
    assert a.command == ["notify-send", "pool alert"] and a.webhook == "https://hooks.example.com/T/B/x"
    for bad, why in (({"command": 5}, "alerts.command"), ({"command": []}, "alerts.command"),
                     ({"webhook": "ftp://x"}, "alerts.webhook"), ({"webhook": "https://u:p@h/x"}, "user-info"),
                     ({"min_interval_s": float("nan")}, "finite"), ({"retries": -1}, "whole number"),
                     ({"webhok": "x"}, "unknown setting 'webhok'")):
        with pytest.raises(ValueError, match=why):
            parse_alerts(bad)


def pooltui(*args: str, config) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pooltui", "--config", str(config), *args], capture_output=True,
                          text=True, timeout=60)


def test_pooltui_alerts_test_sends_a_sample(receiver, tmp_path) -> None:
    out = tmp_path / "sample.json"
    config = tmp_path / "config.toml"
    config.write_text(f'[alerts]\ncommand = ["sh", "-c", "cat > {out}"]\nwebhook = "{receiver.url}"\n')
    r = pooltui("alerts", "test", config=config)
    assert r.returncode == 0, r.stderr
    assert "ok    webhook http://127.0.0.1:" in r.stdout and "s3cr3t" not in r.stdout
    assert json.loads(out.read_text())["kind"] == "test" and receiver.posts[0]["kind"] == "test"
    config.write_text("")
    r = pooltui("alerts", "test", config=config)
    assert r.returncode == 2 and r.stderr.startswith("pooltui: error: no alerts configured")
    config.write_text("[alerts]\ncommand = 5\n")
    r = pooltui("alerts", "test", config=config)
    assert r.returncode == 2 and "alerts.command must be a command line" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_headless_proxy_sends_alerts_too(serve, tmp_path) -> None:
    """`pooltui proxy` (no monitor) runs the alert watcher as the monitor does."""
    import os
    import socket

    import httpx

    from tests.conftest import keys, make_scenario

    spec = {"name": "main", "keys": [{"label": "gone", "secret": "sk-test-gone-0000000000000001", "invalid": True},
                                     *keys("k", 1)]}
    server = serve(make_scenario(spec))
    out = tmp_path / "alerts.jsonl"
    config = tmp_path / "config.toml"
    config.write_text(f"""
[alerts]
command = ["sh", "-c", "cat >> {out}; echo >> {out}"]

[providers.main]
kind = "openai"
base_url = "{server.base_url('main')}"
strategy = "failover"
keys = [{{ label = "gone", secret = "env:GONE_KEY" }}, {{ label = "k0", secret = "env:K0_KEY" }}]
""")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GONE_KEY": "sk-test-gone-0000000000000001", "K0_KEY": spec["keys"][1]["secret"]}
    proc = subprocess.Popen([sys.executable, "-m", "pooltui", "--config", str(config), "proxy", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions",
                               json={"model": "m", "messages": [{"role": "user", "content": "hi"}]}, timeout=5)
                break
            except httpx.ConnectError:
                time.sleep(0.1)
        assert r.status_code == 200  # 'gone' answered 401 and was marked invalid; k0 served
        for _ in range(100):
            if out.exists() and out.read_text().strip():
                break
            time.sleep(0.1)
        alert = json.loads(out.read_text().splitlines()[0])
        assert (alert["kind"], alert["provider"], alert["keys"]) == ("invalid", "main", ["gone"])
    finally:
        proc.terminate()
        proc.wait(10)
