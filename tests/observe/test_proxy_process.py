"""`pooltui proxy` as a real process: `--log-format json` access lines on stderr, traces sent to the OTLP endpoint
the standard variable names (the access line carries the span's trace id), and a bad `[telemetry]` table or
log option answered with one line and exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx

from tests.conftest import keys, make_scenario
from tests.observe.otlp_receiver import OtlpReceiver
from tests.shared.conftest import ask, log_until, start_proxies, stop_proxies


def env_for(path, tmp_path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return {**base, "POOLTUI_CONFIG": str(path), "POOLTUI_DATA_DIR": str(tmp_path / "data"),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring", **extra}


def on_simulator(serve, tmp_path):
    """A config with one openai-style provider ``main`` (two keys, given by environment variables) on a
    simulator: (its path, the variables)."""
    scenario = make_scenario({"name": "main", "keys": keys("k", 2)})
    server = serve(scenario)
    path = tmp_path / "config.toml"
    path.write_text(f'[providers.main]\nkind = "openai"\nbase_url = "{server.base_url("main")}"\nkeys = ['
                    + ", ".join(f'{{label = "{k.label}", secret = "env:POOLTUI_T_{k.label.upper()}"}}'
                                for k in scenario.primary.keys) + "]\n")
    return path, {f"POOLTUI_T_{k.label.upper()}": k.secret for k in scenario.primary.keys}


def test_json_access_line_carries_the_exported_trace(serve, tmp_path) -> None:
    path, secrets = on_simulator(serve, tmp_path)
    with OtlpReceiver() as receiver:
        env = env_for(path, tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_BSP_SCHEDULE_DELAY="50",
                      OTEL_SERVICE_NAME="gateway-test", **secrets)
        procs, ports = start_proxies(1, env, logs=tmp_path)
        try:
            assert ask(ports[0]).status_code == 200
            [span] = [s for s in receiver.wait_for(2) if s.server]
        finally:
            stop_proxies(procs)
    assert span.service == "gateway-test" and span.name == "chat m"
    log = (tmp_path / "proxy0.log").read_text()
    assert span.trace_id in log and "POST /v1/chat/completions 200" in log  # the text access line
    assert not any(secret in log for secret in secrets.values())


def test_json_lines_from_the_command(serve, tmp_path) -> None:
    path, secrets = on_simulator(serve, tmp_path)
    env = env_for(path, tmp_path, **secrets)
    log = tmp_path / "proxy.log"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "pooltui", "proxy", "--port", "0", "--log-format", "json"],
                                env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        found = log_until(log, r"pooltui proxy on http://[^:/]+:(\d+)", 45, proc)
        assert found is not None, log.read_text()
        assert ask(int(found.group(1))).status_code == 200
        line = log_until(log, r'\{"time": .*"logger": "pooltui.access".*\}', 20, proc)
        assert line is not None, log.read_text()
    finally:
        stop_proxies([proc])
    access = json.loads(line.group(0))
    assert (access["status"], access["provider"], access["api"], access["level"]) == (200, "main", "openai", "info")


def test_bad_telemetry_or_log_option_is_one_line_and_exit_2(tmp_path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[telemetry]\nendpoint = "ftp://collector"\n')
    env = env_for(path, tmp_path)
    out = subprocess.run([sys.executable, "-m", "pooltui", "proxy", "--port", "0"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "telemetry.endpoint" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([sys.executable, "-m", "pooltui", "proxy", "--log-format", "xml"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_a_log_file_that_cannot_be_written_is_one_line_and_exit_2(serve, tmp_path) -> None:
    path, secrets = on_simulator(serve, tmp_path)
    out = subprocess.run([sys.executable, "-m", "pooltui", "proxy", "--port", "0", "--log-file",
                          str(tmp_path / "no-such-folder" / "proxy.log")], env=env_for(path, tmp_path, **secrets),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "cannot write the log file" in out.stderr and "Traceback" not in out.stderr


def test_no_access_line_is_lost_at_a_clean_shutdown(serve, tmp_path) -> None:
    """The log is written in batches by a thread: the lines still queued when the proxy is stopped go out."""
    path, secrets = on_simulator(serve, tmp_path)
    log = tmp_path / "proxy.log"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "pooltui", "proxy", "--port", "0", "--log-format", "json"],
                                env=env_for(path, tmp_path, **secrets), stdout=subprocess.DEVNULL, stderr=err)
    try:
        found = log_until(log, r"pooltui proxy on http://[^:/]+:(\d+)", 45, proc)
        assert found is not None, log.read_text()
        port = int(found.group(1))
        assert ask(port).status_code == 200
        with httpx.Client(timeout=10) as http:
            for _ in range(30):
                assert http.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={
                    "model": "m", "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
    finally:
        stop_proxies([proc])  # at once: the last lines are still queued
    access = [line for line in log.read_text().splitlines() if '"logger": "pooltui.access"' in line]
    assert len(access) == 31 and proc.returncode == 0


def test_spans_still_queued_are_sent_when_the_proxy_stops(serve, tmp_path) -> None:
    path, secrets = on_simulator(serve, tmp_path)
    with OtlpReceiver() as receiver:
        env = env_for(path, tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_BSP_SCHEDULE_DELAY="600000",
                      **secrets)
        procs, ports = start_proxies(1, env, logs=tmp_path)
        try:
            assert ask(ports[0]).status_code == 200
        finally:
            stop_proxies(procs)  # long before the batch's 10 minutes
        spans = receiver.wait_for(2, timeout_s=5)
    assert {s.server for s in spans} == {True, False} and procs[0].returncode == 0
