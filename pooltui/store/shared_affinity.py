"""One map of conversations across the fleet (issue 28): a conversation placed by one process is found by the others.

**In Redis**, per provider and conversation token (a hash: never prompt text), the key holding its prompt cache:
``<prefix>:aff:<provider>:<token>`` = ``<label>:<fingerprint>``, with the cache's lifetime as its expiry (``EX``),
written again when a conversation moves and at most every quarter lifetime while it stays (a hit refreshes it).
A move is also published on ``<prefix>:affinity``, so every process that knew the conversation follows it.

**Each pick stays local**: the pool's own map (core/affinity.py) answers it. Writes are queued and sent by a
background task. A conversation this process has not seen is looked up once before its pick, bounded
(``FETCH_S``): a slow or absent store is no answer, and the strategy picks as for a new conversation.

**Redis down**: each process keeps its own map (the store's status line says once that it serves on its own
view), looks nothing up until the store answers again, and says when it does. A restarted Redis has forgotten
the placements: a conversation a process knows goes on where it was; one it does not know starts on a cold cache
(the strategy's pick), and is written again from there.

**Trust**: what is read is checked like network input (a hex token, a label of this pool's, the fingerprint of
that key's secret here); anything else is ignored. A planted entry can steer a conversation only to a key of the
pool while that key has room, as a pick by the strategy could.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from pooltui.core.affinity import CACHE_TTL_S, CONVERSATIONS_KEPT
from pooltui.core.pool import Pool

#: how long a pick may wait for the fleet's answer about a conversation this process has not seen
FETCH_S = 0.05
#: a conversation that stays on its key is written again at most this often (a share of its lifetime)
REFRESH_SHARE = 0.25
RETRY_MAX_S = 5.0
_TOKEN = re.compile(r"^[0-9a-f]{8,64}$")
_LABEL = re.compile(r"^[A-Za-z0-9._@+-]{1,64}$")


class PoolAffinity:
    """One pool's view of the fleet's map (the ``AffinityStore`` its ``AffinityMap`` tells and asks)."""

    def __init__(self, shared: SharedAffinity, pool: Pool) -> None:
        self.shared, self.pool = shared, pool

    def placed(self, token: str, label: str, moved: bool, now: float) -> None:
        self.shared.placed(self.pool, token, label, moved, now)

    async def fetch(self, token: str) -> str | None:
        return await self.shared.fetch(self.pool, token)


class SharedAffinity:
    """The fleet's conversations through one Redis (``redis()`` gives the connection, None before it connects)."""

    def __init__(self, prefix: str, instance: str, redis: Callable[[], Any], pools: dict[str, list[Pool]],
                 log: Callable[[str], None] = lambda line: None, ttl_s: float = CACHE_TTL_S) -> None:
        self.prefix, self.instance, self._redis, self.pools, self.log = prefix, instance, redis, pools, log
        self.ttl_s = ttl_s
        self.channel = f"{prefix}:affinity"
        self.connected = False
        self.found = self.adopted = self.ignored = 0  # lookups answered, moves followed, values refused
        self._pending: deque[tuple[str, str, str, str, bool]] = deque(maxlen=10_000)
        self._written: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self._wake: asyncio.Event | None = None
        self.listener: asyncio.Task[None] | None = None  # follows the channel while run() is connected
        self._was_down = False

    def key(self, provider: str, token: str) -> str:
        return f"{self.prefix}:aff:{provider}:{token}"

    def attach(self, pool: Pool) -> None:
        pool.use_affinity_store(PoolAffinity(self, pool))

    # ------------------------------------------------------------------ from the engine (never waits)
    def placed(self, pool: Pool, token: str, label: str, moved: bool, now: float) -> None:
        """Queue the placement's write (and a move's message) unless it stays where it was written lately."""
        where = (pool.name, token)
        was = self._written.get(where)
        if not moved and was is not None and was[0] == label and now - was[1] < self.ttl_s * REFRESH_SHARE:
            return
        self._written[where] = (label, now)
        self._written.move_to_end(where)
        if len(self._written) > CONVERSATIONS_KEPT:
            self._written.popitem(last=False)
        with contextlib.suppress(KeyError):
            self._pending.append((pool.name, token, label, pool.key(label).fingerprint, moved))
        if self._wake is not None:
            self._wake.set()

    async def fetch(self, pool: Pool, token: str) -> str | None:
        """The label the fleet placed ``token`` on in ``pool``'s provider, within ``FETCH_S`` (None: unknown,
        the store is down or slow, or the value is not one of this pool's keys)."""
        redis = self._redis()
        if redis is None or not self.connected:
            return None
        try:
            raw = await asyncio.wait_for(redis.get(self.key(pool.name, token)), FETCH_S)
        except Exception:  # slow or gone: no answer; the background task says so and reconnects
            return None
        label = self._checked(pool, raw)
        if label is not None:
            self.found += 1
        return label

    def _checked(self, pool: Pool, raw: object) -> str | None:
        """``raw`` (``label:fingerprint``) as a label of ``pool`` whose secret has that fingerprint, else None."""
        if not isinstance(raw, str):
            return None
        label, _, fingerprint = raw.rpartition(":")
        try:
            ok = bool(_LABEL.match(label)) and pool.key(label).fingerprint == fingerprint
        except KeyError:
            ok = False
        if not ok:
            self.ignored += 1
            return None
        return label

    # ------------------------------------------------------------------ the background tasks
    async def run(self) -> None:
        """Write what was placed, follow other processes' moves; through outages, with backoff; never ends."""
        self._wake = asyncio.Event()
        backoff = 0.1
        while True:
            redis = self._redis()
            if redis is None:
                await asyncio.sleep(0.1)
                continue
            listener = None
            try:
                pubsub = redis.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self.channel)
                self._up()
                backoff = 0.1
                listener = self.listener = asyncio.create_task(self._listen(pubsub))
                while True:
                    await self._flush(redis)
                    if listener.done():
                        listener.result()  # its error: the store went away
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), 0.5)
                    self._wake.clear()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._down(exc)
                await asyncio.sleep(backoff)
                backoff = min(RETRY_MAX_S, backoff * 2)
            finally:
                if listener is not None:
                    listener.cancel()

    async def _flush(self, redis: Any) -> None:
        if not self._pending:
            return
        batch = list(self._pending)
        self._pending.clear()  # lost if the store fails now: _down forgets what was written, hits write again
        async with redis.pipeline(transaction=False) as pipe:
            for provider, token, label, fingerprint, moved in batch:
                pipe.set(self.key(provider, token), f"{label}:{fingerprint}", ex=max(1, round(self.ttl_s)))
                if moved:
                    pipe.publish(self.channel, json.dumps({"from": self.instance, "provider": provider,
                                                           "token": token, "label": label,
                                                           "fingerprint": fingerprint}))
            await pipe.execute()

    async def _listen(self, pubsub: Any) -> None:
        async for message in pubsub.listen():
            if message.get("type") == "message":
                self.receive(message.get("data"))

    def receive(self, raw: object) -> None:
        """Another process moved a conversation: this process's pools follow it, when it is one of their keys."""
        try:
            data = json.loads(raw) if isinstance(raw, str | bytes) else None
        except ValueError:
            data = None
        if not isinstance(data, dict) or data.get("from") == self.instance:
            return
        token, provider = data.get("token"), data.get("provider")
        if not isinstance(token, str) or not _TOKEN.match(token) or not isinstance(provider, str):
            self.ignored += 1
            return
        for pool in self.pools.get(provider, []):
            label = self._checked(pool, f"{data.get('label')}:{data.get('fingerprint')}")
            if label is not None and pool.adopt_conversation(token, label):
                self.adopted += 1

    def _up(self) -> None:
        self.connected = True
        if self._was_down:
            self._was_down = False
            self.log("shared affinity: conversations are placed for the whole fleet again")

    def _down(self, exc: BaseException) -> None:
        """The store is away: each process keeps its own map. Nothing more is said here: the store's own status
        line (shared_state.py) said it once, and a second line per outage would be noise."""
        self.connected = False
        self._was_down = True
        self._written.clear()  # the store may come back empty (restarted): each conversation's next turn writes it
