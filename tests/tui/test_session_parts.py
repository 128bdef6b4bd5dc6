"""MonitorSession is composed of small typed parts (state, history recording, background tasks, controls)."""

from __future__ import annotations

import dataclasses

from pooltui.session.background import BackgroundTasks
from pooltui.session.controls import PoolControls, TrafficControls
from pooltui.session.local import MonitorSession
from pooltui.session.local_state import SessionState
from pooltui.session.recording import HistoryRecording
from pooltui.sim.wiring import client_for_scenario
from tests.conftest import keys, make_scenario

PARTS = (SessionState, HistoryRecording, BackgroundTasks, TrafficControls, PoolControls)


def test_no_part_has_a_field_typed_any() -> None:
    for part in PARTS:
        for f in dataclasses.fields(part):
            assert "Any" not in str(f.type), f"{part.__name__}.{f.name}: {f.type}"


def test_the_session_holds_its_parts_and_they_share_one_state(serve) -> None:
    spec = {"name": "oai", "window_s": 60, "keys": keys("k", 2)}
    client = client_for_scenario(make_scenario(spec), serve(make_scenario(spec)), "round-robin", seed=1)
    session = MonitorSession({"oai": client}, autostart_traffic=False, traffic_rate=7.0)
    assert len(vars(session)) < 15  # its settings and its five parts (it had 33 fields)
    state = session.state
    assert state is session.recording.state is session.background.state is session.test_traffic.state \
        is session.controls.state
    session.current = "oai"
    assert state.current == "oai" and session.pool is client.primary.pool
    session.traffic_concurrency = 3
    assert session.test_traffic.concurrency == 3 and session.change_rate(2) == 14.0 == session.traffic_rate
