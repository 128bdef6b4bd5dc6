"""Snapshot tests of the main screen: seeded engine states, fixed clock, UTC, no wall-clock text."""

from __future__ import annotations

import time

import pytest

from pooltui.tui.app import PoolMonitorApp
from tests.tui import scripted


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def app_for(state: str) -> PoolMonitorApp:
    return PoolMonitorApp(getattr(scripted, state)(), start_session=False)


@pytest.mark.parametrize("state", ["steady", "storm", "revoked"])
def test_main_screen(snap_compare, state: str) -> None:
    assert snap_compare(app_for(state), terminal_size=(130, 36))


def test_main_screen_fits_80x24(snap_compare) -> None:
    assert snap_compare(app_for("storm"), terminal_size=(80, 24))


def test_inspector(snap_compare) -> None:
    assert snap_compare(app_for("storm"), press=["i"], terminal_size=(110, 30))
