"""Picks paced by a learnt limit (issue 12, step 2): a key whose learnt window is full rests until it has
room instead of collecting a 429; when every key is full the pool says when the first opens; successes
that state the budget switch learning off for that key (headers win)."""

from __future__ import annotations

import pytest

from pooltui.core import Classification, DeadlineSource, KeySpec, KeyState, Outcome, Pool
from pooltui.core.clock import FakeClock
from pooltui.core.headers import RateLimits
from pooltui.core.learned import MARGIN
from tests.core.test_learned_limit import SlidingKey

OK = Classification(Outcome.OK, 200)


def limited(retry: float) -> Classification:
    return Classification(Outcome.RATE_LIMITED, 429, "slow down", retry, DeadlineSource.RETRY_AFTER)


def run(pool: Pool, keys: dict[str, SlidingKey], clock: FakeClock, seconds: float, every_s: float = 0.05) -> dict:
    """A request every ``every_s`` through the pool; counts what the provider saw."""
    seen = {"ok": 0, "429": 0, "none": 0}
    end = clock.now() + seconds
    while clock.now() < end:
        key = pool.pick()
        if key is None:
            seen["none"] += 1
        else:
            retry = keys[key.label].send(clock.now())
            pool.report(key, OK if retry is None else limited(retry))
            seen["ok" if retry is None else "429"] += 1
        clock.advance(every_s)
    return seen


def test_learning_paces_the_keys_and_stops_the_429s() -> None:
    results = {}
    for learn in (False, True):
        clock = FakeClock()
        pool = Pool("p", [KeySpec(f"k{i}", f"sk-test-pace-{i:020d}") for i in range(2)], "round-robin",
                    clock=clock, learn=learn)
        keys = {f"k{i}": SlidingKey(8, 5.0) for i in range(2)}
        results[learn] = run(pool, keys, clock, 60.0)
    off, on = results[False], results[True]
    print(f"\n60 s at 20 requests/s on 2 keys of 8 per 5 s: learning off {off}, on {on}")
    assert on["429"] <= 4 and on["429"] * 5 <= off["429"]  # one or two to learn each key, then paced
    assert on["ok"] >= off["ok"] * 0.9  # and it serves about as many


def test_when_every_key_is_full_the_pool_says_when_the_first_opens() -> None:
    clock = FakeClock()
    pool = Pool("p", [KeySpec("k0", "sk-test-pace-00000000000000000001")], clock=clock, learn=True)
    provider = SlidingKey(3, 10.0, whole_seconds=False)
    run(pool, {"k0": provider}, clock, 2.0)  # learns 3 per 10 s from its first 429
    assert pool.key("k0").learned.limit == 3
    clock.advance(10.0)
    for _ in range(3):
        key = pool.pick()
        assert key is not None
        assert provider.send(clock.now()) is None
        pool.report(key, OK)
        clock.advance(1.0)
    assert pool.pick() is None  # full: no request goes out to collect a 429
    k0 = pool.key("k0")
    assert k0.state is KeyState.COOLING and k0.source is DeadlineSource.LEARNED
    assert "learned limit 3 per 10.0 s reached" in k0.reason
    opens = 7.0 + 10.0 * MARGIN  # the first of the three leaves the window, and a margin for the provider's clock
    assert abs(pool.next_ready_in() - opens) < 0.01
    before = pool.events.total
    clock.advance(opens + 0.01)
    assert pool.pick() is k0 and provider.send(clock.now()) is None
    assert pool.events.total == before  # pacing ends quietly: no "back in rotation" every few seconds


def test_successes_that_state_the_budget_switch_learning_off() -> None:
    clock = FakeClock()
    pool = Pool("p", [KeySpec("k0", "sk-test-pace-00000000000000000002")], clock=clock, learn=True)
    run(pool, {"k0": SlidingKey(2, 5.0)}, clock, 1.0)
    assert pool.key("k0").learned.limit == 2
    clock.advance(10.0)
    key = pool.pick()
    stated = Classification(Outcome.OK, 200, limits=RateLimits(requests_limit=2, requests_remaining=1))
    pool.report(key, stated)
    assert pool.key("k0").learned is None  # the headers say it: no guess


def test_pools_learn_by_default_and_one_that_does_not_never_holds_a_key_back() -> None:
    assert Pool("p", [KeySpec("k0", "sk-test-pace-00000000000000000004")]).learn is True
    clock = FakeClock()
    pool = Pool("p", [KeySpec("k0", "sk-test-pace-00000000000000000003")], clock=clock, learn=False)
    seen = run(pool, {"k0": SlidingKey(2, 5.0)}, clock, 20.0)
    assert pool.key("k0").learned is None and seen["429"] >= 3
    assert not any("learned" in e.reason for e in pool.events.recent())


