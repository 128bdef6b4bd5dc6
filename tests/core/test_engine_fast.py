"""The engine's fast paths (issue 27's pick+report speed) against naive models of what they stand for: a stale
running count, a skipped check or a heap entry replaced in place must never let through a request the naive
model holds, nor pick a key it would not."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import example, given, settings
from hypothesis import strategies as st

from pooltui.core import Classification, KeySpec, KeyState, Outcome, Pool
from pooltui.core.clock import FakeClock
from pooltui.core.declared import TokenHold
from pooltui.core.headers import RateLimits
from pooltui.core.learned import LearnedLimit
from pooltui.core.pool import PoolKey
from pooltui.core.trace import LearnedAt, RequestTrace, Step, format_trace
from pooltui.core.windows import KeyLimits, SlidingWindow

OK = Classification(Outcome.OK, 200)
LIMITS = KeyLimits(rpm=4, rpd=9, tpm=2_500, max_concurrency=2)
MODELS = ("m1", "m2")


class NaiveKey:
    """What the provider counts for one key: each request sent (time, tokens) and those in flight."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, int]] = []
        self.inflight = 0

    def requests_in(self, now: float, window_s: float) -> int:
        return sum(1 for at, _ in self.sent if at > now - window_s)

    def tokens_in(self, now: float, window_s: float) -> int:
        return sum(tokens for at, tokens in self.sent if at > now - window_s)


ops = st.lists(st.tuples(st.sampled_from(["pick", "pick", "answer", "release", "wait"]),
                         st.floats(0.0, 30.0), st.integers(0, 1_400), st.integers(0, 1)), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_declared_windows_never_let_through_what_a_naive_count_holds(
        steps: list[tuple[str, float, int, int]]) -> None:
    """Every pick the pool grants fits the key's declared rpm, rpd, tpm and max_concurrency as a naive count of
    what was sent reads them (a request larger than tpm goes alone into an empty minute)."""
    clock = FakeClock()
    pool = Pool("p", [KeySpec(f"k{i}", f"sk-test-fast-{i:024d}", limits=LIMITS) for i in range(2)], clock=clock)
    naive = {k.label: NaiveKey() for k in pool.keys}
    flying: list[tuple[str, TokenHold, str]] = []
    for op, dt, tokens, which in steps:
        if op == "wait":
            clock.advance(dt)
        elif op == "pick":
            hold, model = TokenHold(tokens, 0), MODELS[which]
            key = pool.pick(None, None, model, hold)
            if key is None:
                continue
            truth, now = naive[key.label], clock.now()
            assert truth.requests_in(now, 60.0) < 4 and truth.requests_in(now, 86_400.0) < 9
            assert truth.inflight < 2
            earlier = truth.tokens_in(now, 60.0)
            assert earlier + tokens <= 2_500 or earlier == 0
            truth.sent.append((now, tokens))
            truth.inflight += 1
            flying.append((key.label, hold, model))
        elif flying:
            label, hold, model = flying.pop(which % len(flying))
            naive[label].inflight -= 1
            if op == "answer":  # the usage is what was held (the body's estimate, ratio 1): no correction
                pool.report(pool.key(label), OK, 0.01, hold.held[0], 0, model=model, hold=hold)
            else:  # sent, then cancelled: what it held stays counted
                pool.release(pool.key(label), model, 0.01, hold)


class SlowLearned(LearnedLimit):
    """LearnedLimit.accept as it read before its fast paths: every answer settled by _settle, _grow always asked."""

    def accept(self, sent_at: float) -> bool:
        self._settle(sent_at)
        if self.accepted and sent_at < self.accepted[-1]:
            self.accepted.insert(next(i for i, a in enumerate(self.accepted) if a > sent_at), sent_at)
        else:
            self.accepted.append(sent_at)
        if self.limit is not None:
            self._grow(sent_at)
        return self._fit_ready() if self.pending else False


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 6), st.lists(st.tuples(st.floats(0.0, 3.0), st.integers(0, 3), st.booleans()),
                                   min_size=1, max_size=120))
def test_a_learnt_limit_accepts_as_its_plain_reading_does(limit: int, steps: list[tuple[float, int, bool]]) -> None:
    """Answers settled and the additive increase's clock kept as the plain reading of accept keeps them: the
    estimate grows (or not) at the same answers."""
    fast, slow = LearnedLimit.restored(limit, 2.0), SlowLearned.restored(limit, 2.0)
    now, sent = 0.0, []
    for dt, burst, answer in steps:
        now += dt
        for _ in range(burst):
            fast.sent(now)
            slow.sent(now)
            sent.append(now)
        if answer and sent:
            at = sent.pop(0)
            assert fast.accept(at) == slow.accept(at)
        assert (fast.limit, fast.probes, fast._full_since, fast.outstanding, fast.accepted) == \
            (slow.limit, slow.probes, slow._full_since, slow.outstanding, slow.accepted)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["least-used", "headroom"]),
       st.lists(st.tuples(st.sampled_from(["pick", "pick", "retry", "cool", "back"]), st.integers(0, 3)),
                min_size=1, max_size=60))
