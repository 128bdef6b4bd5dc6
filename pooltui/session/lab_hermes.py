"""An emulation of Hermes Agent's own pool as a client, for the strategy lab's baseline
(``hermes-fill-first``, ``hermes-round-robin``). It follows the rules in :mod:`pooltui.core.hermes_rules`
(sticky current entry, one same-key retry after a 429, then bench for the reset Hermes can read or 1 h,
5 min after a 401, a sole key too; dead after a terminal 401; 3 retries) over plain HTTP, with nothing of
pooltui's handling. It is an emulation written from hermes-agent 0.19's source, not Hermes itself."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from typing import Any

import httpx

from pooltui.core.clock import Clock, SystemClock
from pooltui.core.hermes_rules import MAX_RETRIES, RETRY_AFTER_CAP_S, HermesEntry, HermesPoolModel, backoff_s
from pooltui.core.usage import usage_of
from pooltui.providers.profiles import ProviderProfile, profile_for
from pooltui.session.workload import Arrival, CallerResult, request_for
from pooltui.sim.scenario import Scenario

HERMES_STRATEGIES = ("hermes-fill-first", "hermes-round-robin")


class _Provider:
    def __init__(self, profile: ProviderProfile, pool: HermesPoolModel) -> None:
        self.profile, self.pool = profile, pool


class HermesEmulatedClient:
    """Sends a workload's requests the way Hermes Agent's pool would (primary, then its fallback)."""

    def __init__(self, scenario: Scenario, server: Any, strategy: str, *, seed: int | None = None,
                 http: httpx.AsyncClient | None = None, clock: Clock | None = None,
                 mono: Callable[[], float] = time.monotonic) -> None:
        """``http``: how requests reach ``server`` (default: over its socket); ``clock`` (wall, for the benches
        and resets) and ``mono`` (deadlines, waits): the lab's simulated time passes its loop's clock."""
        mode = {"hermes-fill-first": "fill_first", "hermes-round-robin": "round_robin"}[strategy]
        self.providers = [
            _Provider(profile_for(p.dialect, name=p.name, base_url=server.base_url(p.name)),
                      HermesPoolModel([HermesEntry(k.label, k.secret) for k in p.keys], mode))
            for p in scenario.providers]
        self.rng = random.Random(seed)
        self.traffic = scenario.traffic
        self.http = http or httpx.AsyncClient(timeout=30.0, limits=httpx.Limits(max_connections=256))
        self.clock, self.mono = clock or SystemClock(), mono

    async def aclose(self) -> None:
        await self.http.aclose()

    async def send(self, arrival: Arrival, left_s: float) -> CallerResult:
        deadline = self.mono() + left_s
        retries, retried_429, at = 0, False, 0
        while True:
            provider = self.providers[at]
            entry = provider.pool.entry(self.clock.now())
            if entry is None:
                if at + 1 < len(self.providers):  # no credential left: Hermes's fallback provider
                    at += 1
                    continue
                retries += 1
                if not await self._wait(retries, None, deadline):
                    return CallerResult(False, error="no credential available")
                at = 0
                continue
            req = request_for(provider.profile, arrival, self.traffic)
            try:
                resp = await asyncio.wait_for(
                    self.http.request(req.method, provider.profile.url(req.path), json=req.json,
                                      headers=provider.profile.auth_headers(entry.secret)),
                    max(0.001, deadline - self.mono()))
            except TimeoutError:
                return CallerResult(False, error="deadline")
            except httpx.HTTPError as exc:
                retries += 1
                if not await self._wait(retries, None, deadline):
                    return CallerResult(False, error=type(exc).__name__)
                continue
            entry.requests += 1
            if resp.status_code < 400:
                usage = usage_of(_json(resp))
                return CallerResult(True, provider.profile.name, usage.input, usage.output, usage=usage)
            status = resp.status_code
            if status == 429 and not retried_429:  # the same entry once more, after a backoff
                retried_429, retries = True, retries + 1
                if not await self._wait(retries, _retry_after(resp), deadline):
                    return CallerResult(False, error="http_429")
                continue
            if status in (401, 402, 403, 429):
                message = _message(resp)
                provider.pool.exhaust_and_rotate(entry, status, self.clock.now(), message, _reset_at(resp))
                retried_429 = False
                continue
            if status >= 500:
                retries += 1
                if not await self._wait(retries, None, deadline):
                    return CallerResult(False, error=f"http_{status}")
                continue
            return CallerResult(False, provider.profile.name, error=f"http_{status}")

    async def _wait(self, retry: int, retry_after: float | None, deadline: float) -> bool:
        """Hermes's wait before retry ``retry``; False when it has no retry left or the caller's deadline
        would pass first."""
        if retry > MAX_RETRIES:
            return False
        wait = retry_after if retry_after is not None else backoff_s(retry, self.rng.random())
        if self.mono() + wait > deadline:
            return False
        await asyncio.sleep(wait)
        return True


def _json(resp: httpx.Response) -> Any:
    with contextlib.suppress(ValueError):
        return resp.json()
    return None


def _message(resp: httpx.Response) -> str:
    body = _json(resp)
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("message") or "") if isinstance(error, dict) else ""


def _reset_at(resp: httpx.Response) -> float | None:
    """An absolute reset in the error body (``reset_at``, ``resets_at``, ``retry_until``), as Hermes reads."""
    body = _json(resp)
    error = body.get("error") if isinstance(body, dict) else None
    for source in (error, body):
        if isinstance(source, dict):
            for name in ("reset_at", "resets_at", "retry_until"):
                value = source.get(name)
                if isinstance(value, int | float) and value > 0:
                    return value / 1000.0 if value > 1e12 else float(value)
    return None


def _retry_after(resp: httpx.Response) -> float | None:
    raw = resp.headers.get("retry-after")
    try:
        return min(float(raw), RETRY_AFTER_CAP_S) if raw else None
    except ValueError:
        return None
