"""The Redis state store (``[state] backend = "redis"``): pools kept in step across processes and hosts.

Each process keeps picking from its own pool (the pick stays local and as fast as before); Redis pushes
what the others learnt. What goes out, and how:

- **At once** (a channel, plus a hash newcomers read): a key's new state (a 429 cools it, a 401 marks it
  invalid, quota parks it, a hand action disables, enables or resets it) with its per-model cooldowns,
  and the provider's outage breaker opening or closing. A state is applied only to a key whose secret has
  the same fingerprint, so two configs that reuse a label for different keys never mix.
- **Exact** (atomic increments, written before the caller gets its answer): budgets' spend per key, UTC
  day and month. Each process adds what its requests spent and takes the fleet's totals back, so a daily
  budget is spent once across processes; the process that crosses it parks the key and the others follow.
- **In batches** (every half second): each key's request count (least-used balances the fleet's counts;
  a newcomer's round-robin starts after the fleet's last pick), this process's events (a Redis stream the
  fleet monitor merges), and a heartbeat (host, pid, requests/s, its panels).
- **Budget windows** (declared limits and learnt ones, requests and tokens): one shared sliding window per
  key and limit, slots leased in small batches ahead of need (:mod:`pooltui.store.shared_windows`); each
  key's learnt estimate is published and the fleet's surest is applied everywhere (:meth:`merge_learned`).
- **The config**: a process that reloads its changed config file publishes it (references only, never a
  secret) with a generation; processes on other hosts apply its keys and strategy.

If Redis is unreachable, every process keeps serving on its own view, says so once, reconnects with
backoff, then reads the shared states again and writes back what it learnt meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pooltui.core.budget import period_starts
from pooltui.core.classify import Classification
from pooltui.core.events import TIMER_ENDED, Event, EventKind, EventLog, StateChange
from pooltui.core.health import KeyState, Outcome
from pooltui.core.pool import Pool
from pooltui.store import shared_wire
from pooltui.store.fleet import CONNECTED, cancel_until_done, failure_of, names, redact_url, status_line
from pooltui.store.shared_affinity import SharedAffinity
from pooltui.store.shared_windows import SharedWindows
from pooltui.store.shared_wire import Rejected

#: events after which a key's state may have changed (the state itself is read from the pool)
STOP_WAIT_S = 5.0  # the longest stop() waits for its tasks, and then for its connection to close
_CHANGES = frozenset({EventKind.RATE_LIMITED, EventKind.INVALID, EventKind.FORBIDDEN, EventKind.QUOTA,
                      EventKind.STATE})


def surer(a: tuple[int, float, float], b: tuple[int, float, float]) -> bool:
    """Whether the estimate ``a`` (limit, window_s, sure) beats ``b``: surer, or as sure and a smaller rate."""
    if abs(a[2] - b[2]) > 1e-9:
        return a[2] > b[2]
    return a[0] / a[1] < b[0] / b[1] - 1e-12


def _retrying(attempt: int) -> float:
    return min(2.0, 0.05 * 2 ** attempt)


@dataclass
class SharedKeyStates:
    """Publishes this process's state changes and applies everyone else's to its pools."""

    url: str
    prefix: str = "pooltui"
    log: Callable[[str], None] = lambda line: None
    instance: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")
    #: what this process shows the fleet monitor (provider -> panel), sent with each heartbeat
    describe: Callable[[], dict[str, Any]] | None = None
    #: a config another process published: (toml text, where it came from, when)
    on_config: Callable[[str, str, float], object] | None = None
    pools: dict[str, list[Pool]] = field(default_factory=dict)  # provider -> its pools in this process
    clients: list[Any] = field(default_factory=list)
    applied: int = 0  # remote states applied here
    published: int = 0
    connected: bool = False
    #: "connecting", then fleet.CONNECTED, AUTH_FAILED, TLS_MISMATCH or UNREACHABLE; each change is one line
    status: str = "connecting"
    sync_s: float = 0.5
    #: a state shared without a deadline of its own (disabled, invalid, forbidden elsewhere) holds here for
    #: this long after it was published, then ends (``[state] ttl_s``): nothing forged lasts for ever
    ttl_s: float = 86400.0
    #: the fleet secret (``[state] secret``, kept like a key's secret, never written to Redis): every message
    #: this process publishes carries an HMAC under it, and what does not is ignored; None: unauthenticated
    secret: str | None = field(default=None, repr=False)
    _queue: asyncio.Queue | None = None
    _outbox: deque = field(default_factory=lambda: deque(maxlen=5000))  # events not yet in the stream
    _logs: set[int] = field(default_factory=set)  # EventLogs listened to (a client may share its pool's)
    _spending: set[asyncio.Task] = field(default_factory=set)
    _counted: dict[tuple[str, str, str], int] = field(default_factory=dict)  # requests already added to Redis
    _rotation_seen: bool = False
    #: (provider, label, fingerprint, model) -> (limit, window_s, sure) of an estimate adopted from the fleet
    _adopted: dict[tuple[str, str, str, str], tuple[int, float, float]] = field(default_factory=dict)
    _applying: bool = False
    _remote: set[tuple[str, str]] = field(default_factory=set)  # (provider, label) whose state came from elsewhere
    #: budget windows shared across the fleet (``[state] share_windows``; off: each process paces alone)
    share_windows: bool = True
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _redis: Any = None

    def __post_init__(self) -> None:
        self.keys = names(self.prefix)
        self._said_once: set[str] = set()
        self.processes_seen = 1  # this one, until heartbeats say how many serve the pool
        self.windows: SharedWindows | None = None
        #: one map of conversations (prompt-cache affinity) across the fleet
        self.affinity = SharedAffinity(self.prefix, self.instance, lambda: self._redis, self.pools, self.log)
        if self.share_windows:
            self.windows = SharedWindows(self.prefix, self.instance, lambda: self._redis,
                                         lambda: self.processes_seen, self._fingerprint, self.log)

    def _fingerprint(self, provider: str, label: str) -> str:
        """The fingerprint of ``provider``'s key ``label`` (or ``label@model``) here; "" when unknown."""
        for pool in self.pools.get(provider, []):
            with contextlib.suppress(KeyError):
                return pool.key(label.split("@", 1)[0]).fingerprint
        return ""

    def dropped(self, what: str, why: str) -> None:
        """A value read from the store that is not what it claims to be: dropped, said once per reason."""
        line = f"shared state: dropped {what} from {redact_url(self.url)} ({why})"
        if line not in self._said_once and len(self._said_once) < 1000:
            self._said_once.add(line)
            self.log(line)

    # ------------------------------------------------------------------------------ what this process does
    def attach(self, pool: Pool) -> None:
        """Share ``pool``'s key states, usage counts and events."""
        self.pools.setdefault(pool.name, []).append(pool)
        if self.windows is not None:
            pool.use_windows(self.windows)
        self.affinity.attach(pool)
        pool.events.subscribe(lambda event: self._changed(pool, event))
        pool.events.subscribe(lambda event: self._learned_changed(pool, event))
        pool.events.subscribe(lambda event: self._own_view(pool, event))
        self._listen_events(pool.events)

    def attach_client(self, client: Any) -> None:
        """Share ``client``'s spend (exact, before its caller is answered), outage breaker and events."""
        self.clients.append(client)
        client.usage_listeners.append(self._usage)
        client.settle_barriers.append(self.spend_written)
        client.events.subscribe(self._breaker_changed)
        self._listen_events(client.events)

    def _listen_events(self, log: EventLog) -> None:
        if id(log) not in self._logs:
            self._logs.add(id(log))
            log.subscribe(self._event_out)

    def _event_out(self, event: Event) -> None:
        if not self._applying:  # what another process told us is in the stream already, from it
            self._outbox.append(event)

    def _put(self, item: dict[str, Any]) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue(10_000)
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(item)  # never waits: the engine goes on

    def _usage(self, u: Any) -> None:
        if not (u.tokens_in or u.tokens_out or u.cost):
            return
        for pool in self.pools.get(u.provider, []):
            with contextlib.suppress(KeyError):
                key = pool.key(u.key)
                if key.budget is not None and key.spend is not None:
                    item = {"provider": u.provider, "key": u.key, "ts": u.ts, "fingerprint": key.fingerprint,
                            "tokens": u.tokens_in + u.tokens_out, "cost": u.cost}
                    task = asyncio.get_running_loop().create_task(self._spend_until_written(item))
                    self._spending.add(task)
                    task.add_done_callback(self._spending.discard)
                    return

    async def spend_written(self, wait_s: float = 0.5) -> None:
        """Wait (up to ``wait_s``, and only while Redis answers) until counted spend is in Redis."""
        if self._spending and self.connected:
            await asyncio.wait(list(self._spending), timeout=wait_s)

    async def _spend_until_written(self, item: dict[str, Any]) -> None:
        for attempt in range(60):
            try:
                await self._add_spend(item)
                return
            except Exception:
                await asyncio.sleep(_retrying(attempt))

    def _spend_key(self, provider: str, label: str, fingerprint: str) -> str:
        return f"{self.prefix}:spend:{provider}:{label}:{fingerprint}"

    async def _add_spend(self, item: dict[str, Any]) -> None:
        """Add one request's spend to the fleet's counters and take the totals back."""
        day, month, next_day, next_month = period_starts(item["ts"])
        base = self._spend_key(item["provider"], item["key"], item["fingerprint"])
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incrby(f"{base}:tokens:{day}", int(item["tokens"]))
            pipe.incrbyfloat(f"{base}:cost:{day}", float(item["cost"]))
            pipe.incrby(f"{base}:tokens:{month}", int(item["tokens"]))
            pipe.incrbyfloat(f"{base}:cost:{month}", float(item["cost"]))
            for period, end in ((day, next_day), (month, next_month)):
                for what in ("tokens", "cost"):
                    pipe.expireat(f"{base}:{what}:{period}", int(end) + 86400)
            tokens_day, cost_day, tokens_month, cost_month, *_ = await pipe.execute()
        self._take_spend(item["provider"], item["key"], item["fingerprint"], day, month,
                         (tokens_day, cost_day, tokens_month, cost_month))

    def _take_spend(self, provider: str, label: str, fingerprint: str, day: str, month: str,
                    totals: tuple[Any, Any, Any, Any]) -> None:
        """The fleet's totals (this process's included) into the key's spend; parks it once crossed."""
        try:
            tokens_day, tokens_month = (shared_wire.count(t) for t in (totals[0], totals[2]))
            cost_day, cost_month = (shared_wire.amount(c) for c in (totals[1], totals[3]))
        except Rejected as exc:
            self.dropped("a spend counter", str(exc))
            return
        for pool in self.pools.get(provider, []):
            with contextlib.suppress(KeyError):
                key = pool.key(label)
                spend = key.spend
                if spend is None or key.fingerprint != fingerprint:
                    continue
                if spend.day == day and tokens_day is not None:
                    spend.tokens_day = max(spend.tokens_day, int(tokens_day))
                    spend.cost_day = max(spend.cost_day, cost_day or 0.0)
                if spend.month == month and tokens_month is not None:
                    spend.tokens_month = max(spend.tokens_month, int(tokens_month))
                    spend.cost_month = max(spend.cost_month, cost_month or 0.0)
                pool.check_budget(key.label)  # parks it (and the park is published) once the fleet crossed it

    def _changed(self, pool: Pool, event: Event) -> None:
        if self._applying or event.key is None or event.kind not in _CHANGES or event.provider != pool.name:
            return
        if event.change in TIMER_ENDED:
            return  # a deadline that ran out here: every process's own timer ends it (another may know longer)
        try:
            key = pool.key(event.key)
        except KeyError:
            return
        self._put(self._state_of(pool, key, event.ts))

    def _learned_changed(self, pool: Pool, event: Event) -> None:
        if self._applying or event.key is None:
            return
        if event.change is StateChange.LEARNED:
            with contextlib.suppress(KeyError):
                for item in self._estimates_of(pool, pool.key(event.key), event.ts):
                    self._put(item)
        elif event.change is StateChange.TOKENS_LEARNED:  # a token budget learnt from a 429: the fleet holds it too
            with contextlib.suppress(KeyError):
                key = pool.key(event.key)
                for name, limit in (key.learned_tokens or {}).items():
                    self._put({"kind": "learned_tokens", "from": self.instance, "provider": pool.name,
                               "key": key.label, "fingerprint": key.fingerprint, "window": name, "limit": limit,
                               "at": event.ts})

    def merge_learned_tokens(self, message: dict[str, Any]) -> bool:
        """A token budget another process learnt for a key (checked by :func:`shared_wire.learned_tokens`): held
        here too, where it is smaller than what this process holds. True when applied."""
        applied = False
        for pool in self.pools.get(message["provider"], []):
            with contextlib.suppress(KeyError):
                if pool.key(message["key"]).fingerprint != message["fingerprint"]:
                    continue
                self._applying = True
                try:
                    applied = pool.learn_token_budget(message["key"], message["window"], message["limit"]) or applied
                finally:
                    self._applying = False
        if applied:
            self.applied += 1
        return applied

    def _estimates_of(self, pool: Pool, key: Any, at: float) -> list[dict[str, Any]]:
        """The key's fitted estimates as the fleet shares them."""
        return [{"kind": "learned", "from": self.instance, "provider": pool.name, "key": key.label,
                 "fingerprint": key.fingerprint, "model": fit.model, "limit": fit.limit,
                 "window_s": round(fit.window_s, 3), "sure": self._sure(pool.name, key, fit), "at": at}
                for fit in key.estimates()]

    def _sure(self, provider: str, key: Any, fit: Any) -> float:
        """How sure this process is of ``fit``: the fleet's sureness when it is an estimate adopted from it."""
        adopted = self._adopted.get((provider, key.label, key.fingerprint, fit.model))
        if adopted is not None and adopted[:2] == (fit.limit, round(fit.window_s, 3)):
            return adopted[2]
        return float(fit.estimate.sure)

    def merge_learned(self, message: dict[str, Any]) -> bool:
        """A key's limit learnt elsewhere (checked by :func:`shared_wire.learned`): adopted where it is surer
        than this process's estimate, or as sure and smaller (a rate that is too high costs 429s in every
        process; one too low costs some throughput until the estimate probes upwards). True when adopted."""
        adopted = False
        for pool in self.pools.get(message["provider"], []):
            try:
                key = pool.key(message["key"])
            except KeyError:
                continue
            if key.fingerprint != message["fingerprint"]:
                continue
            model = message["model"]
            mine = next((f for f in key.estimates() if f.model == model), None)
            theirs = (message["limit"], round(message["window_s"], 3), message["sure"])
            if mine is not None and not surer(theirs, (mine.limit, mine.window_s, self._sure(pool.name, key, mine))):
                continue
            self._applying = True
            try:
                if pool.restore_learned(key.label, model, message["limit"], message["window_s"]):
                    self._adopted[(pool.name, key.label, key.fingerprint, model)] = theirs
                    self.applied += 1
                    adopted = True
            finally:
                self._applying = False
        return adopted

    def _state_of(self, pool: Pool, key: Any, at: float) -> dict[str, Any]:
        return {"from": self.instance, "provider": pool.name, "key": key.label, "fingerprint": key.fingerprint,
                "state": key.state.value, "until": key.until, "source": key.source.value if key.source else None,
                "reason": key.reason, "status": key.status_code, "at": at, "models": pool.model_cooldowns(key)}

    def _breaker_changed(self, event: Event) -> None:
        if self._applying or event.key is not None or event.kind is not EventKind.STATE:
            return
        opened = event.change is StateChange.OUTAGE_OPENED
        if not opened and event.change is not StateChange.OUTAGE_CLOSED:
            return
        until = next((up.breaker.open_until for c in self.clients for up in c.upstreams
                      if up.name == event.provider and up.breaker is not None), None)
        self._put({"kind": "breaker", "from": self.instance, "provider": event.provider, "open": opened,
                   "until": until, "reason": event.reason, "at": event.ts})

    def publish_config(self, text: str, origin: str) -> None:
        """This process reloaded its config file: tell the other hosts (references only, never a secret)."""
        self._put({"kind": "config", "from": self.instance, "origin": origin, "text": text, "at": time.time(),
                   "sha": hashlib.sha256(text.encode()).hexdigest()})

    # ------------------------------------------------------------------------------------------ running
    async def start(self) -> None:
        """Connect, read the shared states, and start publishing and listening."""
        import redis.asyncio as redis

        if self.secret is None:  # said once, where the process's lines go (its stderr, the monitor's events)
            self.log(f"warning: the fleet's messages are not signed (no [state] secret): whoever can write to "
                     f"{redact_url(self.url)} can plant key states in every process")

        self._redis = redis.from_url(self.url, decode_responses=True, socket_connect_timeout=2,
                                     health_check_interval=5)
        if self._queue is None:
            self._queue = asyncio.Queue(10_000)
        loops = [self._publish_loop, self._listen_loop, self._heartbeat_loop, self._batch_loop, self.affinity.run]
        if self.windows is not None:
            loops.append(self.windows.run)
        self._tasks = [asyncio.create_task(loop()) for loop in loops]
        for _ in range(40):  # up to 2 s for the first connection; serving does not wait longer
            if self.connected:
                break
            await asyncio.sleep(0.05)

    def close(self) -> None:
        """Stop publishing and listening (from synchronous code; the tasks end on their own)."""
        for task in [*self._tasks, *self._spending]:
            task.cancel()

    async def stop(self) -> None:
        """Stop, in bounded time: a task stuck in a Redis call that does not end on cancellation (a connection
        torn down mid-read waits on the socket it is closing) must not hold the process's shutdown; one whose
        cancellation was swallowed is cancelled again (see :func:`cancel_until_done`)."""
        if self.windows is not None and self.connected:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.windows.give_back(), 1.0)
        self.close()
        listener = self.affinity.listener  # the affinity loop's own task: it is cancelled with the loop, not awaited
        await cancel_until_done([*self._tasks, *self._spending, *([listener] if listener else [])], STOP_WAIT_S)
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._redis.aclose(), STOP_WAIT_S)

    async def _publish_loop(self) -> None:
        assert self._queue is not None
        while True:
            item = await self._queue.get()
            for attempt in range(60):
                try:
                    await self._publish(item)
                    self.published += 1
                    break
                except Exception:
                    await asyncio.sleep(_retrying(attempt))

    async def _publish(self, item: dict[str, Any]) -> None:
        payload = shared_wire.signed(item, self.secret)
        kind = item.get("kind")
        if kind == "config":
            old = await self._redis.get(self.keys.config)
            was = None
            with contextlib.suppress(ValueError):
                was = json.loads(old) if old is not None else None
            if isinstance(was, dict) and was.get("sha") == item["sha"]:
                return  # the fleet has this config already (another process on this host sent it)
            item["gen"] = await self._redis.incr(self.keys.config_gen)
            payload = shared_wire.signed(item, self.secret)
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self.keys.config, payload)
                pipe.publish(self.keys.config_channel, payload)
                await pipe.execute()
            return
        if kind == "learned":  # the fleet's estimate of the key: the surer of what the hash holds and this one
            field = f"{item['key']}:{item['fingerprint']}:{item['model']}"
            held = await self._redis.hget(self.keys.learned(item["provider"]), field)
            try:  # what the hash holds counts only if it is what it claims (signed by a member, in bounds)
                was = None if held is None else json.loads(held)
                shared_wire.verify(was, self.secret)
                was = shared_wire.learned(was, time.time()) if was is not None else None
            except (ValueError, Rejected):
                was = None
            if was is None or surer((item["limit"], item["window_s"], item["sure"]),
                                    (was["limit"], was["window_s"], was["sure"])):
                await self._redis.hset(self.keys.learned(item["provider"]), field, payload)
        async with self._redis.pipeline(transaction=False) as pipe:
            if kind is None:  # a key state: newcomers read it from the hash
                pipe.hset(self.keys.states(item["provider"]), item["key"], payload)
            pipe.publish(self.keys.channel, payload)
            await pipe.execute()

    async def _listen_loop(self) -> None:
        backoff = 0.1
        while True:
            try:
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self.keys.channel, self.keys.config_channel)
                await self._resync()
                self._became(CONNECTED)
                self.connected, backoff = True, 0.1
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self.receive_raw(message.get("data"), "a message")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected = False
                self._became(await failure_of(self.url, exc))
                await asyncio.sleep(backoff)
                backoff = min(5.0, backoff * 2)

    def _became(self, status: str) -> None:
        """The store's status: one line (stderr of a headless proxy, the monitor's events) when it changes."""
        if status != self.status:
            self.status = status
            self.log(status_line(status, self.url))

    async def _resync(self) -> None:
        """After a (re)connect: apply what Redis holds, and give back what this process learnt meanwhile
        (a restarted Redis starts empty): its key states where Redis has none, its spend where the counter
        is gone, the config."""
        now = time.time()
        for provider, pools in list(self.pools.items()):
            held = await self._read(self._redis.hgetall(self.keys.states(provider)), {}, "the key states")
            for label, raw in list(held.items()):
                if self.receive_raw(raw, "a planted key state") is None:
                    await self._redis.hdel(self.keys.states(provider), label)  # bad or over: gone for everyone
                    del held[label]
            for pool in pools:
                for key in pool.keys:
                    if key.state is not KeyState.OK and key.label not in held:
                        await self._redis.hsetnx(self.keys.states(provider), key.label,
                                                 shared_wire.signed(self._state_of(pool, key, now), self.secret))
                    if key.spend is not None:
                        await self._restore_spend(provider, key)
            for raw in (await self._read(self._redis.hgetall(self.keys.learned(provider)), {},
                                         "the learnt limits")).values():
                self.receive_raw(raw, "a learnt limit")
            for pool in pools:
                for key in pool.keys:
                    for item in self._estimates_of(pool, key, now):
                        self._put(item)  # what this process learnt meanwhile, where the fleet's is less sure
        raw = await self._read(self._redis.get(self.keys.config), None, "the shared config")
        if raw is not None:
            self.receive_raw(raw, "the shared config")

    async def _read(self, call: Awaitable[Any], default: Any, what: str) -> Any:
        """One read of the store; a value of the wrong Redis type (a list where a hash is expected) is
        ``default`` and said once, not a reconnect loop."""
        from redis.exceptions import ResponseError

        try:
            return await call
        except ResponseError as exc:
            if "WRONGTYPE" not in str(exc):
                raise
            self.dropped(what, "wrong Redis type")
            return default

    async def _restore_spend(self, provider: str, key: Any) -> None:
        spend, base = key.spend, self._spend_key(provider, key.label, key.fingerprint)
        day, month, next_day, next_month = period_starts(time.time())
        async with self._redis.pipeline(transaction=False) as pipe:
            for period, end, tokens, cost in ((day, next_day, spend.tokens_day, spend.cost_day),
                                              (month, next_month, spend.tokens_month, spend.cost_month)):
                if (period == spend.day or period == spend.month) and (tokens or cost):
                    pipe.set(f"{base}:tokens:{period}", int(tokens), nx=True, exat=int(end) + 86400)
                    pipe.set(f"{base}:cost:{period}", float(cost), nx=True, exat=int(end) + 86400)
            for period in (day, month):
                pipe.get(f"{base}:tokens:{period}")
                pipe.get(f"{base}:cost:{period}")
            answers = await pipe.execute()
        self._take_spend(provider, key.label, key.fingerprint, day, month, tuple(answers[-4:]))

    async def _heartbeat_loop(self, every_s: float = 1.0) -> None:
        """Tell the fleet this process is alive (``pooltui fleet`` lists it) once a second."""
        while True:
            with contextlib.suppress(Exception):
                await self._redis.hset(self.keys.procs, self.instance, json.dumps(self.presence(time.time())))
                self.processes_seen = await self._count_processes()
            await asyncio.sleep(every_s)

    async def _count_processes(self, stale_s: float = 10.0) -> int:
        """How many processes (this one included) sent a heartbeat within ``stale_s``; a bad one is not counted."""
        now, seen = time.time(), 0
        for raw in (await self._read(self._redis.hgetall(self.keys.procs), {}, "the heartbeats")).values():
            try:
                beat = shared_wire.heartbeat(json.loads(raw), now)
            except (ValueError, Rejected):
                continue
            seen += now - beat["last_seen"] <= stale_s
        return max(1, seen)

    def presence(self, now: float) -> dict[str, Any]:
        """What this process tells the fleet about itself."""
        rps = sum(p.per_second.total(now) for pools in self.pools.values() for p in pools) / 60.0
        out = {"instance": self.instance, "host": socket.gethostname(), "pid": os.getpid(), "last_seen": now,
               "requests_per_s": rps, "providers": sorted(self.pools)}
        if self.describe is not None:
            with contextlib.suppress(Exception):
                out["panels"] = self.describe()
        if self.windows is not None and self.windows.slots:
            out["windows"] = self.windows.usage(now)
        return out

    async def _batch_loop(self) -> None:
        """Every ``sync_s``: this process's events into the fleet's stream, usage counts both ways."""
        while True:
            await asyncio.sleep(self.sync_s)
            with contextlib.suppress(Exception):
                await self._flush_events()
                await self._sync_usage()

    async def _flush_events(self) -> None:
        if not self._outbox or not self.connected:
            return
        batch = list(self._outbox)
        host, pid = socket.gethostname(), os.getpid()
        async with self._redis.pipeline(transaction=False) as pipe:
            for e in batch:
                pipe.xadd(self.keys.events, {"e": json.dumps(
                    {"ts": e.ts, "provider": e.provider, "key": e.key, "kind": e.kind.value, "status": e.status,
                     "reason": e.reason, "action": e.action, "request_id": e.request_id, "change": e.change,
                     "host": host, "pid": pid})}, maxlen=5000, approximate=True)
            await pipe.execute()
        for _ in batch:  # only what was written leaves the outbox
            self._outbox.popleft()

    async def _sync_usage(self) -> None:
        """Add this process's new requests per key to the fleet's counts and take the totals back."""
        if not self.connected:
            return
        for provider, pools in list(self.pools.items()):
            counts_key, last_key = self.keys.used(provider), self.keys.last(provider)
            async with self._redis.pipeline(transaction=False) as pipe:
                for pool in pools:
                    for key in pool.keys:
                        ident = (provider, key.label, key.fingerprint)
                        delta = key.stats.requests - self._counted.get(ident, 0)
                        if delta > 0:
                            pipe.hincrby(counts_key, f"{key.label}:{key.fingerprint}", delta)
                            self._counted[ident] = key.stats.requests
                    last, _ = pool.rotation_state()
                    if self._rotation_seen and last is not None:
                        pipe.set(last_key, last)
                pipe.hgetall(counts_key)
                pipe.get(last_key)
                *_, totals, fleet_last = await pipe.execute()
            for pool in pools:
                counts = {k.label: self._count(totals.get(f"{k.label}:{k.fingerprint}")) for k in pool.keys}
                pool.restore_rotation(None if self._rotation_seen else fleet_last, counts)
        self._rotation_seen = True

    def _count(self, raw: object) -> int:
        try:
            return shared_wire.count(raw) or 0
        except Rejected as exc:
            self.dropped("a usage count", str(exc))
            return 0

    # ------------------------------------------------------------------------------ what others tell us
    def remote(self, provider: str, label: str) -> bool:
        """Whether the key's current state came from another process (the history does not keep it: what
        others said lives in the store, so nothing planted there outlives a restart through this host)."""
        return (provider, label) in self._remote

    def _own_view(self, pool: Pool, event: Event) -> None:
        if not self._applying and event.key is not None:
            self._remote.discard((pool.name, event.key))  # what this process learnt itself from now on

    def deadline(self, state: dict[str, Any]) -> float | None:
        """When a shared key state ends here: its own deadline, else (a state other than ok) ``ttl_s`` after
        it was published."""
        if state.get("until") is not None or state.get("state") == KeyState.OK.value:
            return state.get("until")
        return float(state["at"]) + self.ttl_s

    def receive_raw(self, raw: object, what: str) -> dict[str, Any] | None:
        """One value read from the store (JSON text): checked, then applied; a bad one is dropped (None), as
        is a key state that is over."""
        try:
            if not isinstance(raw, str | bytes) or len(raw) > 2 * shared_wire.MAX_CONFIG_BYTES:
                raise Rejected("not JSON text of a sane size")
            try:
                decoded = json.loads(raw)
            except ValueError:
                raise Rejected("not JSON") from None
            shared_wire.verify(decoded, self.secret)
            message = shared_wire.message(decoded)
        except Rejected as exc:
            self.dropped(what, str(exc))
            return None
        if message.get("kind") is None and (self.deadline(message) or float("inf")) <= time.time():
            return None
        self.receive(message)
        return message

    def receive(self, message: dict[str, Any]) -> None:
        """One checked message (:func:`shared_wire.message`) from another process (or a fleet monitor): a
        key state, the breaker, a pool setting, or a config."""
        if message.get("from") == self.instance:
            return
        kind = message.get("kind")
        if kind == "config":
            if self.on_config is not None:
                self.on_config(str(message["text"]), str(message.get("origin") or "another host"),
                               float(message.get("at") or 0))
        elif kind == "breaker":
            self._apply_breaker(message)
        elif kind == "pool":
            self._apply_pool(message)
        elif kind == "learned":
            self.merge_learned(message)
        elif kind == "learned_tokens":
            self.merge_learned_tokens(message)
        elif kind is None:
            for pool in self.pools.get(message.get("provider") or "", []):
                self._apply_to(pool, message)

    def _apply_breaker(self, message: dict[str, Any]) -> None:
        for client in self.clients:
            for up in client.upstreams:
                breaker = up.breaker
                if up.name != message.get("provider") or breaker is None:
                    continue
                self._applying = True
                try:
                    if message.get("open") and not breaker.is_open:
                        until = message.get("until")
                        breaker.open_until = float(until) if isinstance(until, int | float) else (
                            client.clock.now() + breaker.open_s)
                        breaker.opened_at, breaker.opened = client.clock.now(), breaker.opened + 1
                        client.events.emit(Event(client.clock.now(), up.name, None, EventKind.STATE, None,
                                                 f"another process: {message.get('reason') or 'outage'}",
                                                 "outage suspected: fallbacks first",
                                                 change=StateChange.OUTAGE_OPENED))
                    elif not message.get("open") and breaker.is_open and breaker.success():
                        client.events.emit(Event(client.clock.now(), up.name, None, EventKind.STATE, None,
                                                 "another process: provider answered",
                                                 "outage over: back to this provider",
                                                 change=StateChange.OUTAGE_CLOSED))
                    else:
                        continue
                    self.applied += 1
                finally:
                    self._applying = False

    def _apply_pool(self, message: dict[str, Any]) -> None:
        """A pool setting from the fleet monitor: a strategy, or the key order."""
        for pool in self.pools.get(message.get("provider") or "", []):
            strategy, order = message.get("strategy"), message.get("order")
            with contextlib.suppress(ValueError, KeyError):
                if isinstance(strategy, str) and strategy != pool.strategy:
                    pool.set_strategy(strategy)
                    self.applied += 1
                if isinstance(order, list):
                    have = {k.label for k in pool.keys}
                    wanted = [str(label) for label in order if label in have]
                    wanted += [k.label for k in pool.keys if k.label not in wanted]
                    if wanted != [k.label for k in pool.keys]:
                        pool.set_order(wanted)
                        self.applied += 1

    def _apply_to(self, pool: Pool, state: dict[str, Any]) -> None:
        try:
            key = pool.key(str(state["key"]))
        except KeyError:
            return
        if state.get("fingerprint") != key.fingerprint:
            return
        target, until = state.get("state"), self.deadline(state)
        if until is not None and until <= time.time():
            return  # over already
        models = raw_models if isinstance(raw_models := state.get("models"), dict) else {}
        changed = sum(pool.restore_model_cooldown(key.label, str(m), float(u)) for m, u in models.items()
                      if isinstance(u, int | float))
        self.applied += changed
        self._applying = True
        try:
            if target == KeyState.OK.value:
                if key.state is KeyState.DISABLED:
                    pool.enable(key.label)
                elif key.state in (KeyState.COOLING, KeyState.EXHAUSTED):
                    pool.reset(key.label)
                elif key.state in (KeyState.INVALID, KeyState.FORBIDDEN):  # verified valid elsewhere
                    pool.mark_verified(key.label, Classification(Outcome.OK, 200))
                else:
                    return
            elif target == KeyState.DISABLED.value:
                if key.state is KeyState.DISABLED:
                    return
                pool.disable(key.label, until, str(state.get("reason") or "disabled elsewhere"))
            else:
                if key.state.value == target and (key.until is None or key.until >= (until or 0)):
                    return  # already known here, at least as long
                if not pool.restore(key.label, str(target), until, state.get("source"),
                                    str(state.get("reason") or ""), state.get("status")):
                    return
            self.applied += 1
            if target == KeyState.OK.value:  # back to ok: this host's history may say so
                self._remote.discard((pool.name, key.label))
            else:
                self._remote.add((pool.name, key.label))
        finally:
            self._applying = False
