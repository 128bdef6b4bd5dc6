"""README's recipes for Hermes Agent 0.19 work (issue 9, item 5): the real `hermes` CLI, once per recipe,
against the pooling proxy and the simulator. Outbound traffic other than loopback goes to a dead proxy."""

from __future__ import annotations

import subprocess

import pytest

from pooltui.sim.wiring import client_for_scenario
from tests.conftest import keys, make_scenario
from tests.test_proxy import ProxyThread

ANSWER = "pooled keys"  # what the simulator's text answers are made of


def answered(stdout: str) -> bool:
    """Hermes finished a turn: the simulator's text, or (Hermes offers its tools, the simulator calls one,
    Hermes runs it and sends the result) the simulator's answer quoting the tool's result."""
    return ANSWER in stdout or "sim saw:" in stdout


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
    assert answered(r.stdout), (r.stdout[-1000:], r.stderr[-1000:])
    assert sum(k.stats.ok for k in client.primary.pool.keys) >= 1  # served by the pool


def test_hermes_anthropic_route_through_the_seed_setup_while_the_primary_is_down(hermes, serve, tmp_path) -> None:
    """README's anthropic recipe, on the seed's own setup: Hermes on its anthropic route (ANTHROPIC_BASE_URL at
    the proxy), the anthropic pool in an outage, the OpenRouter-style fallback answering in translation."""
    from tests.seed.test_seed_setup import outage, seed_setup, sim_served

    session, server, _ = seed_setup(serve, tmp_path, "anthropic")
    outage(server, "ant", 529)
    with ProxyThread({"anthropic": session.clients["anthropic"]}, session=session) as px:
        env = {**hermes.env, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
               "ANTHROPIC_BASE_URL": px.service.url, "ANTHROPIC_API_KEY": "anything"}
        args = [str(hermes.python.parent / "hermes"), "-z", "say hi", "--provider", "anthropic",
                "-m", "claude-sonnet-4-5"]
        r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=240)
        traces = "\n".join(t["text"] for t in px.proxy.state()["traces"]["anthropic"])
    assert r.returncode == 0, r.stderr[-2000:]
    # Hermes offers its tools: the simulator calls one, Hermes runs it and sends the result, the answer quotes it
    assert answered(r.stdout), (r.stdout[-1000:], r.stderr[-1000:], traces[-2000:])
    assert sim_served(server, "or") >= 1 and sim_served(server, "ant") == 0
    assert "translated anthropic Messages -> openai Chat Completions" in traces
