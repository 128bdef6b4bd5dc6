"""Issue 5.4: bad input gets one line on stderr, exit 2, and nothing is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import pooltui_in_process


def run_process(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """``python -m pooltui ARGS``, a real process (the tests of a command's words run it in-process: ``run``)."""
    return subprocess.run([sys.executable, "-m", "pooltui", *args], capture_output=True, text=True, timeout=60,
                          input=stdin, env=os.environ.copy())


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return pooltui_in_process(*args, stdin=stdin)


def config_file() -> Path:
    return Path(os.environ["POOLTUI_CONFIG"])


def one_line_exit_2(out: subprocess.CompletedProcess, *words: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pooltui: error:"), out.stderr
    assert "Traceback" not in out.stderr
    for word in words:
        assert word in lines[0], lines[0]


def snapshot() -> dict[str, bytes]:
    roots = [config_file().parent, Path(os.environ["POOLTUI_DATA_DIR"])]
    return {str(f): f.read_bytes() for root in roots if root.exists() for f in root.rglob("*")
            if f.is_file() and not f.name.startswith(".")}


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-5", "0"])
def test_cooldown_must_be_a_finite_positive_number(value: str) -> None:
    assert run("provider", "set", "openai").returncode == 0
    before = snapshot()
    one_line_exit_2(run("provider", "set", "openai", f"--cooldown={value}"), "--cooldown")
    assert snapshot() == before


@pytest.mark.parametrize("line", ["cooldown_s = nan", "cooldown_s = inf", "cooldown_max_s = -inf",
                                  "capacity_alert = 1.5"])
def test_a_bad_number_already_in_the_config_gets_file_and_line(line: str) -> None:
    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'# mine\n[providers.openai]\nkind = "openai"\n{line}\n')
    for args in (("auth", "list"), ("provider", "show", "openai"), ("auth", "add", "openai", "--pool", "a",
                                                                      "--stdin", "--no-verify")):
        out = run(*args, stdin="sk-test-valid-000000000000000001\n")
        one_line_exit_2(out, f"{path}:4")
    assert path.read_text().startswith("# mine")


def test_a_budget_or_price_that_is_not_finite_is_refused_with_its_line() -> None:
    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('[prices."m"]\ninput_per_mtok = nan\noutput_per_mtok = 1\n')
    one_line_exit_2(run("provider", "list"), "input_per_mtok")
    path.write_text('[providers.openai]\nkind = "openai"\n[[providers.openai.keys]]\nlabel = "a"\n'
                    'secret = "env:A"\nbudget_cost_day = inf\n')
    one_line_exit_2(run("auth", "list"), "budget_cost_day", f"{path}:6")


@pytest.mark.parametrize("url", ["http://host:99999/v1", "http://user:pw@host/v1", "http://exa mple/v1",
                                 "http://host/v1\r\nX-Injected: 1", "https:///v1", "ftp://host", "http://host/v1#x"])
def test_bad_base_urls_are_refused(url: str) -> None:
    before = snapshot()
    one_line_exit_2(run("provider", "set", "mine", "--kind", "openai-compatible", "--base-url", url), "base URL")
    assert snapshot() == before


def test_a_crlf_base_url_in_the_file_is_refused_with_its_line() -> None:
    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('[providers.mine]\nkind = "openai-compatible"\nbase_url = "http://h/v1\\r\\nX: y"\n')
    one_line_exit_2(run("provider", "list"), f"{path}:3", "base URL")


@pytest.mark.parametrize("key", ["sk-test-has\x00nul-000000000", "sk-test has space 00000000000", "sk-" + "a" * 4100,
                                 "sk-test-tab\there-00000000000"])
def test_malformed_keys_are_refused_and_nothing_is_stored(key: str) -> None:
    before = snapshot()
    out = run("auth", "add", "openai", "--pool", "a", "--stdin", "--no-verify", stdin=key + "\n")
    one_line_exit_2(out, "key")
    assert key.strip() not in out.stderr
    assert snapshot() == before


@pytest.mark.parametrize("name", ["bad name", "../etc", "x/y", "a" * 65, "ünï"])
def test_provider_names_must_be_label_shaped(name: str) -> None:
    before = snapshot()
    one_line_exit_2(run("provider", "set", name, "--kind", "openai"), "provider name")
    one_line_exit_2(run("auth", "add", name, "--pool", "a", "--stdin", "--no-verify", stdin="sk-test-x-00000000001\n"),
                    "provider name")
    assert snapshot() == before


@pytest.mark.parametrize("var", ["1ABC", "A-B", "A B", "A$B"])
def test_env_names_are_checked_on_add_and_on_hermes_import(var: str, tmp_path) -> None:
    before = snapshot()
    one_line_exit_2(run("auth", "add", "openai", "--pool", "a", "--env", var, "--no-verify"), "environment variable")
    assert snapshot() == before
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"credential_pool": {"openai": [
        {"label": "bad", "auth_type": "api_key", "source": f"env:{var}"},
        {"label": "nul", "auth_type": "api_key", "source": "manual", "access_token": "sk-test-\x00-000000001"},
        {"label": "good", "auth_type": "api_key", "source": "manual", "access_token": "sk-test-good-0000000001"}]}}))
    out = run("import", "hermes", str(auth))
    assert out.returncode == 0, out.stderr
    assert "skipped  openai/bad: bad environment variable name" in out.stdout
    assert "skipped  openai/nul: the key has whitespace or a control character" in out.stdout
    assert "1 key imported" in out.stdout


@pytest.mark.parametrize("content", ["{not json", "[]", '{"openai/a": 5}'])
def test_a_corrupted_secret_file_is_never_replaced(content: str) -> None:
    data = Path(os.environ["POOLTUI_DATA_DIR"])
    data.mkdir(parents=True, exist_ok=True)
    (data / "secrets.json").write_text(content)
    (data / "secrets.json").chmod(0o600)  # as pooltui keeps it: a file others can read is refused before it is read
    out = run_process("--secret-store", "file", "auth", "add", "openai", "--pool", "a", "--stdin", "--no-verify",
              stdin="sk-test-valid-000000000000000001\n")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "secrets.json is corrupted" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert (data / "secrets.json").read_text() == content


def test_a_corrupted_history_is_never_replaced_and_named_in_one_line() -> None:
    data = Path(os.environ["POOLTUI_DATA_DIR"])
    data.mkdir(parents=True, exist_ok=True)
    garbage = b"this is not sqlite at all " * 200
    (data / "history.db").write_bytes(garbage)
    out = run_process("events")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "history.db is not a readable history database" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert (data / "history.db").read_bytes() == garbage
