"""Issue 5.5: `pooltui doctor`, a broken history moved aside (never lost), folders that cannot be written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import pooltui_in_process


def run(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pooltui", *args], capture_output=True, text=True, timeout=60,
                          input=stdin, env={**os.environ, **env})


def here(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """``pooltui ARGS`` in this process (``run``: a real one, as the first test does throughout)."""
    return pooltui_in_process(*args, stdin=stdin)


def test_doctor_finds_a_broken_history_and_repairs_it_keeping_the_old_file() -> None:
    data = Path(os.environ["POOLTUI_DATA_DIR"])
    assert run("auth", "add", "openai", "--pool", "a", "--stdin", "--no-verify",
               stdin="sk-test-doctor-00000000000001\n").returncode == 0
    garbage = b"not a database " * 100
    data.mkdir(parents=True, exist_ok=True)
    (data / "history.db").write_bytes(garbage)
    out = run("doctor")
    assert out.returncode == 1
    assert "FAIL  history" in out.stdout and "--repair-history" in out.stdout
    assert "ok    secrets       1/1 key resolves" in out.stdout
    out = run("events")
    assert out.returncode == 1 and "doctor --repair-history" in out.stderr and "Traceback" not in out.stderr
    out = run("doctor", "--repair-history")
    assert out.returncode == 0, out.stdout
    kept = [f for f in data.iterdir() if f.name.startswith("history.db.broken-")]
    assert len(kept) == 1 and kept[0].read_bytes() == garbage
    assert run("events").returncode == 0
    assert run("doctor").returncode == 0


def test_a_config_folder_that_is_a_file_is_named() -> None:
    config = Path(os.environ["POOLTUI_CONFIG"])
    config.parent.parent.mkdir(parents=True, exist_ok=True)
    config.parent.write_text("I am a file")
    out = here("auth", "add", "openai", "--pool", "a", "--stdin", "--no-verify", stdin="sk-test-x-0000000000000001\n")
    assert out.returncode in (1, 2) and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "is a file, not a folder" in out.stderr
    doctor = here("doctor")
    assert doctor.returncode == 1 and "is a file, not a folder" in doctor.stdout


def test_a_read_only_data_folder_is_named(tmp_path) -> None:
    data = Path(os.environ["POOLTUI_DATA_DIR"])
    data.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["chattr", "+i", str(data)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here (needs root on a file system that supports it)")
    try:
        out = here("--secret-store", "file", "auth", "add", "openai", "--pool", "a", "--stdin", "--no-verify",
                  stdin="sk-test-ro-00000000000000001\n")
        assert out.returncode == 1 and "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and "read-only" in out.stderr, out.stderr
        doctor = here("doctor")
        assert doctor.returncode == 1 and "FAIL  data folder" in doctor.stdout and "read-only" in doctor.stdout
    finally:
        subprocess.run(["chattr", "-i", str(data)], check=True)
