"""What every command shares: the one-line user error, the context (config, secrets, history)."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click

from pooltui.core.errors import message_of
from pooltui.core.strategies import UnknownStrategyError, normalize_strategy
from pooltui.core.timefmt import clock
from pooltui.store.config import Config, ConfigEditor, ConfigError, load_config
from pooltui.store.paths import config_path, data_dir, write_problem


class UserError(click.ClickException):
    """A problem with what the user asked for: one line, exit code 2, nothing written."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"pooltui: error: {self.format_message()}", err=True)


class Failure(UserError):
    """Something went wrong that is not the user's input: one line, exit code 1."""

    exit_code = 1


@dataclass
class AppContext:
    """Resolved paths and lazily opened config, secret store and history."""

    config_file: Path
    secret_store: str | None
    data: Path = field(default_factory=data_dir)
    proxy_port: int | None = None
    log_file: str | None = None  # `pooltui --log-file`: where a monitor's proxy writes its log lines
    _store: object | None = None
    _history: object | None = None

    def config(self) -> Config:
        try:
            return load_config(self.config_file)
        except ConfigError as exc:
            raise UserError(str(exc)) from None

    @contextlib.contextmanager
    def edit(self) -> Iterator[Config]:
        """Read-modify-write the config; nothing is written if the block fails."""
        try:
            with ConfigEditor(self.config_file) as cfg:
                yield cfg
        except ConfigError as exc:
            raise UserError(str(exc)) from None
        except (KeyError, ValueError) as exc:
            raise UserError(message_of(exc)) from None
        except OSError as exc:
            raise Failure(write_problem(self.config_file, exc)) from None

    def store(self):
        if self._store is None:
            from pooltui.store.secrets import SecretStore, SecretStoreError

            try:
                self._store = SecretStore(self.data, self.secret_store)
            except SecretStoreError as exc:
                raise UserError(str(exc)) from None
        return self._store

    def history(self, cfg: Config | None = None):
        if self._history is None:
            from pooltui.store.history import History, HistoryError

            retention = (cfg or self.config()).retention_days
            try:
                self._history = History(self.data / "history.db", retention)
            except HistoryError as exc:
                raise Failure(str(exc)) from None
            except (OSError, sqlite3.OperationalError) as exc:
                raise Failure(write_problem(self.data / "history.db", exc if isinstance(exc, OSError) else None)
                              ) from None
        return self._history

    def provider(self, name: str, cfg: Config | None = None):
        """The configured provider ``name``, or a one-line user error naming those there are."""
        cfg = cfg or self.config()
        if name not in cfg.providers:
            raise UserError(unknown_provider(name, cfg.providers))
        return cfg.providers[name]

    def warn_unencrypted(self) -> None:
        store = self.store()
        problem = store.file_problem()
        if problem:
            click.echo(f"pooltui: warning: {problem}", err=True)
        elif store.unencrypted:
            click.echo(f"pooltui: warning: secrets are stored unencrypted in {store.file} (no OS keyring here)",
                       err=True)



def unknown_provider(name: str, known) -> str:
    """``unknown provider 'x' (configured: a, b)``: what a command says of a provider name it does not know."""
    return f"unknown provider {name!r} (configured: {', '.join(sorted(known)) or 'none'})"


def unscrubbed_stdout():
    """Standard output past the secret scrubber ``main`` puts on it. Only for secrets the user asked to see in
    clear and that guard nothing: the simulator's fake keys (``pooltui sim keys``)."""
    import sys

    return getattr(sys.stdout, "unscrubbed", sys.stdout)


def app(ctx: click.Context) -> AppContext:
    obj = ctx.find_root().obj
    if obj is None:
        obj = ctx.find_root().obj = AppContext(config_path(None), None)
    return obj


pass_app = click.make_pass_decorator(AppContext, ensure=False)


def strategy_option(_ctx, _param, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return normalize_strategy(value)
    except UnknownStrategyError as exc:
        raise UserError(str(exc)) from None


class FiniteFloat(click.ParamType):
    """A finite number in a range: ``nan``, ``inf`` and out-of-range values get one clear line. ``smallest``:
    the least number above 0 that makes sense (a rate of 1e-300 per second never ends); 0 stays allowed."""

    name = "number"

    def __init__(self, minimum: float | None = None, maximum: float | None = None, strict: bool = False,
                 smallest: float | None = None) -> None:
        self.minimum, self.maximum, self.strict, self.smallest = minimum, maximum, strict, smallest

    def convert(self, value, param, ctx) -> float:
        import math

        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        low = self.minimum
        if low is not None and (number <= low if self.strict else number < low):
            self.fail(f"{value!r} must be {'>' if self.strict else '>='} {low:g}", param, ctx)
        if self.maximum is not None and number > self.maximum:
            self.fail(f"{value!r} must be <= {self.maximum:g}", param, ctx)
        if self.smallest is not None and 0 < number < self.smallest:
            self.fail(f"{value!r} must be 0 or at least {self.smallest:g}", param, ctx)
        return number


def checked(check, value):
    """``check(value)`` from :mod:`pooltui.core.validate`, its ValueError as a one-line user error."""
    try:
        return check(value)
    except ValueError as exc:
        raise UserError(str(exc)) from None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def since_option(_ctx, _param, value: str) -> float:
    """``12h``, ``30d``, ``90m`` -> the epoch time that long ago."""
    m = _DURATION.match(value or "")
    if not m:
        raise UserError(f"--since: {value!r} is not a duration like 90m, 12h or 30d")
    return time.time() - float(m.group(1)) * _UNIT[m.group(2)]


def output_file(_ctx, _param, path: Path | None) -> Path | None:
    """A file option the command will write at the end (a chart): refused now, before any work, when its folder
    is missing, is not a folder, or cannot be written."""
    import os

    if path is None:
        return None
    folder = path.parent
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a folder")
    if not folder.exists():
        raise UserError(f"cannot write {path}: there is no folder {folder}")
    if not folder.is_dir() or not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(write_problem(path))
    return path


def when(ts: float | None) -> str:
    return clock(ts)


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)
