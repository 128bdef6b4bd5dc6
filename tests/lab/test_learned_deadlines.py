"""Pacing by learnt limits never makes a request miss a deadline it would have met without pacing, in the
simulator's peak-hour (issue 12).

Two ways. Deterministic: the real engine (``Pool``) and the simulator's own limits (``ProviderState``) on one
fake clock, driven by the scenario file's traffic the way the client drives them (at most ``concurrency`` in
flight, a 429 rotates at once up to the attempt cap, a pick of None waits for the pool's next opening if it
fits the deadline), so each request's fate can be compared with and without pacing. And through the real
client and simulator over loopback HTTP, the lab's run on the same seeded arrivals."""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections.abc import Callable

import pytest

from pooltui.bench.learned import capacity
from pooltui.core import Classification, DeadlineSource, KeySpec, Outcome, Pool
from pooltui.core.clock import FakeClock
from pooltui.session.lab import run_strategy
from pooltui.session.simtime import run_simulated
from pooltui.session.workload import seeded_workload
from pooltui.sim.limits import ProviderState
from pooltui.sim.scenario import Scenario, load_scenario


class EventDriven:
    """One run of a scenario's traffic against the engine and the simulator's limits, in simulated time."""

    def __init__(self, sc: Scenario, learn: bool) -> None:
        self.clock = FakeClock()
        p = sc.primary
        self.provider = ProviderState(p, sc.seed, self.clock.now, time.time)
        self.keys = {k.label: k for k in p.keys}
        self.pool = Pool(p.name, [KeySpec(k.label, k.secret) for k in p.keys], "round-robin", clock=self.clock,
                         learn=learn, rng=random.Random(1))
        self.latency = random.Random(7)
        self.deadline_s, self.concurrency = sc.traffic.deadline_s, sc.traffic.concurrency
        self.cap = 2 * len(p.keys)  # each key at most twice, as the client does
        self.heap: list[tuple[float, int, Callable[[], None]]] = []
        self.seq = itertools.count()
        self.inflight, self.queue = 0, []
        self.served: dict[int, float] = {}  # request -> latency from arrival
        self.missed: set[int] = set()
        self.sent = self.limited = 0

    def at(self, when: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self.heap, (when, next(self.seq), fn))

    def run(self, arrivals) -> EventDriven:
        t0 = self.clock.now()
        for i, a in enumerate(arrivals):
            self.at(t0 + a.at_s, lambda i=i, t=t0 + a.at_s: self.arrive(i, t))
        while self.heap:
            when, _, fn = heapq.heappop(self.heap)
            self.clock.advance(max(0.0, when - self.clock.now()))
            fn()
        return self

    def arrive(self, i: int, t: float) -> None:
        if self.inflight < self.concurrency:
            self.start(i, t)
        else:
            self.queue.append((i, t))

    def start(self, i: int, t: float) -> None:
        self.inflight += 1
        self.attempt(i, t, 0)

    def done(self, i: int, t: float, ok: bool) -> None:
        now = self.clock.now()
        if ok and now <= t + self.deadline_s:
            self.served[i] = now - t
        else:
            self.missed.add(i)
        self.inflight -= 1
        if self.queue:
            self.start(*self.queue.pop(0))

    def attempt(self, i: int, t: float, attempts: int) -> None:
        now, deadline = self.clock.now(), t + self.deadline_s
        key = self.pool.pick()
        if key is None:
            wait = self.pool.next_ready_in()
            if wait is None or now + wait + self.pool.answer_time_s() > deadline:
                return self.done(i, t, False)
            return self.at(now + wait + 0.001, lambda: self.attempt(i, t, attempts))
        if attempts >= self.cap:
            self.pool.release(key)
            return self.done(i, t, False)
        latency = self.latency.uniform(0.010, 0.040)
        self.sent += 1
        verdict: list = []
        # the provider counts the request half way (our clock and its differ by the trip)
        self.at(now + latency / 2, lambda: verdict.append(self.provider.decide(self.keys[key.label])))
        self.at(now + latency, lambda: self.answer(i, t, attempts + 1, key, verdict, latency))

    def answer(self, i: int, t: float, attempts: int, key, verdict: list, latency: float) -> None:
        v = verdict[0]
        if v.kind == "ok":
            self.pool.report(key, Classification(Outcome.OK, 200), latency)
            return self.done(i, t, True)
        self.limited += 1
        self.pool.report(key, Classification(Outcome.RATE_LIMITED, 429, "rate limited", v.retry_after_s,
                                             DeadlineSource.RETRY_AFTER), latency)
        self.attempt(i, t, attempts)  # rotate at once


