"""SecretStore: keyring (in-memory backend), the real 0600 file fallback, env references, masking."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail

from pooltui.core.masking import fingerprint, mask, redact
from pooltui.store.secrets import SecretStore, SecretStoreError, probe_keyring
from tests.conftest import MemoryKeyring

PLANTED = "sk-ant-test-PLANTED-0000000000000000abcd"


def test_keyring_store_round_trip(tmp_path: Path, memory_keyring: MemoryKeyring) -> None:
    store = SecretStore(tmp_path / "data")
    assert store.backend == "keyring"
    ref = store.put("anthropic", "primary", f"  {PLANTED}\n")
    assert ref == "keyring:anthropic/primary"
    assert store.get(ref) == PLANTED
    assert memory_keyring.store[("pooltui", "anthropic/primary")] == PLANTED
    assert not (tmp_path / "data").exists()  # nothing on disk
    store.delete(ref)
    with pytest.raises(SecretStoreError, match="no secret for anthropic/primary in the keyring"):
        store.get(ref)


def test_file_fallback_when_no_keyring_backend(tmp_path: Path) -> None:
    keyring.set_keyring(fail.Keyring())  # what a fresh headless machine has
    store = SecretStore(tmp_path / "data")
    assert store.backend == "file" and "not trusted" in store.keyring_note
    ref = store.put("openai", "a", PLANTED)
    assert ref == "file:openai/a" and store.get(ref) == PLANTED and store.unencrypted
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    assert stat.S_IMODE(store.file.stat().st_mode) == 0o600
    store.delete(ref)
    assert not store.unencrypted


def test_keyring_forced_but_unusable_is_a_clear_error(tmp_path: Path) -> None:
    keyring.set_keyring(fail.Keyring())
    with pytest.raises(SecretStoreError, match="--secret-store keyring: keyring backend"):
        _ = SecretStore(tmp_path, "keyring").backend


def test_slow_keyring_is_not_waited_for(tmp_path: Path) -> None:
    class Hanging(MemoryKeyring):
        def get_password(self, service, username):
            time.sleep(2)
            return None

    keyring.set_keyring(Hanging())
    t0 = time.perf_counter()
    ok, why = probe_keyring(0.3)
    assert not ok and "did not answer within 0.3 s" in why and time.perf_counter() - t0 < 1.5


def test_env_reference(monkeypatch, tmp_path: Path) -> None:
    store = SecretStore(tmp_path)
    monkeypatch.setenv("MY_KEY", PLANTED)
    assert store.get("env:MY_KEY") == PLANTED
    monkeypatch.delenv("MY_KEY")
    with pytest.raises(SecretStoreError, match="MY_KEY is not set"):
        store.get("env:MY_KEY")


def test_masks_fingerprints_and_redaction() -> None:
    assert mask(PLANTED) == "sk-ant-…abcd"
    assert mask("sk-proj-test-fake-1234") == "sk-proj-…1234"
    assert len(fingerprint(PLANTED)) == 8 and fingerprint(PLANTED) == fingerprint(f" {PLANTED} ")
    assert PLANTED not in redact(f"Incorrect API key provided: {PLANTED}.")
    assert redact("nothing to hide") == "nothing to hide"
