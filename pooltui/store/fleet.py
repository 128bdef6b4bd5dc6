"""The Redis names a fleet shares, and the reading side: which processes serve the pool, the key states
they share, their merged events; a fleet monitor's key actions go out from here too."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pooltui.core.terminal import printable
from pooltui.store import shared_wire


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

    def learned(self, provider: str) -> str:  # hash: "label:fingerprint:model" -> the fleet's surest estimate
        return f"{self.prefix}:learned:{provider}"

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
    """A URL without its user, password, path or query (a Redis URL as ``redis://host:port``); whatever it
    is, never its password."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "(a URL that does not parse)"
    if parts.scheme == "unix":
        return printable(f"unix://{parts.path}")
    scheme = parts.scheme if parts.scheme.isalnum() else "?"
    return printable(f"{scheme}://{parts.hostname or ''}{'' if port is None else f':{port}'}")


CONNECTED, AUTH_FAILED, TLS_MISMATCH, UNREACHABLE = "connected", "auth failed", "TLS mismatch", "unreachable"


async def cancel_until_done(tasks: Iterable[asyncio.Task[Any]], within_s: float,
                            again_s: float = 0.25) -> set[asyncio.Task[Any]]:
    """Cancel ``tasks`` and wait up to ``within_s`` for them to end, cancelling again every ``again_s`` those
    still running: a cancellation that lands as a Redis call completes can be swallowed (redis-py #2028) and the
    loop goes on. Returns those still running then (stuck in a call that ignores cancellation)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - loop.time()
        if left <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(again_s, left))
    return pending


async def _listening(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """Whether something accepts a TCP connection on ``host:port``."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (TimeoutError, OSError):
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True


async def failure_of(url: str, exc: BaseException) -> str:
    """What went wrong reaching the store at ``url``: :data:`AUTH_FAILED` (a wrong or missing password or ACL
    user), :data:`TLS_MISMATCH` (``rediss://`` to a server without TLS, or a TLS error) or :data:`UNREACHABLE`."""
    import ssl

    from redis.exceptions import AuthenticationError, ResponseError
    from redis.exceptions import TimeoutError as RedisTimeout

    text = str(exc)
    if isinstance(exc, AuthenticationError) or (isinstance(exc, ResponseError)
                                                and text.startswith(("NOAUTH", "WRONGPASS", "NOPERM"))):
        return AUTH_FAILED
    if any(isinstance(e, ssl.SSLError) for e in (exc, exc.__cause__, exc.__context__)) or "SSL" in text:
        return TLS_MISMATCH
    parts = urlsplit(url)
    if (parts.scheme == "rediss" and isinstance(exc, RedisTimeout | TimeoutError) and parts.hostname
            and await _listening(parts.hostname, _port(parts))):
        return TLS_MISMATCH  # the port answers TCP but no TLS handshake: a server without TLS
    return UNREACHABLE


def _port(parts: Any) -> int:
    try:
        return parts.port or 6379
    except ValueError:
        return 6379


async def probe(url: str, timeout_s: float = 3.0) -> str:
    """Connect to the store at ``url`` once and say how it went (:data:`CONNECTED` or what is wrong)."""
    import redis.asyncio as redis

    try:
        client = redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    except Exception as exc:  # a URL redis-py cannot use
        return await failure_of(url, exc)
    try:
        await client.ping()
        return CONNECTED
    except Exception as exc:
        return await failure_of(url, exc)
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()


def shown_url(url: str) -> str:
    """What an error may show of a URL given by the user: never its password."""
    return redact_url(url) if "://" in url else "a value that is not a URL"


def status_line(status: str, url: str, serving: bool = True) -> str:
    """The one line said when the store's status becomes ``status`` (the URL without its password); a
    ``serving`` process adds what it does meanwhile."""
    where = redact_url(url)
    if status == CONNECTED:
        return f"shared state: connected to {where}"
    own = "serving on this process's own view, retrying" if serving else "fix [state] url"
    if status == AUTH_FAILED:
        return (f"shared state: {where} refused the credentials (auth failed: check the password or ACL user in "
                f"[state] url); {own}")
    if status == TLS_MISMATCH:
        hint = ("rediss:// to a server without TLS? use redis://, or enable TLS on the server"
                if url.startswith("rediss://") else "the server and the URL disagree on TLS")
        return f"shared state: TLS mismatch with {where} ({hint}); {own}"
    return f"shared state: {where} unreachable; {own}"


class FleetLink:
    """One connection to a fleet's Redis: read processes, key states and events; send key actions."""

    def __init__(self, url: str, prefix: str = "pooltui", stale_s: float = 10.0, secret: str | None = None) -> None:
        import redis.asyncio as redis

        self.url, self.names, self.stale_s, self.secret = url, names(prefix), stale_s, secret
        self.instance = f"monitor:{time.time():.0f}"
        self.skipped: list[str] = []  # one line per bad entry read from the store and left out
        self._redis = redis.from_url(url, decode_responses=True, socket_connect_timeout=2, socket_timeout=3)

    async def aclose(self) -> None:
        await self._redis.aclose()

    def _skip(self, what: str, why: str) -> None:
        line = f"skipped {what} ({why})"
        if line not in self.skipped:
            self.skipped.append(line)

    async def _hash(self, name: str) -> dict[str, str]:
        """A hash of the store; anything else there (a list where a hash is expected) is skipped, said once."""
        from redis.exceptions import ResponseError

        try:
            held = await self._redis.hgetall(name)
        except ResponseError as exc:
            if "WRONGTYPE" not in str(exc):
                raise
            self._skip(printable(name[:100]), "not a hash")
            return {}
        return {str(k): str(v) for k, v in held.items()}

    def _checked(self, raw: str, check: Callable[[object, float], dict[str, Any]], what: str,
                 now: float) -> dict[str, Any] | None:
        try:
            return check(json.loads(raw), now)
        except (ValueError, shared_wire.Rejected) as exc:
            self._skip(what, str(exc) if isinstance(exc, shared_wire.Rejected) else "not JSON")
            return None

    async def processes(self) -> list[dict[str, Any]]:
        """The processes seen within ``stale_s`` (older ones are forgotten), by host and pid; a heartbeat that
        is not one is skipped (:attr:`skipped`)."""
        now = time.time()
        procs: list[dict[str, Any]] = []
        gone: list[dict[str, Any]] = []
        for raw in (await self._hash(self.names.procs)).values():
            proc = self._checked(raw, shared_wire.heartbeat, "a heartbeat", now)
            if proc is not None:
                (procs if now - proc["last_seen"] <= self.stale_s else gone).append(proc)
        if gone:
            await self._redis.hdel(self.names.procs, *[p["instance"] for p in gone])
        return sorted(procs, key=lambda p: (p["host"], p["pid"]))

    async def key_states(self) -> list[dict[str, Any]]:
        """The shared key states (checked; a bad one is skipped), by provider and label."""
        keys: list[dict[str, Any]] = []
        now = time.time()
        async for name in self._redis.scan_iter(match=f"{self.names.prefix}:keys:*"):
            for raw in (await self._hash(name)).values():
                state = self._checked(raw, shared_wire.key_state, "a key state", now)
                if state is not None:
                    keys.append(state)
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
                event = json.loads(fields["e"])
                ts = event.get("ts") if isinstance(event, dict) else None
                if isinstance(ts, int | float) and not isinstance(ts, bool) and math.isfinite(ts):
                    out.append((sid, event))
                else:  # a planted entry: the fleet monitor goes on without it
                    self._skip("an event", "not an event")
        return out

    async def send_state(self, state: dict[str, Any]) -> None:
        """A key state for every process (a hand action from the fleet monitor); newcomers read it too."""
        payload = shared_wire.signed({"from": self.instance, "at": time.time(), **state}, self.secret)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(self.names.states(state["provider"]), state["key"], payload)
            pipe.publish(self.names.channel, payload)
            await pipe.execute()

    async def clear_states(self, provider: str, label: str | None = None) -> int:
        """Forget the fleet's shared states of ``provider`` (one key, or all), and tell every running process
        the key is back (``pooltui auth reset``). Returns how many keys were not ok."""
        name = self.names.states(provider)
        held = await self._redis.hgetall(name)
        cleared = 0
        for field, raw in held.items():
            if label is not None and field != label:
                continue
            await self._redis.hdel(name, field)
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                state = json.loads(raw)
                if state.get("state") != "ok" and isinstance(state.get("fingerprint"), str):
                    cleared += 1
                    await self._redis.publish(self.names.channel, shared_wire.signed(
                        {"from": self.instance, "at": time.time(), "provider": provider, "key": field,
                         "fingerprint": state["fingerprint"], "state": "ok", "until": None,
                         "reason": "reset by hand"}, self.secret))
        return cleared

    async def send_pool(self, provider: str, **setting: Any) -> None:
        """A pool setting (``strategy`` or ``order``) for every process."""
        await self._redis.publish(self.names.channel, shared_wire.signed(
            {"kind": "pool", "from": self.instance, "provider": provider, **setting}, self.secret))


async def clear_states(url: str, prefix: str, provider: str, label: str | None = None,
                       secret: str | None = None) -> int:
    """:meth:`FleetLink.clear_states` on one connection (its messages signed with the fleet ``secret``)."""
    link = FleetLink(url, prefix, secret=secret)
    try:
        return await link.clear_states(provider, label)
    finally:
        await link.aclose()


async def fleet(url: str, prefix: str = "pooltui", stale_s: float = 10.0) -> dict[str, Any]:
    """The processes that shared their state lately (without their panels) and the shared key states."""
    link = FleetLink(url, prefix, stale_s)
    try:
        procs = [{k: v for k, v in p.items() if k != "panels"} for p in await link.processes()]
        keys = await link.key_states()
        return {"procs": procs, "keys": keys, "skipped": link.skipped}
    finally:
        await link.aclose()
