"""`pooltui hermes` (issue 9, items 2 and 3): Hermes's own pool, live, tested against the real Hermes:
its CLI adds keys and its own pool code marks them; the watch shows exactly those states, updates within a
second of Hermes writing, and what pooltui resets or reorders is what Hermes reads next."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from pooltui.session.hermes_watch import HermesWatch
from pooltui.store.hermes_auth import HermesAuthError
from pooltui.tui.hermes_app import HermesApp
from tests.hermes.test_import import build_pool

pytestmark = pytest.mark.asyncio


def hermes_reads(hermes, provider: str = "openai-api") -> list[tuple]:
    """What Hermes itself now reads: (label, status) in its priority order, and its next selection."""
    out = hermes.py(f"""
        import json
        from agent.credential_pool import load_pool
        pool = load_pool({provider!r})
        entries = sorted(pool.entries(), key=lambda e: e.priority)
        print(json.dumps([[e.label, e.last_status] for e in entries]))
        chosen = pool.peek()
        print(json.dumps(chosen.label if chosen else None))
    """)
    rows, chosen = out.strip().splitlines()[-2:]
    return [tuple(r) for r in json.loads(rows)] + [("next", json.loads(chosen))]


def table_text(app) -> dict[str, list[str]]:
    table = app.query_one("#hermes-table")
    return {key.value: [str(c) for c in table.get_row(key)] for key in table.rows}


async def test_the_watch_shows_what_hermes_wrote_and_acts_by_its_rules(hermes) -> None:
    build_pool(hermes)
    watch = HermesWatch(hermes.home)
    app = HermesApp(watch, refresh_s=0.1)
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.pause()
        rows = {v.label: v for v in app.rows.values()}
        assert rows["second"].status == "exhausted" and rows["second"].error_code == 429
        assert 3500 < rows["second"].until - time.time() <= 3600  # Hermes's 1 h for a 429
        assert rows["third"].status == "dead" and rows["third"].until is None
        assert rows["Team A (prod)"].status == "ok" and rows["Team A (prod)"].next  # Hermes's next pick
        assert rows["OPENROUTER_API_KEY"].shown == "env:OPENROUTER_API_KEY"  # Hermes keeps only a fingerprint
        text = " ".join(" ".join(r) for r in table_text(app).values())
        assert "sk-test-hermes" not in text and "exhausted 60m" in text  # the countdown to Hermes's reset
        # Hermes marks another key while the watch is open: it shows within a second
        hermes.py("""
            from agent.credential_pool import load_pool
            pool = load_pool("openai-api")
            first = next(e for e in pool.entries() if e.label == "Team A (prod)")
            pool.mark_exhausted_and_rotate(status_code=402, api_key_hint=first.runtime_api_key)
        """)
        for _ in range(20):
            await asyncio.sleep(0.05)
            if {v.label: v for v in app.rows.values()}["Team A (prod)"].status == "exhausted":
                break
        rows = {v.label: v for v in app.rows.values()}
        assert rows["Team A (prod)"].status == "exhausted" and rows["Team A (prod)"].error_code == 402
        # reset from pooltui: Hermes reads it back as available
        table = app.query_one("#hermes-table")
        table.focus()
        table.move_cursor(row=list(app.rows).index(f"openai-api/{rows['second'].id}"))
        await pilot.press("r")
        reads = hermes_reads(hermes)
        assert ("second", None) in reads and ("third", "dead") in reads
        assert reads[-1] == ("next", "second")  # the only ok entry now: Hermes will select it
        # move 'third' to the top: Hermes's priorities follow
        table.move_cursor(row=list(app.rows).index(f"openai-api/{rows['third'].id}"))
        await pilot.press("K", "K")
        assert hermes_reads(hermes)[0][0] == "third"
        # remove: gone for Hermes too
        table.move_cursor(row=list(app.rows).index(f"openai-api/{rows['third'].id}"))
        await pilot.press("x", "y")
        assert "third" not in [label for label, _ in hermes_reads(hermes)]
    auth = (hermes.home / "auth.json")
    assert oct(auth.stat().st_mode & 0o777) == "0o600"


async def test_read_only_changes_nothing(hermes) -> None:
    build_pool(hermes)
    before = (hermes.home / "auth.json").read_bytes()
    watch = HermesWatch(hermes.home, read_only=True)
    watch.load()
    second = next(v for v in watch.pools()["openai-api"] if v.label == "second")
    with pytest.raises(HermesAuthError, match="read-only"):
        watch.reset("openai-api", second.id)
    app = HermesApp(watch)
    async with app.run_test(size=(200, 40)) as pilot:
        assert app.check_action("reset", ()) is None and app.check_action("remove", ()) is None
        await pilot.press("r", "x")
    assert (hermes.home / "auth.json").read_bytes() == before


async def test_the_lock_is_hermess_own(hermes) -> None:
    """While Hermes holds its auth lock, pooltui waits; it writes once Hermes lets go."""
    build_pool(hermes)
    watch = HermesWatch(hermes.home)
    watch.load()
    second = next(v for v in watch.pools()["openai-api"] if v.label == "second")
    import subprocess

    holder = subprocess.Popen([str(hermes.python), "-c", (
        "import time\nfrom hermes_cli.auth import _auth_store_lock\n"
        "with _auth_store_lock():\n    print('held', flush=True)\n    time.sleep(1.5)\n")],
        env=hermes.env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        watch.reset("openai-api", second.id)
        waited = time.monotonic() - started
    finally:
        holder.wait(10)
    assert waited > 0.5  # it waited for Hermes's lock
    assert ("second", None) in hermes_reads(hermes)


async def test_reverify_clears_a_stale_exhaustion_when_the_key_answers_valid(hermes, serve) -> None:
    """A credit top-up nobody re-probed: Hermes still benches the key for an hour; a re-verify clears it."""
    from tests.conftest import keys, make_scenario

    sc = make_scenario({"name": "sim", "keys": keys("k", 1)})
    server = serve(sc)
    secret = sc.primary.keys[0].secret
    (hermes.home / "config.yaml").write_text(
        f"custom_providers:\n  - name: sim\n    base_url: {server.base_url('sim')}\n    api_key: {secret}\n")
    hermes.py("""
        from agent.credential_pool import load_pool
        pool = load_pool("custom:sim")
        entry = pool.entries()[0]
        pool.mark_exhausted_and_rotate(status_code=402, api_key_hint=entry.runtime_api_key)
    """)
    assert hermes_reads(hermes, "custom:sim")[0][1] == "exhausted"
    watch = HermesWatch(hermes.home)
    watch.load()
    (entry,) = watch.pools()["custom:sim"]
    said = await watch.verify("custom:sim", entry.id)
    assert said.endswith("valid; its stale status is cleared"), said
    assert hermes_reads(hermes, "custom:sim")[0][1] is None


CODEX_POOL = """
    import json, sys
    from agent.credential_pool import CredentialPool, PooledCredential
    pool = CredentialPool("openai-codex", [])
    for n, expires in ((1, "2030-01-01T00:00:00Z"), (2, "2020-01-01T00:00:00Z")):
        pool.add_entry(PooledCredential(provider="openai-codex", id=f"cdx00{n}", label=f"acct{n}@example.com",
                                        auth_type="oauth", priority=0, source="manual:device_code",
                                        access_token=f"codex-access-token-test-000000000{n}",
                                        refresh_token=f"codex-refresh-token-test-0{n}", expires_at=expires))
    pool._mark_exhausted(pool.entries()[0], 429, {"message": "usage limit, resets in 2hr 5min"})
