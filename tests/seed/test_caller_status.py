"""The caller's status tells the cause (issue 21 item 2): a pool spent by rate limits answers 429 with the earliest
reset; an upstream overloaded or down with no fallback answers 529 (anthropic) or 503 (openai), never 429; no
usable key answers 503 with ``x-should-retry: false``. The official SDKs read each as documented in README."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from pooltui.sim.wiring import client_for_scenario
from tests.conftest import keys, make_scenario
from tests.test_proxy import ProxyThread, no_secret_in

ANT = {"x-api-key": "x", "anthropic-version": "2023-06-01"}
HI = [{"role": "user", "content": "hi"}]


def _outage(serve, dialect: str):
    sc = make_scenario({"name": "up", "dialect": dialect, "keys": keys("k", 2)})
    server = serve(sc)
    httpx.post(f"{server.url}/_sim/outage/up", params={"status": 529 if dialect == "anthropic" else 503})
    return sc, server


def test_an_anthropic_outage_without_fallback_answers_529_not_429(serve) -> None:
    sc, server = _outage(serve, "anthropic")
    client = client_for_scenario(sc, server, seed=1, deadline_s=3)
    with ProxyThread({"up": client}) as px:
        sdk = anthropic.Anthropic(base_url=px.service.url, api_key="x", max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as err:
            sdk.messages.create(model="m", max_tokens=4, messages=HI)
    assert err.value.status_code == 529
    assert err.value.body["error"]["type"] == "overloaded_error"
    assert "overloaded or failing" in err.value.body["error"]["message"]
    assert err.value.response.headers.get("x-should-retry") != "false"


def test_an_openai_outage_without_fallback_answers_503_with_retry_after(serve) -> None:
    sc, server = _outage(serve, "openai")
    client = client_for_scenario(sc, server, seed=2, deadline_s=3)
    with ProxyThread({"up": client}) as px:
        sdk = openai.OpenAI(base_url=f"{px.service.url}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.InternalServerError) as err:
            sdk.chat.completions.create(model="m", messages=HI)
        assert err.value.status_code == 503
        assert err.value.body["code"] == "upstream_overloaded"
        # the breaker opened during the attempts: the caller is told when the provider is probed again
        r = httpx.post(f"{px.service.url}/v1/chat/completions", json={"model": "m", "messages": HI},
                       headers={"authorization": "Bearer x"})
    assert r.status_code == 503 and 1 <= int(r.headers["retry-after"]) <= 60


def test_no_usable_key_answers_503_that_says_waiting_wont_help(serve) -> None:
    sc = make_scenario({"name": "oai", "keys": keys("k", 2, invalid=True)})
    server = serve(sc)
    client = client_for_scenario(sc, server, seed=3)
    with ProxyThread({"oai": client}) as px:
        sdk = openai.OpenAI(base_url=f"{px.service.url}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.InternalServerError) as err:
            sdk.chat.completions.create(model="m", messages=HI)
    r = err.value.response
    assert r.status_code == 503 and r.headers["x-should-retry"] == "false" and "retry-after" not in r.headers
    assert err.value.body["code"] == "no_usable_key" and "2 keys invalid" in err.value.body["message"]
    no_secret_in(r.text)


def test_rate_limits_then_an_outage_on_the_fallback_still_say_wait(serve) -> None:
    """The primary's keys cool (a reset is coming) and the fallback is down: a wait helps, so 429."""
    sc = make_scenario({"name": "prim", "window_s": 60, "keys": keys("k", 1, rpm=1)},
                       {"name": "back", "keys": keys("b", 1)})
    server = serve(sc)
    httpx.post(f"{server.url}/_sim/outage/back", params={"status": 503})
    client = client_for_scenario(sc, server, seed=4, deadline_s=2)
    with ProxyThread({"prim": client}) as px:
        sdk = openai.OpenAI(base_url=f"{px.service.url}/v1", api_key="x", max_retries=0)
        sdk.chat.completions.create(model="m", messages=HI)
        with pytest.raises(openai.RateLimitError) as err:
            sdk.chat.completions.create(model="m", messages=HI)
    assert 30 <= int(err.value.response.headers["retry-after"]) <= 60
