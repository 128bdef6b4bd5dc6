"""Changing Hermes Agent's ``auth.json`` next to a running Hermes, by Hermes's own rules (hermes-agent 0.19,
``hermes_cli/auth.py``): take its cross-process lock (``fcntl.flock`` on ``auth.lock`` beside the file),
re-read the file under the lock, change only the entries asked for (matched by their ``id``), and replace
the file atomically with mode 0600. Hermes merges what it writes with the file by entry id under the same
lock, so an entry pooltui changed is not lost and one it removed is not written back by a Hermes that
re-reads before writing. A reset clears the same fields as ``hermes auth reset``."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pooltui.core.hermes_rules import STATUS_FIELDS, bench_until, marked
from pooltui.core.masking import redact
from pooltui.store.atomic import read_regular_text, write_atomic

LOCK_TIMEOUT_S = 15.0  # Hermes's AUTH_LOCK_TIMEOUT_SECONDS


class HermesAuthError(Exception):
    """auth.json could not be changed (the message says why; nothing was written)."""


@contextlib.contextmanager
def auth_lock(home: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hermes's lock on its auth store: an exclusive flock on ``$HERMES_HOME/auth.lock``."""
    lock = home / "auth.lock"
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise HermesAuthError(f"{lock}: Hermes holds its auth lock (waited {timeout_s:g} s)") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_regular_text(path))
    except FileNotFoundError:
        raise HermesAuthError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise HermesAuthError(f"{path}: cannot read it as JSON ({type(exc).__name__}); nothing written") from None
    if not isinstance(data, dict) or not isinstance(data.get("credential_pool"), dict):
        raise HermesAuthError(f"{path}: no credential_pool section; nothing written")
    return data


def change_pool(home: Path, provider: str, change: Callable[[list[dict[str, Any]], dict[str, Any]], str]) -> str:
    """Apply ``change(entries, whole_file)`` to one provider's pool under Hermes's lock, re-read first, then
    write atomically (0600). ``change`` returns what it did (the message for the user)."""
    path = home / "auth.json"
    with auth_lock(home):
        data = _read(path)
        entries = data["credential_pool"].get(provider)
        if not isinstance(entries, list):
            raise HermesAuthError(f"{path}: no pool for {provider!r}")
        done = change(entries, data)
        data["updated_at"] = datetime.now(UTC).isoformat()
        write_atomic(path, (json.dumps(data, indent=2) + "\n").encode(), 0o600)
    return done


def fmt_duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes / 60:g} h"


def _entry(entries: list[dict[str, Any]], entry_id: str) -> dict[str, Any]:
    found = next((e for e in entries if isinstance(e, dict) and e.get("id") == entry_id), None)
    if found is None:
        raise HermesAuthError(f"no entry {entry_id!r} any more (Hermes changed the pool meanwhile)")
    return found


def reset(home: Path, provider: str, entry_id: str) -> str:
    """Clear an entry's status, as ``hermes auth reset`` does."""
    def change(entries, _data) -> str:
        e = _entry(entries, entry_id)
        for name in STATUS_FIELDS:
            e[name] = None
        return f"{e.get('label') or entry_id}: status cleared"
    return change_pool(home, provider, change)


def mark(home: Path, provider: str, entry_id: str, status: int, reason: str | None = None,
         message: str | None = None) -> str:
    """Mark an entry as Hermes marks it after ``status`` (``hermes_rules.marked``: exhausted and benched by
    Hermes's TTL, or dead after a terminal 401), so Hermes skips it too."""
    now = time.time()

    def change(entries, _data) -> str:
        e = _entry(entries, entry_id)
        e.update(marked(status, now, reason, redact(message or "")[:300] or None))
        until = bench_until(e)
        left = f"benched {fmt_duration(until - now)}" if until is not None else "for good"
        return f"{e.get('label') or entry_id}: marked {e['last_status']} as Hermes marks a {status} ({left})"
    return change_pool(home, provider, change)


def move(home: Path, provider: str, entry_id: str, delta: int) -> str:
    """Move an entry up (negative) or down in priority; priorities renumbered 0..n-1, as Hermes keeps them."""
    def change(entries, _data) -> str:
        e = _entry(entries, entry_id)
        ordered = sorted((x for x in entries if isinstance(x, dict)),
                         key=lambda x: x["priority"] if isinstance(x.get("priority"), int) else 1 << 30)
        i = ordered.index(e)
        j = max(0, min(len(ordered) - 1, i + delta))
        ordered.insert(j, ordered.pop(i))
        for n, x in enumerate(ordered):
            x["priority"] = n
        entries[:] = ordered + [x for x in entries if not isinstance(x, dict)]
        return f"{e.get('label') or entry_id}: priority {j}"
    return change_pool(home, provider, change)


def remove(home: Path, provider: str, entry_id: str) -> str:
    """Remove an entry; one Hermes seeds from the environment or config.yaml is suppressed too, as
    ``hermes auth remove`` does, so Hermes does not bring it back."""
    def change(entries, data) -> str:
        e = _entry(entries, entry_id)
        entries.remove(e)
        for n, x in enumerate(sorted((x for x in entries if isinstance(x, dict)),
                                     key=lambda x: x["priority"] if isinstance(x.get("priority"), int) else 0)):
            x["priority"] = n
        source = str(e.get("source") or "")
        if source.startswith(("env:", "config:")) or source == "model_config":
            suppressed = data.setdefault("suppressed_sources", {})
            listed = suppressed.setdefault(provider, [])
            if source not in listed:
                listed.append(source)
        return f"{e.get('label') or entry_id}: removed"
    return change_pool(home, provider, change)
