"""Typed events (issue 25, item 1): every state change says what it changed in ``Event.change``; the reason and
action are words for people, which :func:`reworded` changes without changing anything else. Kept as it is by
the history (an older database included) and the state views."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from pooltui.core import Classification, DeadlineSource, FakeClock, KeySpec, Outcome, Pool
from pooltui.core.events import TIMER_ENDED, Event, EventKind, StateChange, reworded
from pooltui.core.headers import RateLimits
from pooltui.session.views import event_dict, event_from
from pooltui.store.history import History
from tests.conftest import backwards

C = StateChange
T0 = 1_790_000_000.0
SECRET = "sk-test-typed-000000000000000000000001"


def make(n: int = 3) -> Pool:
    return Pool("p", [KeySpec(f"k{i}", f"sk-test-typed-{i:024d}") for i in range(n)], "failover",
                clock=FakeClock(T0))


def send(p: Pool, label: str, result: Classification, **kw) -> None:
    key = p.key(label)
    key.inflight += 1
    p.report(key, result, **kw)


def rl(retry: float) -> Classification:
    return Classification(Outcome.RATE_LIMITED, 429, "slow down", retry, DeadlineSource.RETRY_AFTER)


def changes(p: Pool) -> list[tuple[str | None, StateChange | None]]:
    return [(e.key, e.change) for e in p.events.recent()]


def test_each_change_of_a_keys_state_says_what_it_changed() -> None:
    p = make()
    send(p, "k0", rl(5.0))
    send(p, "k0", rl(9.0))  # longer: the cooldown is extended
    send(p, "k0", rl(1.0))  # shorter: nothing changes
    send(p, "k1", Classification(Outcome.QUOTA, 402, "no credits"))
    send(p, "k2", Classification(Outcome.INVALID, 401, "bad key"))
    p.clock.advance(10)  # type: ignore[attr-defined]
    p.pick()  # k0's cooldown has run out
    p.disable("k0", until=T0 + 20)
    p.clock.advance(11)  # type: ignore[attr-defined]
    p.pick()  # the timed disable has run out
    p.disable("k0")
    p.enable("k0")
    p.reset("k1")
    p.mark_verified("k2", Classification(Outcome.OK, 200))
    assert changes(p) == [("k0", C.COOLED), ("k0", C.COOLED), ("k0", None), ("k1", C.PARKED), ("k2", C.BARRED),
                          ("k0", C.RECOVERED), ("k0", C.DISABLED), ("k0", C.RELEASED), ("k0", C.DISABLED),
                          ("k0", C.ENABLED), ("k1", C.RESET), ("k2", C.VERIFIED)]
    assert {e.change for e in p.events.recent()} & TIMER_ENDED == {C.RECOVERED, C.RELEASED}


def test_a_cooldown_for_one_model_and_a_spent_budget_say_so() -> None:
    p = make(2)
    spent = RateLimits(requests_remaining=0, requests_limit=10, requests_reset_s=6.0)
    send(p, "k0", Classification(Outcome.OK, 200, limits=spent))
    for model in ("m", "n"):  # two models: headers speak of one model each
        p.report(p.pick(model=model), Classification(Outcome.OK, 200), model=model)
    p.report(p.pick(model="m"), Classification(Outcome.OK, 200, limits=spent), model="m")
    assert [(e.kind, e.change) for e in p.events.recent()] == [(EventKind.STATE, C.COOLED),
                                                             (EventKind.STATE, C.MODEL_COOLED)]


def test_events_that_change_nothing_carry_no_change() -> None:
    p = make()
    send(p, "k0", Classification(Outcome.TRANSIENT, 503, "overloaded"))
    p.report_transport(p.key("k1"), "ConnectError")
    assert [(e.kind, e.change) for e in p.events.recent()] == [(EventKind.SERVER_ERROR, None),
                                                             (EventKind.TRANSPORT, None)]


@pytest.mark.wording
def test_reworded_changes_every_word_and_nothing_else_and_never_shows_a_secret() -> None:
    p = make()
    with reworded(backwards):
        send(p, "k0", Classification(Outcome.INVALID, 401, f"bad key {SECRET}"))
    send(p, "k1", Classification(Outcome.INVALID, 401, "bad key"))
    said, plain = p.events.recent()
    assert (said.reason.split()[:2], said.action) == (["dab", "yek"], "dekram dilavni")
    assert SECRET not in said.reason and SECRET[::-1] not in said.reason
    assert (said.kind, said.status, said.change) == (plain.kind, plain.status, plain.change) == (
        EventKind.INVALID, 401, C.BARRED)
    assert plain.action == "marked invalid"  # outside the block the words are the engine's own


def test_the_history_keeps_the_change_and_reads_an_older_database(tmp_path: Path) -> None:
    path, now = tmp_path / "h.db", time.time()
    old = sqlite3.connect(path)  # the events table as it was before the change column
    old.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, ts REAL NOT NULL, provider TEXT NOT NULL, key TEXT,"
                " kind TEXT NOT NULL, status INTEGER, reason TEXT, action TEXT, request_id INTEGER)")
    old.execute("INSERT INTO events (ts, provider, key, kind, status, reason, action) VALUES (?,?,?,?,?,?,?)",
                (now - 60, "p", "k0", "invalid", 401, "bad key", "marked invalid"))
    old.commit()
    old.close()
    history = History(path)
    history.add_events([Event(now, "p", "k1", EventKind.STATE, None, "egnahc", "sdrow", change=C.RECOVERED)])
    rows = history.events(now - 3600)
    assert [(r["key"], r["change"]) for r in rows] == [("k0", None), ("k1", "recovered")]
    assert [event_from(r).change for r in rows] == [None, C.RECOVERED]
    history.close()


def test_the_state_views_keep_the_change_and_ignore_one_they_do_not_know() -> None:
    event = Event(T0, "p", None, EventKind.STATE, None, "any words", "at all", 7, C.OUTAGE_OPENED)
    assert event_from(event_dict(event, 3)) == event
    assert event_from({**event_dict(event, 3), "change": "from_a_newer_version"}).change is None