@pytest.mark.parametrize("seed", [11, 12, 13])
@pytest.mark.parametrize("load", [0.75, 1.0, 1.25])
def test_pacing_never_makes_a_request_miss_a_deadline_it_met_without_pacing_in_peak_hour(load: float,
                                                                                         seed: int) -> None:
    """Up to 1.25x the pool's capacity, request by request: every request that met its deadline without pacing
    meets it with pacing."""
    sc = load_scenario("peak-hour")
    rate = capacity(sc) * load
    arrivals = seeded_workload(sc, requests=int(rate * 30), rate=rate, seed=seed)
    off = EventDriven(sc, learn=False).run(arrivals)
    on = EventDriven(sc, learn=True).run(arrivals)
    lost = sorted(set(off.served) - set(on.served))
    print(f"\npeak-hour at {load:g}x, seed {seed}: {len(arrivals)} requests; met without pacing {len(off.served)} "
          f"({off.limited} 429s), with pacing {len(on.served)} ({on.limited} 429s); met only without: {lost}")
    assert not lost
    assert on.limited <= off.limited


def test_under_peak_hours_own_overload_pacing_meets_at_least_as_many_deadlines() -> None:
    """At the scenario's own traffic (2.2x the capacity) some requests must miss either way, and which ones
    depends on the order keys free up; pacing meets at least as many, with a tenth of the 429s at most."""
    sc = load_scenario("peak-hour")
    t = sc.traffic
    arrivals = seeded_workload(sc, requests=t.requests, rate=t.rate, seed=sc.seed)
    off = EventDriven(sc, learn=False).run(arrivals)
    on = EventDriven(sc, learn=True).run(arrivals)
    print(f"\npeak-hour's own traffic, {t.requests} requests at {t.rate:g}/s: met without pacing {len(off.served)} "
          f"({off.limited} 429s, {off.sent} sent), with pacing {len(on.served)} ({on.limited} 429s, {on.sent} sent)")
    assert len(on.served) >= len(off.served) and on.limited * 10 < off.limited


def test_through_the_real_client_every_request_meets_its_deadline_at_capacity() -> None:
    """At 1.0x through the real client and simulator (the lab's runner, in simulated time): with pacing every request
    meets its deadline, with a handful of 429s (without, some miss and the 429s run into hundreds)."""
    sc = load_scenario("peak-hour")
    rate = capacity(sc)
    arrivals = seeded_workload(sc, requests=int(rate * 10), rate=rate, seed=sc.seed)
    off = run_simulated(run_strategy(sc, "round-robin", arrivals, concurrency=sc.traffic.concurrency, seed=1,
                                   learn=False))
    on = run_simulated(run_strategy(sc, "round-robin", arrivals, concurrency=sc.traffic.concurrency, seed=1,
                                  learn=True))
    print(f"\nreal client, {len(arrivals)} requests at {rate:g}/s: without pacing {off.succeeded} served "
          f"({off.limited} 429s), with pacing {on.succeeded} ({on.limited} 429s)")
    assert on.succeeded == len(arrivals) and on.limited <= 8


def test_up_to_capacity_learning_costs_a_few_429s_per_key() -> None:
    """The same nine runs (0.75x to 1.25x, seeds 11 to 13): 429s with pacing in all, against 3,623 without.
    Regression: an estimate too generous for its key (3 per 1.6 s for 8 per 5 s) survived the 429s it caused,
    each refitted to the window it believed: 87 in all then."""
    sc = load_scenario("peak-hour")
    total = 0
    for load in (0.75, 1.0, 1.25):
        for seed in (11, 12, 13):
            rate = capacity(sc) * load
            on = EventDriven(sc, learn=True).run(seeded_workload(sc, requests=int(rate * 30), rate=rate, seed=seed))
            total += on.limited
    print(f"\n429s with pacing over nine runs of peak-hour at 0.75x to 1.25x: {total}")
    assert total <= 80, total
