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
    hermes.clis(*[("auth", "add", "openai-api", "--type", "api-key", "--label", label, "--api-key", key)
                  for label, key in (("Team A (prod)", "sk-test-hermes-a-000000000000000001"),
                                     ("second", "sk-test-hermes-b-000000000000000002"),
                                     ("third", "sk-test-hermes-c-000000000000000003"))],
                ("auth", "add", "anthropic", "--type", "api-key", "--label", "claude",
                 "--api-key", "sk-ant-test-hermes-00000000000000000001"),
                ("auth", "add", "zai", "--type", "api-key", "--label", "glm", "--api-key", "zai-test-000000000000001"),
                then="""
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
    r = hermes.pooltui("import", "hermes", real_process=True)  # the command as a process (the others: in-process)
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
    zai = cfg.provider("zai")  # no pooltui profile: the base_url Hermes keeps in the entry (issue 24, item 3)
    assert (zai.kind, zai.base_url, zai.keys[0].label) == ("openai-compatible", "https://api.z.ai/api/paas/v4", "glm")
    assert "7 keys imported, 0 already there, 0 skipped" in r.stdout
    history = History(tmp_path / "data" / "history.db")
    status = history.key_statuses("openai")
    assert status[("openai", "third")].state == "invalid"
    second = status[("openai", "second")]
    assert second.state == "cooling" and 3500 < second.until - time.time() <= 3600  # Hermes's 1 h for a 429
    again = hermes.pooltui("import", "hermes", real_process=True)
    assert again.returncode == 0 and "0 keys imported, 7 already there, 0 skipped" in again.stdout
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


def test_every_api_key_entry_comes_over_and_oauth_entries_are_named(hermes, tmp_path) -> None:
    """Issue 24, items 3 and 4: xai and fireworks (no pooltui profile) come over as openai-compatible providers
    with the base_url Hermes keeps in their entries; an sk-ant-oat token and a manual:device_code login are
    listed as not pooled, with the reason; a re-import carries what Hermes marked since; a secret pooltui
    already holds under another label is not added twice."""
    assert hermes.pooltui("provider", "set", "main", "--kind", "openai").returncode == 0
    holder = hermes.pooltui("auth", "add", "main", "--pool", "holder-1", "--stdin", "--no-verify",
                            input_text="sk-test-hermes-held-00000000000000001\n")
    assert holder.returncode == 0, holder.stderr
    hermes.clis(("auth", "add", "xai", "--type", "api-key", "--label", "grok",
                 "--api-key", "xai-test-0000000000000001"),
                ("auth", "add", "fireworks", "--type", "api-key", "--label", "fw", "--api-key", "fw-test-000000000001"),
                ("auth", "add", "anthropic", "--type", "api-key", "--label", "claude-sub",
                 "--api-key", "sk-ant-oat01-test-00000000000000000001"),
                ("auth", "add", "openai-api", "--type", "api-key", "--label", "A",
                 "--api-key", "sk-test-hermes-held-00000000000000001"),
                then="""
        from agent.credential_pool import CredentialPool, PooledCredential
        pool = CredentialPool("openai-codex", [])
        pool.add_entry(PooledCredential(provider="openai-codex", id="cdx001", label="work@example.com",
                                        auth_type="oauth", priority=0, source="manual:device_code",
                                        access_token="codex-access-token-test-0000000001",
                                        refresh_token="codex-refresh-token-test-01", expires_at="2030-01-01T00:00:00Z"))
    """)
    r = hermes.pooltui("import", "hermes")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    cfg = load_config(tmp_path / "config" / "config.toml")
    xai, fireworks = cfg.provider("xai"), cfg.provider("fireworks")
    assert (xai.kind, xai.base_url, [k.label for k in xai.keys]) == ("openai-compatible", "https://api.x.ai/v1",
                                                                      ["grok"])
    assert (fireworks.kind, fireworks.base_url) == ("openai-compatible", "https://api.fireworks.ai/inference/v1")
    assert xai.profile.auth_headers("k") == {"authorization": "Bearer k"}  # as Hermes's openai client sends it
    assert "openai" not in cfg.providers  # A is main/holder-1's key: not added again, no empty provider either
    assert "already  openai-api/A is main/holder-1 (the same key)" in out
    assert "skipped  anthropic/claude-sub: an OAuth token (anthropic, manual): pooltui pools API keys" in out
    assert "skipped  openai-codex/work@example.com: a subscription login (openai-codex, manual:device_code)" in out
    assert "2 keys imported, 1 already there, 2 skipped" in out
    assert "xai-test" not in out + r.stderr and "oat01" not in out + r.stderr and "codex-access" not in out
    # Hermes marks the xai key dead since: a re-import carries it, adding nothing
    hermes.py("""
        from agent.credential_pool import load_pool
        pool = load_pool("xai")
        pool.mark_exhausted_and_rotate(status_code=401, error_context={"reason": "invalid_token"},
                                       api_key_hint=pool.entries()[0].runtime_api_key)
    """)
    again = hermes.pooltui("import", "hermes")
    assert again.returncode == 0 and "0 keys imported, 3 already there, 2 skipped" in again.stdout, again.stdout
    assert "xai/grok: invalid, as Hermes marked it dead" in again.stdout
    assert History(tmp_path / "data" / "history.db").key_statuses("xai")[("xai", "grok")].state == "invalid"


def test_a_custom_hermes_home_with_two_profiles_and_an_active_one(hermes, tmp_path) -> None:
    """Issue 24, item 2: with HERMES_HOME outside ~/.hermes (Docker, servers), Hermes keeps its profiles under
    HERMES_HOME/profiles and the active profile in HERMES_HOME/active_profile (get_default_hermes_root)."""
    root = tmp_path / "opt-data"
    for name in ("work", "play"):
        (root / "profiles" / name).mkdir(parents=True)
    hermes.env["HERMES_HOME"] = str(root)
    hermes.cli("-p", "work", "auth", "add", "openai-api", "--type", "api-key", "--label", "w1",
               "--api-key", "sk-test-hermes-work-000000000000000001")
    hermes.cli("-p", "play", "auth", "add", "openai-api", "--type", "api-key", "--label", "p1",
               "--api-key", "sk-test-hermes-play-000000000000000001")
    hermes.cli("profile", "use", "play")  # Hermes writes HERMES_HOME/active_profile
    assert (root / "active_profile").read_text().strip() == "play"
    r = hermes.pooltui("import", "hermes", "--profile", "work")
    assert r.returncode == 0 and f"from {root / 'profiles' / 'work'}" in r.stdout, r.stdout + r.stderr
    r = hermes.pooltui("import", "hermes")  # the active profile, under the custom root
    assert r.returncode == 0 and f"from {root / 'profiles' / 'play'}" in r.stdout, r.stdout + r.stderr
    assert [k.label for k in load_config(tmp_path / "config" / "config.toml").provider("openai").keys] == ["w1", "p1"]
    r = hermes.pooltui("import", "hermes", env_home=str(root / "profiles" / "work"))  # a profile folder itself
    assert "1 already there" in r.stdout and f"from {root / 'profiles' / 'work'}" in r.stdout
    r = hermes.pooltui("import", "hermes", "--profile", "nope")
    assert r.returncode == 2 and r.stderr.startswith("pooltui: error: ") and "no profile 'nope'" in r.stderr


def test_a_sole_key_is_benched_the_hour_hermes_benches_it(hermes, tmp_path) -> None:
    """Issue 24, item 1: Hermes 0.19 benches a pool's only key for 1 h after a 429 with no reset (`hermes auth
    list`: `1h 0m left`, then `59m 5Xs`); the import and the watch say the same hour, not 60 s."""
    from pooltui.session.hermes_watch import HermesWatch

    hermes.cli("auth", "add", "openai-api", "--type", "api-key", "--label", "only",
               "--api-key", "sk-test-hermes-only-000000000000000001")
    hermes.py("""
        from agent.credential_pool import load_pool
        pool = load_pool("openai-api")
        assert pool.mark_exhausted_and_rotate(status_code=429, api_key_hint=pool.entries()[0].runtime_api_key) is None
    """)
    listed = hermes.cli("auth", "list", "openai-api")
    assert "(1h 0m left)" in listed or "(59m 5" in listed, listed  # Hermes's own count of the hour
    r = hermes.pooltui("import", "hermes")
    assert r.returncode == 0 and "(cooling for 59m 5" in r.stdout and "more, as in Hermes)" in r.stdout, r.stdout
    until = History(tmp_path / "data" / "history.db").key_statuses("openai")[("openai", "only")].until
    assert 3500 < until - time.time() <= 3600
    watch = HermesWatch(hermes.home)
    watch.load()
    (only,) = watch.pools()["openai-api"]
    assert only.status == "exhausted" and 3500 < only.until - time.time() <= 3600 and not only.next
