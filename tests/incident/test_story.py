"""The events pane's story: repeats fold into one counting row; changes stay rows (issue 8, item 1)."""

from __future__ import annotations

from pooltui.core.events import Event, EventKind, StateChange
from pooltui.session.story import EventStory

K, C = EventKind, StateChange


def ev(ts: float, key: str | None, kind: EventKind, status: int | None = None, reason: str = "", action: str = "",
       provider: str = "p", change: StateChange | None = None) -> Event:
    return Event(ts, provider, key, kind, status, reason, action, change=change)


def limited(ts: float, key: str = "primary", wait: float = 2.1) -> Event:
    return ev(ts, key, K.RATE_LIMITED, 429, f"Rate limit reached: try again in {wait}s",
              f"cooled {wait} s (retry-after)", change=C.COOLED)


def back(ts: float, key: str = "primary") -> Event:
    return ev(ts, key, K.STATE, None, "cooling over", "back in rotation", change=C.RECOVERED)


def test_a_storm_on_one_key_is_one_row_with_a_count_and_span() -> None:
    story = EventStory(window_s=10)
    results = [story.add(limited(t * 0.7, wait=1 + t / 10)) for t in range(14)]
    assert [new for _, new in results] == [True] + [False] * 13
    (row,) = story.rows.values()
    assert (row.count, round(row.span_s, 1), row.summary()) == (14, 9.1, "×14 in 9.1 s")
    assert row.text() == "primary · 429 ×14 in 9.1 s · cooled 2.3 s (retry-after)"


def test_recoveries_fold_into_the_keys_cycle_but_not_into_a_count() -> None:
    story = EventStory(window_s=10)
    story.add(limited(0.0))
    row, new = story.add(back(2.2))
    assert not new and row.count == 1 and row.latest.action == "back in rotation"
    story.add(limited(3.0))
    assert row.count == 2 and row.text().endswith("cooled 2.1 s (retry-after)")
    alone, new = story.add(back(40.0))  # nothing open for this key: a change of its own
    assert new and alone is not row


def test_the_window_closes_a_run() -> None:
    story = EventStory(window_s=10)
    story.add(limited(0.0))
    _, new = story.add(limited(10.0))
    assert not new
    _, new = story.add(limited(20.5))
    assert new and len(story.rows) == 2


def test_keys_kinds_and_reasons_make_separate_rows() -> None:
    story = EventStory()
    created = [story.add(e)[1] for e in (
        limited(0, "a"), limited(0.1, "b"), ev(0.2, "a", K.SERVER_ERROR, 503, "overloaded"),
        ev(0.3, "a", K.SERVER_ERROR, 503, "overloaded"), ev(0.4, "a", K.SERVER_ERROR, 502, "bad gateway"),
        ev(0.5, "a", K.TRANSPORT, None, "ConnectError: refused 1"), ev(0.6, "a", K.TRANSPORT, None,
                                                                       "ConnectError: refused 2"),
    )]
    assert created == [True, True, True, False, True, True, False]


def test_state_changes_always_stand_alone() -> None:
    story = EventStory()
    changes = [ev(0, "a", K.INVALID, 401, "bad key", "marked invalid", change=C.BARRED),
               ev(0.1, "a", K.INVALID, 401, "bad key", "marked invalid", change=C.BARRED),
               ev(0.2, "b", K.QUOTA, 402, "no credits", "parked until re-verified", change=C.PARKED),
               ev(0.3, None, K.STATE, None, "6 transient failures in 5 s", "outage suspected: fallbacks first",
                  change=C.OUTAGE_OPENED),
               ev(0.4, None, K.STATE, 200, "provider answered 200", "outage over: back to this provider",
                  change=C.OUTAGE_CLOSED),
               ev(0.5, "c", K.STATE, None, "disabled by hand", "disabled", change=C.DISABLED)]
    assert all(story.add(e)[1] for e in changes) and len(story.rows) == 6


def test_rotations_and_fallbacks_count_per_provider() -> None:
    story = EventStory()
    for i, (a, b) in enumerate([("k0", "k1"), ("k1", "k2"), ("k2", "k0")]):
        story.add(ev(i * 0.1, b, K.ROTATED, 429, f"{a} answered 429", f"rotated {a} -> {b}"))
    for i in range(5):
        story.add(ev(1 + i * 0.1, None, K.FALLBACK, 503, "p: failing", "fell back to q"))
    rotated, fallback = story.rows.values()
    assert (rotated.who, rotated.count, rotated.latest.action) == ("p", 3, "rotated k2 -> k0")
    assert (fallback.who, fallback.count) == ("p", 5)


def test_old_rows_go_and_their_runs_close() -> None:
    story = EventStory(max_rows=3)
    for i, key in enumerate("abcd"):
        story.add(limited(i * 0.1, key))
    assert [r.first.key for r in story.rows.values()] == ["b", "c", "d"]
    _, new = story.add(limited(0.5, "a"))
    assert new and len(story.rows) == 3


def test_search_looks_at_every_field() -> None:
    story = EventStory()
    row, _ = story.add(limited(0, "primary"))
    story.add(back(1, "primary"))
    assert all(row.matches(t) for t in ("PRIMARY", "429", "try again", "back in rotation", "rate_limited", "p "))
    assert not row.matches("secondary")


def test_a_keys_per_model_cooldowns_before_a_429_fold_into_one_row_per_key() -> None:
    """mixed-models: one model of a key cools a few tenths of a second after nearly every success while the key
    serves the other model: not a change of the key's state, so one counting row per key, not rows a second
    (issue 22, item 5). The key cooling as a whole stays a row of its own."""
    story = EventStory(window_s=10)

    def model_spent(ts: float, key: str, wait: float) -> Event:
        return ev(ts, key, K.STATE, 200, "gpt-sim-busy: budget spent (remaining 0)",
                  f"cooled {wait:.1f} s for gpt-sim-busy before a 429 (reset-header)", change=C.MODEL_COOLED)

    for i in range(24):
        story.add(model_spent(i * 0.25, ("primary", "secondary", "tertiary")[i % 3], 0.1 + (i % 4) / 10))
    assert len(story.rows) == 3 and {row.count for row in story.rows.values()} == {8}
    _, new = story.add(ev(6.5, "primary", K.STATE, 200, "budget spent (remaining 0)",
                          "cooled 4.0 s before a 429 (reset-header)", change=C.COOLED))
    assert new
