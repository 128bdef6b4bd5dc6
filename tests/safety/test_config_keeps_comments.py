"""Issue 5.5: config writes keep the user's comments, order and formatting (the README's example)."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from pooltui.commands.cli import cli
from pooltui.session.local import config_session
from pooltui.store.config import load_config
from pooltui.store.history import History
from pooltui.store.secrets import SecretStore

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_config() -> str:
    """The README's config example: its first TOML block with providers in it."""
    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(), re.S)
    return next(b for b in blocks if "[providers." in b)


def test_the_readme_example_survives_auth_add_and_a_toggle_from_the_monitor(tmp_path, monkeypatch) -> None:
    text = readme_config()
    comments = [line.split("#", 1)[1] for line in text.splitlines() if "#" in line]
    assert len(comments) >= 8
    path = tmp_path / "config.toml"
    path.write_text(text)
    monkeypatch.setenv("ANTHROPIC_KEY_2", "sk-ant-test-second-000000000002")
    store = SecretStore(tmp_path / "data")
    store.put("anthropic", "primary", "sk-ant-test-first-0000000000001")
    out = CliRunner().invoke(cli, ["--config", str(path), "auth", "add", "anthropic", "--pool", "third", "--stdin",
                                   "--no-verify", "--note", "added later"], input="sk-ant-test-third-00000000003\n")
    assert out.exit_code == 0, out.output
    session, problems = config_session(load_config(path), store, History(tmp_path / "data" / "history.db"))
    assert problems == []
    session.toggle_key("primary")
    session.move("third", -1)
    written = path.read_text()
    for comment in comments:
        assert comment in written, f"lost the comment {comment!r}"
    assert written.startswith("[history]\nretention_days = 30\n\n[prices.\"claude-sonnet-4-5\"]          # optional")
    assert 'cooldown_s = 30                       # default cooldown' in written  # 30 stays 30, not 30.0
    p = load_config(path).provider("anthropic")
    assert p.key("primary").disabled and p.key("third").note == "added later"
    assert p.credential_pool == ["primary", "third", "secondary"]
    assert written.index('label = "primary"') < written.index('label = "secondary"') < written.index('label = "third"')
