"""`pooltui replay` (issue 11, item 3): recorded requests (times, models, tokens; no prompt, no key) and the
limits the provider's headers stated, replayed against a simulator like that provider."""

from __future__ import annotations

import json
from collections import Counter

from click.testing import CliRunner

from pooltui.commands.cli import cli
from pooltui.session.replay import build_replay
from pooltui.session.traffic import PROMPTS
from pooltui.store.config import ConfigEditor, KeyEntry, ProviderConfig, load_config
from pooltui.store.history import History
from pooltui.store.secrets import SecretStore
from tests.conftest import keys, make_scenario


def recorded(serve, tmp_path):
    """A config on a simulated provider whose headers state 20 requests a minute per key, and a history
    with 30 requests of two models sent through it by `pooltui traffic --provider`."""
    sc = make_scenario({"name": "main", "keys": [{"label": "bad", "secret": "sk-test-replay-bad-00000000000001",
                                                  "invalid": True}, *keys("k", 2, rpm=20)]})
    server = serve(sc)
    store = SecretStore(tmp_path / "data")
    path = tmp_path / "config.toml"
    with ConfigEditor(path) as cfg:
        p = cfg.providers["main"] = ProviderConfig("main", "openai", server.base_url("main"))
        p.strategy = "failover"
        for k in sc.primary.keys:
            p.keys.append(KeyEntry(k.label, store.put("main", k.label, k.secret)))
    env = {"POOLTUI_CONFIG": str(path), "POOLTUI_DATA_DIR": str(tmp_path / "data")}
    sent = CliRunner().invoke(cli, ["traffic", "--provider", "main", "--requests", "30", "--concurrency", "2",
                                    "--models", "small,big", "--seed", "3"], env=env)
    assert sent.exit_code == 0, sent.output
    return sc, path, env


def test_a_replay_reproduces_the_recorded_count_model_mix_limits_and_broken_keys(serve, tmp_path) -> None:
    sc, path, env = recorded(serve, tmp_path)
    history = History(tmp_path / "data" / "history.db")
    records = history.request_records(0)
    assert len(records) == 30 and Counter(r["model"] for r in records) == {"small": 15, "big": 15}
    assert {r["outcome"] for r in records} == {"ok"} and all(r["tokens_in"] > 0 for r in records)
    rp = build_replay(history, load_config(path), 0.0)
    assert rp.provider == "main" and len(rp.arrivals) == 30
    assert Counter(a.model for a in rp.arrivals) == Counter(r["model"] for r in records)
    assert [round(a.at_s, 3) for a in rp.arrivals] == [round(r["ts"] - records[0]["ts"], 3) for r in records]
    keys_ = {k.label: k for k in rp.scenario.primary.keys}
    assert keys_["k0"].rpm == 20 and keys_["k1"].rpm == 20  # what the headers stated
    assert keys_["bad"].invalid  # revoked then, revoked in the replay
    assert rp.scenario.traffic.strategy == "failover"
    out = CliRunner().invoke(cli, ["replay", "--since", "1h", "--strategies", "failover,hermes-fill-first",
                                   "--json"], env=env)
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["provider"] == "main" and data["requests"] == 30
    for row in data["strategies"]:
        assert row["requests"] == 30 == row["succeeded"] + row["failed"]
    raw = (tmp_path / "data" / "history.db").read_bytes()
    for secret in (k.secret for k in sc.primary.keys):
        assert secret.encode() not in raw  # no key ...
    assert not any(p.encode() in raw for p in PROMPTS)  # ... and no prompt in the history


def test_nothing_to_replay_is_one_line_and_exit_2(serve, tmp_path) -> None:
    _, _, env = recorded(serve, tmp_path)
    for args, said in ((["--provider", "other"], "no requests recorded for other"),
                       (["--since", "soon"], "is not a duration")):
        out = CliRunner().invoke(cli, ["replay", *args], env=env)
        assert out.exit_code == 2, out.output
        assert said in out.output and len(out.output.strip().splitlines()) == 1
