"""The strategy lab: the same seeded workload, once per strategy, each against a fresh simulator of the
scenario; what each strategy did, counted on both sides (the callers' answers, the provider's log).

A workload is a list of arrivals (when, which model, which prompt) drawn from a seed, or rebuilt from
the history (``pooltui replay``). Requests go out at their arrival time, at most ``concurrency`` at once; a
request's latency runs from its arrival (time waiting for a free slot counts, as callers feel it).

By default a run is in simulated time (:func:`run_lab`): the engine and an in-process simulator (no socket)
on a fast-forwarded loop, every clock on the path (the pool's, the simulator's limits and latencies, the
client's waits, backoffs and latency figures, the callers' deadlines) reading that loop's time, so a
scenario's minutes take seconds. ``real_time`` runs it as before: a simulator served on a loopback socket,
the machine's clocks.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from pooltui.client.pool_client import PoolUnavailableError
from pooltui.core.strategies import STRATEGIES, normalize_strategy
from pooltui.core.usage import usage_of
from pooltui.session.build import HistoryRecorder
from pooltui.session.lab_hermes import HERMES_STRATEGIES, HermesEmulatedClient
from pooltui.session.simtime import run_simulated
from pooltui.session.workload import Arrival, CallerResult, request_for
from pooltui.sim.inprocess import InProcessSim
from pooltui.sim.scenario import Scenario
from pooltui.sim.server import SimServer
from pooltui.sim.wiring import client_for_scenario
from pooltui.store.history import History

LAB_STRATEGIES = (*STRATEGIES, *HERMES_STRATEGIES)
#: a lab run's name for a pooltui strategy with conversation affinity on ("round-robin+affinity")
AFFINITY_SUFFIX = "+affinity"
AFFINITY_CHOICES = ("off", "on", "both")


def with_affinity(names: list[str], affinity: str) -> list[str]:
    """The runs for ``names`` with affinity "off" (as named), "on" or "both" (each pooltui strategy without
    it, then with it: ``round-robin``, ``round-robin+affinity``); Hermes's emulated pools have none."""
    if affinity not in AFFINITY_CHOICES:
        raise ValueError(f"affinity must be one of {', '.join(AFFINITY_CHOICES)}, not {affinity!r}")
    out: list[str] = []
    for name in names:
        if affinity != "on" or name in HERMES_STRATEGIES:
            out.append(name)
        if affinity != "off" and name not in HERMES_STRATEGIES:
            out.append(name + AFFINITY_SUFFIX)
    return out


def split_affinity(run: str) -> tuple[str, str]:
    """A lab run's strategy and its pool's affinity mode: ``round-robin+affinity`` -> (round-robin, prefix)."""
    if run.endswith(AFFINITY_SUFFIX):
        return run.removesuffix(AFFINITY_SUFFIX), "prefix"
    return run, "off"


def parse_strategies(text: str) -> list[str]:
    """``round-robin,failover`` or ``all`` -> canonical names (pooltui's, then the Hermes emulations)."""
    if text.strip() == "all":
        return list(LAB_STRATEGIES)
    out: list[str] = []
    for name in (n.strip() for n in text.split(",") if n.strip()):
        canonical = name.lower() if name.lower() in HERMES_STRATEGIES else normalize_strategy(name)
        if canonical not in out:
            out.append(canonical)
    if not out:
        raise ValueError("no strategy given")
    return out


