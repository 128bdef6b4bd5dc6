"""A busy day's history for `pooltui replay`: a config with one provider of four keys (their secrets in a real
secret store) and a real SQLite history holding a day of callers' requests (RequestRecords), busier by day than
by night with a peak hour, two models, and the per-minute limits the provider's headers stated."""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

from pooltui.client.pool_client import RequestRecord
from pooltui.store.config import ConfigEditor, KeyEntry, ProviderConfig
from pooltui.store.history import History
from pooltui.store.secrets import SecretStore

PROVIDER = "work"


def hourly_rates(per_day: int) -> list[float]:
    """Requests per hour over 24 h summing to ``per_day``: quiet at night, busy in working hours, a peak at 14h."""
    shape = [0.15 + max(0.0, math.sin(math.pi * (h - 7) / 12)) + (0.8 if h == 14 else 0.0) for h in range(24)]
    total = sum(shape)
    return [per_day * s / total for s in shape]


def busy_day(tmp_path: Path, per_day: int = 6000, seed: int = 7, rpm: int = 4) -> dict[str, str]:
    """Write the config and the history under ``tmp_path``; returns the environment pointing pooltui at them.
    The day ends now: ``replay --since 24h`` takes all of it."""
    store = SecretStore(tmp_path / "data")
    path = tmp_path / "config.toml"
    labels = ["alpha", "bravo", "charlie", "delta"]
    with ConfigEditor(path) as cfg:
        p = cfg.providers[PROVIDER] = ProviderConfig(PROVIDER, "openai", "http://127.0.0.1:9/v1")  # never called
        for i, label in enumerate(labels):
            p.keys.append(KeyEntry(label, store.put(PROVIDER, label, f"sk-test-busy-{i}-{'0' * 24}")))
    rng = random.Random(seed)
    start = time.time() - 24 * 3600 + 60
    records = []
    for hour, rate in enumerate(hourly_rates(per_day)):
        t = start + hour * 3600
        while (t := t + rng.expovariate(rate / 3600)) < start + (hour + 1) * 3600:
            model = "gpt-4o" if rng.random() < 0.3 else "gpt-4o-mini"
            records.append(RequestRecord(t, PROVIDER, model, rng.randint(40, 900), rng.randint(20, 400), "ok",
                                         rng.uniform(0.4, 2.5)))
    history = History(tmp_path / "data" / "history.db")
    history.add_request_records(records)
    history.set_key_limits(PROVIDER, [(label, rpm, None) for label in labels])
    history.close()
    return {"POOLTUI_CONFIG": str(path), "POOLTUI_DATA_DIR": str(tmp_path / "data")}
