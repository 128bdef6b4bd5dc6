"""A provider's settings applied to a running client in place: its profile (kind, base URL), its fallbacks,
its limits (deadline, stream silence, body size, attempts) and its pools' policies (cooldowns, in-flight cap).
The pools keep what they learnt (key states, learnt limits, rotation); requests in flight finish as they began.
No UI in here."""

from __future__ import annotations

from collections.abc import Callable

from pooltui.client.pool_client import PoolClient, Upstream
from pooltui.core.breaker import OutageBreaker
from pooltui.core.pool import Pool
from pooltui.session.build import client_limits
from pooltui.store.config import Config, ProviderConfig

#: the config's name for each PoolClient setting (what a change is logged as)
LIMIT_NAMES = {"deadline_s": "request_timeout_s", "stream_idle_s": "stream_idle_s", "max_body_bytes": "max_body_mb",
               "max_attempts": "max_attempts"}
NewPool = Callable[[ProviderConfig], Pool | None]


def apply_settings(client: PoolClient, cfg: Config, new_pool: NewPool) -> list[str]:
    """Bring ``client`` (its primary still configured) to what ``cfg`` says; one line per change.
    ``new_pool`` builds the pool of a fallback the client did not have, or of a provider that had no keys."""
    primary = cfg.providers[client.primary.name]
    out = _fallbacks(client, primary, cfg, lambda p: Upstream(p.profile, new_pool(p)))
    for up in client.upstreams:
        p = cfg.providers.get(up.name)
        if p is not None:
            out += _upstream(up, p)
            if up.pool is None and p.keys and not p.profile.keyless:  # keys given to a provider that had none
                up.pool = new_pool(p)
                n = len(up.pool) if up.pool is not None else 0
                out.append(f"{p.name} pooled ({n} key{'' if n == 1 else 's'})")
    for attr, value in client_limits(primary).items():
        if getattr(client, attr) != value:
            setattr(client, attr, value)
            name = LIMIT_NAMES[attr]
            out.append(f"{primary.name} {name} {getattr(primary, name):g}")
    return out


def _fallbacks(client: PoolClient, primary: ProviderConfig, cfg: Config,
               new_upstream: Callable[[ProviderConfig], Upstream]) -> list[str]:
    """The fallback list rebuilt by name: upstreams it had are kept (pools, breakers and all)."""
    wanted = [name for name in primary.fallback if name in cfg.providers and name != primary.name]
    if wanted == [up.name for up in client.fallbacks]:
        return []
    had = {up.name: up for up in client.fallbacks}
    fallbacks = [had.get(name) or new_upstream(cfg.providers[name]) for name in wanted]
    for up in fallbacks:
        if up.breaker is None:
            up.breaker = OutageBreaker(client.clock)
    client.fallbacks = fallbacks
    return [f"{primary.name} fallback {', '.join(wanted) or 'none'}"]


def _upstream(up: Upstream, p: ProviderConfig) -> list[str]:
    """One upstream's profile and pool policies from its provider's config."""
    out = []
    profile = p.profile
    if profile != up.profile:
        up.profile = profile  # every field of the profile applies to the next attempt
        out.append(f"{p.name} kind {p.kind}, base URL {profile.base_url}")
    pool = up.pool
    if pool is not None:
        if pool.cooldown != p.cooldown:
            pool.cooldown = p.cooldown
            out.append(f"{p.name} cooldown {p.cooldown_s:g} s up to {p.cooldown_max_s:g} s, floor "
                       f"{p.cooldown_floor_s:g} s")
        if pool.max_inflight != p.max_inflight_per_key:
            pool.max_inflight = p.max_inflight_per_key
            out.append(f"{p.name} max_inflight_per_key {p.max_inflight_per_key or 'off'}")
        if (pool.affinity, pool.affinity_wait_s) != (p.affinity_mode, p.affinity_wait_s):
            pool.set_affinity(p.affinity_mode, p.affinity_wait_s)
            out.append(f"{p.name} affinity {p.affinity_mode}, wait {p.affinity_wait_s:g} s")
    return out
