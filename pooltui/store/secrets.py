"""SecretStore: where key secrets live. ``env:VAR`` references, the OS keyring, or a 0600 file.

The keyring is probed once, with a timeout; a backend of priority < 1 (the "fail" or plaintext
backends) is not trusted. Where no keyring works (a headless server), secrets go to a file in the user
data dir (dir 0700, file 0600, written atomically) and the CLI warns that they are stored unencrypted.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

from pooltui.core import validate
from pooltui.core.masking import remember
from pooltui.store.atomic import locked, read_regular_text, write_atomic
from pooltui.store.paths import private_dir, write_problem

SERVICE = "pooltui"
BACKENDS = ("keyring", "file")
#: what to do when the OS keyring cannot be used, said with every keyring error
USE_FILE = "use --secret-store file to keep keys in a 0600 file instead"


class SecretStoreError(Exception):
    """A secret that cannot be stored or found. The message never contains a secret."""


def probe_keyring(timeout_s: float = 3.0) -> tuple[bool, str]:
    """(usable, why) for the OS keyring: a trusted backend that answers within the timeout."""
    result: list[tuple[bool, str]] = []

    def probe() -> None:
        try:
            import keyring

            backend = keyring.get_keyring()
            name = f"{type(backend).__module__}.{type(backend).__name__}"
            priority = float(getattr(backend, "priority", 0) or 0)
            if priority < 1:
                result.append((False, f"keyring backend {name} has priority {priority:g} (< 1): not trusted"))
                return
            backend.get_password(SERVICE, "__pooltui_probe__")
            result.append((True, name))
        except Exception as exc:
            result.append((False, f"keyring unavailable: {type(exc).__name__}: {exc}"))

    thread = threading.Thread(target=probe, daemon=True, name="pooltui-keyring-probe")
    thread.start()
    thread.join(timeout_s)
    if not result:
        return False, f"keyring did not answer within {timeout_s:g} s"
    return result[0]


class SecretStore:
    """Stores and resolves secrets by reference: ``keyring:P/L``, ``file:P/L`` or ``env:VAR``."""

    def __init__(self, data_dir: Path, prefer: str | None = None, probe_timeout_s: float = 3.0) -> None:
        if prefer is not None and prefer not in BACKENDS:
            raise SecretStoreError(f"unknown secret store {prefer!r}; choose keyring or file")
        self.data_dir = data_dir
        self.file = data_dir / "secrets.json"
        self._prefer = prefer
        self._probe_timeout_s = probe_timeout_s
        self._keyring_ok: bool | None = None
        self.keyring_note = ""

    # -------------------------------------------------------------- backend choice
    def keyring_usable(self) -> bool:
        if self._keyring_ok is None:
            self._keyring_ok, self.keyring_note = probe_keyring(self._probe_timeout_s)
        return self._keyring_ok

    @property
    def backend(self) -> str:
        """Where new secrets go: the preferred store, else the keyring if it works, else the file."""
        if self._prefer == "keyring":
            if not self.keyring_usable():
                raise SecretStoreError(f"--secret-store keyring: {self.keyring_note}; {USE_FILE}")
            return "keyring"
        if self._prefer == "file":
            return "file"
        return "keyring" if self.keyring_usable() else "file"

    @property
    def unencrypted(self) -> bool:
        """True when the plaintext fallback file holds any secret (the monitor shows a badge), or is there but
        cannot be used (see :meth:`file_problem`)."""
        try:
            return bool(self._read_file())
        except SecretStoreError:
            return True

    def file_problem(self) -> str | None:
        """Why the fallback file cannot be used (too open, someone else's, corrupted), or None."""
        try:
            self._read_file()
        except SecretStoreError as exc:
            return str(exc)
        return None

    # -------------------------------------------------------------- operations
    def put(self, provider: str, label: str, secret: str) -> str:
        """Store ``secret`` for provider/label; returns the reference to keep in the config."""
        try:
            secret = validate.secret(secret)
        except ValueError as exc:
            raise SecretStoreError(str(exc)) from None
        name = f"{provider}/{label}"
        if self.backend == "keyring":
            import keyring

            try:
                keyring.set_password(SERVICE, name, secret)
            except Exception as exc:
                raise SecretStoreError(f"keyring refused to store {name} ({type(exc).__name__}); {USE_FILE}") from None
            return f"keyring:{name}"
        try:
            with locked(self.file):
                data = self._read_file()
                data[name] = secret
                self._write_file(data)
        except OSError as exc:
            raise SecretStoreError(write_problem(self.file, exc)) from None
        return f"file:{name}"

    def get(self, ref: str) -> str:
        """The secret a reference points at (remembered, so no output of this process shows it in clear).

        What is read is checked like a key typed in (``validate.secret``), wherever it comes from: a value
        with a control character (``\\x01``, CR/LF) or outside printable ASCII is refused with one line,
        never sent in an HTTP header."""
        value = self._get(ref)
        try:
            checked = validate.secret(value)
        except ValueError as exc:
            raise SecretStoreError(f"the secret of {ref} is refused: {exc}") from None
        remember(checked)
        return checked

    def _get(self, ref: str) -> str:
        scheme, _, name = ref.partition(":")
        if scheme == "env":
            value = os.environ.get(name, "").strip()
            if not value:
                raise SecretStoreError(f"environment variable {name} is not set")
            return value
        if scheme == "keyring":
            try:
                import keyring

                stored = keyring.get_password(SERVICE, name)
            except Exception as exc:
                raise SecretStoreError(f"keyring lookup of {name} failed: {type(exc).__name__}") from None
            if not stored:
                raise SecretStoreError(f"no secret for {name} in the keyring")
            return stored
        if scheme == "file":
            in_file = self._read_file().get(name)
            if not in_file:
                raise SecretStoreError(f"no secret for {name} in {self.file}")
            return in_file
        raise SecretStoreError(f"unknown secret reference scheme {scheme!r}")

    def delete(self, ref: str, *, missing_ok: bool = True) -> None:
        """Forget the secret behind a reference (an env reference is left alone).

        Raises SecretStoreError when the store cannot remove it (a secret that is simply not there is fine).
        """
        scheme, _, name = ref.partition(":")
        if scheme == "keyring":
            import keyring
            from keyring.errors import PasswordDeleteError

            try:
                keyring.delete_password(SERVICE, name)
            except PasswordDeleteError:
                if not missing_ok:
                    raise SecretStoreError(f"no secret for {name} in the keyring") from None
            except Exception as exc:
                raise SecretStoreError(f"the keyring could not remove {name}: {type(exc).__name__}") from None
        elif scheme == "file":
            try:
                with locked(self.file):
                    data = self._read_file()
                    if data.pop(name, None) is not None:
                        self._write_file(data)
            except OSError as exc:
                raise SecretStoreError(f"cannot remove {name}: {write_problem(self.file, exc)}") from None

    def file_names(self) -> list[str]:
        """The names (``provider/label``) the fallback file holds; SecretStoreError when it is corrupted."""
        return sorted(self._read_file())

    @staticmethod
    def where(ref: str) -> str:
        return ref.partition(":")[0]

    # -------------------------------------------------------------- the fallback file
    def _read_file(self) -> dict[str, str]:
        try:
            data = json.loads(read_regular_text(self.file, self._check_private))
        except FileNotFoundError:
            return {}
        except SecretStoreError:
            raise
        except OSError as exc:
            raise SecretStoreError(f"cannot read {self.file}: {exc.strerror or type(exc).__name__}") from None
        except ValueError:
            raise SecretStoreError(f"{self.file} is corrupted (not JSON): it is left as it is; move it aside and "
                                   "add its keys again with `pooltui auth add`") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise SecretStoreError(f"{self.file} is corrupted (not a table of secrets): it is left as it is; move "
                                   "it aside and add its keys again with `pooltui auth add`")
        return {str(k): v for k, v in data.items()}

    def _check_private(self, info: os.stat_result) -> None:
        """Refuse a secret file others can read or that is not the user's own (as ssh refuses a private key)."""
        if info.st_uid != os.geteuid():
            raise SecretStoreError(f"{self.file} is owned by uid {info.st_uid}, not by you (uid {os.geteuid()}): "
                                   "pooltui does not use secrets someone else can change; `chown` it back")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise SecretStoreError(f"{self.file} is mode {mode:04o}: others can read the secrets in it; "
                                   f"`chmod 600 {self.file}` (pooltui does not use it until then)")

    def _write_file(self, data: dict[str, str]) -> None:
        try:
            private_dir(self.data_dir)
            write_atomic(self.file, json.dumps(data, indent=1, sort_keys=True).encode(), 0o600)
        except OSError as exc:
            raise SecretStoreError(write_problem(self.file, exc)) from None
