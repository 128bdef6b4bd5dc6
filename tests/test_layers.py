"""The walls between layers: the domain imports no UI, the core imports no I/O (import-linter checks the rest)."""

from __future__ import annotations

import subprocess
import sys

DOMAIN = ("pooltui.core", "pooltui.core.pool", "pooltui.providers.verify", "pooltui.client.pool_client",
          "pooltui.store.config", "pooltui.store.secrets", "pooltui.store.history", "pooltui.session.build",
          "pooltui.session.local", "pooltui.session.traffic", "pooltui.sim")


def _imported_after(modules: tuple[str, ...], watched: tuple[str, ...]) -> subprocess.CompletedProcess:
    code = (f"import sys\nimport {', '.join(modules)}\n"
            f"print(','.join(m for m in sorted(sys.modules) if m.split('.')[0] in {watched!r}"
            " or m.startswith('pooltui.tui')))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_the_domain_does_not_import_the_ui() -> None:
    out = _imported_after(DOMAIN, ("textual",))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"UI modules imported by the domain layer: {out.stdout}"


def test_the_core_does_no_io_and_no_ui() -> None:
    out = _imported_after(("pooltui.core",), ("httpx", "aiohttp", "starlette", "uvicorn", "textual", "sqlite3"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"the core imported {out.stdout}"
