"""Alerts at their edges: the webhook as it may be shown (host and port, never the path), the rate limiter's
answer and its exact interval, the flood counter, the delivered counter, the number of attempts and the retry
schedule (on the loop's virtual clock: looptime). Written from the mutation run's survivors."""

from __future__ import annotations

import asyncio

import pytest

from pooltui.session.alerts import AlertSender, AlertWatcher, payload, where
from tests.incident.test_alerts import Receiver

pytestmark = pytest.mark.asyncio


def alert(kind: str = "outage"):
    return payload("p", kind, "red", "x", [], 1.0)


async def test_a_webhook_is_shown_by_scheme_host_and_port_only() -> None:
    assert where("http://127.0.0.1:8080/hook/s3cr3t") == "http://127.0.0.1:8080/…"
    assert where("https://hooks.example.com/services/T0/B0/s3cr3t") == "https://hooks.example.com/…"
    gone = Receiver()
    gone.close()
    gone.server.server_close()
    port = gone.server.server_address[1]
    problems = await AlertSender(webhook=gone.url, retries=0).deliver(alert())
    assert problems and problems[0].startswith(f"webhook http://127.0.0.1:{port}/…: ")


async def test_the_limiter_says_what_it_held_back_and_opens_at_its_interval() -> None:
    now = [1000.0]
    sender = AlertSender(webhook="http://127.0.0.1:9/x", min_interval_s=60, clock=lambda: now[0])
    assert sender.send(alert()) is True
    now[0] += 59.9
    assert sender.send(alert()) is False  # held back: not queued
    assert sender.send(alert("capacity")) is True  # another kind is not held back by this one
    now[0] = 1060.0
    assert sender.send(alert()) is True  # exactly the interval after the one sent


async def test_a_flood_drops_the_oldest_and_counts_each() -> None:
    sender = AlertSender(webhook="http://127.0.0.1:9/x", min_interval_s=0, queue_size=3)
    for i in range(10):
        sender.send(payload("p", f"kind{i}", "red", "x", [], 1.0))
    assert sender.dropped == 7


async def test_each_delivery_counts_once_and_each_retry_posts_once() -> None:
    receiver = Receiver(statuses=[500, 500, 500, 300])  # then 200s
    try:
        problems = await AlertSender(webhook=receiver.url, retries=2).deliver(alert())
        assert problems and "answered 500" in problems[0] and len(receiver.posts) == 3
        assert await AlertSender(webhook=receiver.url, retries=0).deliver(alert()) != []  # 2xx only is delivered
        sender = AlertSender(webhook=receiver.url, retries=0)
        assert await sender.deliver(alert()) == [] and await sender.deliver(alert()) == []
        assert sender.sent == 2
    finally:
        receiver.close()


@pytest.mark.looptime
async def test_retries_back_off_doubling_from_a_fifth_of_a_second_to_five() -> None:
    loop = asyncio.get_running_loop()
    sender = AlertSender(["/nonexistent/alert-command"], retries=6)
    started = loop.time()
    problems = await sender.deliver(alert())
    assert problems == ["command /nonexistent/alert-command: cannot run it (FileNotFoundError)"]
    # 0.2, 0.4, 0.8, 1.6, 3.2, then capped at 5: no wait after the last attempt
    assert loop.time() - started == pytest.approx(0.2 + 0.4 + 0.8 + 1.6 + 3.2 + 5.0)


async def test_a_command_stopped_at_its_timeout_takes_what_it_started_with_it(tmp_path) -> None:
    pidfile = tmp_path / "child.pid"
    sender = AlertSender(["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"], timeout_s=0.5, retries=0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await sender.deliver(alert()) == ["command sh: still running after 0.5 s: stopped"]
    assert loop.time() - started < 10  # the group was stopped, not waited for (its sleep lasts 30 s)
    child = int(pidfile.read_text())
    for _ in range(100):  # the group's SIGKILL reaches the child at once; the reaper may take a moment
        try:
            with open(f"/proc/{child}/stat") as stat:
                if stat.read().split(") ")[1].startswith("Z"):
                    break
        except FileNotFoundError:
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail(f"the command's child {child} still runs")


async def test_a_slow_webhook_is_given_up_at_its_timeout() -> None:
    slow = Receiver(delay_s=3.0)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        problems = await AlertSender(webhook=slow.url, timeout_s=0.3, retries=0).deliver(alert())
        assert problems and "ReadTimeout" in problems[0] and loop.time() - started < 2.5
    finally:
        slow.close()


@pytest.mark.looptime
async def test_the_watcher_outlives_a_view_that_fails() -> None:
    calls = []

    def views() -> dict:
        calls.append(1)
        raise RuntimeError("a view broke")

    watcher = AlertWatcher(AlertSender(webhook="http://127.0.0.1:9/x"), views, lambda: 1.0, interval_s=1.0)
    task = asyncio.create_task(watcher.run())
    await asyncio.sleep(3.5)
    assert not task.done() and len(calls) == 3
    task.cancel()
