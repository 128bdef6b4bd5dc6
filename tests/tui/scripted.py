"""Deterministic monitor sessions for snapshot tests: the real engine fed a seeded script, fixed clock.

No HTTP: each scripted request goes through ``Pool.pick``/``Pool.report`` with the trace and usage
records the PoolClient would make, so every panel shows real engine state.
"""

from __future__ import annotations

import random

import httpx

from pooltui.client.pool_client import PoolClient, Upstream
from pooltui.core import Classification, DeadlineSource, FakeClock, KeySpec, Outcome, Pool
from pooltui.core.events import EventLog
from pooltui.core.headers import RateLimits
from pooltui.core.trace import RequestTrace
from pooltui.core.usage import Usage
from pooltui.providers.profiles import profile_for
from pooltui.session.local import MonitorSession

START = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC
LABELS = ("primary", "secondary", "tertiary", "spare")


def _session(n_keys: int, seed: int, provider: str = "anthropic",
             learn: bool = True) -> tuple[MonitorSession, Pool, FakeClock]:
    clock = FakeClock(START)
    events = EventLog()
    pool = Pool(provider, [KeySpec(label, f"sk-ant-test-{label}-{i:020d}") for i, label in enumerate(LABELS[:n_keys])],
                clock=clock, events=events, rng=random.Random(seed), learn=learn)
    client = PoolClient(Upstream(profile_for("anthropic", name=provider), pool), http=httpx.AsyncClient(),
                        clock=clock, events=events, rng=random.Random(seed))
    session = MonitorSession({provider: client}, clock=clock, title="pooltui", demo=True, autostart_traffic=False)
    return session, pool, clock


def _send(session: MonitorSession, outcome, rng: random.Random, dt: float, inflight: list | None = None) -> None:
    """One scripted request: pick, the provider's answer, the report, then ``dt`` of time. With ``inflight`` (a
    list the script keeps) the answer is reported ``latency`` later, as the client would, with other requests
    picked meanwhile; without, at once."""
    client, pool, clock = session.client, session.pool, session.clock
    if inflight is not None:
        _answer_due(session, inflight, clock.now())
    trace = client._new_trace()
    key = pool.pick(trace)
    if key is None:
        wait = pool.next_ready_in() or 1.0
        reason, learned = pool.wait_reason()
        trace.add(clock.now(), "wait", pool.name, seconds=wait, reason=reason, learned=learned)
        trace.result = "pool unavailable"
        clock.advance(dt)
        return
    latency = rng.uniform(0.08, 0.4)
    result = outcome(key.label, pool)
    tin, tout = (rng.randint(200, 900), rng.randint(40, 300)) if result.outcome is Outcome.OK else (0, 0)
    if inflight is None:
        _report(session, trace, key, result, latency, tin, tout)
    else:
        inflight.append((clock.now() + latency, trace, key, result, latency, tin, tout))
    clock.advance(dt)


def _answer_due(session: MonitorSession, inflight: list, until: float) -> None:
    """Report the answers due by ``until``, each at its own time."""
    clock = session.clock
    now = clock.now()
    for item in sorted((i for i in inflight if i[0] <= until), key=lambda i: i[0]):
        inflight.remove(item)
        clock.advance(item[0] - clock.now() if item[0] > clock.now() else 0.0)
        _report(session, *item[1:])
    clock.advance(max(0.0, now - clock.now()))


def _report(session: MonitorSession, trace, key, result: Classification, latency: float, tin: int, tout: int) -> None:
    client, pool, clock = session.client, session.pool, session.clock
    pool.report(key, result, latency, tin, tout, trace.request_id)
    trace.add(clock.now(), "attempt", pool.name, key.label, status=result.status, outcome=result.outcome.value,
              latency_ms=latency * 1000, reason=result.reason)
    trace.result = "ok" if result.outcome is Outcome.OK else f"http {result.status}"
    ok = result.outcome is Outcome.OK
    client._record(pool.name, key, client.primary.profile.default_model, ok, Usage(tin, tout), None, 1)
    if result.outcome is Outcome.OK:
        trace.started = min(trace.started, clock.now() - latency)  # the caller waited for this answer
        client._outcome("ok", pool.name, trace)


def _ok(remaining: int = 900) -> Classification:
    return Classification(Outcome.OK, 200, limits=RateLimits(1000, remaining, 30.0, None, None, None))


