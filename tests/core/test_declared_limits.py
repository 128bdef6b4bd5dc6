"""Declared limits hold the pick (issue 27): rpm, rpd, max_concurrency and token budgets are never exceeded by
one pool; a key whose declared budget is spoken for rests quietly until its window opens; headers that state a
smaller budget win."""

from __future__ import annotations

from pooltui.core import Classification, DeadlineSource, KeySpec, KeyState, Outcome, Pool, RequestTrace
from pooltui.core.clock import FakeClock
from pooltui.core.declared import TokenHold
from pooltui.core.headers import RateLimits
from pooltui.core.windows import KeyLimits, SlidingWindow, Slots

OK = Classification(Outcome.OK, 200)


def pool_of(*limits: KeyLimits | None, clock: FakeClock, models: tuple[tuple[str, KeyLimits], ...] = ()) -> Pool:
    specs = [KeySpec(f"k{i}", f"sk-test-declared-{i:020d}", limits=lim, model_limits=models)
             for i, lim in enumerate(limits)]
    return Pool("p", specs, clock=clock)


def sent_per_window(times: list[float], window_s: float) -> int:
    """The most requests sent in any window of ``window_s`` seconds."""
    return max((sum(1 for u in times if t <= u < t + window_s) for t in times), default=0)


def test_a_declared_rpm_is_never_exceeded_and_the_key_rests_until_its_window_opens() -> None:
    clock = FakeClock()
    pool = pool_of(KeyLimits(rpm=5), clock=clock)
    sent: list[float] = []
    for _ in range(400):  # a request every 0.5 s for 200 s: 120 per minute offered, 5 allowed
        key = pool.pick()
        if key is not None:
            sent.append(clock.now())
            pool.report(key, OK)
        clock.advance(0.5)
    assert sent_per_window(sent, 60.0) == 5
    assert len(sent) >= 5 * 3  # and it serves what the limit allows
    key = pool.key("k0")
    clock.advance(pool.next_ready_in() or 0.0)
    trace = RequestTrace(1, clock.now(), "round-robin")
    while pool.pick(trace) is not None:
        pool.report(key, OK)
    assert key.state is KeyState.COOLING and key.source is DeadlineSource.DECLARED
    assert any("declared rpm 5 reached: opens in" in (e.get("reason") or "") for e in trace.as_dict()["steps"])
    reason, opening = pool.wait_reason()
    assert opening and "declared rpm 5 reached" in reason
    before = pool.events.total
    clock.advance(pool.next_ready_in() or 0.0)
    assert pool.pick() is key and pool.events.total == before  # its rest ends quietly


def test_a_declared_rpd_holds_across_the_day() -> None:
    clock = FakeClock()
    pool = pool_of(KeyLimits(rpd=3), KeyLimits(rpm=100), clock=clock)
    served = {"k0": 0, "k1": 0}
    for _ in range(20):
        key = pool.pick()
        assert key is not None
        served[key.label] += 1
        pool.report(key, OK)
        clock.advance(600)  # 20 requests over 3 h 20 min
    assert served["k0"] == 3 and served["k1"] == 17


def test_declared_max_concurrency_caps_the_requests_in_flight() -> None:
    clock = FakeClock()
    pool = pool_of(KeyLimits(max_concurrency=2), clock=clock)
    a, b = pool.pick(), pool.pick()
    assert a is not None and b is not None
    assert pool.pick() is None  # two in flight: held until an answer
    pool.report(a, OK)
    c = pool.pick()
    assert c is b and pool.pick() is None
    pool.release(c, None, 0.1)
    assert pool.pick() is not None


def test_a_never_sent_request_gives_its_slot_back() -> None:
    clock = FakeClock()
    pool = pool_of(KeyLimits(rpm=1), clock=clock)
    key = pool.pick()
    assert key is not None
    pool.release(key, None, 0.0)
    assert pool.pick() is key


def test_a_token_budget_holds_the_key_by_the_estimate_and_settles_from_usage() -> None:
    clock = FakeClock()
    pool = pool_of(KeyLimits(tpm=10_000), KeyLimits(tpm=10_000), clock=clock)
    body = b"x" * 16_000  # ~4,000 input tokens estimated, 100 output held
    picked = []
    for _ in range(4):
        hold = TokenHold.of_body(body + b'"max_tokens": 100')
        key = pool.pick(hold=hold)
        assert key is not None
        picked.append(key.label)
        pool.report(key, OK, tokens_in=4_000, tokens_out=100, hold=hold)
    assert picked == ["k0", "k1", "k0", "k1"]
    hold = TokenHold.of_body(body)
    assert pool.pick(hold=hold) is None  # 8,200 used of 10,000 on each: 4,000 more would exceed it
    assert pool.key("k0").source is DeadlineSource.DECLARED and "declared tpm 10000 reached" in pool.key("k0").reason
    clock.advance(pool.next_ready_in() or 0.0)
    assert pool.pick(hold=hold) is not None


