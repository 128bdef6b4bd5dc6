"""`pooltui proxy` processes on one Redis survive their store and their own death (issue 10, items 3, 4
and 6): Redis restarted mid-run fails no request and loses no learnt state; a proxy killed with SIGKILL
mid-request loses no spend it counted; a key added with the CLI serves through all three within a second."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import redis

from pooltui.core.budget import period_starts
from pooltui.core.masking import fingerprint
from tests.conftest import keys, make_scenario
from tests.shared.conftest import ask, proxy_env, start_proxies, stop_proxies

#: several proxy processes start here: on two busy cores that alone can take 10-20 s (see wait_ready)
pytestmark = pytest.mark.timeout(150)

GONE = "sk-test-gone-0000000000000002"


def wait_for(check, timeout_s: float, what: str) -> float:
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < timeout_s, f"{what}: not within {timeout_s:g} s"
        time.sleep(0.02)
    return time.monotonic() - t0


def test_redis_restarted_mid_run_fails_no_request_and_loses_no_learnt_state(redis_server, serve, tmp_path) -> None:
    sc = make_scenario({"name": "oai", "keys": [{"label": "gone", "secret": GONE, "invalid": True}, *keys("k", 2)]})
    server = serve(sc)
    env = proxy_env(tmp_path, redis_server.url, server.base_url("oai"),
                    '{ label = "gone", secret = "env:GONE" }, { label = "k0", secret = "env:K0" }, '
                    '{ label = "k1", secret = "env:K1" }', "failover",
                    GONE=GONE, K0=sc.primary.keys[1].secret, K1=sc.primary.keys[2].secret)
    procs, ports = start_proxies(3, env, tmp_path)
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    statuses: list[int] = []
    try:
        statuses += [ask(port).status_code for port in ports]  # the first learns 'gone' is revoked
        # the waits below are on what happens, their bounds only a verdict for a process that never does it: 5 s
        # bounds were outlasted under load (the test took 20 s there instead of 2.5 s)
        wait_for(lambda: '"invalid"' in (r.hget("pooltui:keys:oai", "gone") or ""), 30, "the 401 shared")
        stop = threading.Event()
        failed: list[str] = []

        def drive() -> None:
            i = 0
            while not stop.is_set():
                try:
                    statuses.append(ask(ports[i % 3]).status_code)
                except Exception as exc:  # said as it is, not a driver gone quiet and a wait that times out
                    failed.append(repr(exc))
                    return
                i += 1

        driver = threading.Thread(target=drive)
        driver.start()
        # counted requests, not fixed times: a loaded run served only 8 in a fixed 1.5 s with Redis down
        wait_for(lambda: failed or len(statuses) >= 3 + 6, 30, "traffic flowing")
        served_before = len(statuses)
        redis_server.stop()  # every process serves on its own view meanwhile
        wait_for(lambda: failed or len(statuses) - served_before > 10, 30, "requests served while Redis is down")
        wait_for(lambda: all("unreachable" in (tmp_path / f"proxy{i}.log").read_text() for i in range(3)), 30,
                 "every proxy noticed Redis is gone")
        served_while_down = len(statuses) - served_before
        redis_server.start()  # empty: it kept nothing
        r = redis.Redis.from_url(redis_server.url, decode_responses=True)
        back = wait_for(lambda: '"invalid"' in (r.hget("pooltui:keys:oai", "gone") or ""), 30, "resynchronised")
        wait_for(lambda: r.hlen("pooltui:procs") == 3, 30, "all three back")
        served_after = len(statuses)
        wait_for(lambda: failed or len(statuses) > served_after + 3, 30, "requests served once Redis is back")
        stop.set()
        driver.join(30)
        assert not failed, failed
        assert served_while_down > 10
        assert len(statuses) > served_before + served_while_down and set(statuses) == {200}, set(statuses)
        assert server.state.stats()["oai"]["gone"] == {"401": 1}  # still one 401 in total
        print(f"\nrequests {len(statuses)}, {served_while_down} while Redis was down, all 200; "
              f"the shared state was back {back:.2f} s after Redis restarted")
    finally:
        stop_proxies(procs)
    for i in range(3):
        said = (tmp_path / f"proxy{i}.log").read_text()
        assert said.count("unreachable") == 1, said  # one line, not one per request or per retry
        assert "Traceback" not in said


def test_a_proxy_killed_mid_request_loses_no_spend_it_counted(redis_server, serve, tmp_path) -> None:
    """Spend is written to Redis before the caller gets its answer: what a caller was answered is counted,
    whenever the process dies."""
    sc = make_scenario({"name": "oai", "latency_ms": [150, 150], "keys": keys("k", 1)})
    server = serve(sc)
    secret = sc.primary.keys[0].secret
    env = proxy_env(tmp_path, redis_server.url, server.base_url("oai"),
                    '{ label = "k0", secret = "env:K0", budget_tokens_day = 1000000 }', K0=secret)
    procs, ports = start_proxies(1, env)
    answered: list[int] = []
    killed = threading.Event()

    def drive() -> None:
        while not killed.is_set():
            try:
                reply = ask(ports[0])
            except Exception:
                return  # the proxy died under this request
            if reply.status_code == 200:
                answered.append(int(reply.json()["usage"]["total_tokens"]))
            if len(answered) == 6:
                time.sleep(0.05)  # the next request is at the provider now
                os.kill(procs[0].pid, signal.SIGKILL)
                killed.set()

    try:
        driver = threading.Thread(target=drive)
        driver.start()
        driver.join(60)
        assert killed.is_set() and procs[0].wait(10) == -signal.SIGKILL
    finally:
        stop_proxies(procs)
    day = period_starts(time.time())[0]
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    counted = int(r.get(f"pooltui:spend:oai:k0:{fingerprint(secret)}:tokens:{day}") or 0)
    assert sum(answered) > 0
    assert sum(answered) <= counted <= sum(answered) + max(answered), (answered, counted)


def test_a_key_added_with_the_cli_serves_through_all_three_within_a_second(redis_server, serve, tmp_path) -> None:
    sc = make_scenario({"name": "oai", "keys": [{"label": "gone", "secret": GONE, "invalid": True},
                                                *keys("fresh", 1)]})
    server = serve(sc)
    env = proxy_env(tmp_path, redis_server.url, server.base_url("oai"), '{ label = "gone", secret = "env:GONE" }',
                    GONE=GONE)
    procs, ports = start_proxies(3, env)
    try:
        asked = time.monotonic()
        assert all(ask(port).status_code != 200 for port in ports)  # no usable key yet
        one_answer = (time.monotonic() - asked) / len(ports)  # what one request takes on this machine, now
        added = subprocess.run([sys.executable, "-m", "pooltui", "auth", "add", "oai", "--pool", "fresh", "--stdin"],
                               input=sc.primary.keys[1].secret + "\n", env=env, capture_output=True, text=True,
                               timeout=60)
        assert added.returncode == 0, added.stderr
        t0 = time.monotonic()
        took = []
        for port in ports:
            reply = ask(port)
            while reply.status_code != 200:
                assert time.monotonic() - t0 < 5, reply.text
                time.sleep(0.02)
                reply = ask(port)
            assert reply.headers["x-pooltui-served-by"].endswith("fresh")
            took.append(time.monotonic() - t0)
        print(f"\nthe added key served through each proxy after {', '.join(f'{s:.2f}' for s in took)} s")
        # within a second, plus the answers' own time measured above (compared within the run: a loaded
        # machine made it 1.87 s once, where the three answers alone took most of that)
        assert max(took) < 1.0 + 3 * len(ports) * one_answer, (took, one_answer)
    finally:
        stop_proxies(procs)


def test_a_daily_budget_is_spent_once_across_three_proxies(redis_server, serve, tmp_path) -> None:
    """In memory each proxy counted its own spend: three proxies spent a daily budget three times."""
    sc = make_scenario({"name": "oai", "keys": keys("k", 1) + keys("spare", 1)})
    server = serve(sc)
    env = proxy_env(tmp_path, redis_server.url, server.base_url("oai"),
                    '{ label = "k0", secret = "env:K0", budget_tokens_day = 300 }, '
                    '{ label = "spare", secret = "env:SPARE" }', "failover",
                    K0=sc.primary.keys[0].secret, SPARE=sc.primary.keys[1].secret)
    procs, ports = start_proxies(3, env)
    on_k0: list[int] = []
    on_spare = 0
    try:
        # until each proxy has served on the spare twice more once k0 spent its 300 (20-odd requests): one
        # budget per proxy would have k0 serve on past 300
        for i in range(60):
            reply = ask(ports[i % 3])
            assert reply.status_code == 200
            if reply.headers["x-pooltui-served-by"].endswith("k0"):
                on_k0.append(int(reply.json()["usage"]["total_tokens"]))
            elif sum(on_k0) >= 300:
                on_spare += 1
                if on_spare == 6:
                    break
    finally:
        stop_proxies(procs)
    print(f"\nk0 served {len(on_k0)} requests, {sum(on_k0)} tokens, for a budget of 300 across three proxies")
    assert 300 <= sum(on_k0) < 300 + 2 * max(on_k0)  # once across the three, not 300 each
