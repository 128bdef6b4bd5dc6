"""The Redis names a fleet shares, and the reading side: which processes serve the pool, the key states
they share, their merged events; a fleet monitor's key actions go out from here too."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Names:
    """Every Redis key and channel under one prefix (one team, one pool)."""

    prefix: str

    @property
    def channel(self) -> str:  # key states, breaker, pool settings: pushed to every process
        return f"{self.prefix}:keys"

    def states(self, provider: str) -> str:  # hash: key label -> its last shared state
        return f"{self.prefix}:keys:{provider}"

    def used(self, provider: str) -> str:  # hash: "label:fingerprint" -> requests, fleet-wide
        return f"{self.prefix}:used:{provider}"

    def last(self, provider: str) -> str:  # the fleet's last round-robin pick
        return f"{self.prefix}:last:{provider}"

    @property
    def procs(self) -> str:  # hash: instance -> heartbeat
        return f"{self.prefix}:procs"

    @property
    def events(self) -> str:  # stream: every process's events
        return f"{self.prefix}:events"

    @property
    def config(self) -> str:
        return f"{self.prefix}:config"

    @property
    def config_gen(self) -> str:
        return f"{self.prefix}:config:gen"

    @property
    def config_channel(self) -> str:
        return f"{self.prefix}:config:changed"


def names(prefix: str) -> Names:
    return Names(prefix)


def redact_url(url: str) -> str:
    """A Redis URL without its password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    return f"{parts.scheme}://{parts.hostname}{'' if parts.port is None else f':{parts.port}'}"


class FleetLink:
    """One connection to a fleet's Redis: read processes, key states and events; send key actions."""

    def __init__(self, url: str, prefix: str = "pooltui", stale_s: float = 10.0) -> None:
        import redis.asyncio as redis

        self.url, self.names, self.stale_s = url, names(prefix), stale_s
        self.instance = f"monitor:{time.time():.0f}"
        self._redis = redis.from_url(url, decode_responses=True, socket_connect_timeout=2, socket_timeout=3)

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def processes(self) -> list[dict[str, Any]]:
        """The processes seen within ``stale_s`` (older ones are forgotten), by host and pid."""
        now = time.time()
        procs: list[dict[str, Any]] = []
        gone: list[dict[str, Any]] = []
        for raw in (await self._redis.hgetall(self.names.procs)).values():
            with contextlib.suppress(ValueError, TypeError, KeyError):
                proc = json.loads(raw)
                (procs if now - float(proc["last_seen"]) <= self.stale_s else gone).append(proc)
        if gone:
            await self._redis.hdel(self.names.procs, *[p["instance"] for p in gone])
        return sorted(procs, key=lambda p: (p["host"], p["pid"]))

    async def key_states(self) -> list[dict[str, Any]]:
        keys: list[dict[str, Any]] = []
        async for name in self._redis.scan_iter(match=f"{self.names.prefix}:keys:*"):
            for raw in (await self._redis.hgetall(name)).values():
                with contextlib.suppress(ValueError, TypeError):
                    keys.append(json.loads(raw))
        return sorted(keys, key=lambda k: (k["provider"], k["key"]))

    async def events_after(self, last_id: str = "0-0", count: int = 500) -> list[tuple[str, dict[str, Any]]]:
        """Events every process wrote after ``last_id`` (oldest first), with their stream ids."""
        if last_id == "$":  # the newest ``count`` only
            rows = list(reversed(await self._redis.xrevrange(self.names.events, count=count) or []))
        else:
            rows = await self._redis.xrange(self.names.events, min=f"({last_id}", count=count) or []
        out: list[tuple[str, dict[str, Any]]] = []
        for sid, fields in rows:
            if not isinstance(sid, str) or fields is None:  # decode_responses: ids and fields come as str
                continue
            with contextlib.suppress(ValueError, TypeError, KeyError):
                out.append((sid, json.loads(fields["e"])))
        return out

    async def send_state(self, state: dict[str, Any]) -> None:
        """A key state for every process (a hand action from the fleet monitor); newcomers read it too."""
        payload = json.dumps({"from": self.instance, "at": time.time(), **state})
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(self.names.states(state["provider"]), state["key"], payload)
            pipe.publish(self.names.channel, payload)
            await pipe.execute()

    async def send_pool(self, provider: str, **setting: Any) -> None:
        """A pool setting (``strategy`` or ``order``) for every process."""
        await self._redis.publish(self.names.channel, json.dumps(
            {"kind": "pool", "from": self.instance, "provider": provider, **setting}))


async def fleet(url: str, prefix: str = "pooltui", stale_s: float = 10.0) -> dict[str, Any]:
    """The processes that shared their state lately (without their panels) and the shared key states."""
    link = FleetLink(url, prefix, stale_s)
    try:
        procs = [{k: v for k, v in p.items() if k != "panels"} for p in await link.processes()]
        return {"procs": procs, "keys": await link.key_states()}
    finally:
        await link.aclose()
