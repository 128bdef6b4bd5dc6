"""``pooltui advise``, ``auth list``'s account column and ``auth group`` on a configured pool whose traffic went
to the simulator on loopback (two keys of one organization, one of another)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pooltui.session.advice import VERDICTS
from tests.conftest import make_scenario
from tests.test_pool_cli import add, run

SECRETS = {"a0": "sk-test-acme-0000000000000000000001", "a1": "sk-test-acme-0000000000000000000002",
           "b0": "sk-test-globex-00000000000000000003"}


@pytest.fixture
def org_pool(serve) -> Path:
    sc = make_scenario({"name": "sim", "window_s": 60, "keys": [
        {"label": "a0", "secret": SECRETS["a0"], "rpm": 1000, "org": "acme"},
        {"label": "a1", "secret": SECRETS["a1"], "rpm": 1000, "org": "acme"},
        {"label": "b0", "secret": SECRETS["b0"], "rpm": 1000, "org": "globex"}]})
    server = serve(sc)
    assert run("provider", "set", "sim", "--kind", "openai", "--base-url", server.base_url("sim")).exit_code == 0
    path = Path(os.environ["POOLTUI_CONFIG"])
    path.write_text("# the team's keys: ask Ana before changing\n" + path.read_text())
    for label, secret in SECRETS.items():
        assert add(label, secret).exit_code == 0
    out = run("traffic", "--provider", "sim", "--requests", "30", "--json")
    assert out.exit_code == 0, out.output
    return path


def test_keys_of_one_account_are_shown_advised_and_grouped(org_pool) -> None:
    listing = {line.split()[1]: line for line in run("auth", "list").output.splitlines()[1:] if line.strip()}
    assert "one account with a1" in listing["a0"] and "one account with a0" in listing["a1"]
    assert "org…" in listing["b0"] and "one account" not in listing["b0"] and "acme" not in str(listing)
    advice = json.loads(run("advise", "--provider", "sim", "--json").output)
    assert advice["verdict"] in VERDICTS and advice["shared_accounts"] == [["a0", "a1"]]
    assert {k["label"] for k in advice["keys"] if k["requests"]} == {"a0", "a1", "b0"}
    usage = run("usage", "--by", "key").output
    assert "of sim (a0+a1, one account):" in usage and "b0, one account" not in usage
    out = run("auth", "group", "a0", "a1")
    assert out.exit_code == 0, out.output
    text = org_pool.read_text()
    assert text.startswith("# the team's keys: ask Ana before changing\n")
    assert text.count('quota_group = "account-a0"') == 2
    assert "(grouped)" in run("auth", "list").output


@pytest.mark.parametrize(("args", "needle"), [
    (("auth", "group", "a0"), "at least two keys"),
    (("auth", "group", "a0", "nope"), "no provider has all of a0, nope"),
    (("auth", "group", "a0", "nope", "--provider", "sim"), "no key labelled 'nope'"),
    (("advise", "--provider", "nope"), "unknown provider 'nope'"),
    (("advise", "--scenario", "nope"), "unknown scenario 'nope'"),
])
def test_bad_input_is_one_line_exit_2(org_pool, args, needle) -> None:
    before = org_pool.read_bytes()
    out = run(*args)
    assert out.exit_code == 2, out.output
    assert needle in out.output and len(out.output.strip().splitlines()) == 1, out.output
    assert org_pool.read_bytes() == before
