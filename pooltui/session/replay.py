"""``pooltui replay``: your traffic, not a demo. The arrival pattern of recorded requests (times, models,
tokens; the history keeps no prompt and no key) and the limits the provider's headers stated, rebuilt into
a workload and a simulated provider, so the lab can answer "what would failover have done last night?"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pooltui.core.words import plural
from pooltui.session.workload import Arrival
from pooltui.sim.scenario import Scenario, SimKey, SimProvider, TrafficDefaults

#: the window a provider's stated request limit counts over (OpenAI's and Anthropic's are per minute)
LIMIT_WINDOW_S = 60.0


class ReplayError(ValueError):
    """Nothing to replay (the message says why and what to do)."""


@dataclass
class Replay:
    arrivals: list[Arrival]
    scenario: Scenario
    provider: str
    since: float
    notes: list[str]  # what the replay assumed (limits nobody stated, the latency it uses)


def arrivals_from(records: list[dict[str, Any]]) -> list[Arrival]:
    """One arrival per recorded request, at its recorded offset from the first, with its model and sizes
    (a filler prompt of about the recorded input tokens)."""
    if not records:
        return []
    t0 = records[0]["ts"]
    out = []
    for r in records:
        model = r["model"] if r["model"] and r["model"] != "-" else None
        prompt = "replayed request " + "x" * max(0, min(int(r["tokens_in"]) * 16 - 96, 64_000))
        out.append(Arrival(round(r["ts"] - t0, 6), model, prompt, int(r["tokens_out"]) or 16))
    return out


def _quantile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def build_replay(history: Any, cfg: Any, since: float, provider: str | None = None) -> Replay:
    """The recorded requests of ``provider`` (default: the one with most) since ``since``, and a simulated
    provider like it: its keys (revoked ones still revoked), the request limits its headers stated."""
    records = history.request_records(since, provider)
    if not records:
        where = f" for {provider}" if provider else ""
        raise ReplayError(f"no requests recorded{where} in that period: the history records requests served "
                          "by `pooltui proxy`, the monitor or `pooltui traffic --provider`")
    if provider is None:
        counts: dict[str, int] = {}
        for r in records:
            counts[r["provider"]] = counts.get(r["provider"], 0) + 1
        provider = max(counts, key=lambda name: counts[name])
        records = [r for r in records if r["provider"] == provider]
    if provider not in cfg.providers:
        raise ReplayError(f"{provider} is not in the config any more: its keys are unknown")
    p = cfg.providers[provider]
    limits = history.key_limits(provider)
    statuses = history.key_statuses(provider)
    # a limit learnt from 429s knows its window; one stated in headers is taken per minute (a 429's header that
    # agrees with the learnt count is the same limit, with the learnt window)
    learned = {row.key: row for row in history.learned_limits(provider) if not row.model
               and limits.get(row.key, (None, None))[0] in (None, row.requests)}
    window = _learned_window(p.pool_keys(), limits, learned)
    notes: list[str] = []
    keys = []
    for i, entry in enumerate(p.pool_keys()):
        stated = limits.get(entry.label, (None, None))[0]
        status = statuses.get((provider, entry.label))
        state = status.state if status is not None else "ok"
        row = learned.get(entry.label)
        if row is not None:
            stated = row.requests if window != LIMIT_WINDOW_S else max(1, round(row.requests * window / row.window_s))
            notes.append(f"{entry.label}: learnt {row.requests} per {row.window_s:.1f} s from its 429s (sure "
                         f"{row.sure:.0%}): {stated} per {window:g} s in the replay")
        elif stated is None:
            notes.append(f"{entry.label}: no limit stated by the provider, unlimited in the replay")
        keys.append(SimKey(entry.label, f"sk-sim-replay-{i:04d}-{entry.label}"[:60].ljust(32, "0"), rpm=stated,
                           invalid=state == "invalid", forbidden=state == "forbidden"))
    ok = [r["latency_ms"] for r in records if r["outcome"] == "ok"]
    latency = (min(_quantile(ok, 0.25), 5000.0), min(_quantile(ok, 0.5), 5000.0)) if ok else (10.0, 40.0)
    notes.append(f"the provider answers in {latency[0]:.0f}-{latency[1]:.0f} ms (the recorded successes' "
                 "quartiles)")
    dialect = "anthropic" if p.profile.dialect == "anthropic" else "openai"
    sim = SimProvider(provider, dialect, window, latency, keys=keys,
                      success_headers=any(k.rpm is not None and k.label not in learned for k in keys))
    models = sorted({r["model"] for r in records if r["model"] != "-"})
    scenario = Scenario(f"replay-{provider}", f"{plural(len(records), 'request')} recorded for {provider}", 1, [sim],
                        TrafficDefaults(len(records), 16, 0.0, p.strategy, 30.0, models))
    return Replay(arrivals_from(records), scenario, provider, since, notes)


def _learned_window(entries, limits: dict, learned: dict) -> float:
    """The replay's window: the learnt one when every limit is learnt (none stated) and the windows agree within
    10%, else a minute (stated limits are per minute; a learnt one is then scaled to it)."""
    windows = [learned[e.label].window_s for e in entries if e.label in learned]
    if not windows or any(limits.get(e.label, (None, None))[0] is not None and e.label not in learned
                          for e in entries):
        return LIMIT_WINDOW_S
    mid = sorted(windows)[len(windows) // 2]
    return round(mid, 3) if all(abs(w / mid - 1) <= 0.1 for w in windows) else LIMIT_WINDOW_S
