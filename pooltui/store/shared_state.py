"""Key states shared between processes and hosts through Redis (``[state] backend = "redis"``).

Each process keeps picking from its own pool (the pick stays local and as fast as before). When a key's
state changes here (a 429 cools it, a 401 marks it invalid, quota parks it, a hand action disables, enables
or resets it), the new state goes out at once on a Redis channel and into a hash that newcomers read on
start; every other process applies it to its own pool. A state is applied only to a key whose secret has
the same fingerprint, so two configs that reuse a label for different keys never mix.

Budgets and spend are counted in Redis with atomic increments (per key, per UTC day and month): each
process adds what its requests spent and takes the fleet's totals back, so a daily budget is spent once
across processes, not once per process; the process that crosses it parks the key and the others follow.

If Redis is unreachable, every process keeps serving on its own view, says so once, reconnects with
backoff and reads the hash again when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pooltui.core.classify import Classification
from pooltui.core.events import Event, EventKind
from pooltui.core.health import KeyState, Outcome
from pooltui.core.pool import Pool

#: events after which a key's state may have changed (the state itself is read from the pool)
_CHANGES = frozenset({EventKind.RATE_LIMITED, EventKind.INVALID, EventKind.FORBIDDEN, EventKind.QUOTA,
                      EventKind.STATE})


@dataclass
class SharedKeyStates:
    """Publishes this process's key-state changes and applies everyone else's to its pools."""

    url: str
    prefix: str = "pooltui"
    log: Callable[[str], None] = lambda line: None
    instance: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")
    pools: dict[str, list[Pool]] = field(default_factory=dict)  # provider -> its pools in this process
    applied: int = 0  # remote states applied here
    published: int = 0
    connected: bool = False
    _queue: asyncio.Queue | None = None
    _applying: bool = False
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _redis: Any = None

    @property
    def channel(self) -> str:
        return f"{self.prefix}:keys"

    def _hash(self, provider: str) -> str:
        return f"{self.prefix}:keys:{provider}"

    def attach(self, pool: Pool) -> None:
        """Share ``pool``'s key states (its events say when one changed)."""
        self.pools.setdefault(pool.name, []).append(pool)
        pool.events.subscribe(lambda event, pool=pool: self._changed(pool, event))

    def attach_usage(self, client: Any) -> None:
        """Count the spend of ``client``'s keys that have a budget in Redis (atomic, fleet-wide)."""
        client.usage_listeners.append(self._usage)

    def _usage(self, u: Any) -> None:
        if not (u.tokens_in or u.tokens_out or u.cost):
            return
        for pool in self.pools.get(u.provider, []):
            with contextlib.suppress(KeyError):
                key = pool.key(u.key)
                if key.budget is not None and key.spend is not None:
                    if self._queue is None:
                        self._queue = asyncio.Queue(10_000)
                    with contextlib.suppress(asyncio.QueueFull):
                        self._queue.put_nowait({"spend": True, "provider": u.provider, "key": u.key, "ts": u.ts,
                                                "fingerprint": key.fingerprint,
                                                "tokens": u.tokens_in + u.tokens_out, "cost": u.cost})
                    return

    async def _add_spend(self, item: dict[str, Any]) -> None:
        """Add one request's spend to the fleet's counters and take the totals back."""
        from pooltui.core.budget import period_starts

        day, month, next_day, next_month = period_starts(item["ts"])
        base = f"{self.prefix}:spend:{item['provider']}:{item['key']}:{item['fingerprint']}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incrby(f"{base}:tokens:{day}", int(item["tokens"]))
            pipe.incrbyfloat(f"{base}:cost:{day}", float(item["cost"]))
            pipe.incrby(f"{base}:tokens:{month}", int(item["tokens"]))
            pipe.incrbyfloat(f"{base}:cost:{month}", float(item["cost"]))
            for period, end in ((day, next_day), (month, next_month)):
                for what in ("tokens", "cost"):
                    pipe.expireat(f"{base}:{what}:{period}", int(end) + 86400)
            tokens_day, cost_day, tokens_month, cost_month, *_ = await pipe.execute()
        for pool in self.pools.get(item["provider"], []):
            with contextlib.suppress(KeyError):
                key = pool.key(item["key"])
                spend = key.spend
                if spend is None or key.fingerprint != item["fingerprint"]:
                    continue
                if spend.day == day:  # the fleet's totals, this process's included
                    spend.tokens_day, spend.cost_day = max(spend.tokens_day, int(tokens_day)), max(
                        spend.cost_day, float(cost_day))
                if spend.month == month:
                    spend.tokens_month, spend.cost_month = max(spend.tokens_month, int(tokens_month)), max(
                        spend.cost_month, float(cost_month))
                pool.check_budget(key.label)  # parks it (and the park is published) once the fleet crossed it

    def _changed(self, pool: Pool, event: Event) -> None:
        if self._applying or event.key is None or event.kind not in _CHANGES or event.provider != pool.name:
            return
        if event.kind is EventKind.STATE and event.reason.endswith(" over"):
            return  # a cooldown that ran out here: every process's own timer ends it (another may know longer)
        try:
            key = pool.key(event.key)
        except KeyError:
            return
        state = {"from": self.instance, "provider": pool.name, "key": key.label, "fingerprint": key.fingerprint,
                 "state": key.state.value, "until": key.until, "source": key.source.value if key.source else None,
                 "reason": key.reason, "status": key.status_code, "at": event.ts,
                 "models": pool.model_cooldowns(key)}
        if self._queue is None:
            self._queue = asyncio.Queue(10_000)
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(state)  # never waits: the engine goes on

    # ------------------------------------------------------------------------------------------ running
    async def start(self) -> None:
        """Connect, read the shared states, and start publishing and listening."""
        import redis.asyncio as redis

        self._redis = redis.from_url(self.url, decode_responses=True, socket_connect_timeout=2,
                                     health_check_interval=5)
        if self._queue is None:
            self._queue = asyncio.Queue(10_000)
        self._tasks = [asyncio.create_task(self._publish_loop()), asyncio.create_task(self._listen_loop()),
                       asyncio.create_task(self._heartbeat_loop())]
        for _ in range(40):  # up to 2 s for the first connection; serving does not wait longer
            if self.connected:
                break
            await asyncio.sleep(0.05)

    def close(self) -> None:
        """Stop publishing and listening (from synchronous code; the tasks end on their own)."""
        for task in self._tasks:
            task.cancel()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()

    async def _publish_loop(self) -> None:
        assert self._queue is not None
        while True:
            state = await self._queue.get()
            if state.get("spend"):
                for attempt in range(50):
                    try:
                        await self._add_spend(state)
                        break
                    except Exception:
                        await asyncio.sleep(min(2.0, 0.05 * 2 ** attempt))
                continue
            payload = json.dumps(state)
            for attempt in range(50):
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        pipe.hset(self._hash(state["provider"]), state["key"], payload)
                        pipe.publish(self.channel, payload)
                        await pipe.execute()
                    self.published += 1
                    break
                except Exception:
                    await asyncio.sleep(min(2.0, 0.05 * 2 ** attempt))

    async def _listen_loop(self) -> None:
        backoff = 0.1
        while True:
            try:
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self.channel)
                await self._resync()
                if not self.connected:
                    self.log(f"shared key states: connected to {_where(self.url)}")
                self.connected, backoff = True, 0.1
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._apply(json.loads(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.connected:
                    self.log(f"shared key states: {_where(self.url)} unreachable ({type(exc).__name__}); "
                             "serving on this process's own view, reconnecting")
                self.connected = False
                await asyncio.sleep(backoff)
                backoff = min(5.0, backoff * 2)

    @property
    def procs_key(self) -> str:
        return f"{self.prefix}:procs"

    def presence(self, now: float) -> dict[str, Any]:
        """What this process tells the fleet about itself."""
        host, pid = socket.gethostname(), os.getpid()
        rps = sum(p.per_second.total(now) for pools in self.pools.values() for p in pools) / 60.0
        return {"instance": self.instance, "host": host, "pid": pid, "last_seen": now, "requests_per_s": rps,
                "providers": sorted(self.pools)}

    async def _heartbeat_loop(self, every_s: float = 1.0) -> None:
        """Tell the fleet this process is alive (``pooltui fleet`` lists it) once a second."""
        import time

        while True:
            with contextlib.suppress(Exception):
                await self._redis.hset(self.procs_key, self.instance, json.dumps(self.presence(time.time())))
            await asyncio.sleep(every_s)

    async def _resync(self) -> None:
        """Apply what the hash holds (states set while this process was away or before it started)."""
        for provider in list(self.pools):
            for raw in (await self._redis.hgetall(self._hash(provider))).values():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    self._apply(json.loads(raw))

    def _apply(self, state: dict[str, Any]) -> None:
        """Another process's key state, applied to this process's pool (same key, same secret only)."""
        if state.get("from") == self.instance:
            return
        for pool in self.pools.get(state.get("provider"), []):
            self._apply_to(pool, state)

    def _apply_to(self, pool: Pool, state: dict[str, Any]) -> None:
        try:
            key = pool.key(str(state["key"]))
        except KeyError:
            return
        if state.get("fingerprint") != key.fingerprint:
            return
        target, until = state.get("state"), state.get("until")
        models = state.get("models") if isinstance(state.get("models"), dict) else {}
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
                if key.state.value == target and (key.until or 0) >= (until or 0):
                    return  # already known here, at least as long
                if not pool.restore(key.label, str(target), until, state.get("source"),
                                    str(state.get("reason") or ""), state.get("status")):
                    return
            self.applied += 1
        finally:
            self._applying = False


async def fleet(url: str, prefix: str = "pooltui", stale_s: float = 10.0) -> dict[str, Any]:
    """The processes that shared their key states lately, and the key states the fleet holds."""
    import time

    import redis.asyncio as redis

    r = redis.from_url(url, decode_responses=True, socket_connect_timeout=2)
    try:
        now = time.time()
        procs, gone = [], []
        for raw in (await r.hgetall(f"{prefix}:procs")).values():
            with contextlib.suppress(ValueError, TypeError):
                proc = json.loads(raw)
                (procs if now - float(proc["last_seen"]) <= stale_s else gone).append(proc)
        if gone:
            await r.hdel(f"{prefix}:procs", *[p["instance"] for p in gone])
        keys: list[dict[str, Any]] = []
        async for name in r.scan_iter(match=f"{prefix}:keys:*"):
            for raw in (await r.hgetall(name)).values():
                with contextlib.suppress(ValueError, TypeError):
                    keys.append(json.loads(raw))
        return {"procs": sorted(procs, key=lambda p: (p["host"], p["pid"])),
                "keys": sorted(keys, key=lambda k: (k["provider"], k["key"]))}
    finally:
        await r.aclose()


def _where(url: str) -> str:
    """A Redis URL without its password."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{'' if parts.port is None else f':{parts.port}'}"
