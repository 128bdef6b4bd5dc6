"""More of the engine, value by value: reset hints in bodies, masks and redaction, prices, the event log,
pool order, per-model cooling of quota groups, the in-flight cap and budgets."""

from __future__ import annotations

import pytest

from pooltui.core import Classification, DeadlineSource, FakeClock, KeySpec, KeyState, Outcome, Pool
from pooltui.core.budget import Budget, Prices
from pooltui.core.events import Event, EventKind, EventLog
from pooltui.core.hints import Hint, best, body_hints, message_hints
from pooltui.core.masking import fingerprint, mask, redact, remember

NOW = 1_790_000_000.0


def test_body_fields_at_every_level() -> None:
    assert body_hints({"reset_at": NOW + 30}, NOW) == [Hint(30.0, False, "body.reset_at")]
    assert body_hints({"error": {"resets_at": (NOW + 40) * 1000}}, NOW) == [Hint(40.0, False, "error.resets_at")]
    assert body_hints({"error": [{"retry_until": str(NOW + 5)}]}, NOW) == [Hint(5.0, True, "error.retry_until")]
    assert body_hints({"error": {"metadata": {"reset_at": "2026-09-21T14:14:20Z"}}}, NOW) == [
        Hint(60.0, False, "error.metadata.reset_at")]
    meta = {"error": {"metadata": {"headers": {"X-RateLimit-Reset": str(int((NOW + 12) * 1000)),
                                               "Retry-After": "3"}}}}
    assert body_hints(meta, NOW) == [Hint(3.0, True, "error.metadata.headers.retry-after"),
                                     Hint(12.0, False, "error.metadata.headers.x-ratelimit-reset")]
    assert body_hints({"headers": {"retry-after": "3"}}, NOW) == []  # headers only under error.metadata
    assert body_hints({"reset_at": NOW - 5}, NOW) == [] and body_hints("x", NOW) == []


def test_google_details() -> None:
    body = {"error": {"details": [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17s"},
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "metadata": {"quotaResetDelay": "1h2m"}},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "bogus"}, "not a dict"]}}
    assert body_hints(body, NOW) == [Hint(17.0, True, "RetryInfo.retryDelay"), Hint(3720.0, False, "quotaResetDelay")]


def test_message_words_and_which_hint_wins() -> None:
    assert message_hints("Resets in 6hr 29min") == [Hint(23340.0, False, "message 'Resets in 6hr 29min'")]
    assert message_hints("please retry after 12 seconds") == [Hint(12.0, True, "message 'retry after 12 seconds'")]
    assert [h.seconds for h in message_hints("try again in 1m30s, or wait 120ms")] == [90.0, 0.12]
    assert message_hints("x" * 4001 + " try again in 5s") == [] and message_hints("") == []
    r1, r2, q1, q2 = Hint(9, True, "a"), Hint(4, True, "b"), Hint(60, False, "c"), Hint(90, False, "d")
    assert best([q1, r1, q2, r2]) is r2 and best([q1, q2]) is q2 and best([]) is None


def test_masks_fingerprints_and_redaction() -> None:
    assert mask("sk-ant-api03-abcdefghijkl-WXYZ") == "sk-ant-…WXYZ"
    assert mask("sk-proj-0123456789abcd") == "sk-proj-…abcd"
    assert mask("  gsk_0123456789abcdefgh  ") == "gsk_…efgh"
    assert mask("0123456789abcdef") == "…cdef"  # no known prefix: nothing of its start
    assert mask("short12") == "…12" and mask("abc") == "…"
    assert fingerprint(" sk-x ") == fingerprint("sk-x") and len(fingerprint("sk-x")) == 8
    assert redact("key sk-0123456789abcdefXYZ1 and gsk_0123456789abcdefWXYZ") == "key sk-…XYZ1 and gsk_…WXYZ"
    assert redact("AIza" + "a" * 20 + "LAST") == "AIza…LAST"
    assert redact("xai-0123456789abcdefLAST") == "…LAST"
    assert redact("sk-short") == "sk-short" and redact("") == "" and redact("no keys here") == "no keys here"


