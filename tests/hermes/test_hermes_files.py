"""Reading a Hermes home without Hermes: secrets from config.yaml's model, the TTL rules Hermes honours,
stable slugs, malformed files in one line."""

from __future__ import annotations

import json

import pytest

from pooltui.store.hermes import HermesKey, hermes_home, read_pool, slug, until_of


def key(status: str | None, code: int | None = None, at: float | None = 1000.0, reset: float | None = None,
        reason: str | None = None) -> HermesKey:
    return HermesKey("openai-api", "openai", "openai", None, "k", "k", 0, "sk-x", None, "manual", status, at, code,
                     reason, reset, 0)


def test_the_reset_hermes_honours() -> None:
    assert until_of(key("exhausted", 429)) == 1000 + 3600
    assert until_of(key("exhausted", 401)) == 1000 + 300
    assert until_of(key("exhausted", 500)) == 1000 + 3600
    assert until_of(key("exhausted", 402, reason="billing")) == 1000 + 3600
    assert until_of(key("exhausted", 429, reset=5000.0)) == 5000.0  # the provider's reset wins
    assert until_of(key("ok")) is None and until_of(key("exhausted", 429, at=None)) is None


def test_stable_slugs() -> None:
    assert slug("Team A (prod)", set()) == "Team-A-prod"
    assert slug("Team A (prod)", {"Team-A-prod"}) == "Team-A-prod-2"
    assert slug("ok-label", set()) == "ok-label"
    assert slug("(((", set()) == "key" and slug("-x", set()) == "x"


def test_model_config_and_env_references(tmp_path) -> None:
    (tmp_path / "config.yaml").write_text("custom_providers:\n- name: Local Box\n  base_url: http://127.0.0.1:9/v1\n"
                                          "model:\n  provider: custom\n  base_url: http://127.0.0.1:9/v1\n"
                                          "  api_key: sk-test-model-config-000000000001\n")
    (tmp_path / "auth.json").write_text(json.dumps({"credential_pool": {
        "custom:local-box": [{"id": "m1", "label": "model_config", "auth_type": "api_key", "priority": 0,
                              "source": "model_config", "secret_fingerprint": "sha256:x"}],
        "openai-api": [{"id": "e1", "label": "OPENAI_API_KEY", "auth_type": "api_key", "priority": 0,
                        "source": "env:OPENAI_API_KEY"}]}}))
    pool = read_pool(tmp_path)
    local, env = sorted(pool.keys, key=lambda k: k.provider)
    assert (local.provider, local.kind, local.base_url, local.secret) == (
        "custom-local-box", "openai-compatible", "http://127.0.0.1:9/v1", "sk-test-model-config-000000000001")
    assert (env.secret, env.env_var) == (None, "OPENAI_API_KEY")  # not in .env: kept as a reference


def test_malformed_files_say_which(tmp_path) -> None:
    (tmp_path / "auth.json").write_text('{"credential_pool": {}}')
    (tmp_path / "config.yaml").write_text("a: [\n")
    with pytest.raises(ValueError, match=r"config.yaml:\d+: not YAML"):
        read_pool(tmp_path)
    (tmp_path / "config.yaml").write_text("")
    (tmp_path / "auth.json").write_text("[1]")
    with pytest.raises(ValueError, match="no credential_pool section"):
        read_pool(tmp_path)
    with pytest.raises(ValueError, match="bad Hermes profile name"):
        hermes_home("../etc")


def test_the_kind_and_auth_scheme_of_a_provider_pooltui_has_no_profile_for() -> None:
    """Hermes reaches these with the openai SDK (Bearer), an ``.../anthropic`` endpoint with Anthropic's API:
    Bearer for MiniMax (agent/anthropic_adapter.py ``_requires_bearer_auth``), else x-api-key."""
    from pooltui.providers.profiles import profile_for
    from pooltui.store.hermes import kind_for_url

    assert kind_for_url("https://api.x.ai/v1") == "openai-compatible"
    assert kind_for_url("https://api.minimax.io/anthropic") == "anthropic-compatible"
    assert kind_for_url("https://api.minimaxi.com/anthropic/") == "anthropic-compatible"
    assert kind_for_url("https://example.com/anthropic") == "anthropic"
    minimax = profile_for("anthropic-compatible", base_url="https://api.minimax.io/anthropic")
    assert minimax.auth_headers("k")["authorization"] == "Bearer k" and minimax.chat("hi").path == "/v1/messages"


def test_homes_where_hermes_keeps_them(tmp_path, monkeypatch) -> None:
    """hermes_constants.get_default_hermes_root: HERMES_HOME outside ~/.hermes is the root (a profile folder
    under it has its grandparent as the root); inside ~/.hermes, ~/.hermes is."""
    from pooltui.store.hermes import hermes_root

    monkeypatch.setenv("HOME", str(tmp_path / "u"))
    monkeypatch.delenv("HERMES_HOME", raising=False)
    assert hermes_root() == tmp_path / "u" / ".hermes"
    monkeypatch.setenv("HERMES_HOME", str(tmp_path / "u" / ".hermes" / "profiles" / "w"))
    assert hermes_root() == tmp_path / "u" / ".hermes"
    monkeypatch.setenv("HERMES_HOME", str(tmp_path / "opt"))
    assert hermes_root() == tmp_path / "opt" and hermes_home() == tmp_path / "opt"
    (tmp_path / "opt" / "profiles" / "w").mkdir(parents=True)
    (tmp_path / "opt" / "active_profile").write_text("W\n")
    assert hermes_home() == tmp_path / "opt" / "profiles" / "w"  # Hermes reads it lower-cased
    assert hermes_home("Default") == tmp_path / "opt"
    monkeypatch.setenv("HERMES_HOME", str(tmp_path / "opt" / "profiles" / "w"))
    assert hermes_root() == tmp_path / "opt" and hermes_home() == tmp_path / "opt" / "profiles" / "w"