def test_the_usage_corrects_the_estimate_per_key() -> None:
    clock = FakeClock()
    pool = pool_of(KeyLimits(itpm=10_000), clock=clock)
    key = pool.key("k0")
    for _ in range(20):
        hold = TokenHold.of_body(b"y" * 4_000)  # ~1,000 estimated; the provider counts 500
        assert pool.pick(hold=hold) is key
        pool.report(key, OK, tokens_in=500, tokens_out=10, hold=hold)
        clock.advance(60.0)
    assert abs(key.ratios[""] - 0.5) < 0.05
    hold = TokenHold.of_body(b"y" * 4_000)
    pool.pick(hold=hold)
    assert abs(hold.held[0] - 500) < 50


def test_a_model_with_limits_of_its_own_counts_against_them_only() -> None:
    clock = FakeClock()
    pool = pool_of(KeyLimits(rpm=100), clock=clock, models=(("big", KeyLimits(rpm=2)),))
    for _ in range(2):
        key = pool.pick(model="big")
        assert key is not None
        pool.report(key, OK, model="big")
    assert pool.pick(model="big") is None  # the model's window is full
    small = pool.pick(model="small")
    assert small is not None  # other models still use the key


def test_headers_stating_a_smaller_token_budget_win() -> None:
    clock = FakeClock()
    pool = pool_of(KeyLimits(tpm=1_000_000), clock=clock)
    key = pool.key("k0")
    hold = TokenHold.of_body(b"z" * 400)
    assert pool.pick(hold=hold) is key
    stated = RateLimits(tokens_limit=5_000, tokens_remaining=500, tokens_reset_s=12.0)
    pool.report(key, Classification(Outcome.OK, 200, limits=stated), tokens_in=100, tokens_out=5, hold=hold)
    big = TokenHold.of_body(b"z" * 8_000)  # ~2,000 tokens: more than the 500 stated left
    assert pool.pick(hold=big) is None
    assert key.source is DeadlineSource.STATED
    assert abs((pool.next_ready_in() or 0.0) - 12.0) < 0.01
    clock.advance(12.0)
    assert pool.pick(hold=big) is key


def test_a_token_429_is_not_learnt_as_a_request_limit() -> None:
    clock = FakeClock()
    pool = Pool("p", [KeySpec("k0", "sk-test-declared-00000000000000000009")], clock=clock)
    key = pool.key("k0")
    tokens = Classification(Outcome.RATE_LIMITED, 429, "on tokens per min (TPM)", 1.0,
                            DeadlineSource.RETRY_AFTER, tokens=True)
    for _ in range(6):
        for _ in range(3):
            assert pool.pick() is key
            pool.report(key, OK)
            clock.advance(0.1)
        assert pool.pick() is key
        pool.report(key, tokens)
        clock.advance(5.0)
    assert key.learned is None or key.learned.limit is None


def test_the_keys_view_shows_each_declared_window_in_use_and_leaves_room_for_the_fleets() -> None:
    clock = FakeClock()
    pool = pool_of(KeyLimits(rpm=60, tpm=20_000), None, clock=clock, models=(("big", KeyLimits(rpm=5)),))
    key = pool.key("k0")
    for _ in range(3):
        hold = TokenHold.of_body(b"w" * 4_000)
        assert pool.pick(hold=hold) is key
        pool.report(key, OK, tokens_in=1_000, tokens_out=100, hold=hold)
        pool.pick()  # k1: nothing declared
        clock.advance(1.0)
    k0, k1 = pool.snapshot()
    assert k0["declared"] == {"rpm": 60, "tpm": 20_000}
    assert k0["budgets"]["rpm"] == {"used": 3, "limit": 60, "fleet_used": None}
    assert k0["budgets"]["tpm"] == {"used": 3_300, "limit": 20_000, "fleet_used": None}
    assert k0["budgets"]["rpm big"] == {"used": 0, "limit": 5, "fleet_used": None}
    assert k1["declared"] == {} and list(k1["budgets"]) == ["rpm big"]  # only the model's window


class Contended(SlidingWindow):
    """A window shared with other processes: one of them takes the last room between our look and our take."""

    def __init__(self, limit: int, window_s: float) -> None:
        super().__init__(limit, window_s)
        self.refuse = 0

    def take(self, now: float, n: int = 1) -> bool:
        if self.refuse:
            self.refuse -= 1
            return False
        return super().take(now, n)


def test_a_window_that_refuses_after_all_holds_the_key_and_the_others_give_back() -> None:
    clock = FakeClock()
    made: dict[str, SlidingWindow] = {}

    def factory(provider: str, key: str, what: str, limit: int, window_s: float) -> Slots:
        made[f"{key}/{what}/{window_s:g}"] = window = Contended(limit, window_s) if what == "tokens" else \
            SlidingWindow(limit, window_s)
        return window

    pool = Pool("p", [KeySpec("k0", "sk-test-declared-00000000000000000011", limits=KeyLimits(rpm=10, tpm=5_000)),
                      KeySpec("k1", "sk-test-declared-00000000000000000012")], clock=clock, windows=factory)
    tokens = made["k0/tokens/60"]
    assert isinstance(tokens, Contended)
    tokens.refuse = 1
    assert pool.pick(hold=TokenHold(400, 100)).label == "k1"  # k0's shared window refused: k1 serves
    assert pool.key("k0").source is DeadlineSource.DECLARED
    assert made["k0/requests/60"].used(clock.now()) == 0  # the request window gave its slot back
