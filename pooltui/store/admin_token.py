"""The proxy's admin token: what its control endpoints (/pooltui/command, /pooltui/state, /metrics) require.

Generated on the proxy's first start, kept 0600 in the data dir, and read from there by the attached
monitor and by ``pooltui`` commands on the same machine. It is separate from the callers' ``--token``:
an agent that may spend the pool may not flip its keys or read its state.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from pooltui.store.atomic import read_regular
from pooltui.store.paths import private_dir

FILENAME = "proxy-admin-token"
ENV = "POOLTUI_ADMIN_TOKEN"


class AdminTokenError(Exception):
    """The admin token file cannot be read or written (the message says which file and why)."""


def token_path(data_dir: Path) -> Path:
    return data_dir / FILENAME


def read_admin_token(data_dir: Path) -> str | None:
    """``$POOLTUI_ADMIN_TOKEN``, else the token in the data dir, else None."""
    env = os.environ.get(ENV, "").strip()
    if env:
        return env
    try:
        text = read_regular(token_path(data_dir)).decode("ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise AdminTokenError(f"cannot read the admin token {token_path(data_dir)}: {exc}") from None
    return text or None


def ensure_admin_token(data_dir: Path) -> str:
    """The admin token, created (0600, never overwritten: the first writer wins a race) if there is none."""
    existing = read_admin_token(data_dir)
    if existing:
        return existing
    path = token_path(data_dir)
    token = "pta-" + secrets.token_urlsafe(32)
    tmp = path.with_name(f".{FILENAME}.{os.getpid()}.tmp")
    try:
        private_dir(data_dir)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(token + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, path)  # atomic and never overwrites: when two proxies start at once, the first one wins
    except FileExistsError:
        found = read_admin_token(data_dir)
        if not found:
            raise AdminTokenError(f"the admin token file {path} is empty: delete it and start again") from None
        token = found
    except OSError as exc:
        raise AdminTokenError(f"cannot create the admin token {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return token
