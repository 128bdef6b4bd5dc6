"""The pick's fast paths through declared windows, pinned against the plain ones they stand for."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pooltui.core.declared import DeclaredWindows
from pooltui.core.windows import BUCKETS, KeyLimits, SlidingWindow, Slots

LIMITS = KeyLimits(rpm=5, rpd=40, tpm=3_000, itpm=2_000, otpm=1_500)


class PlainWindow(SlidingWindow):
    """A SlidingWindow the pick cannot tell is local: its windows are used through room() and take() one by one."""


def plain(provider: str, key: str, what: str, limit: int, window_s: float) -> Slots:
    del provider, key, what
    return PlainWindow(limit, window_s)


def local(provider: str, key: str, what: str, limit: int, window_s: float) -> Slots:
    del provider, key, what
    return SlidingWindow(limit, window_s)


Pair = tuple[DeclaredWindows, DeclaredWindows]


def fast_and_plain(limits: KeyLimits) -> Pair:
    """The same declared windows twice: local ones (the pick's fast paths) and plain ones (one by one)."""
    return DeclaredWindows(limits, "p", "k", local), DeclaredWindows(limits, "p", "k", plain)


def claimed(windows: Pair, now: float, tokens_in: int, tokens_out: int) -> bool:
    """Both claim the request; they answer the same. True when it was taken."""
    fast, slow = windows
    got = fast.claim(now, tokens_in, tokens_out)
    assert got == slow.claim(now, tokens_in, tokens_out)
    return got is None


def settled(windows: Pair, now: float, held: tuple[int, int], used: tuple[int, int]) -> None:
    for w in windows:
        w.settle_tokens(now, held, used)


def same_use(windows: Pair, now: float) -> None:
    fast, slow = windows
    assert fast.in_use(now) == slow.in_use(now)


steps = st.lists(st.tuples(st.floats(0.0, 20.0), st.integers(0, 1_600), st.integers(0, 900), st.booleans(),
                           st.integers(0, 1_600)), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_a_claim_on_local_windows_does_what_full_then_take_does(ops: list[tuple[float, int, int, bool, int]]) -> None:
    windows = fast_and_plain(LIMITS)
    now = 1_000.0
    for dt, tokens_in, tokens_out, settle, used_in in ops:
        now += dt
        if claimed(windows, now, tokens_in, tokens_out) and settle:  # the answer came: its usage replaces the hold
            settled(windows, now, (tokens_in, tokens_out), (used_in, tokens_out // 2))
        same_use(windows, now)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 0.2), st.integers(1, 50), st.booleans()), min_size=1, max_size=300))
def test_a_window_pruned_lazily_counts_what_a_naive_one_does_at_its_boundary(
        ops: list[tuple[float, int, bool]]) -> None:
    """Every unit counts for the whole window after it was taken and leaves at most one bucket late, whenever
    (and however rarely) the window is read."""
    window_s = 5.0
    w = SlidingWindow(10**9, window_s)
    taken: list[tuple[float, int]] = []
    now = 0.0
    for dt, n, read in ops:
        now += dt
        assert w.take(now, n)
        taken.append((now, n))
        if read:
            at = now + dt * 20  # sometimes across the window's edge
            truth = sum(u for t, u in taken if t > at - window_s)
            late = sum(u for t, u in taken if t > at - window_s - window_s / BUCKETS)
            assert truth <= w.used(at) <= late
            assert w.room(at) == 10**9 - w.used(at)
            now = max(now, at)


#: each binds first in one of them: rpm, tpm, itpm, otpm, rpd
RUN_LIMITS = (KeyLimits(rpm=12, rpd=400, tpm=60_000), KeyLimits(rpm=300, tpm=3_000, itpm=20_000, otpm=20_000),
              KeyLimits(rpm=300, tpm=60_000, itpm=2_000, otpm=20_000), KeyLimits(rpm=300, otpm=1_000),
              KeyLimits(rpm=400, rpd=15, tpm=6_000, itpm=4_000, otpm=2_500))
run_steps = st.lists(st.tuples(st.sampled_from([0.0, 0.001, 0.01, 0.02, 0.03, 0.05, 0.06, 59.99, 61.0]),
                               st.integers(0, 400), st.integers(0, 200),
                               st.sampled_from(["hold"] * 4 + ["settle"] * 3 + ["more", "release", "read"]),
                               st.integers(0, 400)), min_size=1, max_size=150)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(RUN_LIMITS), run_steps)
