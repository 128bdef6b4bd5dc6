"""Import that a Hermes user can trust (issue 9, item 1): a pool built and marked by the real Hermes Agent
comes over with every key, its providers mapped, labels kept (or a stable slug with the original in the
note), env/config secrets resolved as Hermes resolves them, states and request counts carried, and a second
import changes nothing."""

from __future__ import annotations

import json
import time

from pooltui.store.config import load_config
from pooltui.store.history import History


def build_pool(hermes) -> None:
    """Keys added with Hermes's CLI; one exhausted by a 429 and one dead, by Hermes's own pool code."""
    (hermes.home / ".env").write_text("OPENROUTER_API_KEY=sk-or-v1-hermes-dotenv-000000000000001\n")
    (hermes.home / "config.yaml").write_text(
        "custom_providers:\n"
        "  - name: Together AI\n"
        "    base_url: http://127.0.0.1:9/v1\n"
        "    api_key: sk-test-together-000000000000000001\n"
        "credential_pool_strategies:\n"
        "  openai-api: round_robin\n")
    for label, key in (("Team A (prod)", "sk-test-hermes-a-000000000000000001"),
                       ("second", "sk-test-hermes-b-000000000000000002"),
                       ("third", "sk-test-hermes-c-000000000000000003")):
        hermes.cli("auth", "add", "openai-api", "--type", "api-key", "--label", label, "--api-key", key)
    hermes.cli("auth", "add", "anthropic", "--type", "api-key", "--label", "claude",
               "--api-key", "sk-ant-test-hermes-00000000000000000001")
    hermes.cli("auth", "add", "zai", "--type", "api-key", "--label", "glm", "--api-key", "zai-test-000000000000001")
    hermes.py("""
        from agent.credential_pool import load_pool
        for provider in ("openrouter", "custom:together-ai"):
            load_pool(provider)  # Hermes seeds env: and config: entries on load
        pool = load_pool("openai-api")
        second, third = pool.entries()[1], pool.entries()[2]
        pool.mark_exhausted_and_rotate(status_code=429, api_key_hint=second.runtime_api_key)
        pool = load_pool("openai-api")
        pool.mark_exhausted_and_rotate(status_code=401, error_context={"reason": "invalid_token"},
                                       api_key_hint=third.runtime_api_key)
    """)


def test_a_hermes_pool_comes_over_whole_with_its_states(hermes, tmp_path) -> None:
    build_pool(hermes)
    auth = json.loads((hermes.home / "auth.json").read_text())
    entries = auth["credential_pool"]["openai-api"]
    states = {e["label"]: e["last_status"] for e in entries}
    assert states == {"Team A (prod)": None, "second": "exhausted", "third": "dead"}  # as Hermes wrote them
    order = [e["label"].replace(" (prod)", "-prod").replace(" ", "-") for e in sorted(entries,
                                                                                       key=lambda e: e["priority"])]
    r = hermes.pooltui("import", "hermes")
    assert r.returncode == 0, r.stderr
    assert "sk-test-hermes" not in r.stdout + r.stderr
    cfg = load_config(tmp_path / "config" / "config.toml")
    openai = cfg.provider("openai")
    assert [k.label for k in openai.keys] == order  # Hermes's priority order (round_robin rewrites it)
    assert openai.key("Team-A-prod").note == "imported from Hermes Agent (its label: 'Team A (prod)')"
    assert openai.key("second").note == "imported from Hermes Agent"  # kept verbatim
    assert openai.strategy == "round-robin"  # credential_pool_strategies
    assert cfg.provider("anthropic").keys[0].label == "claude"
    assert cfg.provider("anthropic").strategy == "failover"  # Hermes's default fill_first
    together = cfg.provider("custom-together-ai")
    assert (together.kind, together.base_url, together.keys[0].label) == ("openai-compatible",
                                                                         "http://127.0.0.1:9/v1", "Together-AI")
    assert cfg.provider("openrouter").keys[0].label == "OPENROUTER_API_KEY"  # its secret came from .env
    assert "skipped  zai/glm: no pooltui profile for the Hermes provider 'zai'" in r.stdout
    assert "6 keys imported, 0 already there, 1 skipped" in r.stdout
    history = History(tmp_path / "data" / "history.db")
    status = history.key_statuses("openai")
    assert status[("openai", "third")].state == "invalid"
    second = status[("openai", "second")]
    assert second.state == "cooling" and 3500 < second.until - time.time() <= 3600  # Hermes's 1 h for a 429
    again = hermes.pooltui("import", "hermes")
    assert again.returncode == 0 and "0 keys imported, 6 already there, 1 skipped" in again.stdout
    assert len(load_config(tmp_path / "config" / "config.toml").provider("openai").keys) == 3


def test_profiles_home_and_the_active_profile(hermes, tmp_path) -> None:
    default = hermes.user_home / ".hermes"
    work = default / "profiles" / "work"
    work.mkdir(parents=True)
    hermes.home = work
    hermes.env["HERMES_HOME"] = str(work)
    hermes.cli("auth", "add", "openai-api", "--type", "api-key", "--label", "w1",
               "--api-key", "sk-test-hermes-work-000000000000000001")
    del hermes.env["HERMES_HOME"]
    r = hermes.pooltui("import", "hermes", "--profile", "work")
    assert r.returncode == 0 and "1 key imported" in r.stdout and str(work) in r.stdout
    (default / "active_profile").write_text("work\n")
    r = hermes.pooltui("import", "hermes")  # no HERMES_HOME: Hermes's active profile
    assert r.returncode == 0 and "0 keys imported, 1 already there" in r.stdout, r.stdout + r.stderr
    r = hermes.pooltui("import", "hermes", "--profile", "nope")
    assert r.returncode == 2 and r.stderr.startswith("pooltui: error: ") and "no such file" in r.stderr
