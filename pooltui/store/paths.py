"""Where pooltui keeps things: config (user config dir) and data (history, fallback secrets)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "pooltui"


def config_path(explicit: str | os.PathLike | None = None) -> Path:
    """``--config PATH``, else ``$POOLTUI_CONFIG``, else the platform's user config dir."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("POOLTUI_CONFIG")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_config_dir(APP)) / "config.toml"


def data_dir() -> Path:
    """``$POOLTUI_DATA_DIR``, else the platform's user data dir."""
    env = os.environ.get("POOLTUI_DATA_DIR")
    return Path(env).expanduser() if env else Path(platformdirs.user_data_dir(APP))


def private_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) if needed and return it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.chmod(path, 0o700)
    except OSError:
        pass
    return path


def write_problem(path: Path, exc: OSError | None = None) -> str:
    """Why ``path`` (a file to write, or a folder) cannot be written, said so a person can fix it."""
    import errno

    existing = next((p for p in (path, *path.parents) if p.exists()), path)
    if existing != path and not existing.is_dir():  # a file where a folder above ``path`` should be
        return f"{existing} is a file, not a folder: move it away so pooltui can create {path}"
    folder = path.parent if existing == path and not path.is_dir() else existing
    code = exc.errno if exc is not None else None
    if code == errno.EROFS:
        return f"{folder} is on a read-only file system: pooltui cannot write {path}"
    if code in (errno.EACCES, errno.EPERM) or not os.access(folder, os.W_OK):
        return f"{folder} is read-only for you: pooltui cannot write {path}"
    reason = (exc.strerror or str(exc)) if exc is not None else "unknown problem"
    return f"cannot write {path}: {reason}"
