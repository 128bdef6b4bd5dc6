"""Snapshot tests of the main screen: seeded engine states, fixed clock, UTC, no wall-clock text."""

from __future__ import annotations

import pytest

from tests.tui import scripted

pytestmark = [pytest.mark.usefixtures("utc"), pytest.mark.wording]  # the screens show the words of events


def app_for(state: str):
    """The monitor on a scripted state, its toasts held until the screenshot: they last 5 s, and a loaded
    machine took longer than that from the key press to the screenshot (the toast had gone: 3 of these failed)."""
    app = scripted.app_for(state)
    app.NOTIFICATION_TIMEOUT = 3600
    return app


@pytest.mark.parametrize("state", ["steady", "storm", "revoked"])
def test_main_screen(snap_compare, state: str) -> None:
    assert snap_compare(app_for(state), terminal_size=(130, 36))


@pytest.mark.parametrize("size", [(80, 24), (160, 45)], ids=["80x24", "160x45"])
@pytest.mark.parametrize("state", ["steady", "storm", "peak", "outage"])
def test_main_screen_sizes(snap_compare, state: str, size: tuple[int, int]) -> None:
    """At 80x24 the keys table keeps key, state and its 429, 401/3, quota and 5xx; the footer fits; the status
    line and the traffic summary drop segments whole, never a number cut."""
    assert snap_compare(app_for(state), terminal_size=size)


def test_inspector(snap_compare) -> None:
    assert snap_compare(app_for("storm"), press=["i"], terminal_size=(110, 30))


@pytest.mark.parametrize("size", [(80, 24), (160, 45)], ids=["80x24", "160x45"])
def test_key_detail(snap_compare, size: tuple[int, int]) -> None:
    assert snap_compare(app_for("peak"), press=["enter"], terminal_size=size)


@pytest.mark.parametrize("size", [(80, 24), (160, 45)], ids=["80x24", "160x45"])
def test_help(snap_compare, size: tuple[int, int]) -> None:
    """Help over the storm: every binding, in a box that fits (it scrolls at 80x24)."""
    assert snap_compare(app_for("peak"), press=["question_mark"], terminal_size=size)


@pytest.mark.parametrize("size", [(80, 24), (160, 45)], ids=["80x24", "160x45"])
def test_timeline_chart(snap_compare, size: tuple[int, int]) -> None:
    assert snap_compare(app_for("peak"), press=["g"], terminal_size=size)


def test_fallback_in_view(snap_compare) -> None:
    """`p` in the outage: the fallback is the provider in view, its keys in the keys table."""
    assert snap_compare(app_for("outage"), press=["p"], terminal_size=(130, 36))


def test_keys_sorted_by_429(snap_compare) -> None:
    """`o` to the 429 column at 80x24: its header marked, the keys most limited first."""
    assert snap_compare(app_for("storm"), press=["o", "o", "o"], terminal_size=(80, 24))
