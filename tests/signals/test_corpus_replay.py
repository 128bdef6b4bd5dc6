"""A scenario key can replay any captured response of tests/corpus/ (``corpus_case = "<id>"``): the simulator
answers with its status, headers and body, and the pool reads it as the corpus says."""

from __future__ import annotations

import json

import httpx
import pytest

from pooltui.sim import corpus
from pooltui.sim.scenario import ScenarioError
from pooltui.sim.wiring import client_for_scenario
from tests.conftest import keys, make_scenario


@pytest.mark.wording
async def test_a_key_replaying_xais_wrong_key_400_is_barred_and_the_request_served_by_another(serve) -> None:
    replayed = {"label": "xai", "secret": "sk-test-xai-000000000000000001", "corpus_case": "xai-wrong-key-400"}
    sc = make_scenario({"name": "p", "keys": [replayed, *keys("good", 1)]})
    server = serve(sc)
    client = client_for_scenario(sc, server, "failover", seed=1)
    reply = await client.chat("hi")
    await client.aclose()
    assert reply.key == "good0"
    pool = client.primary.pool
    xai = pool.key("xai")
    assert (xai.state.value, xai.status_code) == ("invalid", 400)
    event = next(e for e in pool.events.recent() if e.key == "xai")
    assert (event.kind.value, event.status) == ("invalid", 400) and "wrong key (HTTP 400)" in event.reason
    assert server.state.stats()["p"]["xai"] == {"400": 1}


@pytest.mark.parametrize("case_id", ["zhipu-1113-arrears-429-en", "lmstudio-no-models-loaded-404"])
def test_the_simulator_sends_the_case_as_it_was_captured(serve, case_id) -> None:
    c = corpus.case(case_id)
    sc = make_scenario({"name": "p", "keys": [{"label": "r", "secret": "sk-test-replay-0000000001",
                                               "corpus_case": case_id}]})
    server = serve(sc)
    resp = httpx.post(f"{server.base_url()}/chat/completions",
                      headers={"authorization": "Bearer sk-test-replay-0000000001"},
                      json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == c["status"]
    assert (resp.text if isinstance(c["body"], str) else resp.json()) == c["body"]
    for name, value in c["headers"].items():
        assert resp.headers[name] == value


def test_an_unknown_corpus_case_is_one_clear_line() -> None:
    with pytest.raises(ScenarioError, match=r"providers\[0\]\.keys\[0\]\.corpus_case: no corpus case 'nope'"):
        make_scenario({"name": "p", "keys": [{"label": "r", "secret": "sk-test-replay-0000000001",
                                              "corpus_case": "nope"}]})


def test_every_case_is_valid_json_on_the_wire() -> None:
    for c in corpus.cases():
        status, headers, raw = corpus.replay(c["id"])
        assert status == c["status"]
        if not isinstance(c["body"], str):
            assert json.loads(raw) == c["body"] and headers["content-type"].startswith("application/json")
