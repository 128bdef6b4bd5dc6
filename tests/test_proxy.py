"""The pooling proxy in front of the simulator, driven by the official openai and anthropic SDKs."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import anthropic
import httpx
import openai
import pytest

from pooltui.client.pool_client import PoolClient
from pooltui.proxy.app import PoolProxy, ProxyService
from pooltui.sim.wiring import client_for_scenario
from tests.conftest import keys, make_scenario

OAI_KEYS = [{"label": "limited", "secret": "sk-test-limited-0000000000000001", "rpm": 0},
            {"label": "early", "secret": "sk-test-early-00000000000000002", "stream_fault": "before-data"},
            *keys("good", 2)]
ANT_KEYS = [{"label": "limited", "secret": "sk-ant-test-limited-00000000001", "rpm": 0},
            {"label": "early", "secret": "sk-ant-test-early-0000000000002", "stream_fault": "before-data"},
            {"label": "good", "secret": "sk-ant-test-good-00000000000003"}]
ALL_SECRETS = [k["secret"] for k in OAI_KEYS + ANT_KEYS] + [f"sk-test-good-{i:024d}" for i in range(2)]


class ProxyThread:
    """The proxy served from its own thread and event loop, like a separate process would."""

    def __init__(self, clients: dict[str, PoolClient], token: str | None = None, **proxy_kw) -> None:
        self.proxy = PoolProxy(clients, token=token, **proxy_kw)
        self.service = ProxyService(self.proxy, "127.0.0.1", 0)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def serve_then_close() -> None:
            await self.service.run()
            for client in self.proxy.clients.values():
                await client.aclose()

        self.loop.run_until_complete(serve_then_close())

    def __enter__(self) -> ProxyThread:
        self.thread.start()
        for _ in range(200):
            if self.service.server.started:
                return self
            threading.Event().wait(0.02)
        raise RuntimeError("proxy did not start")

    def __exit__(self, *exc) -> None:
        self.service.server.should_exit = True
        self.thread.join(5)


@pytest.fixture
def proxied(serve):
    """One simulator with an openai-style and an anthropic-style provider; a client (pool) for each."""
    oai_spec = {"name": "oai", "window_s": 60, "keys": OAI_KEYS}
    ant_spec = {"name": "ant", "dialect": "anthropic", "window_s": 60, "keys": ANT_KEYS}
    server = serve(make_scenario(oai_spec, ant_spec))
    clients = {"oai": client_for_scenario(make_scenario(oai_spec), server, "failover", seed=1),
               "ant": client_for_scenario(make_scenario(ant_spec), server, "failover", seed=2)}
    return server, clients


def no_secret_in(*texts: str) -> None:
    for text in texts:
        for secret in ALL_SECRETS:
            assert secret not in text


def test_openai_sdk_through_the_proxy(proxied) -> None:
    _, clients = proxied
    with ProxyThread(clients) as px:
        sdk = openai.OpenAI(base_url=f"{px.service.url}/v1", api_key="caller-own-key", max_retries=0)
        raw = sdk.chat.completions.with_raw_response.create(
            model="gpt-sim-1", messages=[{"role": "user", "content": "hi"}], max_tokens=5)
        reply = raw.parse()
        assert reply.choices[0].message.content and reply.usage.completion_tokens == 5
        # the first key in pool order answers 429: skipped without the caller noticing
        assert raw.headers["x-pooltui-served-by"] == "oai/early"
        assert raw.headers.get("x-request-id", "").startswith("chatcmpl_sim_")
        chunks = list(sdk.chat.completions.create(model="gpt-sim-1", messages=[{"role": "user", "content": "hi"}],
                                                  stream=True, stream_options={"include_usage": True}))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert [m.id for m in sdk.models.list()] == ["gpt-sim-1"]
        headers_seen = json.dumps(dict(raw.headers))
        no_secret_in(headers_seen, raw.text)
    oai_pool = clients["oai"].primary.pool
    assert oai_pool.key("limited").stats.rate_limited >= 1 and oai_pool.key("limited").state.value == "cooling"


def test_stream_whose_key_fails_before_its_first_event_is_served_by_another(proxied) -> None:
    _server, clients = proxied
    clients["ant"].primary.pool.disable("limited")  # start at 'early', whose streams fail before any data
    with ProxyThread(clients) as px:
        sdk = anthropic.Anthropic(base_url=px.service.url, api_key="caller-own-key", max_retries=0)
        with sdk.messages.stream(model="claude-sim-1", max_tokens=4,
                                 messages=[{"role": "user", "content": "hi"}]) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        assert text and final.usage.output_tokens == 4
        msg = sdk.messages.create(model="claude-sim-1", max_tokens=6, messages=[{"role": "user", "content": "hi"}])
        assert msg.usage.output_tokens == 6
        count = sdk.messages.count_tokens(model="claude-sim-1", messages=[{"role": "user", "content": "hi"}])
        assert count.input_tokens >= 1
    trace = next(t for t in clients["ant"].traces if any(s.kind == "attempt" for s in t.steps))
    attempts = [(s.key, s.detail["outcome"]) for s in trace.steps if s.kind == "attempt"]
    assert attempts == [("early", "transient"), ("good", "ok")]


def test_token_is_required_when_set_and_errors_speak_the_callers_dialect(proxied) -> None:
    _, clients = proxied
    with ProxyThread(clients, token="proxy-token-123") as px:
        bad = openai.OpenAI(base_url=f"{px.service.url}/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        bad_ant = anthropic.Anthropic(base_url=px.service.url, api_key="wrong", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError) as err:
            bad_ant.messages.create(model="m", max_tokens=4, messages=[{"role": "user", "content": "hi"}])
        assert err.value.body["error"]["type"] == "authentication_error"
        good = openai.OpenAI(base_url=f"{px.service.url}/v1", api_key="proxy-token-123", max_retries=0)
        assert good.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}]).choices
        assert httpx.get(f"{px.service.url}/metrics").status_code == 401
        # the callers' token does not open the control endpoints: they want the admin token
        assert httpx.get(f"{px.service.url}/metrics", headers={"authorization": "Bearer proxy-token-123"}
                         ).status_code == 401
        admin = {"authorization": f"Bearer {px.proxy.admin_token}"}
        metrics = httpx.get(f"{px.service.url}/metrics", headers=admin).text
        assert 'pooltui_key_state{key="limited",provider="oai",state="cooling"} 1.0' in metrics
        assert "pooltui_pool_usable_keys" in metrics and "pooltui_proxy_refused_total 4.0" in metrics
        state = httpx.get(f"{px.service.url}/pooltui/state",
                          headers={"x-pooltui-admin-token": px.proxy.admin_token}).json()
        assert state["providers"]["oai"]["keys"][0]["label"] == "limited"
        no_secret_in(metrics, json.dumps(state))


def test_pool_that_cannot_serve_answers_429_with_retry_after(serve) -> None:
    sc = make_scenario({"name": "oai", "window_s": 60, "keys": keys("k", 2, rpm=1)})
    server = serve(sc)
    client = client_for_scenario(sc, server, seed=3, deadline_s=0.5)
    with ProxyThread({"oai": client}) as px:
        px.proxy.deadline_s = 0.5
        sdk = openai.OpenAI(base_url=f"{px.service.url}/v1", api_key="x", max_retries=0)
        for _ in range(2):
            sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.RateLimitError) as err:
            sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert 50 <= int(err.value.response.headers["retry-after"]) <= 60
        assert "2 keys cooling" in err.value.body["message"]
        assert err.value.body["code"] == "pool_exhausted"


def test_invalid_pool_says_waiting_wont_help(serve) -> None:
    sc = make_scenario({"name": "ant", "dialect": "anthropic", "keys": keys("k", 2, invalid=True)})
    server = serve(sc)
    client = client_for_scenario(sc, server, seed=4)
    with ProxyThread({"ant": client}) as px:
        r = httpx.post(f"{px.service.url}/v1/messages", json={"model": "m", "max_tokens": 4, "messages": []},
                       headers={"x-api-key": "x", "anthropic-version": "2023-06-01"})
    assert r.status_code == 503 and r.headers["x-should-retry"] == "false"
    assert r.json()["type"] == "error" and "2 keys invalid" in r.json()["error"]["message"]
    no_secret_in(r.text, json.dumps(dict(r.headers)))


def test_refuses_a_public_address_without_a_token(proxied) -> None:
    _, clients = proxied
    with pytest.raises(ValueError, match="without --token"):
        ProxyService(PoolProxy(clients), "0.0.0.0", 0)


def test_a_bad_streaming_request_gets_the_providers_400_as_it_is(proxied) -> None:
    _, clients = proxied
    with ProxyThread(clients) as px:
        r = httpx.post(f"{px.service.url}/v1/chat/completions", json={"model": "m", "stream": True},
                       headers={"authorization": "Bearer caller"})
    assert r.status_code == 400 and "messages" in r.json()["error"]["message"]
    assert r.headers["x-pooltui-served-by"].startswith("oai/")
    no_secret_in(r.text, json.dumps(dict(r.headers)))


def test_an_error_after_the_first_byte_goes_to_the_caller_in_band(serve) -> None:
    spec = {"name": "ant", "dialect": "anthropic", "keys": [
        {"label": "late", "secret": "sk-ant-test-late-0000000001", "stream_fault": "after-data"}]}
    server = serve(make_scenario(spec))
    client = client_for_scenario(make_scenario(spec), server, seed=5)
    with ProxyThread({"ant": client}) as px, httpx.stream(
            "POST", f"{px.service.url}/v1/messages", headers={"x-api-key": "x", "anthropic-version": "2023-06-01"},
            json={"model": "m", "max_tokens": 4, "stream": True,
                  "messages": [{"role": "user", "content": "hi"}]}) as r:
        body = r.read().decode()
    assert r.status_code == 200  # the stream had begun: the error cannot change the status any more
    assert body.index("message_start") < body.index("event: error") and "overloaded_error" in body
    no_secret_in(body)


def test_metrics_carry_each_keys_learned_limit(serve) -> None:
    """A provider that states no limit on its successes: after its first 429 the key's learnt limit, window,
    rate and sureness are on /metrics (model empty: the key as a whole)."""
    sc = make_scenario({"name": "oai", "window_s": 60, "success_headers": False, "keys": keys("k", 1, rpm=2)})
    server = serve(sc)
    client = client_for_scenario(sc, server, seed=5, deadline_s=0.5)
    with ProxyThread({"oai": client}) as px:
        px.proxy.deadline_s = 0.5
        sdk = openai.OpenAI(base_url=f"{px.service.url}/v1", api_key="x", max_retries=0)
        started = time.monotonic()
        for _ in range(2):
            sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.RateLimitError):
            sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        spread = time.monotonic() - started  # the sends' own spread: a loaded machine's 0.18 s read as 60.18 s
        admin = {"authorization": f"Bearer {px.proxy.admin_token}"}
        metrics = httpx.get(f"{px.service.url}/metrics", headers=admin).text
    labels = '{key="k0",model="",provider="oai"}'
    assert f"pooltui_key_learned_limit{labels} 2.0" in metrics
    window = float(metrics.split(f"pooltui_key_learned_window_seconds{labels} ")[1].split()[0])
    assert 59.9 - spread <= window <= 60.1 + spread, (window, spread)  # 60 s + (send to sim) 1st - 3rd
    assert f"pooltui_key_learned_rate{labels} " in metrics and f"pooltui_key_learned_sure{labels} " in metrics
