"""``python -m pooltui.bench engine``: µs per pick+report cycle of the pool, per strategy, at 3, 100 and 1000 keys.

Targets (issue 1): under 10 µs per pick+report at 3 keys, growing < 3x from 3 to 1000 keys."""

from __future__ import annotations

import time

from pooltui.core.classify import Classification
from pooltui.core.clock import SystemClock
from pooltui.core.declared import TokenHold
from pooltui.core.headers import RateLimits
from pooltui.core.health import KeyState, Outcome
from pooltui.core.pool import KeySpec, Pool, PoolKey
from pooltui.core.strategies import STRATEGIES
from pooltui.core.trace import RequestTrace
from pooltui.core.windows import KeyLimits

Row = dict[str, float]


def _picked(key: PoolKey | None) -> PoolKey:
    if key is None:
        raise RuntimeError("the pool had no key to pick")
    return key


#: declared so high they never fill: every pick checks and takes from each window, every answer settles
NEVER_FULL = KeyLimits(rpm=10**9, rpd=10**12, tpm=10**15, max_concurrency=10**6)


def engine_pool(n_keys: int, strategy: str, cooling: bool, headers: bool, declared: bool = False,
                affinity: bool = False) -> Pool:
    """With the in-flight cap on, traffic mixing two models (per-model state in use) and a third model cooling;
    ``cooling``: all keys but 10% (at least 2) cooling for an hour. ``headers=False``: each key's learnt limit
    set so high it is never full (every pick checks it, every answer feeds it). ``declared``: each key declares
    rpm, rpd, tpm and max_concurrency (:data:`NEVER_FULL`)."""
    clock = SystemClock()
    limits = NEVER_FULL if declared else None
    pool = Pool("bench", [KeySpec(f"k{i}", f"sk-test-{i:032d}", limits=limits) for i in range(n_keys)], strategy,
                clock=clock, preempt=False, max_inflight=8, affinity="prefix" if affinity else "off")
    far = clock.now() + 3600
    if cooling:
        for k in pool.keys[: max(0, n_keys - max(2, n_keys // 10))]:
            pool.restore(k.label, KeyState.COOLING.value, far, None, "bench")
    too_fast = Classification(Outcome.RATE_LIMITED, 429, "slow down", 3600.0)
    for model in ("m1", "m2", "m3"):
        pool.report(_picked(pool.pick(model=model)), too_fast if model == "m3" else Classification(Outcome.OK, 200),
                    model=model)
    if not headers:
        for k in pool.keys:
            models = [""] if k.learned is not None else []
            for model in [*models, *(k.learned_models or {})]:
                pool.restore_learned(k.label, model, 10**9, 1.0)
    return pool


def cycle_us(n_keys: int, strategy: str, cooling: bool, traced: bool, cycles: int, headers: bool = True,
             affinity: bool = False) -> float:
    """Best of 3 runs of ``cycles`` pick+report cycles, µs per cycle. ``headers=False``: answers state no budget,
    so each key's limit is learnt. ``affinity``: each request one of 1,000 conversations in turn."""
    pool = engine_pool(n_keys, strategy, cooling, headers, affinity=affinity)
    if affinity:
        return _affinity_cycle_us(pool, traced, cycles)
    ok = Classification(Outcome.OK, 200, limits=RateLimits(1000, 900, 1.0, None, None, None)) if headers else \
        Classification(Outcome.OK, 200)
    pick, report = pool.pick, pool.report
    models = ("m1", "m2")
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        if traced:
            for i in range(cycles):
                trace = RequestTrace(i, 0.0, strategy)
                model = models[i & 1]
                report(_picked(pick(trace, None, model)), ok, 0.01, model=model)
        else:
            for i in range(cycles):
                model = models[i & 1]
                report(_picked(pick(None, None, model)), ok, 0.01, model=model)
        best = min(best, (time.perf_counter() - t0) / cycles * 1e6)
    return best


def _affinity_cycle_us(pool: Pool, traced: bool, cycles: int) -> float:
    ok = Classification(Outcome.OK, 200, limits=RateLimits(1000, 900, 1.0, None, None, None))
    pick, report, strategy = pool.pick, pool.report, pool.strategy
    tokens = [f"{i:024x}" for i in range(1000)]
    models = ("m1", "m2")
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for i in range(cycles):
            model = models[i & 1]
            trace = RequestTrace(i, 0.0, strategy) if traced else None
            report(_picked(pick(trace, None, model, affinity=tokens[i % 1000])), ok, 0.01, model=model)
        best = min(best, (time.perf_counter() - t0) / cycles * 1e6)
    if not pool.conversations:
        raise RuntimeError("the affinity case ran with affinity off: no conversation was followed")
    return best


def declared_cycle_us(n_keys: int, strategy: str, cycles: int) -> float:
    """Best of 3 runs, µs per pick+report cycle with declared limits on (:data:`NEVER_FULL`) and each request's
    tokens held and settled from its usage; answers state no budget (each key's limit learnt too)."""
    pool = engine_pool(n_keys, strategy, False, False, declared=True)
    ok = Classification(Outcome.OK, 200)
    pick, report = pool.pick, pool.report
    models = ("m1", "m2")
    hold = TokenHold(1_000, 100)  # one request at a time: its hold is settled by each answer
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for i in range(cycles):
            model = models[i & 1]
            report(_picked(pick(None, None, model, hold)), ok, 0.01, 900, 80, model=model, hold=hold)
        best = min(best, (time.perf_counter() - t0) / cycles * 1e6)
    return best


def _with_affinity(cycles: int) -> dict[str, Row]:
    print("with affinity on (1,000 conversations in turn, each kept on its key; none cooling):")
    return _plain_and_traced(cycles, "with affinity", 10, affinity=True)


def _plain_and_traced(cycles: int, what: str, target_us: float, **case: bool) -> dict[str, Row]:
    """Each strategy at 3 and 1,000 keys, none cooling, without and with the trace; prints the worst at 3 keys."""
    rows: dict[str, Row] = {}
    for strategy in STRATEGIES:
        for n in (3, 1000):
            plain = cycle_us(n, strategy, False, False, cycles, **case)
            traced = cycle_us(n, strategy, False, True, cycles, **case)
            rows[f"{strategy}/{n}"] = {"free": round(plain, 3), "free+trace": round(traced, 3)}
            print(f"{strategy:12} {n:>5}  {plain:>12.2f} {traced:>8.2f}")
    worst = max(max(v.values()) for k, v in rows.items() if k.endswith("/3"))
    print(f"worst at 3 keys {what}: {worst:.2f} µs (target < {target_us:g})")
    return rows


def _declared(cycles: int) -> dict[str, Row]:
    print("with declared limits (rpm, rpd, tpm, max_concurrency on every key; tokens held and settled; none "
          "cooling):")
    out: dict[str, Row] = {}
    for strategy in STRATEGIES:
        for n in (3, 1000):
            us = declared_cycle_us(n, strategy, cycles)
            out[f"{strategy}/{n}"] = {"free": round(us, 3)}
            print(f"{strategy:12} {n:>5}  {us:>12.2f}")
    worst = max(v["free"] for k, v in out.items() if k.endswith("/3"))
    print(f"worst at 3 keys with declared limits: {worst:.2f} µs (target < 5)")
    return out


def _with_headers(cycles: int) -> dict[str, Row]:
    results: dict[str, Row] = {}
    print(f"{'strategy':12} {'keys':>5}  {'none cooling':>12} {'traced':>8}  {'most cooling':>12} {'traced':>8}")
    for strategy in STRATEGIES:
        for n in (3, 100, 1000):
            row = {(cooling, traced): cycle_us(n, strategy, cooling, traced, cycles)
                   for cooling in (False, True) for traced in (False, True)}
            results[f"{strategy}/{n}"] = {f"{'cooling' if c else 'free'}{'+trace' if t else ''}": round(v, 3)
                                          for (c, t), v in row.items()}
            print(f"{strategy:12} {n:>5}  {row[(False, False)]:>12.2f} {row[(False, True)]:>8.2f}  "
                  f"{row[(True, False)]:>12.2f} {row[(True, True)]:>8.2f}")
    worst3 = max(max(v.values()) for k, v in results.items() if k.endswith("/3"))
    growth = max(
        max(results[f"{s}/1000"].values()) / max(1e-9, min(results[f"{s}/3"].values())) for s in STRATEGIES)
    growth_same = max(
        results[f"{s}/1000"][col] / results[f"{s}/3"][col] for s in STRATEGIES for col in results[f"{s}/3"])
    print(f"worst at 3 keys: {worst3:.2f} µs (target < 10); worst growth 3 -> 1000 keys, same column: "
          f"{growth_same:.2f}x (target < 3x); across columns {growth:.2f}x")
    return results


def _without_headers(cycles: int) -> dict[str, Row]:
    print("without rate-limit headers (each key's limit learnt, picks paced by it; none cooling):")
    return _plain_and_traced(cycles, "without headers", 5, headers=False)


def bench_engine(cycles: int) -> dict[str, dict[str, Row]]:
    """Print the table and return it: {"headers": strategy/keys -> column -> µs, "learned": the same without,
    "declared": with declared limits on}."""
    print(f"engine: µs per pick+report cycle (best of 3 x {cycles} cycles; traced = with the per-request trace;"
          " two models in turn, a third cooling, in-flight cap 8)")
    return {"headers": _with_headers(cycles), "learned": _without_headers(cycles), "declared": _declared(cycles),
            "affinity": _with_affinity(cycles)}
