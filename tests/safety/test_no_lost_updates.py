"""Issue 5.5: every config change is read-modify-write under the lock; adding or removing a key is one
transaction."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
from click.testing import CliRunner

from pooltui.commands.cli import cli
from pooltui.session.local import config_session
from pooltui.store.config import ConfigEditor, KeyEntry, ProviderConfig, load_config
from pooltui.store.history import History
from pooltui.store.secrets import SecretStore
from tests.conftest import MemoryKeyring, keys, make_scenario
from tests.test_proxy import ProxyThread


def _configured(serve, tmp_path):
    spec = {"name": "oai", "keys": keys("k", 3)}
    server = serve(make_scenario(spec))
    store = SecretStore(tmp_path / "data")
    path = tmp_path / "config.toml"
    with ConfigEditor(path) as cfg:
        p = cfg.providers["oai"] = ProviderConfig("oai", "openai", server.base_url("oai"))
        p.credential_pool = []
        for k in server.scenario.primary.keys:
            p.keys.append(KeyEntry(k.label, store.put("oai", k.label, k.secret)))
            p.credential_pool.append(k.label)
    session, _ = config_session(load_config(path), store, History(tmp_path / "data" / "history.db"))
    return session, path, store


def _added_elsewhere(path: Path, store: SecretStore) -> None:
    """Another process adds a key while the monitor (or the proxy) runs on its old snapshot."""
    with ConfigEditor(path) as cfg:
        p = cfg.provider("oai")
        p.keys.append(KeyEntry("late", store.put("oai", "late", "sk-test-late-0000000000000001")))
        p.credential_pool.append("late")


def test_a_reorder_or_toggle_from_the_monitor_keeps_a_key_added_meanwhile(serve, tmp_path) -> None:
    session, path, store = _configured(serve, tmp_path)
    _added_elsewhere(path, store)
    session.move("k2", -1)
    session.toggle_key("k0")
    session.set_strategy("failover")
    p = load_config(path).provider("oai")
    assert p.credential_pool == ["k0", "k2", "k1", "late"]
    assert [k.label for k in p.pool_keys()] == ["k0", "k2", "k1", "late"]
    assert p.key("k0").disabled and p.strategy == "failover"


def test_a_reorder_through_the_proxys_command_endpoint_keeps_a_key_added_meanwhile(serve, tmp_path) -> None:
    session, path, store = _configured(serve, tmp_path)
    with ProxyThread(session.clients, session=session) as px:
        _added_elsewhere(path, store)
        r = httpx.post(f"{px.service.url}/pooltui/command", json={"provider": "oai", "action": "move",
                                                                   "label": "k0", "delta": 1},
                       headers={"x-pooltui-admin-token": px.proxy.admin_token})
        assert r.status_code == 200, r.text
    assert load_config(path).provider("oai").credential_pool == ["k1", "k0", "k2", "late"]


def test_two_concurrent_adds_of_one_label_leave_exactly_one_key_and_its_secret(tmp_path) -> None:
    env = {**os.environ, "POOLTUI_CONFIG": str(tmp_path / "c" / "config.toml"), "POOLTUI_DATA_DIR": str(tmp_path / "d")}
    for round_ in range(4):
        label = f"same{round_}"
        secrets = [f"sk-test-racer{i}-round{round_}-00000000001" for i in range(2)]
        results: list[subprocess.CompletedProcess] = [None, None]  # type: ignore[list-item]
        gate = threading.Barrier(2)

        def add(i: int, label: str, secrets: list[str], gate: threading.Barrier, results: list) -> None:
            gate.wait()
            results[i] = subprocess.run(
                [sys.executable, "-m", "pooltui", "auth", "add", "openai", "--pool", label, "--stdin", "--no-verify"],
                input=secrets[i] + "\n", capture_output=True, text=True, timeout=60, env=env)

        threads = [threading.Thread(target=add, args=(i, label, secrets, gate, results)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(r.returncode for r in results)
        assert codes == [0, 2], [(r.returncode, r.stderr) for r in results]
        winner = secrets[[r.returncode for r in results].index(0)]
        cfg = load_config(Path(env["POOLTUI_CONFIG"]))
        entries = [k for k in cfg.provider("openai").keys if k.label == label]
        assert len(entries) == 1
        assert SecretStore(Path(env["POOLTUI_DATA_DIR"])).get(entries[0].secret) == winner


class StuckKeyring(MemoryKeyring):
    """A keyring that stores and reads but refuses to delete (a locked keychain, a read-only backend)."""

    def delete_password(self, service: str, username: str) -> None:
        raise RuntimeError("the keychain is locked")


def test_removing_a_key_whose_secret_cannot_be_removed_leaves_the_config_as_it_was(tmp_path) -> None:
    import keyring

    keyring.set_keyring(StuckKeyring())
    path = tmp_path / "config.toml"
    runner = CliRunner()
    add = runner.invoke(cli, ["--config", str(path), "auth", "add", "openai", "--pool", "a", "--stdin", "--no-verify"],
                        input="sk-test-stuck-000000000000001\n")
    assert add.exit_code == 0, add.output
    before = path.read_text()
    out = runner.invoke(cli, ["--config", str(path), "auth", "remove", "openai", "a"])
    assert out.exit_code == 1 and "not removed" in out.output
    assert path.read_text() == before
    assert load_config(path).provider("openai").key("a") is not None
