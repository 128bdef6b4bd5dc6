"""``python -m pooltui.bench events``: rows the events pane adds per 10 s during a demo scenario, one row per event
(as before) against repeats folded (now)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pooltui.core.events import Event
from pooltui.session.local import demo_session
from pooltui.session.story import EventStory


@dataclass(frozen=True)
class EventsResult:
    raw: list[int]  # events per 10 s
    rows: list[int]  # rows added per 10 s, repeats folded
    requests: int


async def _events_run(scenario: str, seconds: float, window_s: float) -> EventsResult:
    session = demo_session(scenario, seed=1, in_process=True)
    story = EventStory(window_s, max_rows=100_000)
    raw: list[float] = []
    rows: list[float] = []

    def seen(event: Event) -> None:
        raw.append(event.ts)
        if story.add(event)[1]:
            rows.append(event.ts)

    session.listeners.append(seen)
    await session.start()
    t0 = session.clock.now()
    try:
        await asyncio.sleep(seconds)
    finally:
        await session.stop()
    buckets = int(seconds // 10)

    def per_10s(times: list[float]) -> list[int]:
        return [sum(1 for t in times if t0 + 10 * i <= t < t0 + 10 * (i + 1)) for i in range(buckets)]

    requests = session.traffic.result.requests if session.traffic is not None else 0
    return EventsResult(per_10s(raw), per_10s(rows), requests)


def bench_events(scenario: str, seconds: float, window_s: float) -> EventsResult:
    result = asyncio.run(_events_run(scenario, seconds, window_s))
    print(f"events: `pooltui demo --scenario {scenario}` for {seconds:g} s, {result.requests} requests; "
          f"rows added to the events pane per 10 s")
    print(f"  one row per event (before)       {result.raw}")
    print(f"  repeats folded within {window_s:g} s (now) {result.rows}")
    return result
