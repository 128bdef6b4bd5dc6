"""Parked keys come back by themselves: a background re-verification with the zero-token call.

A key parked with no known end (quota or billing without a reset, 403) is re-verified on a backoff schedule
(default 5 min doubling to 1 h): a topped-up account or a restored permission rejoins the rotation with an
event that says so. A sole key's 403 is re-checked after 60 s. An invalid (401) key is not re-checked: its
secret would have to change first. A key whose parking has a known end waits for that end instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pooltui.client.pool_client import PoolClient, Upstream
from pooltui.core.events import Event, EventKind, StateChange
from pooltui.core.pool import KeyState, Pool, PoolKey

PARKED = frozenset({KeyState.EXHAUSTED, KeyState.FORBIDDEN})


@dataclass(frozen=True, slots=True)
class ReverifyPolicy:
    """When to re-verify a parked key: ``first_s`` after it was parked, doubling up to ``max_s``."""

    first_s: float = 300.0
    max_s: float = 3600.0
    sole_forbidden_s: float = 60.0
    enabled: bool = True

    @classmethod
    def of(cls, p: Any) -> ReverifyPolicy:
        """The policy a provider's config (``reverify_s``, ``reverify_max_s``) asks for."""
        return cls(first_s=p.reverify_s or 300.0, max_s=max(p.reverify_s, p.reverify_max_s), enabled=p.reverify_s > 0)


@dataclass(slots=True)
class _Due:
    at: float
    delay: float
    parked_at: float | None
    rejoined: bool = False  # we brought it back last time: parked again soon after means keep backing off


@dataclass
class Reverifier:
    """Re-verifies the parked keys of one client's upstreams; ``run()`` is its background loop."""

    client: PoolClient
    policies: dict[str, ReverifyPolicy] = field(default_factory=dict)  # per provider; default policy otherwise
    verifier: Callable | None = None  # async (http, profile, label, secret) -> VerifyResult; verify_key by default
    only: frozenset[str] | None = None  # the providers whose keys this one tends (None: all the client's)
    _due: dict[tuple[str, str], _Due] = field(default_factory=dict)

    def _policy(self, provider: str) -> ReverifyPolicy:
        return self.policies.get(provider, ReverifyPolicy())

    def due(self, now: float) -> list[tuple[Upstream, Pool, PoolKey]]:
        """The parked keys whose re-verification is due now, with their pools (schedules kept up to date)."""
        out: list[tuple[Upstream, Pool, PoolKey]] = []
        for up in self.client.upstreams:
            pool = up.pool
            policy = self._policy(up.name)
            if pool is None or not policy.enabled or (self.only is not None and up.name not in self.only):
                continue
            for key in pool.keys:
                if key.state not in PARKED or key.until is not None:
                    continue
                ident = (up.name, key.label)
                entry = self._due.get(ident)
                if entry is None or entry.parked_at != key.changed_at:  # newly parked (or parked again)
                    sole = key.state is KeyState.FORBIDDEN and len(pool) == 1
                    delay = policy.sole_forbidden_s if sole else policy.first_s
                    if entry is not None and entry.rejoined:  # our "valid" did not last: back off further
                        delay = min(policy.max_s, entry.delay * 2)
                    entry = self._due[ident] = _Due((key.changed_at or now) + delay, delay, key.changed_at)
                if now >= entry.at:
                    out.append((up, pool, key))
        return out

    async def run_once(self) -> int:
        """Re-verify every key that is due; returns how many were checked."""
        from pooltui.providers.verify import verify_key

        verify = self.verifier or verify_key
        now = self.client.clock.now()
        checks = self.due(now)
        for up, pool, key in checks:
            entry = self._due[(up.name, key.label)]
            result = await verify(self.client.http, up.profile, key.label, key.secret)
            if result.classification is not None and result.result == "valid":
                pool.mark_verified(key.label, result.classification)
                pool.events.emit(Event(self.client.clock.now(), up.name, key.label, EventKind.STATE,
                                       result.status, "re-verified in the background: valid again",
                                       "back in rotation"))  # the pool's own event says what changed
                entry.rejoined = True
                continue
            policy = self._policy(up.name)
            entry.delay = min(policy.max_s, entry.delay * 2)
            entry.at = self.client.clock.now() + entry.delay
            pool.events.emit(Event(self.client.clock.now(), up.name, key.label, EventKind.STATE, result.status,
                                   f"re-verified in the background: still {result.result}",
                                   f"next check in {entry.delay:g} s", change=StateChange.CHECKED))
        return len(checks)

    async def run(self, interval_s: float = 5.0) -> None:
        """Check every ``interval_s`` until cancelled; a failed round is logged as an event, never raised."""
        while True:
            await asyncio.sleep(interval_s)
            with contextlib.suppress(Exception):
                await self.run_once()
