"""Issue 26 item 5: odd inputs that still hurt get one line and exit 2, leave nothing poisoned on disk, and
``doctor`` says what it cannot fix. Each through the real CLI against real files."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from pooltui.commands.cli import cli
from pooltui.session.alerts import AlertSender, payload
from pooltui.sim.process import free_port
from pooltui.store import hermes_auth
from pooltui.store.atomic import write_atomic
from pooltui.store.config import ConfigEditor
from pooltui.store.history import History
from tests.conftest import config_on_simulator, keys, make_scenario
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


def test_a_fifo_as_config_toml_is_refused_at_once_not_waited_on() -> None:
    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    for args in (("provider", "list"), ("provider", "set", "openai"), ("auth", "list")):
        one_line_exit_2(run(*args), str(path), "a FIFO, not a regular file")
    assert stat.S_ISFIFO(path.lstat().st_mode)


def test_writing_never_replaces_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="a FIFO, not a regular file"):
        write_atomic(fifo, b"x = 1\n")
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and os.listdir(tmp_path) == ["config.toml"]


def test_a_symlinked_config_toml_stays_a_link_and_its_target_is_updated(tmp_path: Path) -> None:
    target = tmp_path / "dotfiles" / "pooltui.toml"
    target.parent.mkdir()
    target.write_text("# mine, in my dotfiles\n")
    link = config_file()
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    assert run("provider", "set", "openai", "--cooldown", "45").returncode == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text().startswith("# mine, in my dotfiles") and "cooldown_s = 45" in target.read_text()


def test_a_symlinked_hermes_auth_json_stays_a_link_and_its_target_is_updated(tmp_path: Path) -> None:
    home, elsewhere = tmp_path / "hermes", tmp_path / "synced" / "auth.json"
    home.mkdir()
    elsewhere.parent.mkdir()
    elsewhere.write_text(json.dumps({"credential_pool": {"openai": [
        {"id": "e1", "label": "one", "priority": 0, "last_status": "exhausted", "last_status_at": 1.0}]}}))
    (home / "auth.json").symlink_to(elsewhere)
    hermes_auth.reset(home, "openai", "e1")
    assert (home / "auth.json").is_symlink()
    assert json.loads(elsewhere.read_text())["credential_pool"]["openai"][0]["last_status"] is None


def test_a_read_only_data_dir_is_called_read_only(tmp_path: Path) -> None:
    add_key("openai", "a")
    data = data_dir()
    script = (f"mount --bind {data} {data} && mount -o remount,ro,bind {data} && "
              f"{sys.executable} -m pooltui --secret-store file auth add openai --pool b --stdin --no-verify")
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind {data} {data}"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("no mount namespace here to make a read-only folder (root ignores modes)")
    out = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=60,
                         input="sk-test-odd-inputs-000000000002\n")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"{data} is on a read-only file system: pooltui cannot write {data / 'secrets.json'}" in out.stderr
    assert "is a file, not a folder" not in out.stderr


@pytest.mark.parametrize("spoil", ["chmod 644", "chown to another user"])
def test_a_secret_file_others_can_read_or_change_is_refused_wherever_it_is_read(spoil: str) -> None:
    add_key("openai", "a")
    secrets = data_dir() / "secrets.json"
    if spoil == "chmod 644":
        secrets.chmod(0o644)
        why = "is mode 0644: others can read the secrets in it"
    else:
        if os.geteuid() != 0:
            pytest.skip("only root can give a file away")
        os.chown(secrets, 65534, -1)
        why = "is owned by uid 65534, not by you"
    before = secrets.read_bytes()
    listed = run("auth", "list")
    assert listed.returncode == 0 and "(missing)" in listed.stdout
    lines = listed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"pooltui: warning: {secrets} {why}")
    added = run("--secret-store", "file", "auth", "add", "openai", "--pool", "b", "--stdin", "--no-verify",
                stdin="sk-test-odd-inputs-000000000003\n")
    assert added.returncode != 0 and why in added.stderr and len(added.stderr.strip().splitlines()) == 1
    assert secrets.read_bytes() == before
    doctor = run("doctor")
    assert doctor.returncode == 1 and f"FAIL  secret file   {secrets} {why}" in doctor.stdout


SCENARIO = ('name = "odd"\n[traffic]\nrequests = 20\nrate = 5\n'
            '[[providers]]\nname = "p"\nlatency_ms = 1\n'
            '[[providers.keys]]\nlabel = "a"\nsecret = "sk-test-odd-a-000000001"\n')


@pytest.mark.parametrize(("change", "field"), [
    (('secret = "sk-test-odd-a-000000001"', 'secret = "sk-test-odd-a-000000001"\nanswer_bytes = 1000000000000'),
     "providers[0].keys[0].answer_bytes: must be a whole number from 1 to 268435456"),
    (("requests = 20", "requests = 1000000000000"), "traffic.requests: must be a whole number from 1 to 100000"),
    (("rate = 5", "rate = 1e-300"), "traffic.rate: must be 0 (all at once) or at least 0.001 per second"),
    (("latency_ms = 1", "latency_ms = 1e300"), "providers[0].latency_ms: must be <= 600000"),
    (("requests = 20", "requests = 20\nconcurrency = 9999999999999999999999999999999999999999"),
     "traffic.concurrency: must be a whole number from 1 to 4096, not a number of 40 digits"),
])
def test_a_scenario_field_out_of_bounds_is_one_line_not_a_hang_or_a_memory_error(
        tmp_path: Path, change: tuple[str, str], field: str) -> None:
    path = tmp_path / "odd.toml"
    path.write_text(SCENARIO.replace(*change))
    one_line_exit_2(run("compare", "--scenario", str(path), "--strategies", "round-robin"), str(path), field)


def test_the_odd_scenario_itself_runs(tmp_path: Path) -> None:
    path = tmp_path / "odd.toml"
    path.write_text(SCENARIO)
    assert run("compare", "--scenario", str(path), "--strategies", "round-robin").returncode == 0


@pytest.mark.parametrize("command", ["compare", "traffic"])
def test_a_rate_of_1e_300_on_the_command_line_is_refused(command: str) -> None:
    one_line_exit_2(run(command, "--rate", "1e-300"), "--rate", "must be 0 or at least 0.001")


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of the process group ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


def hanging_command(tmp_path: Path) -> tuple[list[str], Path]:
    """An alert command that starts a long sleep and waits on it; it writes its process group once started."""
    group = tmp_path / "group"
    return ["sh", "-c", f"sleep 120 & cut -d' ' -f5 /proc/$$/stat > {group}.tmp && mv {group}.tmp {group}; wait"], group


def assert_group_gone(group_file: Path) -> None:
    """The alert command ran in a process group of its own, and nothing of that group is left."""
    pgid = int(group_file.read_text())
    assert pgid != os.getpgid(0), "the alert command ran in pooltui's own process group"
    deadline = time.monotonic() + 5
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert group_members(pgid) == [], "a process the alert command started survived it"


def test_an_alert_command_past_its_timeout_is_stopped_with_what_it_started(tmp_path: Path) -> None:
    command, group = hanging_command(tmp_path)
    sender = AlertSender(command, timeout_s=1, retries=0)
    problems = asyncio.run(sender.deliver(payload("openai", "outage", "red", "down", [], time.time())))
    assert problems == ["command sh: still running after 1 s: stopped"]
    assert_group_gone(group)


def test_an_alert_command_is_stopped_with_what_it_started_when_pooltui_stops(tmp_path: Path) -> None:
    command, group = hanging_command(tmp_path)
    sender = AlertSender(command, timeout_s=60, retries=0)

    async def stop_while_it_runs() -> None:
        task = asyncio.create_task(sender.deliver(payload("openai", "outage", "red", "down", [], time.time())))
        while not group.exists():
            await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(stop_while_it_runs())
    assert_group_gone(group)


def storm_history(serve, tmp_path: Path, learn: bool) -> tuple[int, int, int]:
    """A 429 storm (keys of 2 requests a second whose 429s say "retry at once", no rate-limit headers, no cooldown
    floor) through ``traffic --provider``: (event rows written, the 429s they stand for, the 429s the traffic saw)."""
    path, _store, _server = config_on_simulator(serve, tmp_path / ("on" if learn else "off"), n_keys=2, window_s=1,
                                                success_headers=False, keys=keys("k", 2, rpm=2, retry_after=0))
    with ConfigEditor(path) as cfg:
        main = cfg.providers["main"]
        main.cooldown_s, main.cooldown_floor_s, main.learn_limits = 0.1, 0.0, learn
    data = tmp_path / ("on" if learn else "off") / "data"
    out = CliRunner().invoke(cli, ["--config", str(path), "traffic", "--provider", "main", "--requests", "40",
                                   "--concurrency", "8", "--json"], env={"POOLTUI_DATA_DIR": str(data)})
    assert out.exit_code in (0, 1), out.output
    seen = sum(k["rate_limited"] for k in json.loads(out.stdout)["keys"])
    history = History(data / "history.db")
    stood_for = sum(e["kind"] == "rate_limited" for e in history.events(0, limit=100_000))
    total = history.db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    history.close()
    return total, stood_for, seen


def test_a_429_storm_without_learning_grows_the_history_no_faster_than_with_it(serve, tmp_path: Path) -> None:
    rows_on, _, _ = storm_history(serve, tmp_path, learn=True)
    rows_off, stood_for, seen = storm_history(serve, tmp_path, learn=False)
    assert seen > 80 and stood_for == seen  # a storm (two 429s a request and more), every 429 still counted
    assert rows_off <= rows_on * 1.2 + 5, (rows_off, rows_on, seen)


def test_an_alert_command_is_stopped_with_what_it_started_when_the_proxy_is_terminated(serve, tmp_path: Path) -> None:
    server = serve(make_scenario({"name": "main", "keys": keys("k", 1, invalid=True)}))
    assert run("provider", "set", "main", "--kind", "openai", "--base-url", server.base_url("main")).returncode == 0
    add_key("main", "k0")
    command, group = hanging_command(tmp_path)
    with config_file().open("a") as fh:
        fh.write(f"\n[alerts]\ncommand = {json.dumps(command)}\ntimeout_s = 60\n")
    port = free_port()
    proxy = subprocess.Popen([sys.executable, "-m", "pooltui", "proxy", "--port", str(port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not group.exists() and time.monotonic() < deadline:  # a 401 marks the key invalid: an alert
            with contextlib.suppress(httpx.TransportError):
                httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=10,
                           json={"model": "gpt-sim-1", "messages": [{"role": "user", "content": "hi"}]})
            time.sleep(0.2)
        assert group.exists(), "the alert command did not start"
        proxy.terminate()
        assert proxy.wait(20) == 0
    finally:
        proxy.kill()
    assert_group_gone(group)


def test_fifos_in_a_hermes_home_are_not_waited_on(tmp_path: Path) -> None:
    home = tmp_path / "hermes"
    home.mkdir()
    (home / "auth.json").write_text('{"credential_pool": {}}')
    os.mkfifo(home / ".env")

    def import_hermes() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pooltui", "import", "hermes"], capture_output=True, text=True,
                              timeout=20, env={**os.environ, "HERMES_HOME": str(home)})

    assert import_hermes().returncode == 0  # a .env that is a FIFO is no .env
    os.mkfifo(home / "config.yaml")
    out = import_hermes()
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        f"pooltui: error: {home / 'config.yaml'}: cannot read (a FIFO, not a regular file: replace it with a file)"]
