"""The simulated provider over real HTTP on loopback, and the official SDKs talking to it."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from pooltui.core import Outcome, classify
from pooltui.sim import builtin_names, load_scenario
from pooltui.sim.scenario import ScenarioError
from tests.conftest import keys, make_scenario

CHAT = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


def test_builtin_scenarios_load() -> None:
    names = builtin_names()
    for required in ("steady", "peak-hour", "revoked-key", "quota-day", "outage"):
        assert required in names
    assert len(load_scenario("outage").providers) == 2
    with pytest.raises(ScenarioError, match="unknown scenario 'nope'"):
        load_scenario("nope")


def test_openai_429_carries_retry_after_and_rate_headers(serve) -> None:
    sc = make_scenario({"name": "p", "window_s": 60, "keys": keys("k", 1, rpm=2)})
    server = serve(sc)
    auth = {"authorization": "Bearer sk-test-k-000000000000000000000000"}
    with httpx.Client(base_url=server.base_url()) as http:
        first = http.post("/chat/completions", json=CHAT, headers=auth)
        assert first.status_code == 200 and first.headers["x-ratelimit-remaining-requests"] == "1"
        assert first.headers["x-ratelimit-limit-requests"] == "2"
        http.post("/chat/completions", json=CHAT, headers=auth)
        limited = http.post("/chat/completions", json=CHAT, headers=auth)
    assert limited.status_code == 429
    assert 55 <= int(limited.headers["retry-after"]) <= 60
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert limited.headers["x-ratelimit-remaining-requests"] == "0"
    result = classify("openai", 429, limited.headers, limited.content, 0)
    assert result.outcome is Outcome.RATE_LIMITED and 55 <= result.retry_after_s <= 60


def test_anthropic_shapes_401_529_and_quota(serve) -> None:
    sc = make_scenario({"name": "a", "dialect": "anthropic", "keys": [
        *keys("k", 1, daily_quota=1)], "outages": []})
    server = serve(sc)
    base = server.base_url("a")
    with httpx.Client(base_url=base) as http:
        bad = http.post("/v1/messages", json=CHAT, headers={"x-api-key": "sk-nope"})
        assert bad.status_code == 401
        assert bad.json() == {"type": "error",
                              "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
        good = {"x-api-key": "sk-test-k-000000000000000000000000"}
        assert http.post("/v1/messages", json=CHAT, headers=good).status_code == 200
        spent = http.post("/v1/messages", json=CHAT, headers=good)
        assert spent.status_code == 400 and "credit balance is too low" in spent.json()["error"]["message"]
        assert classify("anthropic", 400, spent.headers, spent.content, 0).outcome is Outcome.QUOTA
        models = http.get("/v1/models", headers=good)  # a key with no credit still lists models
        assert models.status_code == 200 and models.json()["data"][0]["type"] == "model"
        server.state.providers["a"].outage_override = 529
        over = http.post("/v1/messages", json=CHAT, headers=good)
        assert over.status_code == 529 and over.json()["error"]["type"] == "overloaded_error"
        assert http.post("/v1/messages", content=b"{not json", headers=good).status_code == 400
        stats = http.get(server.url + "/_sim/stats").json()
    assert stats["a"]["k0"] == {"200": 2, "400": 1, "529": 1}


def test_outage_window_and_revocation_endpoint(serve) -> None:
    sc = make_scenario({"name": "p", "keys": keys("k", 1), "outages": [{"start_s": 0, "end_s": 60, "status": 503}]})
    server = serve(sc)
    auth = {"authorization": "Bearer sk-test-k-000000000000000000000000"}
    with httpx.Client(base_url=server.url) as http:
        assert http.post("/p/v1/chat/completions", json=CHAT, headers=auth).status_code == 503
        assert http.post("/_sim/revoke/p/k0").status_code == 200
        assert http.post("/p/v1/chat/completions", json=CHAT, headers=auth).status_code == 401


def test_openai_sdk_plain_stream_and_rate_limit(serve) -> None:
    sc = make_scenario({"name": "p", "window_s": 60, "keys": keys("k", 1, rpm=3)})
    server = serve(sc)
    client = openai.OpenAI(base_url=server.base_url(), api_key="sk-test-k-000000000000000000000000", max_retries=0)
    reply = client.chat.completions.create(model="gpt-sim-1", messages=[{"role": "user", "content": "hi"}],
                                           max_tokens=5)
    assert reply.choices[0].message.content and reply.usage.completion_tokens == 5
    chunks = list(client.chat.completions.create(model="gpt-sim-1", messages=[{"role": "user", "content": "hi"}],
                                                 stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage.total_tokens > 0
    assert [m.id for m in client.models.list()] == ["gpt-sim-1"]
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-sim-1", messages=[{"role": "user", "content": "hi"}])


def test_anthropic_sdk_plain_and_stream(serve) -> None:
    sc = make_scenario({"name": "a", "dialect": "anthropic", "keys": keys("k", 1)})
    server = serve(sc)
    client = anthropic.Anthropic(base_url=server.base_url(), api_key="sk-test-k-000000000000000000000000",
                                 max_retries=0)
    msg = client.messages.create(model="claude-sim-1", max_tokens=6, messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].text and msg.usage.output_tokens == 6
    with client.messages.stream(model="claude-sim-1", max_tokens=4,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.usage.output_tokens == 4
    bad = anthropic.Anthropic(base_url=server.base_url(), api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="claude-sim-1", max_tokens=6, messages=[{"role": "user", "content": "hi"}])


def test_quota_as_402_when_configured(serve) -> None:
    sc = make_scenario({"name": "p", "quota_status": 402, "keys": keys("k", 1, daily_quota=0)})
    server = serve(sc)
    with httpx.Client(base_url=server.base_url()) as http:
        auth = {"authorization": "Bearer sk-test-k-000000000000000000000000"}
        r = http.post("/chat/completions", json=CHAT, headers=auth)
    assert r.status_code == 402 and r.json()["error"]["type"] == "insufficient_quota"
    assert classify("openai", 402, r.headers, r.content, 0).outcome is Outcome.QUOTA
