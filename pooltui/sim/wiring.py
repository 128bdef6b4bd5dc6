"""A PoolClient over a scenario's providers as a running simulator serves them (primary, then fallbacks)."""

from __future__ import annotations

import random
from collections.abc import Callable

from pooltui.client.pool_client import PoolClient, Upstream
from pooltui.core.clock import Clock
from pooltui.core.events import EventLog
from pooltui.core.pool import KeySpec, Pool
from pooltui.providers.profiles import profile_for
from pooltui.sim.scenario import Scenario
from pooltui.sim.server import SimAddress


def client_for_scenario(scenario: Scenario, server: SimAddress, strategy: str | None = None, *,
                        clock: Clock | None = None, seed: int | None = None, deadline_s: float | None = None,
                        http=None, latency_clock: Callable[[], float] | None = None,
                        affinity: str = "off") -> PoolClient:
    """A PoolClient over the scenario's providers as served by ``server``: primary first, then fallbacks
    (``affinity``: each pool's, see core/affinity.py; off unless asked for)."""
    events = EventLog()
    ups = []
    for i, p in enumerate(scenario.providers):
        profile = profile_for(p.dialect, name=p.name, base_url=server.base_url(p.name))
        pool = Pool(p.name, [KeySpec(k.label, k.secret, k.quota_group, cache_group=k.cache_org) for k in p.keys],
                    strategy or scenario.traffic.strategy, clock=clock, events=events,
                    rng=random.Random(None if seed is None else seed + i), affinity=affinity)
        ups.append(Upstream(profile, pool))
    return PoolClient(ups[0], ups[1:], clock=clock, events=events, http=http,
                      deadline_s=deadline_s or scenario.traffic.deadline_s, prices=scenario.prices,
                      rng=random.Random(seed), latency_clock=latency_clock)