def test_heap_strategies_pick_what_a_naive_scan_picks(strategy: str, steps: list[tuple[str, int]]) -> None:
    """The heap (its top entry replaced in place by the pick) gives the key a scan of the available keys gives:
    the fewest requests (least-used; headroom, with no budget stated, the same), then pool order; a retry away
    from the key that just failed takes the next available key in pool order."""
    clock = FakeClock()
    pool = Pool("p", [KeySpec(f"k{i}", f"sk-test-heap-{i:024d}") for i in range(4)], strategy, clock=clock)
    for op, which in steps:
        got = heap_step(pool, clock, op, pool.keys[which], lambda k: (k.stats.requests, k.pos))
        if got is not None:
            pool.report(got, OK)


def heap_step(pool: Pool, clock: FakeClock, op: str, key: PoolKey,
              rank: Callable[[PoolKey], tuple[float, ...]]) -> PoolKey | None:
    """One step of the heap tests: cool ``key``, bring it back, or pick (a retry away from the key a scan gives)
    and check the heap gives what a scan of the available keys by ``rank`` gives; the key picked, if any."""
    if op == "cool" and key.state is KeyState.OK:
        pool.restore(key.label, KeyState.COOLING.value, clock.now() + 5.0, None, "test")
        return None
    if op == "back":
        pool.reset(key.label)
        return None
    ready = [k for k in pool.keys if k.state is KeyState.OK]
    want = min(ready, key=rank) if ready else None
    avoid = want if op == "retry" else None
    if avoid is not None and len(ready) > 1:
        want = next((k for k in ready if k.pos > avoid.pos), ready[0])
    got = pool.pick(None, avoid)
    assert got is want
    return got


def test_a_picks_step_built_when_read_is_in_its_place_and_says_what_the_pick_saw() -> None:
    """The pick records its step raw (core/trace.py: PickRecord) and the trace builds it when read: read after the
    answer and later steps, each pick's step is in its place and says what held at the pick (the learnt limit's
    room then, not now)."""
    clock = FakeClock()
    pool = Pool("p", [KeySpec("k0", "sk-test-lazy-trace-000000000000")], clock=clock)
    assert pool.restore_learned("k0", "", 5, 10.0)
    for _ in range(2):  # two accepted in the window before the traced pick
        key = pool.pick()
        assert key is not None
        pool.report(key, OK, 0.01)
    trace = RequestTrace(1, clock.now(), pool.strategy)
    first = pool.pick(trace)
    assert first is not None
    clock.advance(1.0)
    pool.report(first, OK, 0.01)
    trace.add(clock.now(), "attempt", "p", "k0", status=200, reason="ok")
    assert pool.pick(trace) is not None
    steps = trace.steps
    assert [s.kind for s in steps] == ["pick", "attempt", "pick"]
    assert [s.detail["learned"] for s in (steps[0], steps[2])] == [LearnedAt(5, 10.0, 3), LearnedAt(5, 10.0, 4)]
    assert steps[0].detail == {"candidates": 1, "excluded": (), "excluded_total": 0,
                               "learned": LearnedAt(5, 10.0, 3)}
    assert trace.steps is steps and all(isinstance(s, Step) for s in steps)
    assert "pick [p] k0  from 1 available (learned limit 5 per 10.0 s, 3 in the window)" in format_trace(trace)


class PlainWindow(SlidingWindow):
    """A local window the pool does not recognise as one of its own (``type(slots) is not SlidingWindow``): its key's
    windows are taken one by one through the plain ``claim`` and settled through the plain ``settle_tokens``, with
    no run of takes, no credit and no quick give-back."""


def plain_window(provider: str, key: str, what: str, limit: int, window_s: float) -> PlainWindow:
    del provider, key, what
    return PlainWindow(limit, window_s)


RUN_LIMITS = KeyLimits(rpm=3, rpd=40, tpm=5_000, max_concurrency=4)
run_ops = st.lists(st.tuples(st.sampled_from(["pick", "pick", "pick", "answer", "answer", "release", "tick", "wait"]),
                             st.integers(0, 1_500), st.integers(0, 400), st.integers(0, 5)), min_size=1, max_size=80)


@settings(max_examples=300, deadline=None)
@given(run_ops)
@example([("pick", 1_000, 100, 0)] * 2 + [("wait", 0, 0, 3)] + [("pick", 1_000, 100, 0)] * 2 +  # answered once the
         [("wait", 0, 0, 2), ("answer", 800, 90, 0)])  # first request's entry has left the minute, the second's not