def test_prices() -> None:
    prices = Prices.from_dict({"claude-sonnet-4-5": {"input_per_mtok": 3, "output_per_mtok": 15},
                               "cheap": {"input_per_mtok": 0.5}})
    assert prices.per_model == {"claude-sonnet-4-5": (3.0, 15.0), "cheap": (0.5, 0.0)}
    assert prices.cost("claude-sonnet-4-5-20250929", 1_000_000, 100_000) == pytest.approx(4.5)
    assert prices.cost("cheap", 2_000_000, 5) == pytest.approx(1.0)
    assert prices.cost("unknown", 1, 1) is None and prices.cost(None, 1, 1) is None
    for bad, why in (([], "must be a table of models"), ({"m": 5}, "prices.m must be a table"),
                     ({"m": {"input_per_mtok": -1}}, "prices.m.input_per_mtok must be"),
                     ({"m": {"output_per_mtok": "x"}}, "prices.m.output_per_mtok must be")):
        with pytest.raises(ValueError, match=why):
            Prices.from_dict(bad)


@pytest.mark.wording
def test_the_event_log_scrubs_counts_bounds_and_survives_its_listeners() -> None:
    remember("sk-log-0123456789abcdef01")
    log = EventLog(maxlen=3)
    seen: list[Event] = []
    log.subscribe(lambda e: 1 / 0)  # a broken listener does not stop the others
    unsubscribe = log.subscribe(seen.append)
    for i in range(5):
        log.emit(Event(float(i), "p", "k", EventKind.STATE, None, f"echo sk-log-0123456789abcdef01 {i}", "act"))
    assert log.total == 5 and [e.ts for e in log.recent()] == [2.0, 3.0, 4.0] and len(seen) == 5
    assert all("0123456789abcdef" not in e.reason for e in seen) and seen[0].reason.endswith(" 0")
    assert [e.ts for e in log.recent(2)] == [3.0, 4.0] and [e.ts for e in log] == [2.0, 3.0, 4.0]
    plain = Event(9.0, "p", None, EventKind.STATE, None, "plain", "act")
    unsubscribe()
    log.emit(plain)
    assert len(seen) == 5 and log.recent(1)[0] is plain  # unchanged text: the same event object


def pool(n: int = 3, groups=None, **kw) -> Pool:
    groups = groups or [None] * n
    return Pool("p", [KeySpec(f"k{i}", f"sk-test-{i:030d}", groups[i]) for i in range(n)], "round-robin",
                clock=FakeClock(NOW), **kw)


def test_order_changes_keep_the_rotation_going() -> None:
    p = pool(4)
    assert p.pick().label == "k0"
    p.set_order(["k3", "k0", "k1", "k2"])
    assert [k.label for k in p.keys] == ["k3", "k0", "k1", "k2"] and [k.pos for k in p.keys] == [0, 1, 2, 3]
    assert p.pick().label == "k1"  # after k0, wherever it now stands
    p.move("k2", -10)
    assert [k.label for k in p.keys] == ["k2", "k3", "k0", "k1"]
    p.move("k2", 1)
    assert [k.label for k in p.keys] == ["k3", "k2", "k0", "k1"]
    with pytest.raises(ValueError, match="every key of the pool exactly once"):
        p.set_order(["k0", "k1", "k2"])
    with pytest.raises(ValueError):
        p.set_order(["k0", "k0", "k1", "k2"])
    p.add_key(KeySpec("k4", "sk-test-" + "4" * 30))
    assert p.keys[-1].label == "k4" and p.keys[-1].pos == 4 and p.usable() == 5


@pytest.mark.wording
def test_a_quota_group_cools_together_for_one_model() -> None:
    p = pool(3, ["g", "g", None])
    for model in ("a", "b"):
        k = p.pick(model=model)
        p.report(k, Classification(Outcome.OK, 200), model=model)
    k0 = p.key("k0")
    k0.inflight += 1
    p.report(k0, Classification(Outcome.RATE_LIMITED, 429, "slow", 4.0, DeadlineSource.RETRY_AFTER), model="a")
    e = p.events.recent()[-1]
    assert (e.kind, e.key, e.status, e.action) == (EventKind.RATE_LIMITED, "k0", 429,
                                                   "cooled 4.0 s for a (retry-after); other models still use it")
    assert p.model_cooldowns(p.key("k1")) == {"a": NOW + 4} and p.model_cooldowns(p.key("k2")) == {}
    k2 = p.key("k2")
    k2.inflight += 1
    p.report(k2, Classification(Outcome.RATE_LIMITED, 429, "slow"), model="b")
    assert k2.strikes == 1 and p.model_cooldowns(k2) == {"b": NOW + 30}
    assert "(default)" in p.events.recent()[-1].action


