"""The engine's fast paths (issue 27's pick+report speed) against naive models of what they stand for: a stale
running count, a skipped check or a heap entry replaced in place must never let through a request the naive
model holds, nor pick a key it would not."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pooltui.core import Classification, KeySpec, KeyState, Outcome, Pool
from pooltui.core.clock import FakeClock
from pooltui.core.declared import TokenHold
from pooltui.core.learned import LearnedLimit
from pooltui.core.trace import LearnedAt, RequestTrace, Step, format_trace
from pooltui.core.windows import KeyLimits

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
        key = pool.keys[which]
        if op == "cool" and key.state is KeyState.OK:
            pool.restore(key.label, KeyState.COOLING.value, clock.now() + 5.0, None, "test")
        elif op == "back":
            pool.reset(key.label)
        else:
            ready = [k for k in pool.keys if k.state is KeyState.OK]
            want = min(ready, key=lambda k: (k.stats.requests, k.pos)) if ready else None
            avoid = want if op == "retry" else None
            if avoid is not None and len(ready) > 1:
                want = next((k for k in ready if k.pos > avoid.pos), ready[0])
            got = pool.pick(None, avoid)
            assert got is want
            if got is not None:
                pool.report(got, OK)


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
