"""Test traffic: drive a PoolClient at a rate and concurrency, with bursts, and count what happened."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from pooltui.client.pool_client import PoolClient, PoolResponse, PoolUnavailableError
from pooltui.core.stats import percentile
from pooltui.sim.scenario import Scenario
from pooltui.sim.server import SimServer
from pooltui.sim.wiring import client_for_scenario

PROMPTS = ("ping", "summarise the incident", "plan the next step", "what changed since yesterday?")


@dataclass(slots=True)
class TrafficResult:
    """Counts of one traffic run: always ``requests == succeeded + failed``."""

    requests: int = 0
    succeeded: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None
    #: each caller's latency, arrival to answer (waits included), and time waiting for a key, s (the newest)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=FELT_KEPT))
    waits: deque[float] = field(default_factory=lambda: deque(maxlen=FELT_KEPT))

    def felt(self) -> dict[str, float | None]:
        """What callers felt: latency p50/p95 (ms) and waits for a key (p95 and the longest, s)."""
        latencies, waits = list(self.latencies), list(self.waits)
        p50, p95, w95 = percentile(latencies, 0.5), percentile(latencies, 0.95), percentile(waits, 0.95)
        return {"latency_p50_ms": None if p50 is None else round(p50 * 1000, 1),
                "latency_p95_ms": None if p95 is None else round(p95 * 1000, 1),
                "wait_p95_s": None if w95 is None else round(w95, 3),
                "wait_max_s": round(max(self.waits), 3) if self.waits else None}

    @property
    def elapsed_s(self) -> float:
        return (self.finished or time.perf_counter()) - self.started


Listener = Callable[[bool, str | None], None]

#: reason phrases where the caller's SDKs and the providers say it otherwise than the HTTP standard
_PHRASES = {429: "rate limited", 529: "Overloaded"}


def status_text(status: int) -> str:
    """A status as a caller sees it: ``529 Overloaded``, ``400 Bad Request``."""
    if status in _PHRASES:
        return f"{status} {_PHRASES[status]}"
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def cause_of(exc: PoolUnavailableError) -> str:
    """What a caller of the proxy is answered when the pool cannot serve: its status and why, in a few words
    (``529 Overloaded``: the provider's overload outlasted the attempts; ``429 rate limited``: every key is
    cooling; ``503 no usable key``: invalid, forbidden or spent with no reset)."""
    if exc.kind == "deadline":
        return "504 deadline reached"
    if exc.kind == "too_large":
        return "502 answer too large"
    status = exc.last_status
    if exc.kind != "unusable" and status is not None and status >= 500:
        return status_text(status)
    if exc.kind == "unusable" or not exc.should_retry:
        return "503 no usable key"
    if status == 429 or exc.retry_after_s is not None:
        return status_text(429)
    return status_text(status) if status is not None else "503 no key could serve"


def causes_line(errors: dict[str, int]) -> str:
    """``529 Overloaded x10, 429 rate limited x3``: the most frequent first."""
    return ", ".join(f"{cause} x{n}" for cause, n in sorted(errors.items(), key=lambda item: (-item[1], item[0])))


FELT_KEPT = 65_536  # callers' latencies kept for a run's percentiles (the newest)
#: open-loop arrivals stop being sent past this many in flight (a bound on memory, far above any pool's backlog)
OPEN_LOOP_CAP = 10_000


_PADDING = "Context from an earlier turn, kept so the answer stays on topic. "


class TrafficGenerator:
    """Sends chat requests through a client: ``rate`` per second, open-loop as real callers arrive (they do not
    wait for each other: a pool that cannot keep up builds a backlog, as it would in production), or with rate 0
    as fast as ``concurrency`` requests in flight allow (closed-loop)."""

    def __init__(self, client: PoolClient, *, rate: float = 0.0, concurrency: int = 8, stream: bool = False,
                 deadline_s: float | None = None, seed: int | None = None, models: list[str] | None = None,
                 prompt_chars: int = 0) -> None:
        self.client = client
        self.prompt_chars = prompt_chars  # prompts padded to about this size (large prompts: token limits bind)
        self.models = list(models or [])  # requests take these in turn (providers limit per model)
        self._sent = 0
        self.rate = rate
        self.concurrency = max(1, concurrency)
        self.stream = stream
        self.deadline_s = deadline_s
        self.rng = random.Random(seed)
        self.result = TrafficResult()
        self.listeners: list[Listener] = []
        self._stop = asyncio.Event()
        self._burst = 0
        self.running = False
        self.inflight = 0

    def _felt(self, outcome: str, served_by: str, trace) -> None:
        """Each caller's latency and wait, as the client measured them (its clock)."""
        self.result.latencies.append(self.client.clock.now() - trace.started)
        self.result.waits.append(trace.waited_s)

    def stop(self) -> None:
        self._stop.set()

    def burst(self, n: int) -> None:
        """Send ``n`` extra requests at once, on top of the rate."""
        self._burst += max(0, n)

    async def _one(self, sem: asyncio.Semaphore | None) -> None:
        res = self.result
        error: str | None = None
        try:
            prompt = self.rng.choice(PROMPTS)
            if len(prompt) < self.prompt_chars:
                prompt = (prompt + " " + _PADDING * (self.prompt_chars // len(_PADDING) + 1))[:self.prompt_chars]
            model = self.models[self._sent % len(self.models)] if self.models else None
            self._sent += 1
            if self.stream:
                stream = await self.client.open_stream(self.client.chat_builder(prompt, stream=True, model=model),
                                                       deadline_s=self.deadline_s)
                if isinstance(stream, PoolResponse):
                    error = status_text(stream.status)
                else:
                    async for _ in stream:
                        pass
                    if stream.interrupted:
                        error = "stream interrupted"
            else:
                resp = await self.client.chat(prompt, deadline_s=self.deadline_s, model=model)
                if resp.status >= 400:
                    error = status_text(resp.status)
        except PoolUnavailableError as exc:
            error = cause_of(exc)
        except asyncio.CancelledError:
            error = "cancelled"
            raise
        except Exception as exc:
            error = type(exc).__name__
        finally:
            res.requests += 1
            if error is None:
                res.succeeded += 1
            else:
                res.failed += 1
                res.errors[error] += 1
            self.inflight -= 1
            if sem is not None:
                sem.release()
            for listener in self.listeners:
                listener(error is None, error)

    async def run(self, total: int | None = None) -> TrafficResult:
        """Send ``total`` requests (None: until ``stop()``), then wait for those in flight."""
        self.running = True
        self._stop.clear()
        self.client.outcome_listeners.append(self._felt)
        sem = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task] = set()
        issued = 0
        next_at = time.perf_counter()
        try:
            while not self._stop.is_set() and (total is None or issued < total):
                if self._burst:
                    self._burst -= 1
                elif self.rate > 0:
                    now = time.perf_counter()
                    if next_at > now:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._stop.wait(), min(next_at - now, 0.25))
                        continue
                    next_at = max(next_at + 1.0 / self.rate, now - 1.0)
                token: asyncio.Semaphore | None = None
                if self.rate > 0:  # open-loop: an arrival does not wait for the requests before it
                    while self.inflight >= OPEN_LOOP_CAP and not self._stop.is_set():
                        await asyncio.sleep(0.05)
                else:
                    await sem.acquire()
                    token = sem
                self.inflight += 1
                issued += 1
                task = asyncio.create_task(self._one(token))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for task in tasks:
                task.cancel()
            self.running = False
            self.result.finished = time.perf_counter()
            with contextlib.suppress(ValueError):
                self.client.outcome_listeners.remove(self._felt)
        return self.result


