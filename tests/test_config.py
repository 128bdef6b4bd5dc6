"""Config: round trips, kept settings, one-line errors with file and line, atomic and concurrent writes."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from pooltui.store.config import ConfigEditor, ConfigError, KeyEntry, ProviderConfig, load_config, save_config

SAMPLE = """\
# my settings
theme = "dark"

[history]
retention_days = 7
flush_s = 2

[prices."claude-sonnet-4-5"]
input_per_mtok = 3.0
output_per_mtok = 15.0

[providers.anthropic]
kind = "anthropic"
strategy = "fill_first"
credential_pool = ["b", "a"]
fallback = ["local"]
cooldown_s = 20
team = "infra"

[[providers.anthropic.keys]]
label = "a"
secret = "keyring:anthropic/a"
note = "primary account"
budget_tokens_day = 100000

[[providers.anthropic.keys]]
label = "b"
secret = "env:ANTHROPIC_KEY_B"
quota_group = "org-1"

[providers.local]
kind = "local"
base_url = "http://127.0.0.1:11434/v1"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    path = write(tmp_path, SAMPLE)
    cfg = load_config(path)
    p = cfg.provider("anthropic")
    assert p.strategy == "failover" and [k.label for k in p.pool_keys()] == ["b", "a"]
    assert p.key("a").budget.tokens_day == 100000 and p.key("b").quota_group == "org-1"
    assert cfg.provider("local").profile.keyless and cfg.retention_days == 7
    assert cfg.prices.cost("claude-sonnet-4-5-20250929", 1_000_000, 0) == 3.0
    save_config(cfg)
    again = load_config(path)
    assert again.to_dict() == cfg.to_dict()
    text = path.read_text()
    assert 'theme = "dark"' in text and 'team = "infra"' in text and "flush_s = 2" in text  # kept
    assert oct(path.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("[providers.x]\nkind = \"openai\"\nstrategy = = 3\n", 3, "invalid TOML"),
        ("[history]\nretention_days = 7\n\n[providers.x]\nkind = \"openai\"\nstrategy = \"sideways\"\n", 6,
         "unknown strategy 'sideways'"),
        ("[providers.x]\nkind = \"nope\"\n", 2, "unknown kind 'nope'"),
        ("[providers.x]\nkind = \"openai\"\nbase_url = \"ftp://example.com\"\n", 3, "base URL must be http"),
        ("[providers.x]\nkind = \"openai\"\n\n[[providers.x.keys]]\nlabel = \"a\"\nsecret = \"sk-test-123\"\n", 6,
         "never keeps a secret in the config"),
        ("[providers.x]\nkind = \"openai\"\nfallback = [\"ghost\"]\n", 3, "fallback 'ghost' is not"),
        ("[providers.x]\nkind = \"openai\"\nlearn_limits = \"no\"\n", 3, "learn_limits must be true or false"),
    ],
)
def test_bad_config_names_file_line_and_problem(tmp_path: Path, text: str, line: int, needle: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: ") and needle in message
    assert "\n" not in message


def test_an_invalid_change_writes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, SAMPLE)
    before = path.read_bytes()
    with pytest.raises(ValueError), ConfigEditor(path) as cfg:
        cfg.provider("anthropic").fallback = ["nobody"]
        cfg.validate()
    assert path.read_bytes() == before


def test_interrupted_write_leaves_the_old_file(tmp_path: Path, monkeypatch) -> None:
    path = write(tmp_path, SAMPLE)
    before = path.read_bytes()
    cfg = load_config(path)
    cfg.provider("anthropic").keys.append(KeyEntry("c", "keyring:anthropic/c"))

    def crash(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        save_config(cfg)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"] or all(
        not p.name.endswith(".tmp") for p in tmp_path.iterdir())


def _add_keys(path: str, worker: int, n: int) -> None:
    for i in range(n):
        with ConfigEditor(Path(path)) as cfg:
            p = cfg.providers.setdefault("openai", ProviderConfig("openai", "openai"))
            p.keys.append(KeyEntry(f"w{worker}-{i}", f"keyring:openai/w{worker}-{i}"))


def test_concurrent_writers_lose_nothing_and_never_truncate(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_add_keys, args=(str(path), w, 15)) for w in range(4)]
    for p in procs:
        p.start()
    seen = 0
    while any(p.is_alive() for p in procs):
        if path.exists():
            load_config(path)  # a reader never sees a half-written file
            seen += 1
    for p in procs:
        p.join()
        assert p.exitcode == 0
    labels = {k.label for k in load_config(path).provider("openai").keys}
    assert len(labels) == 60 and seen > 0


def test_learned_limits_are_on_unless_the_provider_turns_them_off(tmp_path: Path, monkeypatch) -> None:
    from pooltui.core.events import EventLog
    from pooltui.session.build import build_pool
    from pooltui.store.config import KeyEntry
    from pooltui.store.secrets import SecretStore

    path = write(tmp_path, "[providers.a]\nkind = \"openai\"\n\n[providers.b]\nkind = \"openai\"\n"
                           "learn_limits = false\n")
    cfg = load_config(path)
    assert cfg.provider("a").learn_limits is True and cfg.provider("b").learn_limits is False
    assert "learn_limits" not in cfg.provider("a").to_dict() and cfg.provider("b").to_dict()["learn_limits"] is False
    save_config(cfg)
    assert load_config(path).provider("b").learn_limits is False
    monkeypatch.setenv("POOLTUI_TEST_LEARN_KEY", "sk-test-learn-000000000000000001")
    store = SecretStore(tmp_path / "data")
    for name, learn in (("a", True), ("b", False)):
        p = cfg.provider(name)
        p.keys.append(KeyEntry("k", "env:POOLTUI_TEST_LEARN_KEY"))
        assert build_pool(p, store, None, EventLog(), problems=[]).learn is learn


def test_turning_learned_limits_off_in_the_file_applies_to_the_running_pool(tmp_path: Path, monkeypatch) -> None:
    import asyncio

    from pooltui.client.pool_client import PoolClient, Upstream
    from pooltui.core.events import EventLog
    from pooltui.session.build import build_pool
    from pooltui.session.live_config import LiveConfig
    from pooltui.store.secrets import SecretStore

    monkeypatch.setenv("POOLTUI_TEST_LEARN_KEY", "sk-test-learn-000000000000000002")
    text = ("[providers.a]\nkind = \"openai\"\n\n[[providers.a.keys]]\nlabel = \"k\"\n"
            "secret = \"env:POOLTUI_TEST_LEARN_KEY\"\n")
    path = write(tmp_path, text)
    store = SecretStore(tmp_path / "data")
    p = load_config(path).provider("a")
    pool = build_pool(p, store, None, EventLog())
    client = PoolClient(Upstream(p.profile, pool))
    live = LiveConfig(path, store, {"a": client})
    assert pool.learn and live.reload() == []
    path.write_text(text.replace("kind = \"openai\"\n", "kind = \"openai\"\nlearn_limits = false\n"))
    assert live.reload() == ["a learned limits off"] and pool.learn is False
    asyncio.run(client.aclose())