def steady(seed: int = 1) -> MonitorSession:
    session, _, _ = _session(4, seed)
    rng = random.Random(seed)
    for i in range(240):
        _send(session, lambda label, pool, i=i: _ok(1000 - i // 4), rng, 0.25)
    return session


def storm(seed: int = 2) -> MonitorSession:
    """A 429 storm: three keys cooling with provider resets, one still serving."""
    session, _, _ = _session(4, seed)
    rng = random.Random(seed)
    limited = {"primary", "secondary", "tertiary"}

    def outcome(label: str, pool: Pool, i: list[int] = [0]) -> Classification:  # noqa: B006
        i[0] += 1
        if i[0] > 120 and label in limited:
            return Classification(Outcome.RATE_LIMITED, 429, "Number of request tokens has exceeded your per-minute "
                                  "rate limit", rng.choice([18.0, 24.0, 31.0]), DeadlineSource.RETRY_AFTER)
        return _ok(max(5, 400 - i[0]))

    for _ in range(160):
        _send(session, outcome, rng, 0.2)
    return session


def peak(seed: int = 4, requests: int = 300, learn: bool = True) -> MonitorSession:
    """Peak hour: four keys of 5 requests per 2 s each, driven at 10/s; 429s with a short retry-after and no
    rate-limit headers on success, so each key's limit is learnt from its first 429s (``learn=False``: the
    429 storm a pool without learned limits meets)."""
    session, _, clock = _session(4, seed, learn=learn)
    rng = random.Random(seed)
    served: dict[str, list[float]] = {label: [] for label in LABELS}

    def outcome(label: str, pool: Pool) -> Classification:
        now = clock.now()
        recent = [t for t in served[label] if t > now - 2.0]
        served[label] = recent
        if len(recent) >= 5:
            wait = round(2.0 - (now - recent[0]), 2)
            return Classification(Outcome.RATE_LIMITED, 429, f"Rate limit reached. Please try again in {wait}s.",
                                  wait, DeadlineSource.RETRY_AFTER)
        recent.append(now)
        return Classification(Outcome.OK, 200)  # no rate-limit headers: the limit shows only as 429s

    # learning reads send times from the answers' latency, so answers come back that much later, requests in
    # flight meanwhile; the storm without learning keeps its original script (answers at once)
    inflight: list | None = [] if learn else None
    for _ in range(requests):
        _send(session, outcome, rng, 0.1, inflight)
    if inflight is not None:
        _answer_due(session, inflight, clock.now())
    return session


def outage(seed: int = 5) -> MonitorSession:
    """The primary answers 529 until its breaker opens; the fallback 'sim-backup' serves meanwhile."""
    from pooltui.core.events import Event, EventKind, StateChange

    clock = FakeClock(START)
    events = EventLog()
    rng = random.Random(seed)
    primary = Pool("sim-anthropic", [KeySpec(f"main-{i}", f"sk-ant-test-main-{i:020d}") for i in (1, 2)],
                   clock=clock, events=events, rng=rng)
    backup = Pool("sim-backup", [KeySpec("backup", "sk-test-backup-00000000000000000003")], clock=clock, events=events,
                  rng=rng)
    client = PoolClient(Upstream(profile_for("anthropic", name="sim-anthropic"), primary),
                        [Upstream(profile_for("openai", name="sim-backup"), backup)], http=httpx.AsyncClient(),
                        clock=clock, events=events, rng=rng)
    session = MonitorSession({"sim-anthropic": client}, clock=clock, title="pooltui demo · outage", demo=True,
                             autostart_traffic=False)
    breaker = client.primary.breaker
    for _ in range(40):  # normal service
        _send(session, lambda label, pool: Classification(Outcome.OK, 200), rng, 0.1)
    for _ in range(6):  # then 529s until the breaker opens
        key = primary.pick()
        primary.report(key, Classification(Outcome.TRANSIENT, 529, "Overloaded"), 0.02)
        if breaker.failure():
            events.emit(Event(clock.now(), "sim-anthropic", None, EventKind.STATE, None,
                              "6 transient failures in 5 s", "outage suspected: fallbacks first for 3 s",
                              change=StateChange.OUTAGE_OPENED))
        clock.advance(0.2)
    for _ in range(30):  # the fallback serves
        events.emit(Event(clock.now(), "sim-anthropic", None, EventKind.FALLBACK, 529,
                          "sim-anthropic: outage suspected", "fell back to sim-backup"))
        key = backup.pick()
        backup.report(key, Classification(Outcome.OK, 200), rng.uniform(0.05, 0.2))
        client.fallback_used += 1
        client._outcome("ok", "sim-backup", RequestTrace(0, clock.now(), "round-robin"))
        clock.advance(0.09)  # within the breaker's open period (3 s): the fallback serves first
    return session


def revoked(seed: int = 3) -> MonitorSession:
    """Key 'secondary' was regenerated on the dashboard: its first 401 marks it invalid."""
    session, _, _ = _session(3, seed)
    rng = random.Random(seed)

    def outcome(label: str, pool: Pool, i: list[int] = [0]) -> Classification:  # noqa: B006
        i[0] += 1
        if label == "secondary" and i[0] > 60:
            return Classification(Outcome.INVALID, 401, "invalid x-api-key")
        return _ok(800 - i[0])

    for _ in range(150):
        _send(session, outcome, rng, 0.3)
    return session


def app_for(state: str):
    """The monitor on one of the states above, its session not started (snapshots and rendered text)."""
    from pooltui.tui.app import PoolMonitorApp

    return PoolMonitorApp(globals()[state](), start_session=False)