def summary(result: TrafficResult, client: PoolClient) -> dict[str, Any]:
    """The JSON summary `pooltui traffic --json` prints."""
    keys = []
    for up in client.upstreams:
        if up.pool is None:
            continue
        for snap in up.pool.snapshot():
            keys.append({"provider": up.name, **{k: snap[k] for k in (
                "label", "masked", "state", "requests", "ok", "rate_limited", "invalid", "forbidden", "quota",
                "server_errors", "transport", "tokens_in", "tokens_out", "p50_ms", "reason")}})
    primary = client.primary.pool
    return {
        "requests": result.requests,
        "succeeded": result.succeeded,
        "failed": result.failed,
        "strategy": primary.strategy if primary else "none",
        "fallback_used": client.fallback_used,
        "elapsed_s": round(result.elapsed_s, 3),
        "errors": dict(result.errors),
        "pool": primary.summary() if primary else "",
        "callers": result.felt(),
        "keys": keys,
    }


async def run_scenario_traffic(scenario: Scenario, *, strategy: str | None = None, requests: int | None = None,
                               concurrency: int | None = None, rate: float | None = None, stream: bool = False,
                               seed: int | None = None, models: list[str] | None = None,
                               ) -> tuple[TrafficResult, PoolClient, SimServer]:
    """Serve the scenario on a free loopback port and run traffic through the engine against it."""
    t = scenario.traffic
    with SimServer(scenario) as server:
        client = client_for_scenario(scenario, server, strategy, seed=seed)
        try:
            gen = TrafficGenerator(client, rate=t.rate if rate is None else rate,
                                   concurrency=concurrency or t.concurrency, stream=stream, seed=seed,
                                   models=models or t.models, prompt_chars=t.prompt_chars)
            result = await gen.run(t.requests if requests is None else requests)
        finally:
            await client.aclose()
        return result, client, server
