"""Telling when a running Hermes undoes what pooltui wrote to its ``auth.json``: Hermes 0.19 writes its
in-memory copy of a pool back (``write_credential_pool`` keeps the entries it holds, by id), so an entry
the watch reset goes back to its old mark and a removed one reappears. What pooltui wrote is remembered for
a few seconds; an entry back in its old state within them is Hermes's memory. The running Hermes processes
of a home are found in ``/proc`` where there is one (their ``HERMES_HOME``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REWRITE_WINDOW_S = 10.0
#: what to run in Hermes instead, per pooltui action
HERMES_WAY = {"reset": "hermes auth reset", "remove": "hermes auth remove", "mark": "hermes auth reset"}


@dataclass(frozen=True, slots=True)
class Written:
    """One change pooltui made to an entry, with the entry as it was before."""

    action: str  # "reset", "remove", "mark"
    provider: str
    entry_id: str
    label: str
    before_status: Any
    before_status_at: Any
    at: float


def written(action: str, provider: str, entry: dict[str, Any], at: float) -> Written:
    return Written(action, provider, str(entry.get("id") or ""), str(entry.get("label") or entry.get("id") or "?"),
                   entry.get("last_status"), entry.get("last_status_at"), at)


def undone(w: Written, data: dict[str, Any]) -> bool:
    """Whether ``data`` (auth.json as read now) has ``w``'s entry back as it was before pooltui's write."""
    pool = data.get("credential_pool") if isinstance(data, dict) else None
    entries = pool.get(w.provider) if isinstance(pool, dict) else None
    entry = next((e for e in entries or [] if isinstance(e, dict) and e.get("id") == w.entry_id), None)
    if w.action == "remove":
        return entry is not None
    if entry is None:
        return False
    return entry.get("last_status") == w.before_status and entry.get("last_status_at") == w.before_status_at


def hermes_pids(home: Path, proc: Path = Path("/proc")) -> list[int]:
    """Running Hermes processes (a ``hermes`` command line) whose Hermes home is ``home``; [] where the
    platform has no ``/proc`` or hides them."""
    try:
        target = home.resolve()
        pids = [int(p.name) for p in proc.iterdir() if p.name.isdigit()]
    except OSError:
        return []
    out = []
    for pid in pids:
        if pid == os.getpid():
            continue
        try:
            cmdline = (proc / str(pid) / "cmdline").read_bytes()
            environ = (proc / str(pid) / "environ").read_bytes()
        except OSError:
            continue
        if b"hermes" not in cmdline.lower():
            continue
        env = dict(item.split(b"=", 1) for item in environ.split(b"\0") if b"=" in item)
        raw = env.get(b"HERMES_HOME", b"").decode(errors="replace").strip()
        own_home = Path(raw) if raw else Path(env.get(b"HOME", b"/").decode(errors="replace")) / ".hermes"
        try:
            if own_home.resolve() == target:
                out.append(pid)
        except OSError:
            continue
    return sorted(out)


def warning(w: Written, pids: list[int]) -> str:
    """What the watch says, once, when Hermes rewrote an entry from its memory."""
    who = f"Hermes (pid {', '.join(map(str, pids))})" if pids else "a running Hermes"
    return f"{who} rewrote {w.label!r} from its memory: stop it or use `{HERMES_WAY[w.action]}` there"