def test_the_inflight_cap_spills_in_pool_order_and_says_so() -> None:
    from pooltui.core.trace import RequestTrace

    p = pool(3, max_inflight=2)
    p.strategy = "failover"
    p.key("k0").inflight = 2
    p.key("k1").inflight = 1
    p.key("k1").streams = 1
    trace = RequestTrace(1, NOW, "failover")
    assert p.pick(trace).label == "k2"
    spill = next(s for s in trace.steps if s.kind == "spill")
    assert (spill.key, spill.detail["reason"]) == ("k2", "k0 has 2 in flight (soft cap 2)")


@pytest.mark.wording
def test_a_budget_parks_the_key_until_the_period_ends() -> None:
    p = pool(2)
    p.set_budget("k0", Budget(cost_day=1.0))
    k0 = p.key("k0")
    p.pick()
    p.report(k0, Classification(Outcome.OK, 200), tokens_in=10, cost=0.6, request_id=3)
    assert k0.state is KeyState.OK and k0.spend.cost_day == pytest.approx(0.6)
    p.pick()
    p.pick()
    p.report(k0, Classification(Outcome.OK, 200), tokens_in=10, cost=0.5, request_id=4)
    e = p.events.recent()[-1]
    assert (k0.state, k0.source, k0.reason) == (KeyState.EXHAUSTED, DeadlineSource.BUDGET, "budget: daily cost budget "
                                                "reached")
    assert (e.kind, e.request_id, e.action) == (EventKind.QUOTA, 4, "parked until 2026-09-22 00:00:00 UTC")
    p.set_budget("k1", Budget())  # nothing set: no budget
    assert p.key("k1").budget is None and p.key("k1").spend is None


def test_a_body_with_broken_utf8_is_still_read() -> None:
    from pooltui.core.classify import parse_body

    assert parse_body(b'{"error": {"message": "bad \xff byte"}}') == {"error": {"message": "bad \ufffd byte"}}
    assert parse_body(bytearray(b'[1]')) == [1] and parse_body(memoryview(b'{"a": 1}')) == {"a": 1}
    assert parse_body("  ") is None and parse_body("plain text") is None and parse_body({"a": 1}) == {"a": 1}
    assert parse_body("[" * 100_000) is None  # too deep: not JSON we read
    assert parse_body(" " + "{" + '"a":' + "1" * 1_000_000 + "}") is None  # too large


def test_every_counter_of_a_key_is_in_its_counts() -> None:
    from pooltui.core.stats import KeyStats

    s = KeyStats()
    for n, name in enumerate(("requests", "ok", "rate_limited", "invalid", "forbidden", "quota", "server_errors",
                              "transport", "request_errors", "tokens_in", "tokens_out"), start=1):
        setattr(s, name, n)
    s.cost = 0.1234567
    assert s.as_dict() == {"requests": 1, "ok": 2, "rate_limited": 3, "invalid": 4, "forbidden": 5, "quota": 6,
                           "server_errors": 7, "transport": 8, "request_errors": 9, "tokens_in": 10,
                           "tokens_out": 11, "cost": 0.123457}


def test_a_keyless_entry_and_a_fresh_key() -> None:
    p = Pool("local", [KeySpec("none", "")], clock=FakeClock(NOW))
    k = p.key("none")
    assert (k.masked, k.fingerprint, k.secret, k.pos, k.state, k.inflight, k.probe) == ("(none)", "", "", 0,
                                                                                          KeyState.OK, 0, 0)
    assert repr(k) == "PoolKey('none', (none), ok)"


def test_a_long_exclusion_list_says_how_many_more() -> None:
    from pooltui.core.trace import RequestTrace, format_trace

    p = Pool("p", [KeySpec(f"k{i:02d}", f"sk-test-{i:030d}") for i in range(20)], "failover", clock=FakeClock(NOW))
    for i in range(20):
        p.disable(f"k{i:02d}", until=NOW + i + 1)
    trace = RequestTrace(1, NOW - 0.5, "failover")
    assert p.pick(trace) is None
    line = format_trace(trace).splitlines()[1]
    assert line.startswith("  +  500.0ms pick [p] nothing: no key available; "
                           "excluded: k00 disabled 1s, k01 disabled 2s")
    assert line.endswith("k15 disabled 16s, +4 more")
