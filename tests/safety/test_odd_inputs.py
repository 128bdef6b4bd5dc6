"""Issue 26 item 5: odd inputs that still hurt get one line and exit 2, leave nothing poisoned on disk, and
``doctor`` says what it cannot fix. Each through the real CLI against real files."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pooltui.store.history import History
from tests.safety.test_input_validation import config_file, one_line_exit_2, run

MONTH_AND_A_DAY_S = 32 * 86400  # the furthest ahead a key may be held


def data_dir() -> Path:
    return Path(os.environ["POOLTUI_DATA_DIR"])


def write_config(text: str) -> Path:
    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def add_key(provider: str = "openai", label: str = "a") -> None:
    out = run("--secret-store", "file", "auth", "add", provider, "--pool", label, "--stdin", "--no-verify",
              stdin="sk-test-odd-inputs-000000000001\n")
    assert out.returncode == 0, out.stderr


def test_a_retention_of_2_pow_63_is_refused_and_history_commands_still_work() -> None:
    path = write_config("[history]\nretention_days = 9223372036854775807\n")
    for args in (("events",), ("usage",)):
        one_line_exit_2(run(*args), f"{path}:2", "retention_days", "36,500")
    write_config("[history]\nretention_days = 36500\n")
    assert run("events").returncode == 0


@pytest.mark.parametrize("line", ["cooldown_s = 1e300", "cooldown_max_s = 1e300", "reverify_s = 1e300",
                                  "request_timeout_s = 1e300", "cooldown_s = 99999999999999999999999999999999"])
def test_a_time_setting_beyond_a_week_is_refused_with_its_line(line: str) -> None:
    path = write_config(f'[providers.openai]\nkind = "openai"\n{line}\n')
    one_line_exit_2(run("auth", "list"), f"{path}:3", line.split(" ")[0], "at most 604800")


def test_a_key_held_until_1e300_in_the_history_is_released_and_doctor_says_so() -> None:
    add_key()
    history = History(data_dir() / "history.db")
    history.db.execute("INSERT INTO key_status (provider, key, state, until, changed_at)"
                       " VALUES ('openai', 'a', 'cooling', 1e300, 1)")  # as an older version stored it
    history.close()
    doctor = run("doctor")
    assert doctor.returncode == 1 and "FAIL  key holds     openai/a: held beyond 32 days" in doctor.stdout
    listed = run("auth", "list")
    assert listed.returncode == 0, listed.stderr
    assert " ok " in listed.stdout.splitlines()[1]
    assert run("doctor").returncode == 0


def test_an_until_written_far_ahead_is_stored_bounded(tmp_path: Path) -> None:
    history = History(tmp_path / "history.db")
    history.set_key_status("openai", "a", "cooling", until=1e300)
    until = history.key_statuses()[("openai", "a")].until
    assert until is not None and until <= time.time() + MONTH_AND_A_DAY_S
    history.close()


def test_a_bad_webhook_is_reported_without_its_path() -> None:
    for webhook in ("https://hooks.example.com/services/T000/SECRETPATH?x=1",
                    "https://hooks.example.com/services/T000/SECRET PATH",
                    "ftp://hooks.example.com/services/T000/SECRETPATH"):
        path = write_config(f'[alerts]\nwebhook = "{webhook}"\n')
        out = run("auth", "list")
        one_line_exit_2(out, f"{path}:1", "hooks.example.com")
        assert "SECRET" not in out.stderr and "T000" not in out.stderr
