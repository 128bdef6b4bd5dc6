"""The domain layers import nothing from the UI."""

from __future__ import annotations

import subprocess
import sys


def test_core_and_engine_modules_do_not_import_textual() -> None:
    code = (
        "import sys\n"
        "import pooltui.core, pooltui.core.pool, pooltui.client, pooltui.traffic, pooltui.providers, pooltui.sim\n"
        "import pooltui.config, pooltui.secrets, pooltui.history, pooltui.verify, pooltui.runtime, pooltui.monitor\n"
        "bad = sorted(m for m in sys.modules\n"
        "             if m == 'textual' or m.startswith('textual.') or m.startswith('pooltui.tui'))\n"
        "print(','.join(bad))\n"
        "sys.exit(1 if bad else 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"UI modules imported by the domain layer: {out.stdout}{out.stderr}"


def test_core_does_no_io_imports() -> None:
    code = ("import sys, pooltui.core\n"
            "print(','.join(m for m in ('httpx', 'aiohttp', 'starlette', 'uvicorn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == ""