"""


async def test_oauth_entries_are_shown_and_tended_never_their_token(hermes) -> None:
    """Issue 24, item 4: 0.19's OAuth entries (manual:device_code subscription logins, an sk-ant-oat token)
    show with their status and expiry, never the token; r, K/J and x work on them."""
    hermes.py(CODEX_POOL)
    hermes.cli("auth", "add", "anthropic", "--type", "api-key", "--label", "claude-sub",
               "--api-key", "sk-ant-oat01-test-00000000000000000001")
    app = HermesApp(HermesWatch(hermes.home), refresh_s=0.1)
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.pause()
        rows = {v.label: v for v in app.rows.values()}
        acct1, acct2, sub = rows["acct1@example.com"], rows["acct2@example.com"], rows["claude-sub"]
        assert (acct1.status, acct1.error_code, acct1.auth_type) == ("exhausted", 429, "oauth")
        assert 7400 < acct1.until - time.time() <= 7500  # "resets in 2hr 5min", as Hermes read it
        assert acct2.status == "ok" and sub.auth_type == "oauth" and sub.shown == "oauth"
        text = " ".join(" ".join(r) for r in table_text(app).values())
        assert "codex-access" not in text and "oat01" not in text
        assert "oauth exp " in text and "oauth expired " in text  # acct1 expires in 2030, acct2 has expired
        table = app.query_one("#hermes-table")
        table.focus()
        table.move_cursor(row=list(app.rows).index(f"openai-codex/{acct1.id}"))
        await pilot.press("r")
        table.move_cursor(row=list(app.rows).index(f"openai-codex/{acct2.id}"))
        await pilot.press("K")
        table.move_cursor(row=list(app.rows).index(f"openai-codex/{acct1.id}"))
        await pilot.press("x", "y")
    auth = json.loads((hermes.home / "auth.json").read_text())["credential_pool"]
    assert [(e["label"], e["last_status"], e["priority"]) for e in auth["openai-codex"]] == [
        ("acct2@example.com", None, 0)]
    assert auth["anthropic"][0]["access_token"].startswith("sk-ant-oat")  # untouched: refreshing stays Hermes's


HOLDER = """
    import sys, time
    from agent.credential_pool import load_pool
    pool = load_pool("openai-api")
    print("holding", flush=True)
    while True:  # round_robin: every select writes Hermes's in-memory copy of the pool back
        pool.select()
        time.sleep(0.05)
