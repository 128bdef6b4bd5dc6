"""Issue 6.9: the same secret twice is refused at add and import (or linked on request); a pool reports only
its own keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pooltui.core import Classification, KeySpec, Outcome, Pool
from pooltui.store.config import load_config

SECRET = "sk-test-twice-0000000000000000001"


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pooltui", *args], capture_output=True, text=True, timeout=60,
                          input=stdin, env=os.environ.copy())


def test_a_key_added_twice_is_refused_with_the_label_that_holds_it() -> None:
    assert run("auth", "add", "openai", "--pool", "a", "--stdin", "--no-verify", stdin=SECRET).returncode == 0
    out = run("auth", "add", "openai", "--pool", "b", "--stdin", "--no-verify", stdin=SECRET)
    assert out.returncode == 2 and "already in the pool as openai/a" in out.stderr
    assert SECRET not in out.stderr + out.stdout
    assert [k.label for k in load_config(Path(os.environ["POOLTUI_CONFIG"])).provider("openai").keys] == ["a"]
    out = run("auth", "add", "openai", "--pool", "b", "--stdin", "--no-verify", "--link", stdin=SECRET)
    assert out.returncode == 0, out.stderr
    p = load_config(Path(os.environ["POOLTUI_CONFIG"])).provider("openai")
    assert p.key("a").quota_group == p.key("b").quota_group == "same-a"


def test_a_key_imported_twice_is_skipped(tmp_path) -> None:
    assert run("auth", "add", "openai-api", "--pool", "mine", "--stdin", "--no-verify", stdin=SECRET).returncode == 2
    assert run("auth", "add", "openai", "--pool", "mine", "--stdin", "--no-verify", stdin=SECRET).returncode == 0
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"credential_pool": {"openai": [
        {"label": "again", "auth_type": "api_key", "source": "manual", "access_token": SECRET}]}}))
    out = run("import", "hermes", str(auth))
    assert out.returncode == 0, out.stderr
    assert "already  openai/again is openai/mine (the same key)" in out.stdout
    assert len(load_config(Path(os.environ["POOLTUI_CONFIG"])).provider("openai").keys) == 1


def test_a_pool_refuses_reports_for_a_key_of_another_pool() -> None:
    a, b = Pool("a", [KeySpec("k", "sk-test-pool-a-000000000001")]), Pool("b", [KeySpec("k", "sk-test-pool-b-01")])
    key = a.pick()
    with pytest.raises(ValueError, match="not a key of pool 'b'"):
        b.report(key, Classification(Outcome.OK, 200))
    with pytest.raises(ValueError):
        b.report_transport(key, "timeout")
    a.report(key, Classification(Outcome.OK, 200))
