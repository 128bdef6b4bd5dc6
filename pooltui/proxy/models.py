"""``GET /v1/models`` answered by the proxy, never queued behind a storm: agents probe it before prompts
(Hermes twice per prompt), and a probe waiting for a key delays every prompt by the queue's wait.

The list is the pool's own models, fetched from the upstream in the background with a key that is free at
that moment (never one waited for), refreshed every ``REFRESH_S`` while callers ask; until a fetch has
answered, or when fetching fails, it is what is known: the provider's default model, the models seen in
traffic and the caller-side names of a model map. Rendered in the caller's dialect."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pooltui.client.pool_client import PoolClient
from pooltui.core.classify import classify

REFRESH_S = 600.0  # a fetched list is asked for again this long after it came
RETRY_S = 60.0  # after a failed fetch (or none possible: no key free), the next try waits this long
NO_KEY_RETRY_S = 5.0  # no key was free (a storm): the next caller tries again this soon
FETCH_TIMEOUT_S = 10.0
FIRST_WAIT_S = 1.0  # the first caller waits this long at most for the first fetch (a key was free for it)
MAX_MODELS = 2000


@dataclass(frozen=True, slots=True)
class Model:
    id: str
    created: int = 0  # epoch seconds
    owned_by: str = "pooltui"
    display_name: str = ""


@dataclass
class _Listing:
    """What one client's upstream said, and when."""

    where: tuple[str, str]  # (dialect, base URL) it was fetched from: a changed config asks again
    models: list[Model] | None = None
    fetched_at: float | None = None
    tried_at: float | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class ModelCatalog:
    """Per client (by its primary provider's name), the models the proxy lists."""

    def __init__(self) -> None:
        self._listings: dict[str, _Listing] = {}

    async def models(self, client: PoolClient) -> list[Model]:
        """The list for ``client`` now: fetched, or known. Starts a background fetch when it is due; waits only
        for a first fetch that is already under way (bounded), never for a key."""
        listing = self._listing(client)
        now = time.monotonic()
        due = listing.fetched_at is None or now - listing.fetched_at >= REFRESH_S
        if due and listing.task is None and (listing.tried_at is None or now - listing.tried_at >= RETRY_S):
            started = self._start_fetch(client, listing)
            listing.tried_at = now if started is not None else now - RETRY_S + NO_KEY_RETRY_S
            if started is not None and listing.models is None:
                with contextlib.suppress(asyncio.TimeoutError, Exception):
                    await asyncio.wait_for(asyncio.shield(started), FIRST_WAIT_S)
        return listing.models if listing.models is not None else known_models(client)

    def _listing(self, client: PoolClient) -> _Listing:
        profile = client.primary.profile
        where = (profile.dialect, profile.base_url)
        listing = self._listings.get(client.primary.name)
        if listing is None or listing.where != where:
            listing = self._listings[client.primary.name] = _Listing(where)
        return listing

    def _start_fetch(self, client: PoolClient, listing: _Listing) -> asyncio.Task[None] | None:
        """A background fetch with a key free now (none free: no fetch): its task, None if none started."""
        up = client.primary
        key = None
        if up.pool is not None:
            if client.waiting:  # requests are queued for a key: a key free now is theirs
                return None
            key = up.pool.pick()
            if key is None:
                return None
        listing.task = asyncio.create_task(self._fetch(client, listing, key))
        return listing.task

    async def _fetch(self, client: PoolClient, listing: _Listing, key) -> None:
        up = client.primary
        profile, pool = up.profile, up.pool
        headers = profile.auth_headers(key.secret if key is not None else None)
        headers["accept-encoding"] = "identity"
        started = time.perf_counter()
        reported = False
        try:
            async with asyncio.timeout(FETCH_TIMEOUT_S):
                resp = await client.http.get(profile.url(profile.models_path), headers=headers)
            latency = time.perf_counter() - started
            if pool is not None and key is not None:
                result = classify(profile.dialect, resp.status_code, resp.headers, resp.content, client.clock.now())
                with contextlib.suppress(ValueError):  # the key was removed meanwhile: nothing to settle
                    pool.report(key, result, latency)
                reported = True
            if resp.status_code == 200:
                models = parse_listing(resp.content)
                if models:
                    listing.models, listing.fetched_at = models, time.monotonic()
        except Exception:  # a failed fetch leaves the list as it was; the next try comes after RETRY_S
            pass
        finally:
            if not reported and pool is not None and key is not None:
                pool.release(key, None, time.perf_counter() - started)
            listing.task = None


def parse_listing(content: bytes) -> list[Model]:
    """The models of an upstream's listing (openai or anthropic shape); nothing else of it is kept."""
    try:
        data = json.loads(content).get("data")
    except (ValueError, AttributeError):
        return []
    out: list[Model] = []
    for item in data if isinstance(data, list) else []:
        mid = item.get("id") if isinstance(item, dict) else None
        if not isinstance(mid, str) or not mid or len(mid) > 256 or any(c in mid for c in "\r\n\x00"):
            continue
        created = item.get("created")
        if not isinstance(created, int) or isinstance(created, bool):
            created = _epoch(item.get("created_at"))
        owned = item.get("owned_by")
        name = item.get("display_name")
        out.append(Model(mid, created, owned if isinstance(owned, str) else "pooltui",
                         name if isinstance(name, str) else ""))
        if len(out) >= MAX_MODELS:
            break
    return out


def known_models(client: PoolClient) -> list[Model]:
    """What is known without asking the upstream: the default model, the models seen in traffic, the
    caller-side names of any model map."""
    names: list[str] = [client.primary.profile.default_model]
    if client.primary.pool is not None:
        names += client.primary.pool.models_seen()
    for up in client.upstreams:
        names += [asked for asked, _ in up.profile.model_map]
    return [Model(name) for name in dict.fromkeys(names) if name]


def render(models: list[Model], anthropic: bool) -> dict[str, Any]:
    """The listing in the caller's dialect."""
    if anthropic:
        data = [{"type": "model", "id": m.id, "display_name": m.display_name or m.id,
                 "created_at": _iso(m.created)} for m in models]
        return {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None}
    return {"object": "list", "data": [{"id": m.id, "object": "model", "created": m.created, "owned_by": m.owned_by}
                                       for m in models]}


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(value: Any) -> int:
    if not isinstance(value, str):
        return 0
    with contextlib.suppress(ValueError):
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    return 0