"""


async def test_the_watch_says_when_a_running_hermes_rewrites_an_entry(hermes) -> None:
    """Issue 24, item 5: a Hermes process holding the pool in memory writes it back; an entry the watch reset
    goes back to exhausted, a removed one reappears. The watch says so, once each, with Hermes's pid."""
    import subprocess
    import textwrap

    (hermes.home / "config.yaml").write_text("credential_pool_strategies:\n  openai-api: round_robin\n")
    hermes.py("""
        from agent.credential_pool import CredentialPool, PooledCredential
        pool = CredentialPool("openai-api", [])
        for n, label in enumerate(("team key 1", "team key 2", "team key 3")):
            pool.add_entry(PooledCredential(provider="openai-api", id=f"tk{n}", label=label, auth_type="api_key",
                                            priority=n, source="manual", access_token=f"sk-test-hermes-tk{n}-0000001"))
        pool._mark_exhausted(pool.entries()[0], 429)
    """)
    holder = subprocess.Popen([str(hermes.python), "-c", textwrap.dedent(HOLDER)], env=hermes.env,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        app = HermesApp(HermesWatch(hermes.home), refresh_s=0.1)
        async with app.run_test(size=(200, 40)) as pilot:
            await pilot.pause()
            table = app.query_one("#hermes-table")
            table.focus()
            table.move_cursor(row=list(app.rows).index("openai-api/tk0"))
            await pilot.press("r")
            said = await said_within(app, 5.0)
            assert said == (f"Hermes (pid {holder.pid}) rewrote 'team key 1' from its memory: stop it or use "
                            "`hermes auth reset` there")
            assert {v.id: v.status for v in app.rows.values()}["tk0"] == "exhausted"  # Hermes's memory won
            app.rewrite_warning = ""
            await asyncio.sleep(0.5)
            assert app.rewrite_warning == ""  # said once
            table.move_cursor(row=list(app.rows).index("openai-api/tk2"))
            await pilot.press("x", "y")
            said = await said_within(app, 5.0)
            assert said.endswith("rewrote 'team key 3' from its memory: stop it or use `hermes auth remove` there")
    finally:
        holder.kill()
        holder.wait(10)


async def said_within(app, seconds: float) -> str:
    for _ in range(int(seconds / 0.05)):
        await asyncio.sleep(0.05)
        if app.rewrite_warning:
            return app.rewrite_warning
    return ""


async def test_reverify_marks_an_invalid_key_as_hermes_marks_a_401(hermes, serve) -> None:
    """Issue 24, item 6: `v` on a key the provider refuses marks it as Hermes marks a 401 (and says so), so
    Hermes skips it too; before, it stayed ok with the next-pick marker."""
    from tests.conftest import keys, make_scenario

    server = serve(make_scenario({"name": "sim", "keys": keys("k", 1)}))
    (hermes.home / "config.yaml").write_text(f"custom_providers:\n  - name: sim\n    base_url: "
                                             f"{server.base_url('sim')}\n    api_key: sk-test-not-a-sim-key-000001\n")
    hermes.py("""
        from agent.credential_pool import load_pool
        load_pool("custom:sim")  # Hermes seeds the config: entry
    """)
    watch = HermesWatch(hermes.home)
    watch.load()
    (entry,) = watch.pools()["custom:sim"]
    assert entry.next
    said = await watch.verify("custom:sim", entry.id)
    assert "invalid" in said and "marked exhausted as Hermes marks a 401 (benched 5 min)" in said, said
    watch.load(force=True)
    (entry,) = watch.pools()["custom:sim"]
    assert entry.status == "exhausted" and entry.error_code == 401 and not entry.next
    assert hermes_reads(hermes, "custom:sim") == [("sim", "exhausted"), ("next", None)]  # Hermes skips it