@dataclass
class RunResult:
    """One strategy's run: what the callers got and what the provider saw."""

    strategy: str
    requests: int = 0
    succeeded: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)  # successful requests, from their arrival
    upstream: Counter[int] = field(default_factory=Counter)  # status -> responses the provider sent
    key_requests: dict[str, int] = field(default_factory=dict)  # the primary's keys: requests each received
    fallback: int = 0  # callers' requests a fallback provider served
    tokens: int = 0
    cost: float | None = None  # USD of the served requests, prompt-cache reads and writes priced as such
    ok_per_s: list[int] = field(default_factory=list)
    limited_per_s: list[int] = field(default_factory=list)  # 429s the provider sent, per second
    seconds: float = 0.0  # from the first arrival to the last answer, in the run's time (simulated or real)
    wall_s: float = 0.0  # what the run took on this machine
    late_ms: float = 0.0  # the latest an arrival went out after its time (real time: the machine's own delays)
    waits_ms: list[float] = field(default_factory=list)  # successful requests: their latency less the answer's own
    cache_read_tokens: int = 0  # prompt-cache tokens of the served requests: read from a cache,
    cache_write_tokens: int = 0  # written to one,
    cacheable_tokens: int = 0  # and the input the providers' rules let them cache (the hit rate's denominator)
    #: what the run's pools estimated, live, round-robin without affinity would have cost (core/round_robin_cost.py)
    cost_round_robin: float | None = None

    @property
    def cache_hit_rate(self) -> float | None:
        """Tokens read from a prompt cache / cacheable input (None: nothing was cacheable)."""
        return self.cache_read_tokens / self.cacheable_tokens if self.cacheable_tokens else None

    @property
    def attempts(self) -> int:
        return sum(self.upstream.values())

    @property
    def limited(self) -> int:
        return self.upstream.get(429, 0)

    @property
    def other_errors(self) -> int:
        return sum(n for s, n in self.upstream.items() if s >= 400 and s != 429)

    def percentile(self, q: float) -> float | None:
        return _percentile(self.latencies_ms, q)

    def wait_percentile(self, q: float) -> float | None:
        """The served callers' wait (for a slot, a key, a backoff: all but the answering attempt), in ms."""
        return _percentile(self.waits_ms, q)

    @property
    def max_wait_ms(self) -> float:
        return max(self.waits_ms, default=0.0)

    @property
    def evenness(self) -> float | None:
        """Jain's fairness index of the primary's keys' requests: 1.0 all equal, 1/n all on one key."""
        counts = list(self.key_requests.values())
        total, squares = sum(counts), sum(c * c for c in counts)
        return None if not squares else total * total / (len(counts) * squares)

    def row(self) -> dict[str, Any]:
        """The table row (``--json`` and ``--csv`` print these fields)."""
        p50, p95 = self.percentile(0.5), self.percentile(0.95)
        return {
            "strategy": self.strategy, "requests": self.requests, "succeeded": self.succeeded,
            "failed": self.failed, "upstream_429": self.limited, "upstream_other_errors": self.other_errors,
            "attempts_per_success": round(self.attempts / self.succeeded, 3) if self.succeeded else None,
            "p50_ms": None if p50 is None else round(p50, 1), "p95_ms": None if p95 is None else round(p95, 1),
            "max_ms": round(max(self.latencies_ms), 1) if self.latencies_ms else None,
            "evenness": None if self.evenness is None else round(self.evenness, 3),
            "fallback": self.fallback, "tokens": self.tokens,
            "cache_hit_rate": None if self.cache_hit_rate is None else round(self.cache_hit_rate, 4),
            "cache_read_tokens": self.cache_read_tokens, "cache_write_tokens": self.cache_write_tokens,
            "cacheable_tokens": self.cacheable_tokens,
            "cost_usd": None if self.cost is None else round(self.cost, 6),
            "cost_round_robin_usd": None if self.cost_round_robin is None else round(self.cost_round_robin, 6),
        }


