"""The observer listens to a request's usage and record only while something reads them (its access line or its
spans): without either it is not called for them, and what it fills in is the same whenever one is on, turned on
at run time too. The records every listener shares cannot be changed by one of them."""

from __future__ import annotations

import httpx
import pytest

from pooltui.client.pool_client import RequestRecord, UsageRecord
from pooltui.proxy.observe import Observer
from pooltui.proxy.telemetry import Tracing
from pooltui.sim.wiring import client_for_scenario
from pooltui.store.telemetry import TelemetryConfig
from tests.conftest import keys, make_scenario
from tests.observe.otlp_receiver import OtlpReceiver
from tests.observe.test_access_log import chat, json_log, lines  # noqa: F401 - the fixture
from tests.test_proxy import ProxyThread

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


def test_an_access_line_turned_on_at_run_time_has_the_model_tokens_and_trace(serve, json_log) -> None:  # noqa: F811
    scenario = make_scenario({"name": "main", "keys": keys("k", 1)})
    client = client_for_scenario(scenario, serve(scenario), "failover", seed=1)
    observer = Observer(access_log=False)
    with ProxyThread({"main": client}, observer=observer) as px:
        quiet = httpx.post(f"{px.service.url}/v1/chat/completions", timeout=30, headers={"traceparent": PARENT},
                           json={"model": "gpt-sim-1", "max_tokens": 5, "messages": [{"role": "user", "content": "a"}]})
        assert quiet.status_code == 200 and quiet.headers["x-pooltui-attempts"] == "1"  # headers without a line
        assert lines(json_log) == []
        observer.access_log = True
        answer = httpx.post(f"{px.service.url}/v1/chat/completions", timeout=30, headers={"traceparent": PARENT},
                            json={"model": "gpt-sim-1", "max_tokens": 5,
                                  "messages": [{"role": "user", "content": "b"}]})
        assert answer.status_code == 200
    [line] = lines(json_log)
    assert (line["model"], line["tokens_out"], line["outcome"], line["trace_id"]) == ("gpt-sim-1", 5, "ok",
                                                                                       CALLER_TRACE)
    assert line["tokens_in"] > 0 and line["attempts"] == 1 and line["key"] == "k0"


def test_spans_without_an_access_line_have_the_model_tokens_and_the_callers_trace(serve) -> None:
    scenario = make_scenario({"name": "main", "keys": keys("k", 1)})
    client = client_for_scenario(scenario, serve(scenario), "failover", seed=1)
    with OtlpReceiver() as receiver:
        tracing = Tracing(TelemetryConfig(endpoint=receiver.url, schedule_delay_ms=50))
        with ProxyThread({"main": client}, observer=Observer(access_log=False, tracing=tracing)) as px:
            answer = httpx.post(f"{px.service.url}/v1/chat/completions", timeout=30, headers={"traceparent": PARENT},
                                json={"model": "gpt-sim-1", "max_tokens": 5,
                                      "messages": [{"role": "user", "content": "hi"}]})
            assert answer.status_code == 200
            spans = receiver.wait_for(2)
    [server] = [s for s in spans if s.server]
    assert server.trace_id == CALLER_TRACE  # the caller's context read without an access line
    assert server.attributes["gen_ai.request.model"] == "gpt-sim-1"
    assert server.attributes["gen_ai.usage.output_tokens"] == 5 and server.attributes["gen_ai.usage.input_tokens"] > 0


@pytest.mark.asyncio
async def test_a_listener_cannot_change_the_records_the_next_one_hears(serve) -> None:
    scenario = make_scenario({"name": "p", "keys": keys("k", 1)})
    heard: list[tuple[str, int, int]] = []
    refused: list[str] = []

    def meddler(record: UsageRecord | RequestRecord) -> None:
        try:
            record.tokens_out = 0  # type: ignore[misc]
        except AttributeError:
            refused.append(type(record).__name__)

    async with client_for_scenario(scenario, serve(scenario), seed=1) as client:
        client.usage_listeners += [meddler, lambda u: heard.append(("usage", u.tokens_out, u.ok))]
        client.request_listeners += [meddler, lambda r: heard.append(("request", r.tokens_out, 1))]
        resp = await client.send(lambda p: p.chat("hi", model="gpt-sim-1", max_tokens=5))
    assert resp.status == 200
    assert heard == [("usage", 5, 1), ("request", 5, 1)]
    assert refused == ["UsageRecord", "RequestRecord"]
