"""Custom scenarios (issue 11, item 5): every built-in scenario reads under the strict reader, and a
malformed one gets one line naming the file and the field, exit code 2, no traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from pooltui.commands.cli import cli
from pooltui.sim.scenario import builtin_names, load_scenario

GOOD = """name = "mine"
[traffic]
requests = 10
[[providers]]
name = "p"
latency_ms = [10, 30]
[[providers.keys]]
label = "a"
secret = "sk-test-mine-a-000000001"
rpm = 8
[[providers.keys]]
label = "b"
secret = "sk-test-mine-b-000000002"
"""


@pytest.mark.parametrize("name", builtin_names())
def test_every_built_in_scenario_reads(name: str) -> None:
    sc = load_scenario(name)
    assert sc.providers and all(p.keys for p in sc.providers)


@pytest.mark.parametrize(("change", "field", "problem"), [
    (('rpm = 8', 'rpm = "8"'), "providers[0].keys[0].rpm", "must be a whole number >= 0, not '8'"),
    (('rpm = 8', 'rmp = 8'), "providers[0].keys[0].rmp", "unknown field (known here: label, secret, rpm"),
    (("latency_ms = [10, 30]", "latency_ms = [30, 10]"), "providers[0].latency_ms", "low <= high"),
    (('secret = "sk-test-mine-b-000000002"\n', ''), "providers[0].keys[1].secret", "is required"),
    (("latency_ms = [10, 30]", "error_rate = nan"), "providers[0].error_rate", "must be a finite number"),
    (("latency_ms = [10, 30]", "[[providers.outages]]\nstart_s = 5\nend_s = 2"), "providers[0].outages[0].end_s",
     "must be a number > start_s (5)"),
    (("requests = 10", 'requests = 10\nstrategy = "fastest"'), "traffic.strategy", "must be one of round-robin"),
    (("latency_ms = [10, 30]", 'dialect = "gemini"'), "providers[0].dialect", "must be one of 'openai', 'anthropic'"),
    (('label = "b"', 'label = "a"'), "providers[0].keys", "two keys are labelled 'a'"),
    (("requests = 10", "requests = 0"), "traffic.requests", "must be a whole number from 1 to 100000, not 0"),
    (('name = "mine"', 'name = "mine"\nsede = 3'), "sede", "unknown field"),
])
def test_a_malformed_scenario_is_one_line_with_file_and_field(tmp_path, change, field, problem) -> None:
    path = tmp_path / "mine.toml"
    old, new = change
    assert old in GOOD
    path.write_text(GOOD.replace(old, new, 1))
    result = CliRunner().invoke(cli, ["compare", "--scenario", str(path), "--strategies", "failover"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert f"scenario {path}: {field}: " in lines[0] and problem in lines[0], lines[0]


def test_no_providers_bad_toml_and_a_missing_file_are_one_line_too(tmp_path) -> None:
    cases = {"empty.toml": ('name = "x"\n', "providers: none defined"),
             "broken.toml": ("[[providers]\n", "not valid TOML")}
    for file, (text, _) in cases.items():
        (tmp_path / file).write_text(text)
    cases["missing.toml"] = ("", "no such file")
    for file, (_, said) in cases.items():
        result = CliRunner().invoke(cli, ["compare", "--scenario", str(tmp_path / file)])
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
        assert str(tmp_path / file) in result.output and said in result.output, result.output


def test_a_good_custom_scenario_compares(tmp_path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(GOOD)
    result = CliRunner().invoke(cli, ["compare", "--scenario", str(path), "--strategies", "failover", "--csv"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1].startswith("failover,10,")
