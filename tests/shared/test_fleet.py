"""Three `pooltui proxy` processes on one config with `[state] backend = "redis"` (issue 10, item 6): a
revoked key costs one 401 in total, not one per process; a 429 learnt by one stops the others."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest
import redis

from tests.conftest import keys, make_scenario
from tests.shared.conftest import ask, fleet_json, proxy_env, start_proxies, stop_proxies, wait_until_seen

#: several proxy processes start here: on two busy cores that alone can take 10-20 s (see wait_ready)
pytestmark = pytest.mark.timeout(150)

GONE = "sk-test-gone-0000000000000001"


def test_three_proxies_share_what_they_learn(redis_server, serve, tmp_path) -> None:
    sc = make_scenario({"name": "oai", "window_s": 60, "keys": [
        {"label": "gone", "secret": GONE, "invalid": True}, *keys("k", 1, rpm=2), *keys("spare", 1)]})
    server = serve(sc)
    stats_url = server.base_url("oai").removesuffix("/oai/v1") + "/_sim/stats"
    env = proxy_env(tmp_path, redis_server.url, server.base_url("oai"),
                    '{ label = "gone", secret = "env:GONE" }, { label = "k0", secret = "env:K0" }, '
                    '{ label = "k1", secret = "env:K1" }', "failover",
                    GONE=GONE, K0=sc.primary.keys[1].secret, K1=sc.primary.keys[2].secret)
    procs, ports = start_proxies(3, env)
    try:
        assert ask(ports[0]).status_code == 200  # 'gone' answered 401 here, then k0 served
        wait_until_seen(ports[1:], env, "oai", lambda states: states["gone"] == "invalid")  # the others heard it
        for port in ports[1:]:
            assert ask(port).status_code == 200
        seen = httpx.get(stats_url).json()["oai"]
        assert seen["gone"] == {"401": 1}  # one 401 in total, not one per process
        # k0 allows 2 requests a minute: the process that spent it learnt so (its headers, else a 429), and
        # every process now goes to the spare: not one 429 per process
        wait_until_seen(ports, env, "oai", lambda states: states["k0"] != "ok")
        for port in ports * 2:
            assert ask(port).status_code == 200
        seen = httpx.get(stats_url).json()["oai"]
        assert seen["k0"]["200"] == 2 and seen["k0"].get("429", 0) <= 1, seen  # learnt once, by one process
        assert seen["spare0"] == {"200": 7}, seen
        # `pooltui fleet` lists the three processes and the key states they share
        beats = redis.Redis.from_url(redis_server.url)
        deadline = time.monotonic() + 20
        while beats.hlen("pooltui:procs") < 3:  # each process's heartbeat (once a second), waited for
            assert time.monotonic() < deadline, "not every process has said it is alive"
            time.sleep(0.02)
        beats.close()
        fleet = fleet_json(env)
        assert sorted(p["pid"] for p in fleet["procs"]) == sorted(p.pid for p in procs)
        assert {(k["key"], k["state"]) for k in fleet["keys"]} >= {("gone", "invalid")}
        text = subprocess.run([sys.executable, "-m", "pooltui", "fleet"], env=env, capture_output=True, text=True,
                              timeout=30).stdout
        assert text.startswith("3 processes serving") and "oai/gone" in text and GONE not in text
    finally:
        stop_proxies(procs)


def test_the_fleet_monitor_refuses_a_bad_url_and_an_unreachable_redis_in_one_line(tmp_path) -> None:
    from click.testing import CliRunner

    from pooltui.commands.cli import cli
    from tests.shared.conftest import free_port

    env = {"POOLTUI_CONFIG": str(tmp_path / "config.toml"), "POOLTUI_DATA_DIR": str(tmp_path / "data")}
    for url, said in (("http://127.0.0.1:6379", "--state needs a Redis URL"),
                      (f"redis://:hunter2@127.0.0.1:{free_port()}/0", "cannot reach Redis at redis://127.0.0.1:")):
        result = CliRunner().invoke(cli, ["monitor", "--state", url], env=env)
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and said in lines[0] and "hunter2" not in result.output
