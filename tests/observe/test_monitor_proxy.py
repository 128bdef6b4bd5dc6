"""`pooltui --proxy` (the proxy inside the monitor): its requests are traced to a real OTLP receiver, and its log
lines go to the file `--log-file` or `[telemetry] log_file` names (the monitor owns the terminal), which the
monitor's title says."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from pooltui.commands.common import AppContext
from pooltui.commands.monitor_cmds import proxy_in_monitor
from pooltui.proxy.logs import ACCESS, flush
from pooltui.tui.app import PoolMonitorApp
from tests.conftest import keys, make_scenario
from tests.observe.log_setup import drop_log_handlers
from tests.observe.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.asyncio


async def test_the_monitors_proxy_is_traced_and_logs_to_its_file(serve, tmp_path, monkeypatch) -> None:
    scenario = make_scenario({"name": "oai", "keys": keys("k", 2)})
    server = serve(scenario)
    for k in scenario.primary.keys:
        monkeypatch.setenv(f"POOLTUI_T_{k.label.upper()}", k.secret)
    log = tmp_path / "proxy.log"
    with OtlpReceiver() as receiver:
        path = tmp_path / "config.toml"
        path.write_text(
            f'[telemetry]\nendpoint = "{receiver.url}"\nschedule_delay_ms = 50\nlog_file = "{log}"\n'
            f'[providers.oai]\nkind = "openai"\nbase_url = "{server.base_url("oai")}"\nkeys = ['
            + ", ".join(f'{{label = "{k.label}", secret = "env:POOLTUI_T_{k.label.upper()}"}}'
                        for k in scenario.primary.keys) + "]\n")
        try:
            session = proxy_in_monitor(AppContext(path, "file", data=tmp_path / "data"), None, None, 0, None, "json")
            app = PoolMonitorApp(session)
            async with app.run_test(size=(130, 36)):
                while not app.started:
                    await asyncio.sleep(0.05)
                assert f"log {log}" in app.title
                url = session.services[0].url  # type: ignore[attr-defined]
                async with httpx.AsyncClient() as http:
                    answer = await http.post(f"{url}/v1/chat/completions", headers={"authorization": "Bearer c"},
                                             json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
                assert answer.status_code == 200
                spans = await asyncio.to_thread(receiver.wait_for, 2)
            flush()
            lines = [json.loads(line) for line in log.read_text().splitlines()]
        finally:
            drop_log_handlers()
    [server_span] = [s for s in spans if s.server]
    assert server_span.name == "chat m" and server_span.attributes["pooltui.provider"] == "oai"
    [access] = [line for line in lines if line["logger"] == ACCESS]
    assert (access["status"], access["provider"], access["trace_id"]) == (200, "oai", server_span.trace_id)
    assert not any(k.secret in log.read_text() for k in scenario.primary.keys)
