"""Atomic file writes: temp file in the same folder, fsync, rename. A crash leaves the old file intact.

A symlink is kept: the write goes through to its target (in the target's folder). A FIFO, a device or a
socket is never read or replaced: reading one would hang, replacing one would surprise whoever made it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


class NotRegularFile(OSError):
    """A path that is a FIFO, a device or a socket where a regular file is expected."""

    def __init__(self, path: Path, mode: int) -> None:
        kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
        super().__init__(errno.EINVAL, f"{kind}, not a regular file: replace it with a file", str(path))


def read_regular(path: Path, check: Callable[[os.stat_result], None] | None = None) -> bytes:
    """The bytes of ``path``, a regular file (through symlinks); :class:`NotRegularFile` for a FIFO, a device or
    a socket, without waiting on it (FileNotFoundError and the other OSErrors as ``open`` raises them).
    ``check`` sees the open file's stat before anything is read (it raises to refuse the file)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(path, info.st_mode)
        if check is not None:
            check(info)
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    finally:
        os.close(fd)


def read_regular_text(path: Path, check: Callable[[os.stat_result], None] | None = None) -> str:
    """:func:`read_regular` decoded as UTF-8 (UnicodeDecodeError when it is not)."""
    return read_regular(path, check).decode("utf-8")


def write_target(path: Path) -> Path:
    """Where a write of ``path`` lands: the final target of a symlink (kept as a link), else ``path``;
    :class:`NotRegularFile` when that is a FIFO, a device or a socket."""
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise NotRegularFile(path, mode)
    return target


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` all at once (readers see the old or the new file, never half); a symlink
    stays a symlink and its target gets the new content."""
    path = write_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock beside ``path`` for a read-modify-write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(f".{path.name}.lock")
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
