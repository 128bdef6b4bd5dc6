"""SQLite history: WAL, retention, usage grouping, and state and spend surviving a restart."""

from __future__ import annotations

import time
from pathlib import Path

from pooltui.core.budget import Budget
from pooltui.core.events import Event, EventKind
from pooltui.core.health import KeyState
from pooltui.session.build import build_client
from pooltui.store.config import Config, KeyEntry, ProviderConfig
from pooltui.store.history import History
from pooltui.store.secrets import SecretStore


def test_wal_and_retention(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db", retention_days=2)
    assert h.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    now = time.time()
    h.add_events([Event(now - 3 * 86400, "p", "a", EventKind.RATE_LIMITED, 429, "old", "cooled 1 s"),
                  Event(now - 60, "p", "a", EventKind.INVALID, 401, "new", "marked invalid")])
    h.add_usage([(int(now - 3 * 86400) // 60 * 60, "p", "a", "m", 1, 1, 1, 1, 0.0)])
    assert h.prune(now) == 2
    rows = h.events(now - 10 * 86400)
    assert [r["reason"] for r in rows] == ["new"]
    h.close()
    again = History(tmp_path / "h.db", retention_days=2)  # readable the next morning
    assert again.events(now - 3600)[0]["action"] == "marked invalid"


def test_retention_counts_days_not_hours(tmp_path: Path) -> None:
    """What is a day old stays with a 2-day retention; only what is older than 2 days goes (in every table)."""
    h = History(tmp_path / "h.db", retention_days=2)
    now = time.time()
    ages = {"3 days": 3 * 86400, "1 day": 86400, "3 hours": 3 * 3600}
    h.add_events([Event(now - age, "p", "a", EventKind.RATE_LIMITED, 429, name, "cooled 1 s")
                  for name, age in ages.items()])
    h.add_usage([(int(now - age) // 60 * 60, "p", "a", name, 1, 1, 1, 1, 0.0) for name, age in ages.items()])
    assert h.prune(now) == 2  # the 3-day-old event and usage row
    assert [r["reason"] for r in h.events(now - 10 * 86400)] == ["1 day", "3 hours"]
    assert sorted(r["model"] for r in h.usage(now - 10 * 86400, "model")) == ["1 day", "3 hours"]
    h.close()


def test_usage_groups_and_spend(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db")
    now = time.time()
    b = int(now) // 60 * 60
    h.add_usage([(b, "p", "a", "m1", 3, 3, 30, 60, 0.5), (b, "p", "b", "m1", 1, 0, 0, 0, 0.0),
                 (b, "q", "c", "m2", 2, 2, 10, 10, 0.1)])
    h.add_usage([(b, "p", "a", "m1", 1, 1, 10, 10, 0.25, 6, 2, 8, 0.5)])  # same bucket: adds up, cache fields too
    h.add_usage([(b, "p", "a", "m1", 0, 0, 0, 0, 0.0, 0, 0, 0, 0.0, 0.125)])  # round-robin would have paid more
    by_key = {(r["provider"], r["key"]): r for r in h.usage(now - 3600, "key")}
    assert by_key[("p", "a")] == {"provider": "p", "key": "a", "requests": 4, "ok": 4, "tokens_in": 40,
                                  "tokens_out": 70, "cost": 0.75, "cache_read": 6, "cache_write": 2, "cacheable": 8,
                                  "cost_no_cache": 0.5, "cost_round_robin": 0.875}
    assert [r["provider"] for r in h.usage(now - 3600, "provider")] == ["p", "q"]
    spend = h.spend("p", "a", now)
    assert (spend.tokens_day, spend.cost_month) == (110, 0.75)


def test_state_and_budget_survive_a_restart(tmp_path: Path, memory_keyring) -> None:
    store = SecretStore(tmp_path / "data")
    cfg = Config(tmp_path / "c.toml")
    p = cfg.providers["p"] = ProviderConfig("p", "openai", "http://127.0.0.1:9/v1")
    for label in ("a", "b", "c"):
        p.keys.append(KeyEntry(label, store.put("p", label, f"sk-test-{label}-00000000000000001"),
                               budget=Budget(tokens_day=50) if label == "c" else Budget()))
    h = History(tmp_path / "h.db")
    h.set_key_status("p", "a", "invalid", None, None, "401 last night", 401)
    h.add_usage([(int(time.time()) // 60 * 60, "p", "c", "m", 5, 5, 40, 40, 0.0)])
    pool = build_client(cfg, "p", store, h).client.primary.pool
    assert [k.state for k in pool.keys] == [KeyState.INVALID, KeyState.OK, KeyState.EXHAUSTED]
    assert pool.key("c").reason == "budget: daily token budget reached"


def test_usage_table_of_an_older_history_gains_the_cache_columns(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE usage (bucket INTEGER NOT NULL, provider TEXT NOT NULL, key TEXT NOT NULL, model TEXT NOT"
               " NULL, requests INTEGER NOT NULL, ok INTEGER NOT NULL, tokens_in INTEGER NOT NULL, tokens_out INTEGER"
               " NOT NULL, cost REAL NOT NULL, PRIMARY KEY (bucket, provider, key, model))")
    bucket = int(time.time()) // 60 * 60
    db.execute("INSERT INTO usage VALUES (?, 'p', 'a', 'm', 1, 1, 5, 5, 0.1)", (bucket,))
    db.commit()
    db.close()
    h = History(path)
    h.add_usage([(bucket, "p", "a", "m", 1, 1, 2000, 5, 0.2, 1500, 0, 1920, 0.4)])
    [row] = h.usage(0, "key")
    assert (row["tokens_in"], row["cache_read"], row["cacheable"], row["cost_no_cache"]) == (2005, 1500, 1920, 0.4)


def test_processes_opening_one_new_history_at_once_all_open_it(tmp_path) -> None:
    """A fleet's proxies start together on one data dir: each saw a migrated column missing and the second to
    add it failed with 'duplicate column name' (the proxy exited 1, in a loaded run of tests/shared)."""
    import threading

    failures: list[BaseException] = []
    for round_ in range(12):
        path = tmp_path / f"h{round_}" / "history.db"
        start = threading.Barrier(4)

        def open_it(path=path, start=start) -> None:
            start.wait()
            try:
                History(path).close()
            except BaseException as exc:  # what each opener met is the finding
                failures.append(exc)

        openers = [threading.Thread(target=open_it) for _ in range(4)]
        for t in openers:
            t.start()
        for t in openers:
            t.join(30)
    assert failures == []
