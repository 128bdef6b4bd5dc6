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
                 rate: float | None = None, until=None, size: tuple[int, int] = SIZE,
                 until_within_s: float | None = None) -> Path:
    """Run the state ``seconds``, then on until ``until(session)`` holds (at most ``until_within_s``, by default
    four times ``seconds``), and save its screen."""
    session = demo_session(scenario, rate=rate, seed=7)
    app = PoolMonitorApp(session)
    within_s = seconds * 4 if until_within_s is None else until_within_s
    async with app.run_test(size=size) as pilot:
        while not app.started:
            await asyncio.sleep(0.05)
        waited = 0.0
        while waited < seconds or (until is not None and not until(session) and waited < within_s):
            await asyncio.sleep(0.25)
            waited += 0.25
        if until is not None and not until(session):
            raise RuntimeError(f"{name}: what the screenshot should show never happened in {within_s:g} s")
        for key in keys:
            await pilot.press(key)
        await pilot.pause(0.5)
        path = Path(app.save_screenshot(f"{name}.svg", str(out)))
    print(f"wrote {path}")
    return path


def _hermes_home(folder: Path) -> Path:
    """A Hermes home as Hermes 0.19 writes it: three openai-api keys, one exhausted by a 429, one dead."""
    import json
    import time

    now = time.time()

    def entry(i: int, label: str, **status) -> dict:
        return {"id": f"{i:06x}", "label": label, "auth_type": "api_key", "priority": i, "source": "manual",
                "access_token": f"sk-proj-screenshot-{i:024d}", "base_url": "https://api.openai.com/v1",
                "request_count": [412, 388, 97][i], "last_status": None, "last_status_at": None,
                "last_error_code": None, "last_error_reason": None, "last_error_message": None,
                "last_error_reset_at": None, **status}

    pool = [entry(0, "team-a"),
            entry(1, "team-b", last_status="exhausted", last_status_at=now - 600, last_error_code=429,
                  last_error_reason="rate_limit_exceeded",
                  last_error_message="Rate limit reached for gpt-4o on requests per min (RPM)"),
            entry(2, "old-key", last_status="dead", last_status_at=now - 7200, last_error_code=401,
                  last_error_reason="invalid_api_key", last_error_message="Incorrect API key provided")]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "auth.json").write_text(json.dumps({"version": 1, "providers": {}, "credential_pool": {
        "openai-api": pool}}, indent=2))
    (folder / "config.yaml").write_text("credential_pool_strategies:\n  openai-api: fill_first\n")
    return folder


async def _shoot_hermes(out: Path) -> Path:
    import tempfile

    from pooltui.session.hermes_watch import HermesWatch
    from pooltui.tui.hermes_app import HermesApp

    with tempfile.TemporaryDirectory() as tmp:
        app = HermesApp(HermesWatch(_hermes_home(Path(tmp) / ".hermes"), read_only=True))
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.3)
            path = Path(app.save_screenshot("hermes-watch.svg", str(out)))
    print(f"wrote {path}")
    return path


async def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    await _shoot(out, "steady", "steady", 6.0)
    # peak-hour at 1.5x its keys' capacity (4 keys of 8 per 5 s: 6.4/s): callers queue for learned openings
    await _shoot(out, "storm", "peak-hour", 12.0, rate=9.6,
                 until=lambda s: ((s.view().get("wait") or {}).get("p95_s") or 0.0) >= 1.0)
    await _shoot(out, "revoked", "revoked-key", 3.0, ("down",),
                 until=lambda s: s.pool.key("beta").state.value == "invalid")
    await _shoot(out, "outage", "outage", 5.0, until=lambda s: s.view()["fallback"] is not None)
    await _shoot(out, "inspector", "peak-hour", 8.0, ("tab", "i"))
    await _shoot(out, "storm-80x24", "peak-hour", 9.0, size=(80, 24))
    await _shoot(out, "timeline", "peak-hour", 12.0, ("g",))
    await _shoot(out, "key-detail", "peak-hour", 9.0, ("enter",))
    await _shoot_hermes(out)
    await _shoot_lab(out)


async def _shoot_lab(out: Path) -> Path:
    """The strategy lab opened from the command palette, after a real comparison on peak-hour."""
    from pooltui.tui.lab_screen import LabScreen

    app = PoolMonitorApp(demo_session("peak-hour", seed=7, autostart=False))
    async with app.run_test(size=SIZE) as pilot:
        while not app.started:
            await asyncio.sleep(0.05)
        await pilot.press("ctrl+p")
        await pilot.press(*"Strategy lab: peak")
        await pilot.pause(0.5)
        await pilot.press("enter")
        for _ in range(1200):
            if isinstance(app.screen, LabScreen) and app.screen.results and not app.screen.running:
                break
            await asyncio.sleep(0.25)
        else:
            raise RuntimeError("lab: the comparison did not finish in 5 min")
        await pilot.pause(0.5)
        path = Path(app.save_screenshot("lab.svg", str(out)))
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m pooltui.screenshots", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    asyncio.run(main(parser.parse_args().out))
