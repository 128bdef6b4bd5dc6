"""The CLI speaks one way (issue 22, item 6): one line and exit 2 for every user error, a keyring that cannot be
used named with its fix before anything is verified, `sim serve` on a used port, `sim keys` printing the keys
the simulator accepts, secrets that are not printable ASCII, the host a key is verified against, help texts,
plurals, and `usage` telling callers' requests from upstream calls."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import click
import keyring
import pytest
from keyring.backends import fail

from pooltui.commands.cli import cli
from pooltui.sim import load_scenario
from pooltui.sim.process import free_port
from tests.conftest import MemoryKeyring, keys, make_scenario
from tests.test_pool_cli import PLANTED, add, config_bytes, run, sim_provider  # noqa: F401  (a fixture)


def run_process(*args: str, input: str | None = None, env: dict[str, str] | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pooltui", *args], capture_output=True, text=True, input=input,
                          timeout=timeout, env={**os.environ, **(env or {})})


def one_error_line(text: str, needle: str) -> None:
    """``text`` (stderr) is exactly one ``pooltui: error:`` line containing ``needle``, no traceback."""
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pooltui: error: "), text
    assert needle in lines[0], text
    assert "Traceback" not in text and "KeyError" not in text


@pytest.fixture
def openai_sim(serve):
    """An openai-style simulated provider configured as 'oa' (its verification is counted per key)."""
    server = serve(make_scenario({"name": "oa", "keys": keys("k", 2)}))
    out = run("provider", "set", "oa", "--kind", "openai", "--base-url", server.base_url("oa"))
    assert out.exit_code == 0, out.output
    return server


# ------------------------------------------------------------------ unknown names, bad files: one line, exit 2
def test_auth_list_of_an_unknown_provider_is_one_line_exit_2() -> None:
    out = run_process("auth", "list", "nosuch")
    assert out.returncode == 2, out.stderr
    one_error_line(out.stderr, "unknown provider 'nosuch'")


def test_sim_keys_of_an_unknown_provider_is_one_line_exit_2() -> None:
    out = run("sim", "keys", "--scenario", "outage", "--provider", "nosuch")
    assert out.exit_code == 2
    one_error_line(out.output, "unknown provider 'nosuch' in scenario outage")


def test_events_and_usage_of_a_provider_never_seen_are_one_line_exit_2(sim_provider) -> None:  # noqa: F811
    from pooltui.store.history import History

    for command in ("events", "usage"):
        out = run(command, "--provider", "nosuch")
        assert out.exit_code == 2, out.output
        one_error_line(out.output, "unknown provider 'nosuch'")
    # a provider removed from the config keeps its past: still asked about, no error
    History(Path(os.environ["POOLTUI_DATA_DIR"]) / "history.db").add_usage(
        [(int(time.time()) // 60 * 60, "gone", "a", "m", 2, 2, 5, 5, 0.0)])
    out = run("usage", "--provider", "gone")
    assert out.exit_code == 0 and "gone" in out.output


@pytest.mark.parametrize(("args", "needle"), [
    (("auth", "add", "sim", "--pool", "a", "--no-verify", "--stdin", "--quota-group", "team one!"), "bad quota group"),
    (("traffic", "--scenario", "steady", "--requests", "2", "--models", "gpt-sim-1,two words"),
     "bad model 'two words'"),
])
def test_bad_names_in_options_are_one_line_exit_2(sim_provider, args, needle) -> None:  # noqa: F811
    before = config_bytes()
    out = run(*args, input="sk-test-group-000000000000001\n")
    assert out.exit_code == 2
    one_error_line(out.output, needle)
    assert config_bytes() == before


@pytest.mark.parametrize("command", [("compare", "--scenario", "steady", "--requests", "1"), ("replay",)])
def test_a_chart_that_cannot_be_written_is_refused_before_the_run(tmp_path, command) -> None:
    target = tmp_path / "no-such-dir" / "chart.svg"
    out = run(*command, "--plot", str(target))
    assert out.exit_code == 2
    one_error_line(out.output, f"cannot write {target}")


# ------------------------------------------------------------------ the keyring
def test_an_unusable_keyring_names_the_fix_before_the_key_is_verified(openai_sim, memory_keyring) -> None:
    keyring.set_keyring(fail.Keyring())
    secret = openai_sim.scenario.primary.keys[0].secret
    before = config_bytes()
    out = run("--secret-store", "keyring", "auth", "add", "oa", "--pool", "k0", "--stdin", input=secret + "\n")
    assert out.exit_code == 2, out.output
    one_error_line(out.output, "--secret-store file")
    assert openai_sim.state.stats()["oa"]["k0"] == {}  # the provider was not asked
    assert config_bytes() == before


def test_a_keyring_that_refuses_to_store_names_the_fix(openai_sim) -> None:
    class Refusing(MemoryKeyring):
        def set_password(self, service, username, password):
            raise RuntimeError("locked")

    keyring.set_keyring(Refusing())
    before = config_bytes()
    out = add_to("oa", "k0", openai_sim.scenario.primary.keys[0].secret, "--no-verify")
    assert out.exit_code != 0
    one_error_line(out.output, "--secret-store file")
    assert config_bytes() == before


def add_to(provider: str, label: str, secret: str, *extra: str):
    return run("auth", "add", provider, "--pool", label, "--stdin", *extra, input=secret + "\n")


# ------------------------------------------------------------------ the simulator's commands
def test_sim_serve_on_a_port_in_use_fails_before_its_banner() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = run_process("sim", "serve", "--port", str(port))
    assert out.returncode == 2
    one_error_line(out.stderr, f"cannot listen on 127.0.0.1:{port}")
    assert out.stdout == ""


def test_sim_keys_prints_the_secrets_the_simulator_accepts(serve) -> None:
    import openai

    out = run_process("sim", "keys", "--scenario", "outage", "--provider", "sim-backup")
    assert out.returncode == 0, out.stderr
    scenario = load_scenario("outage")
    printed = [line.split(" ") for line in out.stdout.splitlines()]
    assert printed == [[k.label, k.secret] for k in scenario.provider("sim-backup").keys]
    server = serve(scenario)
    client = openai.OpenAI(base_url=server.base_url("sim-backup"), api_key=printed[0][1], max_retries=0)
    reply = client.chat.completions.create(model="gpt-sim-1", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content


# ------------------------------------------------------------------ auth add
def test_a_secret_that_is_not_printable_ascii_is_refused_and_nothing_stored(openai_sim, memory_keyring) -> None:
    before = config_bytes()
    good = openai_sim.scenario.primary.keys[0].secret
    out = add_to("oa", "k0", good[:-3] + "\u2026")  # a pasted ellipsis
    assert out.exit_code == 2, out.output
    one_error_line(out.output, "printable ASCII")
    assert config_bytes() == before and memory_keyring.store == {}
    assert openai_sim.state.stats()["oa"]["k0"] == {}


def test_auth_add_for_a_provider_with_no_config_says_which_host_it_verifies_against() -> None:
    dead_proxy = f"http://127.0.0.1:{free_port()}"  # every HTTPS request fails at once, nothing leaves the machine
    out = run_process("auth", "add", "anthropic", "--pool", "primary", "--stdin",
                      input="sk-ant-test-0000000000000000000001\n",
                      env={"HTTPS_PROXY": dead_proxy, "https_proxy": dead_proxy, "NO_PROXY": "", "no_proxy": ""})
    assert out.returncode == 0, out.stderr
    said = ("verifying against https://api.anthropic.com (the anthropic default; set another with "
            "`pooltui provider set anthropic --base-url URL`)")
    assert said in out.stderr.splitlines()[0]
    assert "verify: " in out.stdout


def test_auth_add_for_a_configured_endpoint_says_nothing_of_defaults(openai_sim) -> None:
    out = add_to("oa", "k0", openai_sim.scenario.primary.keys[0].secret)
    assert out.exit_code == 0, out.output
    assert "verifying against" not in out.output and "verify: valid" in out.output


# ------------------------------------------------------------------ help and plurals
def _commands(command: click.Command, path: str = "pooltui"):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _commands(sub, f"{path} {name}")


def test_every_command_and_option_has_help_text() -> None:
    missing = []
    for path, command in _commands(cli):
        if not (command.help or command.short_help):
            missing.append(path)
        for param in command.params:
            if isinstance(param, click.Option) and not (param.help or "").strip():
                missing.append(f"{path} {param.opts[-1]}")
    assert missing == []


def test_plurals() -> None:
    from pooltui.core.words import plural

    assert [plural(n, "key") for n in (0, 1, 2)] == ["0 keys", "1 key", "2 keys"]
    assert plural(1, "process", "processes") == "1 process" and plural(3, "process", "processes") == "3 processes"


def test_one_key_and_one_request_are_said_in_the_singular(sim_provider) -> None:  # noqa: F811
    assert add("good", PLANTED, "--no-verify").exit_code == 0
    doctor = run("doctor").output
    assert "1 provider, 1 key" in doctor and "1/1 key resolves" in doctor
    out = run_process("compare", "--scenario", "steady", "--requests", "1", "--strategies", "round-robin")
    assert out.returncode == 0, out.stderr
    assert "scenario steady: 1 request," in out.stderr


# ------------------------------------------------------------------ usage: callers' requests and upstream calls
def test_usage_counts_callers_requests_apart_from_upstream_calls_and_shows_no_cost_without_prices(
        sim_provider) -> None:  # noqa: F811
    for label, secret in (("good", PLANTED), ("gone", "sk-test-unknown-0000000001")):
        assert add(label, secret, "--no-verify").exit_code == 0
    assert run("provider", "set", "sim", "--pool-strategy", "failover", "--credential-pool", "gone,good").exit_code == 0
    assert run("traffic", "--provider", "sim", "--requests", "6", "--concurrency", "1").exit_code == 0
    rows = json.loads(run("usage", "--by", "provider", "--json").output)
    assert len(rows) == 1
    row = rows[0]
    assert row["caller_requests"] == 6 == row["caller_served"]
    assert row["upstream_calls"] == 7 and row["upstream_ok"] == 6  # the invalid key was tried once first
    assert row["cost"] is None
    table = run("usage", "--by", "provider").output.splitlines()
    assert [cell(table, name) for name in ("callers' requests", "upstream calls", "cost $")] == ["6", "7", "-"]
    by_key = run("usage", "--by", "key").output
    assert "callers' requests to sim: 6 (6 served)" in by_key
    # with prices set, the cost of what is served from then on
    with Path(os.environ["POOLTUI_CONFIG"]).open("a") as f:
        f.write('\n[prices."claude-sonnet-4-5"]\ninput_per_mtok = 3.0\noutput_per_mtok = 15.0\n')
    assert run("traffic", "--provider", "sim", "--requests", "2").exit_code == 0
    table = run("usage", "--by", "model").output.splitlines()
    assert cell(table, "model") == "claude-sonnet-4-5" and float(cell(table, "cost $")) > 0


def cell(table: list[str], name: str, row: int = 1) -> str:
    """The value under header ``name`` in a table of left-aligned columns."""
    start = table[0].index(name)
    return table[row][start:].split("  ")[0].strip()


def test_usage_of_callers_refused_before_any_upstream_call(sim_provider) -> None:  # noqa: F811
    from pooltui.client.pool_client import RequestRecord
    from pooltui.store.history import History

    History(Path(os.environ["POOLTUI_DATA_DIR"]) / "history.db").add_request_records(
        [RequestRecord(time.time(), "sim", "m", 0, 0, "error", 0.01) for _ in range(2)])
    out = run("usage")
    assert out.exit_code == 0, out.output
    assert "no upstream calls in that period" in out.output and "callers' requests to sim: 2 (0 served)" in out.output
    table = run("usage", "--by", "provider").output.splitlines()
    assert [cell(table, name) for name in ("callers' requests", "served", "upstream calls")] == ["2", "0", "0"]
