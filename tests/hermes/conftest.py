"""The real Hermes Agent (hermes-agent 0.19, in its own venv: `.ci/run` makes `.venv-hermes`) drives these
tests: its CLI adds keys, its own `agent.credential_pool` marks them exhausted or dead. Nothing reaches a
real provider: outbound proxies point at a dead loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import pooltui_in_process

ROOT = Path(__file__).resolve().parents[2]


def hermes_python() -> Path | None:
    given = os.environ.get("HERMES_PYTHON")
    for candidate in ([Path(given)] if given else []) + [ROOT / ".venv-hermes" / "bin" / "python"]:
        if candidate.exists():
            return candidate
    return None


class Hermes:
    """One Hermes home in a temporary folder, and the real Hermes to act on it."""

    def __init__(self, python: Path, home: Path, user_home: Path) -> None:
        self.python, self.home, self.user_home = python, home, user_home
        self.env = {**os.environ, "HERMES_HOME": str(home), "HOME": str(user_home),
                    "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
                    "ALL_PROXY": "http://127.0.0.1:9", "NO_PROXY": "", "HERMES_NO_UPDATE_CHECK": "1",
                    # no lazy `pip install` (edge-tts at each start): through the dead proxy it only retried,
                    # 8 s and more of every Hermes run
                    "HERMES_DISABLE_LAZY_INSTALLS": "1",
                    # Hermes's venv is an install we only read (tests/conftest.py lets our own sources cache)
                    "PYTHONDONTWRITEBYTECODE": "1"}
        self.env.pop("PYTEST_CURRENT_TEST", None)

    def cli(self, *args: str) -> str:
        hermes = self.python.parent / "hermes"
        r = subprocess.run([str(hermes), *args], env=self.env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout

    def clis(self, *commands: tuple[str, ...], then: str = "") -> str:
        """``hermes ARGS`` for each of ``commands`` (Hermes's own CLI, its ``main()``), then the Python ``then``,
        all in one Hermes process: one start (~0.5 s of CPU, Hermes's imports) for all of them, not one each."""
        run = textwrap.dedent(f"""
            import sys
            from hermes_cli.main import main
            for argv in {[list(command) for command in commands]!r}:
                sys.argv = ["hermes", *argv]
                try:
                    code = main()
                except SystemExit as exit_:
                    code = exit_.code
                if code not in (0, None):
                    sys.exit(f"hermes {{' '.join(argv)}} exited with {{code}}")
        """)
        return self.py(run + textwrap.dedent(then))

    def py(self, code: str) -> str:
        r = subprocess.run([str(self.python), "-c", textwrap.dedent(code)], env=self.env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout

    def py_stdin(self, code: str, stdin: str) -> str:
        """Run ``code`` in Hermes's venv with ``stdin`` as its input; its stdout."""
        r = subprocess.run([str(self.python), "-c", textwrap.dedent(code)], env=self.env, capture_output=True,
                           text=True, timeout=120, input=stdin)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout

    def pooltui(self, *args: str, input_text: str | None = None, env_home: str | None = None,
                real_process: bool = False, **env: str) -> subprocess.CompletedProcess:
        """``pooltui ARGS`` with this Hermes's environment (``env_home``: another HERMES_HOME), in this process
        through pooltui's real entry point unless ``real_process`` (``python -m pooltui``: a Python start each)."""
        env = {**self.env, **env, **({"HERMES_HOME": env_home} if env_home else {})}
        if not real_process:
            return pooltui_in_process(*args, stdin=input_text, env={"HERMES_HOME": None, **env})
        return subprocess.run([sys.executable, "-m", "pooltui", *args], env=env,
                              capture_output=True, text=True, timeout=120, input=input_text)


@pytest.fixture
def hermes(tmp_path) -> Hermes:
    python = hermes_python()
    if python is None:
        if os.environ.get("CI"):
            pytest.fail("hermes-agent is not installed (.ci/run makes .venv-hermes)")
        pytest.skip("hermes-agent not installed here: python3 -m venv .venv-hermes && "
                    ".venv-hermes/bin/pip install 'hermes-agent[anthropic]==0.19.0'")
    home = tmp_path / "hermes-home"
    home.mkdir()
    user_home = tmp_path / "user-home"
    user_home.mkdir()
    return Hermes(python, home, user_home)
