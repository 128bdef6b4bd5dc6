"""README's recipes for Hermes Agent 0.19 work (issue 9, item 5): the real `hermes` CLI, once per recipe,
against the pooling proxy and the simulator. Outbound traffic other than loopback goes to a dead proxy."""

from __future__ import annotations

import subprocess

import pytest

from pooltui.sim.wiring import client_for_scenario
from tests.conftest import keys, make_scenario
from tests.test_proxy import ProxyThread

ANSWER = "pooled keys"  # what the simulator's answers are made of


@pytest.mark.parametrize("recipe", ["config.yaml custom provider", "CUSTOM_BASE_URL --provider custom",
                                    "OPENAI_BASE_URL --provider openai-api"])
def test_hermes_chats_through_the_proxy(hermes, serve, recipe: str) -> None:
    sc = make_scenario({"name": "oai", "keys": keys("k", 2)})
    server = serve(sc)
    client = client_for_scenario(sc, server, "round-robin", seed=1)
    with ProxyThread({"oai": client}) as px:
        url = f"{px.service.url}/v1"
        env = {**hermes.env, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        args = [str(hermes.python.parent / "hermes"), "-z", "say hi"]
        if recipe == "config.yaml custom provider":
            (hermes.home / "config.yaml").write_text(
                f"model:\n  provider: custom\n  base_url: {url}\n  default: sim-model\n  api_key: anything\n")
        elif recipe == "CUSTOM_BASE_URL --provider custom":
            env["CUSTOM_BASE_URL"] = url
            args += ["--provider", "custom", "-m", "sim-model"]
        else:
            env.update(OPENAI_BASE_URL=url, OPENAI_API_KEY="anything")
            args += ["--provider", "openai-api", "-m", "sim-model"]
        r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    assert ANSWER in r.stdout, (r.stdout[-1000:], r.stderr[-1000:])
    assert sum(k.stats.ok for k in client.primary.pool.keys) >= 1  # served by the pool
