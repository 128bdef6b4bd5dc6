"""``[telemetry]`` is read strictly: an http(s) endpoint, true/false flags, known settings only; it is saved back
as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from pooltui.store.config import ConfigError, parse_config


def test_a_telemetry_table_is_read_and_kept() -> None:
    text = '[telemetry]\nendpoint = "http://localhost:4318/"\ncapture_content = true\nservice_name = "gw"\n'
    cfg = parse_config(text, Path("c.toml"))
    t = cfg.telemetry
    assert (t.endpoint, t.capture_content, t.propagate_upstream, t.service_name, t.log_file) == (
        "http://localhost:4318", True, False, "gw", None)
    assert parse_config('[telemetry]\nlog_file = "/var/log/pooltui.log"\n', Path("c.toml")).telemetry.log_file \
        == "/var/log/pooltui.log"
    assert cfg.to_dict()["telemetry"] == {"endpoint": "http://localhost:4318/", "capture_content": True,
                                          "service_name": "gw"}
    assert "telemetry" not in parse_config("", Path("c.toml")).to_dict()


@pytest.mark.parametrize(("body", "said"), [
    ('endpoint = "ftp://collector"', "telemetry.endpoint"),
    ('endpoint = "http://user:pw@collector"', "telemetry.endpoint"),
    ("capture_content = 1", "telemetry.capture_content must be true or false"),
    ("schedule_delay_ms = 0", "telemetry.schedule_delay_ms"),
    ("log_file = 3", "telemetry.log_file must be a file path"),
    ('sample = "all"', "unknown setting 'sample'"),
])
def test_a_bad_telemetry_table_names_its_line(body: str, said: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(f'[providers]\n[telemetry]\n{body}\n', Path("c.toml"))
    assert said in str(err.value) and "c.toml:2" in str(err.value)