def test_the_picks_run_of_declared_takes_and_quick_give_backs_decide_as_the_plain_windows_do(
        steps: list[tuple[str, int, int, int]]) -> None:
    """The pick's declared take joined to a run within its credit (without LocalWindows.take's call) and the answer's
    tokens given back from the tpm window's oldest entry (without settle_tokens' call) grant and refuse exactly the
    picks that the same windows taken and settled one by one grant and refuse, with the same keys, holds and rests;
    the windows count the same units at the end. Picks come close together (runs form), answers use more or fewer
    tokens than held."""
    fast_clock, plain_clock = FakeClock(), FakeClock()
    specs = [KeySpec(f"k{i}", f"sk-test-run-{i:024d}", limits=RUN_LIMITS) for i in range(2)]
    fast = Pool("p", specs, clock=fast_clock)
    plain = Pool("p", specs, clock=plain_clock, windows=plain_window)
    assert all(k.declared is not None and k.declared.local is not None for k in fast.keys)
    assert all(k.declared is not None and k.declared.local is None for k in plain.keys)
    flying: list[tuple[str, TokenHold, TokenHold, str]] = []
    for op, tokens, out, which in steps:
        if op in ("tick", "wait"):
            dt = 0.004 * which if op == "tick" else 13.0 * which  # within a run's bucket, or past it (and the minute)
            fast_clock.advance(dt)
            plain_clock.advance(dt)
        elif op == "pick":
            model = MODELS[which & 1]
            holds = TokenHold(tokens, out), TokenHold(tokens, out)
            got = fast.pick(None, None, model, holds[0]), plain.pick(None, None, model, holds[1])
            assert (got[0] and got[0].label) == (got[1] and got[1].label)
            assert holds[0].held == holds[1].held
            if got[0] is not None:
                flying.append((got[0].label, *holds, model))
        elif flying:
            label, fast_hold, plain_hold, model = flying.pop(which % len(flying))
            used = (tokens // 2, out + which - 2)  # fewer input tokens than held, output around what was held
            for pool, hold in ((fast, fast_hold), (plain, plain_hold)):
                if op == "answer":
                    pool.report(pool.key(label), OK, 0.01, max(0, used[0]), max(0, used[1]), model=model, hold=hold)
                else:
                    pool.release(pool.key(label), model, 0.01, hold)
        assert [(k.state, k.until, k.probe, k.inflight, k.tokens_inflight) for k in fast.keys] == \
            [(k.state, k.until, k.probe, k.inflight, k.tokens_inflight) for k in plain.keys]
    now = fast_clock.now()
    assert [k.declared.budgets(now) for k in fast.keys if k.declared] == \
        [k.declared.budgets(now) for k in plain.keys if k.declared]


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 6), st.lists(st.tuples(st.floats(0.0, 1.5), st.integers(0, 3), st.floats(0.0, 0.5)),
                                   min_size=1, max_size=120))
def test_a_success_learnt_in_report_keeps_what_learned_limit_accept_keeps(
        limit: int, steps: list[tuple[float, int, float]]) -> None:
    """The answer's learnt accept done in report without LearnedLimit.accept's call (one request in flight, in order,
    below the limit) leaves the estimate as the same sends and answers given to LearnedLimit itself leave it: the
    sends kept, the additive increase's clock and the limit it grows to."""
    clock = FakeClock()
    pool = Pool("p", [KeySpec("k0", "sk-test-accept-000000000000000")], clock=clock)
    assert pool.restore_learned("k0", "", limit, 2.0)
    ref = LearnedLimit.restored(limit, 2.0)
    for dt, burst, latency in steps:
        clock.advance(dt)
        picked = []
        for _ in range(burst):
            key = pool.pick()
            if key is None:
                break
            ref.sent(clock.now())
            picked.append(key)
        clock.advance(latency)
        for key in picked:
            pool.report(key, OK, latency)
            ref.accept(clock.now() - latency)
        est = pool.key("k0").learned
        assert est is not None
        assert (est.limit, est.probes, est._full_since, est.outstanding, est.accepted) == \
            (ref.limit, ref.probes, ref._full_since, ref.outstanding, ref.accepted)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["least-used", "headroom"]),
       st.lists(st.tuples(st.sampled_from(["pick", "pick", "retry", "cool", "back"]), st.integers(0, 3),
                          st.sampled_from([None, 1, 2, 3, 4])), min_size=1, max_size=60))
def test_heap_strategies_with_stated_budgets_pick_what_a_naive_scan_picks(
        strategy: str, steps: list[tuple[str, int, int | None]]) -> None:
    """With answers stating budgets (each key's headroom moves at its picks and answers, or stays), the heap (its entry
    pushed again by an answer only when the headroom it orders by changed) gives the key a scan of the available keys
    gives: the most headroom (headroom), then the fewest requests, then pool order."""
    clock = FakeClock()
    pool = Pool("p", [KeySpec(f"k{i}", f"sk-test-heap-{i:024d}") for i in range(4)], strategy, clock=clock,
                preempt=False)

    def rank(k: PoolKey) -> tuple[float, int, int]:
        return (-k.headroom if strategy == "headroom" else 0.0, k.used_before + k.stats.requests, k.pos)

    for op, which, remaining in steps:
        got = heap_step(pool, clock, op, pool.keys[which], rank)
        if got is not None:
            stated = None if remaining is None else RateLimits(4, remaining, None, None, None, None)
            pool.report(got, Classification(Outcome.OK, 200, limits=stated))
