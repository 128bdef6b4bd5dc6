"""`pooltui traffic` tells a script: exit 0 only when every request succeeded, 1 when any failed, with the
causes the callers saw (status and reason) in the summary and in --json; 2 for bad input."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import pooltui_in_process as run  # the real `traffic` process: tests/test_cli.py

OVERLOADED = """
name = "down"
seed = 5

[[providers]]
name = "sim-anthropic"
dialect = "anthropic"

[[providers.keys]]
label = "a"
secret = "sk-sim-down-a-0000000000000000000000001"

[[providers.outages]]
start_s = 0
end_s = 3600
status = 529
"""

LIMITED = """
name = "limited"
seed = 5

[[providers]]
name = "sim-openai"
window_s = 3600

[[providers.keys]]
label = "a"
secret = "sk-sim-limited-a-00000000000000000000001"
rpm = 2
"""


def scenario(tmp_path: Path, text: str) -> str:
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    return str(path)


def test_a_provider_in_an_outage_exits_1_naming_the_overload(tmp_path: Path) -> None:
    path = scenario(tmp_path, OVERLOADED)
    out = run("traffic", "--scenario", path, "--requests", "4", "--concurrency", "4", "--rate", "0")
    assert out.returncode == 1, out.stderr
    assert "4 failed" in out.stdout and "errors: 529 Overloaded x4" in out.stdout
    assert "pool_unavailable" not in out.stdout and "Traceback" not in out.stderr
    as_json = run("traffic", "--scenario", path, "--requests", "4", "--concurrency", "4", "--rate", "0", "--json")
    assert as_json.returncode == 1, as_json.stderr
    data = json.loads(as_json.stdout)
    assert (data["failed"], data["errors"]) == (4, {"529 Overloaded": 4})


def test_a_spent_rate_limit_is_named_as_the_caller_saw_it(tmp_path: Path) -> None:
    out = run("traffic", "--scenario", scenario(tmp_path, LIMITED), "--requests", "5", "--concurrency", "1",
              "--rate", "0", "--json")
    assert out.returncode == 1, out.stderr
    data = json.loads(out.stdout)
    assert (data["succeeded"], data["errors"]) == (2, {"429 rate limited": 3})


def test_all_green_exits_0_with_no_errors() -> None:
    for extra in ((), ("--json",)):
        out = run("traffic", "--scenario", "steady", "--requests", "10", "--rate", "0", *extra)
        assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["errors"] == {} and json.loads(out.stdout)["failed"] == 0


def test_keys_that_cannot_serve_are_named_as_no_usable_key(tmp_path: Path) -> None:
    text = LIMITED.replace("rpm = 2", "invalid = true")
    out = run("traffic", "--scenario", scenario(tmp_path, text), "--requests", "3", "--rate", "0")
    assert out.returncode == 1, out.stderr
    assert "errors: 503 no usable key x3" in out.stdout
