"""Issue 6.5: the rotation survives a restart (round-robin goes on, least-used knows the real counts)."""

from __future__ import annotations

import sqlite3

import pytest

from pooltui.session.local import config_session
from pooltui.store.config import ConfigEditor, KeyEntry, ProviderConfig, load_config
from pooltui.store.history import History
from pooltui.store.secrets import SecretStore
from tests.conftest import keys, make_scenario


def _run(tmp_path, server, strategy: str):
    store = SecretStore(tmp_path / "data")
    path = tmp_path / "config.toml"
    if not path.exists():
        with ConfigEditor(path) as cfg:
            p = cfg.providers["oai"] = ProviderConfig("oai", "openai", server.base_url("oai"), strategy=strategy)
            for k in server.scenario.primary.keys:
                p.keys.append(KeyEntry(k.label, store.put("oai", k.label, k.secret)))
    history = History(tmp_path / "data" / "history.db")
    session, _ = config_session(load_config(path), store, history)
    return session, history


async def _send(session, n: int) -> list[str]:
    served = []
    for _ in range(n):
        served.append((await session.client.chat("hi")).key)
    return served


@pytest.mark.parametrize("strategy", ["round-robin", "least-used"])
async def test_the_rotation_goes_on_where_it_stopped(serve, tmp_path, strategy: str) -> None:
    server = serve(make_scenario({"name": "oai", "keys": keys("k", 3)}))
    session, history = _run(tmp_path, server, strategy)
    if strategy == "least-used":  # k1 has served least: 1 request against 4 and 3
        session.pool.restore_rotation(None, {"k0": 4, "k1": 1, "k2": 3})
    first = await _send(session, 4)
    before = session.pool.rotation_state()[1]
    for recorder in session.recorders:
        recorder.close()
    await session.client.aclose()
    history.close()

    session, history = _run(tmp_path, server, strategy)  # a restart
    assert session.pool.rotation_state()[1] == before
    after = await _send(session, 2)
    await session.client.aclose()
    if strategy == "round-robin":
        assert first == ["k0", "k1", "k2", "k0"] and after == ["k1", "k2"]
    else:
        assert before == {"k0": 4, "k1": 4, "k2": 4}  # 4+1+3 evened out by 4 least-used picks
        assert first == ["k1", "k1", "k1", "k2"]
        assert after == ["k0", "k1"]


def test_an_older_history_gains_the_new_column(tmp_path) -> None:
    path = tmp_path / "history.db"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE key_status (provider TEXT NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL, "
                     "until REAL, source TEXT, reason TEXT, status INTEGER, changed_at REAL, verified_at REAL, "
                     "verify_result TEXT, PRIMARY KEY (provider, key)); INSERT INTO key_status (provider, key, state) "
                     "VALUES ('p', 'a', 'invalid');")
    db.close()
    history = History(path)
    history.save_rotation("p", "a", {"a": 7})
    assert history.rotation("p") == ("a", {"a": 7})
    assert history.key_statuses("p")[("p", "a")].state == "invalid"
