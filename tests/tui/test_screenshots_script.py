"""The README's screenshot script still drives the real app (one short state, into a tmp dir)."""

from __future__ import annotations

import pytest

from pooltui.screenshots import _shoot

pytestmark = pytest.mark.asyncio


async def test_screenshot_script_writes_an_svg_of_the_live_demo(tmp_path) -> None:
    # waits for the outage's fallback itself: its 4 s default ran out on two cores loaded by other runs
    path = await _shoot(tmp_path, "outage", "outage", 1.0, until=lambda s: s.view()["fallback"] is not None,
                        until_within_s=40.0)
    svg = path.read_text()
    assert path.name == "outage.svg" and svg.startswith("<svg")
    assert "sim-anthropic" in svg and "main-1" in svg
