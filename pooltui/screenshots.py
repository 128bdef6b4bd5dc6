"""Make the README's screenshots by driving the real monitor on the embedded simulator.

    python -m pooltui.screenshots [--out screenshots]

Each state runs `pooltui demo`'s session (simulator in a child process, real traffic through the
engine) for a few seconds, then saves an SVG of the screen.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from pooltui.session.local import demo_session
from pooltui.tui.app import PoolMonitorApp

SIZE = (130, 36)


async def _shoot(out: Path, name: str, scenario: str, seconds: float, keys: tuple[str, ...] = (),
                 rate: float | None = None, until=None, size: tuple[int, int] = SIZE) -> Path:
    session = demo_session(scenario, rate=rate, seed=7)
    app = PoolMonitorApp(session)
    async with app.run_test(size=size) as pilot:
        while not app.started:
            await asyncio.sleep(0.05)
        waited = 0.0
        while waited < seconds or (until is not None and not until(session) and waited < seconds * 4):
            await asyncio.sleep(0.25)
            waited += 0.25
        if until is not None and not until(session):
            raise RuntimeError(f"{name}: what the screenshot should show never happened in {seconds * 4:g} s")
        for key in keys:
            await pilot.press(key)
        await pilot.pause(0.5)
        path = Path(app.save_screenshot(f"{name}.svg", str(out)))
    print(f"wrote {path}")
    return path


async def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    await _shoot(out, "steady", "steady", 6.0)
    await _shoot(out, "storm", "peak-hour", 9.0)
    await _shoot(out, "revoked", "revoked-key", 3.0, ("down",),
                 until=lambda s: s.pool.key("beta").state.value == "invalid")
    await _shoot(out, "outage", "outage", 5.0, until=lambda s: s.view()["fallback"] is not None)
    await _shoot(out, "inspector", "peak-hour", 8.0, ("tab", "i"))
    await _shoot(out, "storm-80x24", "peak-hour", 9.0, size=(80, 24))
    await _shoot(out, "timeline", "peak-hour", 12.0, ("g",))
    await _shoot(out, "key-detail", "peak-hour", 9.0, ("enter",))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m pooltui.screenshots", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    asyncio.run(main(parser.parse_args().out))
