"""The fallback's model comes from its config (``model_map``, ``default_model``): read strictly, shown by
``provider show``, set by ``provider set``; a bad value is one line and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pooltui.store.config import ConfigError, load_config
from tests.conftest import pooltui_in_process

SEED = """
[providers.anthropic]
kind = "anthropic"
fallback = ["openrouter"]

[providers.openrouter]
kind = "openrouter"
model_map = {"claude-sonnet-4-5" = "anthropic/claude-sonnet-4.5"}
"""


def cli(*args: str) -> subprocess.CompletedProcess:
    """``pooltui ARGS`` in this process (``cli_process``: a real one)."""
    return pooltui_in_process(*args)


def cli_process(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pooltui", *args], capture_output=True, text=True, timeout=60,
                          env=os.environ.copy())


@pytest.fixture
def config() -> Path:
    path = Path(os.environ["POOLTUI_CONFIG"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SEED)
    return path


def test_the_model_map_is_read_and_names_the_fallbacks_model(config: Path) -> None:
    profile = load_config(config).providers["openrouter"].profile
    assert profile.model_for("claude-sonnet-4-5", same_dialect=False) == "anthropic/claude-sonnet-4.5"
    assert profile.model_for("claude-opus-4-1", same_dialect=False) == "anthropic/claude-sonnet-4.5"  # kind default
    assert profile.model_for("gpt-4o-mini", same_dialect=True) == "gpt-4o-mini"
    out = cli("provider", "show", "openrouter")
    assert out.returncode == 0, out.stderr
    assert "model map       claude-sonnet-4-5 -> anthropic/claude-sonnet-4.5" in out.stdout
    assert "default model   anthropic/claude-sonnet-4.5 (the kind's default)" in out.stdout


def test_provider_set_changes_the_models_and_keeps_the_rest(config: Path) -> None:
    out = cli_process("provider", "set", "openrouter", "--default-model", "openai/gpt-4o-mini",
              "--model-map",
              "claude-sonnet-4-5=anthropic/claude-sonnet-4.5,claude-haiku-4-5=anthropic/claude-haiku-4.5")
    assert out.returncode == 0, out.stderr
    p = load_config(config).providers["openrouter"]
    assert p.default_model == "openai/gpt-4o-mini" and p.model_map["claude-haiku-4-5"] == "anthropic/claude-haiku-4.5"
    assert "fallback = [\"openrouter\"]" in config.read_text()  # the rest of the file as it was
    bad = cli_process("provider", "set", "openrouter", "--model-map", "no-equals-sign")
    assert bad.returncode == 2 and "CALLER_MODEL=PROVIDER_MODEL" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("line, says", [
    ('model_map = "claude"', "model_map must be a table"),
    ('model_map = {"claude" = ""}', "bad model_map['claude']"),
    ('default_model = "bad model"', "bad default_model"),
])
def test_a_bad_model_setting_is_one_line_and_exit_2(config: Path, line: str, says: str) -> None:
    config.write_text(SEED.replace('model_map = {"claude-sonnet-4-5" = "anthropic/claude-sonnet-4.5"}', line))
    with pytest.raises(ConfigError, match="openrouter"):
        load_config(config)
    out = cli("provider", "list")
    assert out.returncode == 2 and says in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