def test_a_run_of_takes_summed_before_it_is_written_leaves_what_takes_one_by_one_leave(
        limits: KeyLimits, ops: list[tuple[float, int, int, str, int]]) -> None:
    """Takes close together (a run, within the smallest bucket) are summed and written into the windows at once,
    and an answer's tokens given back beside them: every claim, settle and give-back answers as the windows
    taken one by one do, and the windows then count the same, whenever they are read."""
    windows = fast_and_plain(limits)
    now = 1_000.0
    for dt, tokens_in, tokens_out, then, used_in in ops:
        now += dt
        if not claimed(windows, now, tokens_in, tokens_out):
            continue
        if then == "settle":  # answered with fewer tokens than held (the usual case)
            used = (min(used_in, tokens_in), tokens_out // 2)
        elif then == "more":  # more than held
            used = (tokens_in + used_in, tokens_out + 1)
        else:
            used = None
        if used is not None:
            settled(windows, now, (tokens_in, tokens_out), used)
        elif then == "release":
            for w in windows:
                w.give_back_request(now)
        elif then == "read":
            same_use(windows, now)
    for later in (0.0, 50.0, 55.0, 58.0, 59.5, 60.5):  # the run's units leave with its latest take, not its first
        same_use(windows, now + later)


class NaiveMap:
    """The affinity map as it reads: on every put, the oldest entries go while out of date or over capacity."""

    def __init__(self, capacity: int, ttl_s: float) -> None:
        self.capacity, self.ttl_s, self.evicted = capacity, ttl_s, 0
        self.held: dict[str, tuple[str, str, float]] = {}

    def get(self, token: str, now: float) -> str | None:
        held = self.held.get(token)
        if held is None or now - held[2] > self.ttl_s:
            self.held.pop(token, None)
            return None
        return held[0]

    def put(self, token: str, label: str, group: str, now: float) -> None:
        self.held.pop(token, None)
        self.held[token] = (label, group, now)
        while self.held:
            oldest = next(iter(self.held))
            fresh = self.held[oldest][2] >= now - self.ttl_s
            if fresh and len(self.held) <= self.capacity:
                break
            self.evicted += fresh
            del self.held[oldest]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 4.0), st.integers(0, 12), st.sampled_from("ab"), st.booleans()),
                min_size=1, max_size=120))
def test_the_affinity_map_ages_and_evicts_what_a_naive_one_does(ops: list[tuple[float, int, str, bool]]) -> None:
    """Its put skips looking for entries to age out while none can be: it keeps what a map that looks every
    time keeps, and evicts the same."""
    from pooltui.core.affinity import AffinityMap

    fast, naive = AffinityMap(capacity=6, ttl_s=10.0), NaiveMap(capacity=6, ttl_s=10.0)
    now = 0.0
    for dt, conversation, group, put in ops:
        now += dt
        token = f"c{conversation}"
        got = fast.get(token, now)
        assert (got.label if got is not None else None) == naive.get(token, now)
        if put:
            fast.put(token, f"{group}{conversation % 3}", group, now)
            naive.put(token, f"{group}{conversation % 3}", group, now)
        assert len(fast) == len(naive.held) and fast.evicted == naive.evicted


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, 0.2, 0.9, 1.0, 3.0, 59.0, 61.0]), st.booleans()), min_size=1,
                max_size=80))
def test_a_rolling_count_added_to_as_the_pick_does_reads_what_a_naive_count_does(
        ops: list[tuple[float, bool]]) -> None:
    """The pick adds to the current second's count kept apart (``now_count``) rather than to its bucket: totals
    and series read the same as a count of every event's time."""
    from pooltui.core.stats import RollingCounter

    counter, events, now = RollingCounter(60), [], 1_000.0
    for dt, read in ops:
        now += dt
        if counter._sec == int(now):
            counter.now_count += 1
        else:
            counter.add(now)
        events.append(int(now))
        if read:
            assert counter.total(now) == sum(1 for sec in events if sec > int(now) - 60)
            assert counter.series(now, 5) == [events.count(int(now) - i) for i in range(4, -1, -1)]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, 0.5, 10.0, 30.0, 59.9, 60.0, 61.0]), st.integers(0, 900),
                          st.integers(0, 300), st.sampled_from(["", "tpm", "itpm", "otpm"]), st.floats(0.0, 70.0)),
                min_size=1, max_size=60))
def test_a_token_log_pruned_when_read_fits_what_one_pruned_at_each_answer_does(
        ops: list[tuple[float, int, int, str, float]]) -> None:
    """The pool appends each answer's tokens without pruning; the log prunes when a 429 reads it: the budget it
    fits is the one a log pruned at each answer fits (a minute older than the latest answer gone)."""
    from pooltui.core.learned_tokens import MINUTE_S, TokenLog

    log, naive, now = TokenLog(), [], 1_000.0
    for dt, tokens_in, tokens_out, read, before in ops:
        now += dt
        log.entries.append((now, tokens_in, tokens_out))
        naive = [e for e in naive if e[0] > now - MINUTE_S] + [(now, tokens_in, tokens_out)]
        if read:
            at = now - before  # the 429's request was sent a while before the latest answer
            kept = [(t, i, o) for t, i, o in naive if at - MINUTE_S < t <= at]
            want = sum(i if read == "itpm" else o if read == "otpm" else i + o for _, i, o in kept)
            assert log.fitted(at, read) == want


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(RUN_LIMITS), run_steps)
def test_a_look_at_a_keys_room_in_a_run_answers_as_the_windows_one_by_one_do(
        limits: KeyLimits, ops: list[tuple[float, int, int, str, int]]) -> None:
    """Affinity looks at a key's room for a request (``full(now, 0, 0)``) between takes: on local windows it answers
    from their running counts without ending the run, and answers what the windows taken one by one answer."""
    windows = fast_and_plain(limits)
    fast, slow = windows
    now = 1_000.0
    for dt, tokens_in, tokens_out, then, used_in in ops:
        now += dt
        assert fast.full(now, 0, 0) == slow.full(now, 0, 0)
        if claimed(windows, now, tokens_in, tokens_out) and then == "settle":
            settled(windows, now, (tokens_in, tokens_out), (min(used_in, tokens_in), tokens_out // 2))
        assert fast.full(now, 0, 0) == slow.full(now, 0, 0)
    same_use(windows, now)
