"""``pooltui doctor``: check the config, the secret store, the history and the folders they live in."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import click

from pooltui.commands.common import app
from pooltui.core.words import plural
from pooltui.store.paths import write_problem


@dataclass(slots=True)
class Check:
    """One line of the report."""

    ok: bool
    what: str
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.what:<13} {self.detail}"


def _writable(folder: Path, target: Path) -> str | None:
    """None when a file can be created in ``folder`` (tried for real), else why not."""
    if not folder.exists():
        parent = next((p for p in folder.parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            return write_problem(target)
        return None  # it will be created on first use
    if not folder.is_dir():
        return write_problem(target)
    try:
        fd, probe = tempfile.mkstemp(prefix=".pooltui-doctor-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return write_problem(target, exc)
    return None


def check_config(a) -> list[Check]:
    from pooltui.store.config import ConfigError, load_config

    path = a.config_file
    out = []
    problem = _writable(path.parent, path)
    out.append(Check(problem is None, "config folder", problem or str(path.parent)))
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        return [*out, Check(False, "config", str(exc))]
    keys = sum(len(p.keys) for p in cfg.providers.values())
    exists = "" if path.exists() else " (not created yet)"
    out.append(Check(True, "config",
                     f"{path}{exists}: {plural(len(cfg.providers), 'provider')}, {plural(keys, 'key')}"))
    return out


def check_secrets(a) -> list[Check]:
    from pooltui.store.config import ConfigError, load_config
    from pooltui.store.secrets import SecretStore, SecretStoreError

    store = SecretStore(a.data, a.secret_store)
    out = []
    problem = _writable(a.data, store.file)
    out.append(Check(problem is None, "data folder", problem or str(a.data)))
    if store.file.exists():
        mode = stat.S_IMODE(store.file.stat().st_mode)
        try:
            n = len(store.file_names())
            out.append(Check(mode & 0o077 == 0, "secret file",
                             f"{store.file}: {plural(n, 'secret')}, mode {mode:04o}" + ("" if mode & 0o077 == 0 else
                                                                                 " (others can read it: chmod 600)")))
        except SecretStoreError as exc:
            out.append(Check(False, "secret file", str(exc)))
    try:
        cfg = load_config(a.config_file)
    except ConfigError:
        return out
    missing = []
    for p in cfg.providers.values():
        for k in p.keys:
            try:
                store.get(k.secret)
            except SecretStoreError as exc:
                missing.append(f"{p.name}/{k.label} ({exc})")
    total = sum(len(p.keys) for p in cfg.providers.values())
    resolve = "resolves" if total == 1 else "resolve"
    out.append(Check(not missing, "secrets", f"{total - len(missing)}/{plural(total, 'key')} {resolve}"
                     + (f"; missing: {'; '.join(missing)}" if missing else "")))
    return out


def check_history(a, repair: bool) -> list[Check]:
    path = a.data / "history.db"
    if not path.exists():
        return [Check(True, "history", f"{path} (not created yet)")]
    problem = _history_problem(path)
    if problem is None:
        return [Check(True, "history", f"{path}: integrity ok"), *_check_holds(path, repair)]
    if not repair:
        return [Check(False, "history", f"{path}: {problem} (run `pooltui doctor --repair-history` to move it "
                                        "aside and start a new one)")]
    aside = path.with_name(f"history.db.broken-{time.strftime('%Y%m%d-%H%M%S')}")
    path.rename(aside)
    for suffix in ("-wal", "-shm"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            extra.rename(aside.with_name(aside.name + suffix))
    from pooltui.store.history import History

    History(path).close()
    return [Check(True, "history", f"{path} was broken ({problem}): kept as {aside.name}, a new one started")]


def _check_holds(path: Path, repair: bool) -> list[Check]:
    """Keys held further ahead than any setting or provider can ask (rows written by a bad setting)."""
    from pooltui.store.history import MAX_HOLD_S, History

    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
        rows = db.execute("SELECT provider, key FROM key_status WHERE until IS NOT NULL AND (typeof(until) NOT IN"
                          " ('real', 'integer') OR until > ?) ORDER BY provider, key",
                          (time.time() + MAX_HOLD_S,)).fetchall()
    if not rows:
        return []
    names = ", ".join(f"{p}/{k}" for p, k in rows[:5]) + (" …" if len(rows) > 5 else "")
    if repair:
        history = History(path)  # opening it releases them
        history.close()
        return [Check(True, "key holds", f"{names}: held beyond {MAX_HOLD_S / 86400:g} days, released")]
    return [Check(False, "key holds", f"{names}: held beyond {MAX_HOLD_S / 86400:g} days (a bad setting wrote it;"
                                      " `pooltui doctor --repair-history` releases them)")]


def _history_problem(path: Path) -> str | None:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        return str(exc)
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        return str(exc)
    finally:
        with contextlib.suppress(sqlite3.Error):
            db.close()
    if rows != [("ok",)]:
        return f"integrity check: {rows[0][0]}"
    if not {"events", "usage", "key_status"} <= names:
        return "not a pooltui history (tables missing)"
    return None


def check_store(a) -> list[Check]:
    """With ``[state] backend = "redis"``: connect once, say how it went (never the password)."""
    import asyncio

    from pooltui.store.config import ConfigError, load_config
    from pooltui.store.fleet import CONNECTED, probe, redact_url, status_line

    try:
        cfg = load_config(a.config_file)
    except ConfigError:
        return []
    if cfg.state.backend != "redis" or not cfg.state.url:
        return []
    status = asyncio.run(probe(cfg.state.url))
    if status == CONNECTED:
        return [Check(True, "shared state", f"{redact_url(cfg.state.url)}: connected (prefix {cfg.state.prefix})")]
    said = status_line(status, cfg.state.url, serving=False).removeprefix("shared state: ")
    return [Check(False, "shared state", said)]


@click.command("doctor")
@click.option("--repair-history", is_flag=True, help="move a broken history.db aside (kept) and start a new one")
@click.pass_context
def doctor(ctx: click.Context, repair_history: bool) -> None:
    """Check the config, the secret store and the history; exit 1 when something needs you."""
    a = app(ctx)
    checks = [*check_config(a), *check_secrets(a), *check_history(a, repair_history), *check_store(a)]
    for c in checks:
        click.echo(c.line())
    if not all(c.ok for c in checks):
        ctx.exit(1)
