"""Declared limits in the config (issue 27): per key, per provider, per model; kept on save; bad values are one
line naming the field (exit code 2 from the command line); the pool built from it holds them; a change in the
file applies to the running pool."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pooltui.core.events import EventLog
from pooltui.core.windows import KeyLimits
from pooltui.session.build import build_pool
from pooltui.store.config import ConfigError, load_config, save_config
from pooltui.store.secrets import SecretStore
from tests.test_config import write

TEXT = """\
[providers.a]
kind = "anthropic"

[providers.a.limits]
rpm = 50
itpm = 30000

[providers.a.limits.models."claude-sonnet-4-5"]
itpm = 80000

[[providers.a.keys]]
label = "k1"
secret = "env:POOLTUI_TEST_LIMITS_KEY"
rpm = 1000
max_concurrency = 4

[[providers.a.keys]]
label = "k2"
secret = "env:POOLTUI_TEST_LIMITS_KEY2"
"""


def test_limits_per_key_provider_and_model_are_read_merged_and_kept(tmp_path: Path, monkeypatch) -> None:
    path = write(tmp_path, TEXT)
    cfg = load_config(path)
    p = cfg.provider("a")
    assert p.limits == KeyLimits(rpm=50, itpm=30000)
    assert p.model_limits == {"claude-sonnet-4-5": KeyLimits(itpm=80000)}
    k1, k2 = p.key("k1"), p.key("k2")
    assert k1 is not None and k2 is not None
    assert p.key_limits(k1) == (KeyLimits(rpm=1000, itpm=30000, max_concurrency=4),
                                (("claude-sonnet-4-5", KeyLimits(rpm=1000, itpm=80000, max_concurrency=4)),))
    assert p.key_limits(k2)[0] == KeyLimits(rpm=50, itpm=30000)
    save_config(cfg)
    assert load_config(path).to_dict() == cfg.to_dict()
    monkeypatch.setenv("POOLTUI_TEST_LIMITS_KEY", "sk-ant-test-limits-0000000000000001")
    monkeypatch.setenv("POOLTUI_TEST_LIMITS_KEY2", "sk-ant-test-limits-0000000000000002")
    pool = build_pool(p, SecretStore(tmp_path / "data"), None, EventLog())
    assert pool is not None
    declared = pool.key("k1").declared
    assert declared is not None and declared.limits.rpm == 1000
    assert declared.for_model("claude-sonnet-4-5").limits.itpm == 80000
    assert declared.for_model("claude-haiku-4-5").limits.itpm == 30000


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (("rpm = 1000", "rpm = 0"), "key a/k1: rpm must be a whole number >= 1, not 0"),
        (("rpm = 1000", "rpm = \"60\""), "key a/k1: rpm must be a whole number >= 1, not '60'"),
        (("max_concurrency = 4", "max_concurrency = 2.5"), "key a/k1: max_concurrency must be a whole number"),
        (("itpm = 30000", "itpm = -1"), "provider a: limits.itpm must be a whole number >= 1, not -1"),
        (("itpm = 30000", "tpd = 5"), "provider a: limits.tpd: unknown field"),
        (("itpm = 80000", "itpm = true"), "limits.models.claude-sonnet-4-5.itpm must be a whole number"),
    ],
)
def test_bad_limits_are_one_line_naming_the_field(tmp_path: Path, edit: tuple[str, str], needle: str) -> None:
    path = write(tmp_path, TEXT.replace(*edit, 1) if edit[0] != "itpm = 80000" else
                 TEXT.replace("itpm = 80000", edit[1]))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert needle in message and "\n" not in message and message.startswith(f"{path}:")


def test_the_command_line_says_it_in_one_line_with_exit_code_2(tmp_path: Path) -> None:
    path = write(tmp_path, TEXT.replace("rpm = 1000", "rpm = 0"))
    out = subprocess.run([sys.executable, "-m", "pooltui", "--config", str(path), "provider", "show", "a"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "rpm must be a whole number >= 1, not 0" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    good = write(tmp_path, TEXT)
    out = subprocess.run([sys.executable, "-m", "pooltui", "--config", str(good), "provider", "show", "a"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "rpm 50 · itpm 30k" in out.stdout and "key k1: rpm 1k · max_concurrency 4" in out.stdout
    assert "claude-sonnet-4-5: itpm 80k" in out.stdout


def test_a_limit_changed_in_the_file_applies_to_the_running_pool(tmp_path: Path, monkeypatch) -> None:
    import asyncio

    from pooltui.client.pool_client import PoolClient, Upstream
    from pooltui.session.live_config import LiveConfig

    monkeypatch.setenv("POOLTUI_TEST_LIMITS_KEY", "sk-ant-test-limits-0000000000000003")
    monkeypatch.setenv("POOLTUI_TEST_LIMITS_KEY2", "sk-ant-test-limits-0000000000000004")
    path = write(tmp_path, TEXT)
    store = SecretStore(tmp_path / "data")
    p = load_config(path).provider("a")
    pool = build_pool(p, store, None, EventLog())
    assert pool is not None
    client = PoolClient(Upstream(p.profile, pool))
    live = LiveConfig(path, store, {"a": client})
    assert live.reload() == []
    path.write_text(TEXT.replace("rpm = 1000", "rpm = 7"))
    assert live.reload() == ["a/k1 declared limits changed"]
    declared = pool.key("k1").declared
    assert declared is not None and declared.limits.rpm == 7
    asyncio.run(client.aclose())
