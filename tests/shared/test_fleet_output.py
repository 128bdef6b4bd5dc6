"""`pooltui fleet` reads what anyone could have written to the store (issue 26): a list where a hash is
expected is skipped with one line (it made `fleet` exit 2 for everyone), and terminal escape sequences planted
in a heartbeat or a key state are stripped before printing (window title, screen clear, OSC 52 clipboard)."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import redis

from tests.conftest import pooltui_in_process
from tests.shared.conftest import proxy_env

PLANTED = "\x1b]0;pwned\x07\x1b[2J\x1b]52;c;ZXZpbA==\x07"


def fleet(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`pooltui fleet ARGS` in this process (its real process: tests/shared/test_fleet.py)."""
    return pooltui_in_process("fleet", *args, env=env)


def heartbeat(instance: str, host: str, **fields) -> str:
    return json.dumps({"instance": instance, "host": host, "pid": 42, "last_seen": time.time(),
                       "requests_per_s": 1.0, "providers": ["oai"], **fields})


def test_a_list_where_a_hash_is_expected_is_skipped_with_one_line(redis_server, tmp_path) -> None:
    env = proxy_env(tmp_path, redis_server.url, "http://127.0.0.1:9/v1", '{ label = "k0", secret = "env:K0" }')
    r = redis.Redis.from_url(redis_server.url)
    try:
        r.hset("pooltui:procs", mapping={"good": heartbeat("good", "host-a"), "list": json.dumps([1, 2])})
        r.hset("pooltui:keys:oai", mapping={
            "k0": json.dumps({"provider": "oai", "key": "k0", "fingerprint": "ab12cd34", "state": "cooling",
                              "until": time.time() + 60, "at": time.time()}),
            "k1": json.dumps(["a", "list"])})
        r.rpush("pooltui:keys:zzz", "a list, not a hash")
        done = fleet(env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("1 process serving") and "host-a" in done.stdout and "oai/k0" in done.stdout
        skipped = done.stderr.strip().splitlines()
        assert 1 <= len(skipped) <= 3 and all("skipped" in line for line in skipped), done.stderr
        r.delete("pooltui:procs")
        r.rpush("pooltui:procs", "a list")
        done = fleet(env)
        assert done.returncode == 0 and done.stdout.startswith("0 processes serving"), done.stderr
    finally:
        r.close()


def test_escape_sequences_planted_in_a_heartbeat_are_not_printed(redis_server, tmp_path) -> None:
    env = proxy_env(tmp_path, redis_server.url, "http://127.0.0.1:9/v1", '{ label = "k0", secret = "env:K0" }')
    r = redis.Redis.from_url(redis_server.url)
    try:
        r.hset("pooltui:procs", "evil", heartbeat(f"evil{PLANTED}", f"host{PLANTED}"))
        r.hset("pooltui:keys:oai", "k0", json.dumps(
            {"provider": "oai", "key": "k0", "fingerprint": "ab12cd34", "state": "disabled", "until": None,
             "reason": f"by hand{PLANTED}", "at": time.time()}))
        done = fleet(env)
        assert done.returncode == 0, done.stderr
        assert "\x1b" not in done.stdout + done.stderr and "\x07" not in done.stdout
        assert "host" in done.stdout and "by hand" in done.stdout
        as_json = fleet(env, "--json")
        assert "\x1b" not in as_json.stdout and as_json.returncode == 0
    finally:
        r.close()


def test_a_planted_event_does_not_stop_the_fleet_monitor(redis_server) -> None:
    import asyncio

    from pooltui.store.fleet import FleetLink

    r = redis.Redis.from_url(redis_server.url)
    try:
        for planted in ([1, 2], {"ts": "abc"}, {"ts": float("inf")}, "text"):
            r.xadd("pooltui:events", {"e": json.dumps(planted)})
        r.xadd("pooltui:events", {"e": json.dumps({"ts": time.time(), "provider": "oai", "kind": "state",
                                                   "reason": "real", "action": "x"})})

        async def read() -> tuple[list, list[str]]:
            link = FleetLink(redis_server.url)
            try:
                return await link.events_after("0-0"), link.skipped
            finally:
                await link.aclose()

        events, skipped = asyncio.run(read())
        assert [e["reason"] for _, e in events] == ["real"] and skipped == ["skipped an event (not an event)"]
    finally:
        r.close()


def test_forged_deadlines_do_not_make_a_proxy_answer_500(redis_server, serve, tmp_path) -> None:
    """One publish of `"until": "abc"` (or `[1]`, or Infinity on every key) made every process on the prefix
    answer 500 until restarted, `/pooltui/state` too: a real proxy process, the forged states published to it."""
    from pathlib import Path

    from pooltui.core.masking import fingerprint
    from pooltui.store.admin_token import read_admin_token
    from tests.conftest import keys, make_scenario
    from tests.shared.conftest import ask, start_proxies, stop_proxies

    sc = make_scenario({"name": "oai", "keys": keys("k", 2)})
    server = serve(sc)
    secrets = {"K0": sc.primary.keys[0].secret, "K1": sc.primary.keys[1].secret}
    env = proxy_env(tmp_path, redis_server.url, server.base_url("oai"),
                    '{ label = "k0", secret = "env:K0" }, { label = "k1", secret = "env:K1" }', "failover", **secrets)
    procs, ports = start_proxies(1, env, tmp_path)
    r = redis.Redis.from_url(redis_server.url)
    try:
        assert ask(ports[0]).status_code == 200
        for label, secret in (("k0", secrets["K0"]), ("k1", secrets["K1"])):
            base = {"from": "evil", "provider": "oai", "key": label, "fingerprint": fingerprint(secret),
                    "at": time.time()}
            for forged in ({**base, "state": "disabled", "until": "abc"}, {**base, "state": "disabled", "until": [1]},
                           {**base, "state": "cooling", "until": float("inf")}):
                r.publish("pooltui:keys", json.dumps(forged))
        time.sleep(0.3)
        assert [ask(ports[0]).status_code for _ in range(3)] == [200, 200, 200]
        token = read_admin_token(Path(env["POOLTUI_DATA_DIR"]))
        state = httpx.get(f"http://127.0.0.1:{ports[0]}/pooltui/state", timeout=10,
                          headers={"x-pooltui-admin-token": token or ""})
        assert state.status_code == 200
    finally:
        r.close()
        stop_proxies(procs)
    log = (tmp_path / "proxy0.log").read_text()
    assert "Traceback" not in log and log.count("dropped") <= 3


def test_a_planted_panel_does_not_blank_the_fleet_monitor(redis_server) -> None:
    import asyncio

    from pooltui.session.fleet_view import FleetSession

    r = redis.Redis.from_url(redis_server.url)
    try:
        r.hset("pooltui:procs", "evil", heartbeat("evil", "host-x", panels={"oai": [1, 2], "other": {"x": 1}}))

        async def read() -> dict:
            session = FleetSession(redis_server.url, current="")
            try:
                await session.start()
                return await session.read()
            finally:
                await session.stop()

        view = asyncio.run(read())
        assert "oai" not in view["providers"]
    finally:
        r.close()
