"""Keys with control characters are refused when read, wherever they come from (issue 26, item 4)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from pooltui.store.secrets import SecretStore, SecretStoreError
from tests.conftest import MemoryKeyring, config_on_simulator

BAD_VALUES = ["sk-test-\x01-000000000000000000000001", "sk-test-00000000000000000001\r\nX-Evil: 1"]


@pytest.mark.parametrize("value", BAD_VALUES, ids=["x01", "crlf"])
def test_a_secret_with_a_control_character_is_refused_from_every_source(
        tmp_path: Path, monkeypatch, memory_keyring: MemoryKeyring, value: str) -> None:
    store = SecretStore(tmp_path / "data")
    memory_keyring.store[("pooltui", "p/ring")] = value
    monkeypatch.setenv("POOLTUI_TEST_BAD_KEY", value)
    store.file.parent.mkdir(parents=True, exist_ok=True)
    store.file.write_text(json.dumps({"p/file": value}))
    store.file.chmod(0o600)
    for ref in ("keyring:p/ring", "env:POOLTUI_TEST_BAD_KEY", "file:p/file"):
        with pytest.raises(SecretStoreError) as caught:
            store.get(ref)
        line = str(caught.value)
        assert "\n" not in line and "\r" not in line and "\x01" not in line and ref in line
        assert value.strip()[:12] not in line  # the secret is not in the message


@pytest.mark.parametrize("value", BAD_VALUES, ids=["x01", "crlf"])
def test_the_proxy_serves_on_the_good_keys_when_a_stored_key_is_bad(
        serve, tmp_path: Path, memory_keyring: MemoryKeyring, value: str) -> None:
    from pooltui.session.local import config_session
    from pooltui.store.config import load_config
    from tests.test_proxy import ProxyThread

    path, store, _server = config_on_simulator(serve, tmp_path, n_keys=2)
    memory_keyring.store[("pooltui", "main/k0")] = value  # what another tool (or a bad paste) left there
    session, problems = config_session(load_config(path), store, None)
    assert len(problems) == 1 and "main/k0" in problems[0] and "control character" in problems[0]
    with ProxyThread(session.clients) as px:
        url = f"http://127.0.0.1:{px.service.port}/v1/chat/completions"
        for _ in range(4):
            r = httpx.post(url, json={"model": "m", "messages": [{"role": "user", "content": "hi"}]}, timeout=10)
            assert r.status_code == 200, r.text
            assert r.headers["x-pooltui-served-by"] == "main/k1"