def _percentile(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None


def cell_text(name: str, value: object) -> str:
    """One value of a :meth:`RunResult.row` as the lab's tables show it (the CLI's and the monitor's)."""
    if value is None:
        return "-"
    if name.endswith("_ms"):
        return f"{value:.0f}"
    if name == "cost_usd":
        return f"{value:.4f}"
    if name == "cache_hit_rate":
        return f"{value:.0%}"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def coinciding(results: list[RunResult], served_only: bool = False) -> list[list[str]]:
    """Strategies whose lines would coincide on the lab's charts (the same served, and unless ``served_only``
    the same 429s, every second), in groups of two or more."""
    groups: dict[tuple, list[str]] = {}
    for r in results:
        served = tuple(r.ok_per_s)
        groups.setdefault(served if served_only else (served, tuple(r.limited_per_s)), []).append(r.strategy)
    return [names for names in groups.values() if len(names) > 1]


def coincide_note(groups: list[list[str]]) -> str:
    """``round-robin and least-used coincide; ...`` (empty when no lines do)."""
    return "; ".join(f"{', '.join(g[:-1])} and {g[-1]} coincide" for g in groups)


Sender = Callable[[Arrival, float], Awaitable[CallerResult]]  # (arrival, seconds left before its deadline)


async def _drive(arrivals: list[Arrival], concurrency: int, deadline_s: float, send: Sender,
                 result: RunResult, now: Callable[[], float] = time.monotonic) -> float:
    """Send every arrival at its time, at most ``concurrency`` at once; a caller gives up ``deadline_s`` after
    its arrival, waiting for a free slot included. Returns the start (on ``now``, a monotonic clock)."""
    slots = asyncio.Semaphore(max(1, concurrency))
    start = now()
    ok_at: list[int] = []

    async def one(a: Arrival) -> None:
        await asyncio.sleep(max(0.0, start + a.at_s - now()))
        result.late_ms = max(result.late_ms, (now() - start - a.at_s) * 1000)
        async with slots:
            left = start + a.at_s + deadline_s - now()
            try:
                out = await send(a, left) if left > 0 else CallerResult(False, error="deadline passed waiting")
            except PoolUnavailableError:
                out = CallerResult(False, error="pool_unavailable")
            except Exception as exc:  # a failed request is counted, never a failed run
                out = CallerResult(False, error=type(exc).__name__)
        result.requests += 1
        if out.ok:
            result.succeeded += 1
            latency_ms = (now() - start - a.at_s) * 1000
            result.latencies_ms.append(latency_ms)
            result.waits_ms.append(max(0.0, latency_ms - out.answer_s * 1000))
            ok_at.append(int(now() - start))
            result.tokens += out.tokens_in + out.tokens_out
            result.cache_read_tokens += out.usage.cache_read
            result.cache_write_tokens += out.usage.cache_write
            result.cacheable_tokens += out.usage.cacheable
        else:
            result.failed += 1
            result.errors[out.error or "failed"] += 1

    await asyncio.gather(*(one(a) for a in arrivals))
    result.seconds = now() - start
    per_s = Counter(ok_at)
    result.ok_per_s = [per_s.get(s, 0) for s in range(int(result.seconds) + 1)]
    return start


def _pooltui_sender(client: Any, scenario: Scenario) -> Sender:
    async def send(a: Arrival, left_s: float) -> CallerResult:
        resp = await client.send(lambda profile: request_for(profile, a, scenario.traffic), deadline_s=left_s)
        if resp.status >= 400:
            return CallerResult(False, resp.provider, error=f"http_{resp.status}")
        usage = usage_of(resp.json())
        return CallerResult(True, resp.provider, usage.input, usage.output, answer_s=_answer_s(resp.trace),
                            usage=usage)

    return send


def _answer_s(trace: Any) -> float:
    """The answering attempt's own time, from the request's trace (its last attempt)."""
    for step in reversed(trace.steps):
        if step.kind == "attempt":
            return float(step.detail.get("latency_ms") or 0.0) / 1000
    return 0.0


async def run_strategy(scenario: Scenario, strategy: str, arrivals: list[Arrival], *, concurrency: int,
                       seed: int, learn: bool = True, real_time: bool = False,
                       history: History | None = None) -> RunResult:
    """One strategy against a fresh simulator of ``scenario`` (``learn``: pooltui's pools pace picks by the
    limits they learn from 429s). By default the simulator answers in-process, timed by the running loop's
    clock (simulated time on :func:`run_lab`'s loop); ``real_time``: served on a loopback socket, real clocks."""
    result = RunResult(strategy)
    loop, wall_start = asyncio.get_running_loop(), time.perf_counter()
    server: Any = SimServer(scenario) if real_time else InProcessSim(scenario)
    with server:
        if real_time:
            http, clock, now, elapsed = None, None, time.monotonic, None
        else:
            http, clock, now, elapsed = server.http_client(), server.clock, loop.time, loop.time
        if strategy in HERMES_STRATEGIES:
            client: Any = HermesEmulatedClient(scenario, server, strategy, seed=seed, http=http, clock=clock,
                                               mono=now)
            send: Sender = client.send
        else:
            name, affinity = split_affinity(strategy)
            client = client_for_scenario(scenario, server, name, seed=seed, clock=clock, http=http,
                                         latency_clock=elapsed, affinity=affinity)
            for up in client.upstreams:
                up.pool.learn = learn
            send = _pooltui_sender(client, scenario)
        recorder = HistoryRecorder(history, client) if history is not None and strategy not in HERMES_STRATEGIES \
            else None  # what a proxy would have written: events, usage, key states, requests
        served: Counter[str] = Counter()

        async def counted(a: Arrival, left_s: float) -> CallerResult:
            out = await send(a, left_s)
            if out.ok and out.provider:
                served[out.provider] += 1
            if out.ok and scenario.prices.per_model:
                cost = scenario.prices.cost_of(a.model or _default_model(scenario), out.usage)
                result.cost = (result.cost or 0.0) + (cost or 0.0)
            return out

        try:
            start = await _drive(arrivals, concurrency, scenario.traffic.deadline_s, counted, result, now)
            if result.cost is not None and strategy not in HERMES_STRATEGIES:
                result.cost_round_robin = result.cost + sum(k.cost_round_robin_extra for up in client.upstreams
                                                            if up.pool is not None for k in up.pool.keys)
        finally:
            if recorder is not None:
                recorder.close()
            await client.aclose()
            if http is not None:
                await http.aclose()
        result.fallback = sum(n for name, n in served.items() if name != scenario.primary.name)
        _provider_side(result, server, scenario, start)
    result.wall_s = time.perf_counter() - wall_start
    return result


def _default_model(scenario: Scenario) -> str:
    from pooltui.providers.profiles import profile_for

    return profile_for(scenario.primary.dialect).default_model


def _provider_side(result: RunResult, server: SimServer | InProcessSim, scenario: Scenario, start: float) -> None:
    """What the simulated providers sent: statuses, the primary's keys' requests, 429s per second."""
    limited: Counter[int] = Counter()
    for name, ps in server.state.providers.items():
        for label, counters in ps.counters.items():
            result.upstream.update(counters.by_status)
            if name == scenario.primary.name:
                result.key_requests[label] = sum(counters.by_status.values())
        shift = int(start - ps.started)  # the simulator started just before the run
        for (second, status), n in ps.timeline.items():
            if status == 429:
                limited[max(0, second - shift)] += n
    result.limited_per_s = [limited.get(s, 0) for s in range(len(result.ok_per_s))]  # as long as ok_per_s


async def compare(scenario: Scenario, strategies: list[str], arrivals: list[Arrival], *, concurrency: int,
                  seed: int, progress: Callable[[RunResult], None] | None = None,
                  learn: bool = True, real_time: bool = False) -> list[RunResult]:
    """Each strategy in turn on the same arrivals, each against its own fresh simulator (``learn``: pooltui's
    strategies pace picks by learnt limits, as pools do by default; ``real_time``: see :func:`run_strategy`)."""
    results = []
    for strategy in strategies:
        result = await run_strategy(scenario, strategy, arrivals, concurrency=concurrency, seed=seed, learn=learn,
                                    real_time=real_time)
        results.append(result)
        if progress is not None:
            progress(result)
    return results


def run_lab(scenario: Scenario, strategies: list[str], arrivals: list[Arrival], *, concurrency: int, seed: int,
            progress: Callable[[RunResult], None] | None = None, learn: bool = True, real_time: bool = False,
            workers: int = 1) -> list[RunResult]:
    """:func:`compare` to its end from synchronous code, results in the order of ``strategies``: in simulated
    time (a fast-forwarded loop of its own) or, with ``real_time``, on a real loop against a simulator on a
    loopback socket. In simulated time each strategy's run is independent and deterministic, so ``workers`` > 1
    runs them in that many processes at once (``progress`` is then called in the order they finish)."""
    if real_time:
        return asyncio.run(compare(scenario, strategies, arrivals, concurrency=concurrency, seed=seed,
                                   progress=progress, learn=learn, real_time=True))
    if workers <= 1 or len(strategies) <= 1:
        return run_simulated(compare(scenario, strategies, arrivals, concurrency=concurrency, seed=seed,
                                     progress=progress, learn=learn))
    # fork is quick and safe from a single-threaded process (the CLI); elsewhere a fresh interpreter
    method = "fork" if threading.active_count() == 1 and "fork" in mp.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(min(workers, len(strategies)), mp_context=mp.get_context(method)) as pool:
        futures = {pool.submit(simulated_run, scenario, name, arrivals, concurrency, seed, learn): name
                   for name in strategies}
        done: dict[str, RunResult] = {}
        for future in as_completed(futures):
            result = done[futures[future]] = future.result()
            if progress is not None:
                progress(result)
    return [done[name] for name in strategies]


def simulated_run(scenario: Scenario, strategy: str, arrivals: list[Arrival], concurrency: int, seed: int,
                  learn: bool = True) -> RunResult:
    """One strategy's run in simulated time, from synchronous code (a worker process's job)."""
    return run_simulated(run_strategy(scenario, strategy, arrivals, concurrency=concurrency, seed=seed,
                                      learn=learn))


def lab_workers(strategies: int, requests: int) -> int:
    """Processes worth starting for a simulated comparison: one per core, for a run long enough to repay them."""
    return 1 if strategies * requests < 3000 else min(strategies, os.cpu_count() or 1)
