"""The command line: traffic, sim serve / keys, and one-line errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest

from pooltui.sim import load_scenario
from pooltui.sim.process import free_port


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pooltui", *args], capture_output=True, text=True, timeout=timeout)


def test_traffic_json_summary_against_the_revoked_key_scenario() -> None:
    out = run("traffic", "--scenario", "revoked-key", "--requests", "80", "--rate", "0", "--json", "--seed", "1")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    for field in ("requests", "succeeded", "failed", "strategy", "fallback_used", "elapsed_s", "errors", "keys"):
        assert field in data
    assert data["requests"] == 80 == data["succeeded"] + data["failed"]
    by_label = {k["label"]: k for k in data["keys"]}
    assert by_label["beta"]["state"] == "invalid" and by_label["beta"]["invalid"] >= 1
    for k in data["keys"]:
        assert {"label", "state", "requests", "ok", "rate_limited", "invalid", "quota", "server_errors"} <= set(k)
    for label, secret in ((k.label, k.secret) for k in load_scenario("revoked-key").primary.keys):
        assert secret not in out.stdout, label


def test_traffic_outage_uses_the_fallback_and_prints_traces() -> None:
    out = run("traffic", "--scenario", "outage", "--requests", "120", "--rate", "30", "--strategy", "least_used",
              "--trace", "2")
    assert out.returncode == 0, out.stderr
    assert "strategy least-used" in out.stdout
    assert out.stdout.count("request #") == 2 and "pick [" in out.stdout
    used = int(out.stdout.split("fallback used ")[1].split("x")[0])
    assert used > 0


def test_bad_input_is_one_line_exit_2() -> None:
    for args, needle in ((("traffic", "--scenario", "nope"), "unknown scenario"),
                         (("traffic", "--strategy", "bogus"), "unknown strategy")):
        out = run(*args)
        assert out.returncode == 2
        assert needle in out.stderr and "Traceback" not in out.stderr


def test_sim_keys_prints_label_and_secret() -> None:
    out = run("sim", "keys", "--scenario", "steady")
    assert out.returncode == 0
    lines = [line.split(" ") for line in out.stdout.splitlines()]
    assert [label for label, _ in lines] == ["alpha", "beta", "gamma"]
    assert all(secret.startswith("sk-sim-") for _, secret in lines)


def test_sim_serve_answers_on_loopback() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pooltui", "sim", "serve", "--scenario", "steady", "--port",
                             str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        secret = load_scenario("steady").primary.keys[0].secret
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/models", headers={"authorization": f"Bearer {secret}"})
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail("sim serve did not come up")
                time.sleep(0.1)
        assert r.status_code == 200 and r.json()["data"][0]["id"] == "gpt-sim-1"
    finally:
        proc.terminate()
        proc.wait(10)


def test_sim_serve_refuses_non_loopback() -> None:
    out = run("sim", "serve", "--host", "0.0.0.0")
    assert out.returncode == 2 and "only binds loopback" in out.stderr


def test_traffic_streams_count_tokens() -> None:
    out = run("traffic", "--scenario", "steady", "--requests", "30", "--rate", "0", "--stream", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["succeeded"] == 30
    assert sum(k["tokens_out"] for k in data["keys"]) > 0
