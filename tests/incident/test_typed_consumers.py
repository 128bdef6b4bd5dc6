"""The story, the alerts and the key detail decide by an event's kind and change, never by its words (issue 25,
item 1): the same facts in other words get the same treatment; the old words without the change do not."""

from __future__ import annotations

import pytest

from pooltui.core import Classification, DeadlineSource, FakeClock, KeySpec, Outcome, Pool
from pooltui.core.events import Event, EventKind, StateChange, reworded
from pooltui.session.story import EventStory, is_change, is_model_cooldown, is_recovery
from pooltui.tui.screens import key_detail
from tests.conftest import backwards
from tests.tui import scripted

K, C = EventKind, StateChange
T0 = 1_790_000_000.0


def test_a_keys_rate_limit_cycle_folds_into_one_row_whatever_its_words() -> None:
    """A real pool's 429, the cooldown running out, a 429 again: one row, in any words."""
    clock = FakeClock(T0)
    pool = Pool("p", [KeySpec("k0", "sk-test-typed-000000000000000000000001")], clock=clock)
    story = EventStory(window_s=10)
    pool.events.subscribe(story.add)
    limited = Classification(Outcome.RATE_LIMITED, 429, "slow down", 1.0, DeadlineSource.RETRY_AFTER)
    with reworded(backwards):
        for _ in range(3):
            key = pool.pick()
            pool.report(key, limited)
            clock.advance(1.5)  # the cooldown runs out at the next pick
    assert [e.change for e in pool.events.recent()] == [C.COOLED, C.RECOVERED] * 2 + [C.COOLED]
    assert pool.events.recent()[1].reason == "gnilooc revo"
    (row,) = story.rows.values()
    assert row.count == 3  # the 429s; the recoveries between them fold in


def test_the_story_reads_the_change_not_the_reason() -> None:
    back = Event(T0, "p", "k0", K.STATE, None, "fini", "encore", change=C.RECOVERED)
    old_words = Event(T0, "p", "k0", K.STATE, None, "cooling over", "back in rotation")
    assert is_recovery(back) and not is_recovery(old_words)
    model = Event(T0, "p", "k0", K.STATE, 200, "m: plus rien", "m attend", change=C.MODEL_COOLED)
    old_model = Event(T0, "p", "k0", K.STATE, 200, "m: budget spent (remaining 0)",
                      "cooled 2.0 s for m before a 429 (reset-header)")
    assert is_model_cooldown(model) and not is_change(model)
    assert not is_model_cooldown(old_model) and is_change(old_model)


@pytest.mark.parametrize("change, shown", [(C.COOLED, True), (C.MODEL_COOLED, True), (None, False)])
def test_the_key_detail_timeline_shows_a_429_that_cooled_the_key(change, shown) -> None:
    session = scripted.steady()
    snap = next(k for k in session.view()["keys"] if k["label"] == "primary")
    event = Event(T0, "p", "primary", K.RATE_LIMITED, 429, "slow", "abgekühlt" if change else "cooled",
                  change=change)
    text = str(key_detail(snap, [event], T0))
    timeline = text.split("state timeline")[1].split("last errors")[0]
    assert ("rate_limited" in timeline) is shown
