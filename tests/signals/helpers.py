"""Clients over a handful of fake keys for the signal tests."""

from __future__ import annotations

from typing import Any

from pooltui.client.pool_client import PoolClient, Upstream
from pooltui.core import KeySpec, Pool
from pooltui.providers.profiles import profile_for


def client_with_keys(base_url: str, n: int, strategy: str = "round-robin", max_inflight: int | None = None,
                     **kw: Any) -> PoolClient:
    """A PoolClient with ``n`` keys labelled k0.. in front of ``base_url`` (an openai-compatible endpoint)."""
    pool = Pool("up", [KeySpec(f"k{i}", f"sk-test-signal-{i}-000000000001") for i in range(n)], strategy,
                max_inflight=max_inflight)
    return PoolClient(Upstream(profile_for("openai-compatible", name="up", base_url=base_url), pool), **kw)
