"""The pool CLI against the simulator: auth, provider, verify, traffic, events, usage, import hermes,
bad input, and a planted secret that must appear nowhere in clear."""

from __future__ import annotations

import json
import os
from pathlib import Path

import keyring
import pytest
from click.testing import CliRunner
from keyring.backends import fail

from pooltui.commands.cli import cli
from pooltui.core.masking import fingerprint, mask
from tests.conftest import keys, make_scenario

PLANTED = "sk-test-PLANTED-7f3a9c0e5b1d4e2f8a6c"


def run(*args: str, input: str | None = None):
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    return result


def config_bytes() -> bytes:
    path = Path(os.environ["POOLTUI_CONFIG"])
    return path.read_bytes() if path.exists() else b""


@pytest.fixture
def sim_provider(serve):
    """An anthropic-style simulated provider with good, invalid, spent and limited keys, configured as 'sim'."""
    sc = make_scenario({"name": "sim", "dialect": "anthropic", "window_s": 60, "keys": [
        {"label": "good", "secret": PLANTED, "rpm": 1000},
        *keys("ok", 1),
        {"label": "spent", "secret": "sk-test-spent-00000000000001", "daily_quota": 0},
        {"label": "limited", "secret": "sk-test-limited-000000000001", "rpm": 0},
    ]})
    server = serve(sc)
    out = run("provider", "set", "sim", "--kind", "anthropic", "--base-url", server.base_url("sim"))
    assert out.exit_code == 0, out.output
    return server


def add(label: str, secret: str, *extra: str):
    return run("auth", "add", "sim", "--pool", label, "--stdin", *extra, input=secret + "\n")


def test_auth_add_verifies_and_stores_in_the_keyring(sim_provider, memory_keyring) -> None:
    out = add("good", PLANTED)
    assert out.exit_code == 0, out.output
    assert f"added sim/good  {mask(PLANTED)}  fp {fingerprint(PLANTED)}" in out.output
    assert "-> the OS keyring" in out.output and "verify: valid (HTTP 200" in out.output
    assert memory_keyring.store[("pooltui", "sim/good")] == PLANTED
    assert PLANTED not in out.output
    assert b'secret = "keyring:sim/good"' in config_bytes()


def test_auth_add_refuses_an_invalid_key_unless_told(sim_provider) -> None:
    out = add("bad", "sk-test-unknown-0000000000001")
    assert out.exit_code == 1 and "is invalid (401" in out.output and "--no-verify" in out.output
    assert b"bad" not in config_bytes()
    out = add("bad", "sk-test-unknown-0000000000001", "--no-verify")
    assert out.exit_code == 0 and "verify: skipped" in out.output