def test_through_the_client_peak_hour_sends_few_429s_when_learning() -> None:
    """The real client against the simulator's peak-hour (no rate-limit headers on successes) at the scenario's own
    concurrency (16 callers at once, 1.5x the keys' capacity): with learning the 429s stop after a few per key,
    without it they run on; as many served either way. In simulated time (the lab's runner, an in-process
    simulator on a fast-forwarded loop): 10 s of traffic in well under a second. One request at a time (what this test
    sent before) gave the same figures with learning off: sequential callers never outrun a window."""
    from pooltui.bench.learned import capacity
    from pooltui.session.lab import run_strategy
    from pooltui.session.simtime import run_simulated
    from pooltui.session.workload import seeded_workload
    from pooltui.sim.scenario import load_scenario

    sc = load_scenario("peak-hour")
    rate = capacity(sc) * 1.5
    arrivals = seeded_workload(sc, requests=int(rate * 10), rate=rate, seed=sc.seed)
    off, on = (run_simulated(run_strategy(sc, "round-robin", arrivals, concurrency=sc.traffic.concurrency, seed=1,
                                          learn=learn)) for learn in (False, True))
    print(f"\n{len(arrivals)} requests at {rate:g}/s, 16 at once: without learning {off.succeeded} served "
          f"({off.limited} 429s), with {on.succeeded} ({on.limited} 429s)")
    assert on.limited <= 3 * len(sc.primary.keys) and on.limited * 5 <= off.limited, (on.limited, off.limited)
    assert on.succeeded >= off.succeeded * 0.95


def test_limits_per_model_are_learnt_per_model_and_the_light_model_never_waits_for_the_busy_one() -> None:
    """A provider that limits each key per model (4 per 5 s for each): the busy model is paced on each key by
    its own estimate, the light one goes through the same keys untouched, and the key as a whole is not held."""
    results = {}
    for learn in (False, True):
        clock = FakeClock()
        pool = Pool("p", [KeySpec(f"k{i}", f"sk-test-model-{i:020d}") for i in range(2)], "round-robin",
                    clock=clock, learn=learn)
        limits = {(f"k{i}", m): SlidingKey(4, 5.0) for i in range(2) for m in ("busy", "light")}
        seen = {"busy": 0, "light": 0, "429": 0, "light_none": 0}
        t0 = clock.now()
        step = 0
        while clock.now() < t0 + 60.0:
            model = "light" if step % 10 == 0 else "busy"  # busy 9 per s, light 1 per s
            key = pool.pick(model=model)
            if key is None:
                seen["light_none"] += model == "light"
            else:
                retry = limits[(key.label, model)].send(clock.now())
                pool.report(key, OK if retry is None else limited(retry), model=model)
                if retry is None:
                    seen[model] += 1
                else:
                    seen["429"] += 1
            clock.advance(0.1)
            step += 1
        results[learn] = (seen, pool)
    (off, _), (on, pool) = results[False], results[True]
    print(f"\nper model, 60 s, busy 9/s light 1/s on 2 keys of 4 per 5 s per model: off {off}, on {on}")
    for key in pool.keys:
        busy = key.learned_models["busy"]
        assert busy.limit == 4 and 5.0 <= busy.window_s <= 6.0  # retry-after in whole seconds: up to 1 s long
        assert key.learned is None or key.learned.limit is None  # the key as a whole is not what is limited
        assert key.state is KeyState.OK or key.source is not DeadlineSource.LEARNED
    assert on["light"] >= 58 and on["light_none"] == 0  # never held back by the busy model's pacing
    assert on["busy"] >= off["busy"] - 4
    assert on["429"] <= 6 and on["429"] * 5 <= off["429"], (on, off)
    snap = pool.snapshot()[0]
    assert snap["learned_models"]["busy"]["limit"] == 4 and snap["learned"] is None


def test_turning_learning_off_forgets_the_estimates_and_ends_their_rests() -> None:
    clock = FakeClock()
    pool = Pool("p", [KeySpec("k0", "sk-test-pace-00000000000000000005")], clock=clock)
    run(pool, {"k0": SlidingKey(2, 5.0)}, clock, 1.0)
    clock.advance(10.0)
    for _ in range(2):
        pool.report(pool.pick(), OK)
    assert pool.pick() is None and pool.key("k0").source is DeadlineSource.LEARNED
    pool.set_learning(False)
    k0 = pool.key("k0")
    assert k0.state is KeyState.OK and k0.learned is None and pool.pick() is k0


