"""A request error sent as a stream's first event reaches the caller as that error, in its dialect (issue 5.7)."""

from __future__ import annotations

import anthropic
import openai
import pytest

from pooltui.sim.wiring import client_for_scenario
from tests.conftest import make_scenario
from tests.test_proxy import ProxyThread


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_first_event_request_error_is_relayed_as_a_400_not_retried(serve, dialect: str) -> None:
    secrets = [f"sk-test-badreq-{dialect}-{i:016d}" for i in range(2)]
    spec = {"name": "p", "dialect": dialect,
            "keys": [{"label": f"k{i}", "secret": s, "stream_fault": "bad-request"} for i, s in enumerate(secrets)]}
    server = serve(make_scenario(spec))
    client = client_for_scenario(make_scenario(spec), server, "round-robin", seed=1)
    with ProxyThread({"p": client}) as px:
        if dialect == "openai":
            sdk = openai.OpenAI(base_url=f"{px.service.url}/v1", api_key="x", max_retries=0)
            with pytest.raises(openai.BadRequestError) as err:
                list(sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                                 stream=True))
            assert "maximum context length" in err.value.body["message"]
        else:
            sdk = anthropic.Anthropic(base_url=px.service.url, api_key="x", max_retries=0)
            msgs = [{"role": "user", "content": "hi"}]
            with pytest.raises(anthropic.BadRequestError) as err, \
                    sdk.messages.stream(model="m", max_tokens=4, messages=msgs) as s:
                list(s.text_stream)
            assert err.value.body["error"]["type"] == "invalid_request_error"
        for secret in secrets:
            assert secret not in str(err.value.body)
    pool = client.primary.pool
    attempts = sum(k.stats.requests for k in pool.keys)
    assert attempts == 1, "a request error is not retried on another key"
    assert all(k.stats.server_errors == 0 and k.state.value == "ok" for k in pool.keys)
    assert sum(k.stats.request_errors for k in pool.keys) == 1