@pytest.mark.parametrize(
    ("args", "stdin", "needle"),
    [
        (("auth", "add", "nosuch", "--pool", "a", "--stdin"), "sk-test-x\n", "unknown provider 'nosuch'"),
        (("auth", "add", "sim", "--pool", "a", "--stdin"), "   \n", "empty key"),
        (("auth", "add", "sim", "--pool", "bad label!", "--stdin"), "sk-test-x\n", "bad key label"),
        (("provider", "set", "sim", "--pool-strategy", "sideways"), None, "unknown strategy 'sideways'"),
        (("provider", "set", "sim", "--base-url", "ftp://x"), None, "base URL must be http(s)"),
        (("provider", "set", "sim", "--fallback", "ghost"), None, "fallback 'ghost' is not"),
        (("provider", "set", "newone"), None, "say which API it speaks with --kind"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(sim_provider, args, stdin, needle) -> None:
    assert add("dup", "sk-test-dup-00000000000001", "--no-verify").exit_code == 0
    before = config_bytes()
    out = run(*args, input=stdin)
    assert out.exit_code == 2, out.output
    assert needle in out.output and "Traceback" not in out.output
    assert len([line for line in out.output.splitlines() if line.startswith("pooltui: error:")]) == 1
    assert config_bytes() == before


def test_duplicate_label_is_refused(sim_provider) -> None:
    assert add("dup", "sk-test-dup-00000000000001", "--no-verify").exit_code == 0
    out = add("dup", "sk-test-dup-00000000000002", "--no-verify")
    assert out.exit_code == 2 and "already has a key labelled 'dup'" in out.output


def test_verify_reports_each_kind_of_key_and_sets_the_exit_code(sim_provider) -> None:
    for label, secret in (("good", PLANTED), ("spent", "sk-test-spent-00000000000001"),
                          ("limited", "sk-test-limited-000000000001"), ("gone", "sk-test-unknown-0000000001")):
        assert add(label, secret, "--no-verify").exit_code == 0
    out = run("verify", "sim", "--json")
    assert out.exit_code == 1
    results = {r["label"]: r for r in json.loads(out.output)}
    assert {k: v["result"] for k, v in results.items()} == {
        "good": "valid", "spent": "quota", "limited": "rate_limited", "gone": "invalid"}
    assert results["limited"]["status"] == 429 and results["gone"]["status"] == 401
    assert run("verify", "sim", "--pool", "good").exit_code == 0
    changes = {e["key"]: e["change"] for e in json.loads(run("events", "--json").output)}  # in the history
    assert changes == {"good": "verified", "spent": "checked", "limited": "checked", "gone": "checked"}
    listing = {line.split()[1]: line for line in run("auth", "list", "sim").output.splitlines()[1:]}
    assert " invalid" in listing["gone"] and " exhausted" in listing["spent"]
    assert " ok " in listing["good"] and " valid" in listing["good"] and "invalid" not in listing["good"]


def test_provider_set_show_list(sim_provider) -> None:
    for label in ("a", "b", "c"):
        assert add(label, f"sk-test-{label}-000000000000001", "--no-verify").exit_code == 0
    out = run("provider", "set", "sim", "--credential-pool", "c,a", "--pool-strategy", "least_used",
              "--cooldown", "12")
    assert out.exit_code == 0, out.output
    shown = run("provider", "show", "sim").output
    assert "credential pool c, a" in shown and "least-used" in shown and "12 s" in shown
    assert "not in pool     b" in shown
    assert "sim" in run("provider", "list").output


def test_traffic_through_a_configured_pool_lands_in_history(sim_provider) -> None:
    for label, secret in (("good", PLANTED), ("ok0", "sk-test-ok-000000000000000000000000"),
                          ("gone", "sk-test-unknown-0000000001")):
        assert add(label, secret, "--no-verify").exit_code == 0
    out = run("traffic", "--provider", "sim", "--requests", "30", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["requests"] == 30 == data["succeeded"]
    events = json.loads(run("events", "--since", "1h", "--json").output)
    assert any(e["kind"] == "invalid" and e["key"] == "gone" for e in events)
    usage = {r["key"]: r for r in json.loads(run("usage", "--by", "key", "--json").output)}
    assert usage["good"]["upstream_ok"] + usage["ok0"]["upstream_ok"] == 30 and usage["good"]["tokens_out"] > 0
    csv_out = run("usage", "--by", "day", "--csv").output.splitlines()
    assert csv_out[0] == ("day,caller_requests,caller_served,upstream_calls,upstream_ok,tokens_in,tokens_out,cost,"
                          "cache_hit_rate,cache_read,cache_write,cache_saved,cost_no_cache,cost_round_robin")
    assert len(csv_out) == 2
    # the state survives: a new run does not send to the invalid key again
    again = json.loads(run("traffic", "--provider", "sim", "--requests", "5", "--json").output)
    assert {k["label"]: k["requests"] for k in again["keys"]}["gone"] == 0
    import os
    import time
    from pathlib import Path

    from pooltui.store.history import History

    History(Path(os.environ["POOLTUI_DATA_DIR"]) / "history.db").set_key_status(
        "sim", "ok0", "exhausted", time.time() + 3600, "known_reset", "quota", 429)
    assert "exhausted" in run("auth", "list", "sim").output
    reset = run("auth", "reset", "sim")
    assert reset.exit_code == 0 and reset.output.strip() == "reset 1 key of sim"  # the invalid key stays invalid
    listing = run("auth", "list", "sim").output
    assert "exhausted" not in listing and "invalid" in listing


def test_a_planted_secret_is_nowhere_in_clear(sim_provider, tmp_path, monkeypatch) -> None:
    """File store in use: the secret may sit only inside the fallback secrets file."""
    keyring.set_keyring(fail.Keyring())
    outputs = [add("good", PLANTED), add("ok0", "sk-test-ok-000000000000000000000000", "--no-verify"),
               run("auth", "list"), run("verify"), run("traffic", "--provider", "sim", "--requests", "20",
                                                         "--trace", "3"),
               run("events", "--since", "1h"), run("events", "--json"), run("usage", "--json"),
               run("provider", "show", "sim")]
    assert "stored unencrypted in" in outputs[0].output
    for out in outputs:
        assert PLANTED not in out.output
    config_dir = Path(os.environ["POOLTUI_CONFIG"]).parent
    data_dir = Path(os.environ["POOLTUI_DATA_DIR"])
    hits = [p for root in (config_dir, data_dir) for p in root.rglob("*")
            if p.is_file() and PLANTED.encode() in p.read_bytes()]
    assert hits == [data_dir / "secrets.json"]
    db = (data_dir / "history.db").read_bytes() + b"".join(
        p.read_bytes() for p in data_dir.glob("history.db-*"))
    assert PLANTED.encode() not in db


def test_import_hermes(sim_provider, tmp_path, memory_keyring) -> None:
    auth_json = tmp_path / "auth.json"
    auth_json.write_text(json.dumps({"version": 1, "providers": {}, "active_provider": None, "credential_pool": {
        "anthropic": [
            {"id": "a1", "label": "secondary", "auth_type": "api_key", "priority": 1, "source": "manual",
             "access_token": "sk-ant-test-second-000000000002", "last_status": "ok"},
            {"id": "a0", "label": "primary", "auth_type": "api_key", "priority": 0, "source": "manual",
             "access_token": "sk-ant-test-first-0000000000001", "last_status": "exhausted"},
            {"id": "a2", "label": "claude-code", "auth_type": "oauth", "priority": 2, "source": "claude_code",
             "access_token": "sk-ant-oat-test-000000000003"},
            {"id": "a3", "label": "from-env", "auth_type": "api_key", "priority": 3,
             "source": "env:ANTHROPIC_API_KEY", "access_token": ""}],
        "nous": [{"label": "portal", "auth_type": "oauth", "access_token": "x"}]}}))
    out = run("import", "hermes", str(auth_json))
    assert out.exit_code == 0, out.output
    assert "3 keys imported, 0 already there, 2 skipped" in out.output
    for secret in ("sk-ant-test-second-000000000002", "sk-ant-test-first-0000000000001"):
        assert secret not in out.output
    listing = run("auth", "list", "anthropic").output
    assert listing.index("primary") < listing.index("secondary") < listing.index("from-env")
    assert memory_keyring.store[("pooltui", "anthropic/primary")] == "sk-ant-test-first-0000000000001"
    assert b"env:ANTHROPIC_API_KEY" in config_bytes()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    out = run("import", "hermes", str(bad))
    assert out.exit_code == 2 and "not JSON" in out.output


def test_malformed_config_is_one_line_exit_2(tmp_path) -> None:
    path = Path(os.environ["POOLTUI_CONFIG"])
    path.parent.mkdir(parents=True)
    path.write_text("[providers.x\nkind = 1\n")
    out = run("provider", "list")
    assert out.exit_code == 2 and f"{path}:1: invalid TOML" in out.output