def test_a_request_that_waits_for_a_learned_opening_says_so_in_its_trace() -> None:
    """The inspector shows a request's trace: it must tell a learnt opening from a provider's reset."""
    from pooltui.core.trace import RequestTrace, format_trace

    clock = FakeClock()
    pool = Pool("p", [KeySpec("k0", "sk-test-pace-00000000000000000006")], clock=clock)
    provider = SlidingKey(3, 10.0, whole_seconds=False)
    run(pool, {"k0": provider}, clock, 2.0)  # learns 3 per 10 s from its first 429
    clock.advance(10.0)
    for _ in range(3):
        pool.report(pool.pick(), OK if provider.send(clock.now()) is None else limited(1.0))
        clock.advance(1.0)
    assert pool.pick() is None
    reason, learned = pool.wait_reason()
    assert learned and reason.startswith("a learned opening: k0 has room in ")
    assert "(learned limit 3 per 10.0 s)" in reason and "1 key cooling (1 at a learned limit)" in reason
    trace = RequestTrace(1, clock.now(), "round-robin")
    clock.advance(pool.next_ready_in() + 0.01)
    assert pool.pick(trace) is not None
    trace.add(clock.now(), "wait", "p", seconds=1.5, reason=reason, learned=True)
    text = format_trace(trace)
    assert "pick [p] k0  from 1 available (learned limit 3 per 10.0 s, 3 in the window)" in text
    assert "wait 1.50s [p] for a learned opening: k0 has room in" in text
    pool.report(pool.key("k0"), limited(30.0))  # a provider's own retry-after: not a learnt opening
    assert pool.wait_reason() == (pool.summary(), False)


def test_a_request_written_after_its_pick_holds_its_slot_from_its_write() -> None:
    """Regression: the provider counts a request from its arrival; on a new connection the connect (a TLS
    handshake over the internet: 50-300 ms) comes between the pick and the write, longer than the margin the
    pacing adds (40 ms here). Counted from its pick, the first requests' slots freed while the provider still
    counted them, and a caller then got a 429 (at 2.040 s here). The client tells the pool when it wrote
    (``written_s``): the slots are held the window and its margin after the write."""
    clock = FakeClock(0.0)
    pool = Pool("p", [KeySpec("k0", "sk-test-pace-00000000000000000005")], clock=clock, learn=True)
    assert pool.restore_learned("k0", "", 4, 2.0)  # a key of 4 per 2 s, known from an earlier run
    est = pool.key("k0").learned
    provider = SlidingKey(4, 2.0, whole_seconds=False)
    connect, answer = 0.06, 0.005  # first requests wait for their connections; answers come back in 5 ms
    assert connect > est.margin_s
    picks = []
    for t in (0.0, 0.01, 0.02, 0.03):  # four callers at once, each on a new connection
        clock.t = t
        key = pool.pick()
        assert key is not None
        picks.append((key, t))
    for key, t in picks:  # (all picked before any is written)
        assert provider.send(t + connect) is None  # the provider counts it from here
        clock.t = t + connect + answer
        pool.report(key, OK, connect + answer, written_s=connect)
    sent, t = 0, 0.1
    while t < 4.5:  # then a caller every 0.7 ms on the kept connections (written at once, answered at once)
        clock.t = t
        key = pool.pick()
        if key is not None:
            retry = provider.send(t)
            assert retry is None, f"a 429 at {t:.3f} s"
            pool.report(key, OK, 0.0)
            sent += 1
        t += 0.0007
    assert sent == 4 + 4  # the window's four, each the window and its margin after the write of the one it replaces
    assert est.accepted[:4] == pytest.approx([0.06, 0.07, 0.08, 0.09])  # their sends, not their picks
    assert est.accepted[4] == pytest.approx(0.06 + 2.0 + est.margin_s, abs=0.0008)


def test_a_429_to_a_request_written_after_its_pick_is_fitted_from_its_write() -> None:
    """Regression: a 429's retry-after counts from the request's arrival. Fitted from its pick, 60 ms before its
    write on a new connection, the window learnt was 60 ms short (1.94 s for 2 s): the pacing then let requests go
    before the provider's window had room."""
    clock = FakeClock(0.0)
    pool = Pool("p", [KeySpec("k0", "sk-test-pace-00000000000000000006")], clock=clock, learn=True)
    provider = SlidingKey(4, 2.0, whole_seconds=False)
    for t in (0.0, 0.1, 0.2, 0.3):  # four on a kept connection: written at once
        clock.t = t
        key = pool.pick()
        assert key is not None and provider.send(t) is None
        pool.report(key, OK)
    clock.t = 0.4
    key = pool.pick()  # the fifth on a new connection: written 60 ms later
    assert key is not None
    retry = provider.send(0.46)
    assert retry == pytest.approx(1.54)  # the first leaves the provider's window at 2.0 s
    clock.t = 0.47
    pool.report(key, limited(retry), 0.07, written_s=0.06)
    est = pool.key("k0").learned
    assert est.limit == 4
    assert est.window_s == pytest.approx(2.0, abs=1e-6)
