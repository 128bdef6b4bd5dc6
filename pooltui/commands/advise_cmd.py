"""``pooltui advise``: is pooling helping? The history's verdict with its figures; ``--keys``: how many keys the
busiest hour needs."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from pooltui.commands.common import FiniteFloat, UserError, app, since_option, unknown_provider
from pooltui.commands.sim_cmds import load_scenario_or_fail


@click.command("advise")
@click.option("--since", "since", default="7d", show_default=True, callback=since_option,
              help="how far back: 90m, 12h, 7d")
@click.option("--provider", help="the provider to judge (default: the one with most requests in the period)")
@click.option("--keys", "size", is_flag=True, help="also replay the busiest hour with 1, 2, ... keys like these and "
              "say the smallest pool that serves it (simulated time)")
@click.option("--max-wait", type=FiniteFloat(0, 3600), default=2.0, show_default=True,
              help="--keys: the longest a caller may wait (seconds)")
@click.option("--scenario", default=None, help="judge a simulator scenario (built-in name or TOML file) run in "
              "simulated time instead of the history")
@click.option("--json", "as_json", is_flag=True, help="one JSON object")
@click.pass_context
def advise(ctx: click.Context, since: float, provider: str | None, size: bool, max_wait: float,
           scenario: str | None, as_json: bool) -> None:
    """Is pooling helping? Whether 429s come from per-key limits (pooling helps) or from a limit the keys share
    (it does not), whether the traffic ever needed more than one key, which keys carried the load, what the
    fallback served and what each key and account spent."""
    from pooltui.session.advice import advise as judge

    if scenario is not None:
        data, peak = _on_scenario(scenario, size, max_wait)
    else:
        data, peak = _on_history(app(ctx), since, provider, size, max_wait)
    advice = judge(data)
    if as_json:
        out: dict[str, Any] = advice.as_dict()
        if peak is not None:
            out["keys_plan"] = peak.as_dict()
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"{data.provider}: {advice.verdict}")
    click.echo(click.wrap_text(advice.text(), 110))
    if peak is not None:
        click.echo(click.wrap_text(" ".join(peak.sentences()), 110))


def _on_history(a: Any, since: float, provider: str | None, size: bool, max_wait: float) -> tuple[Any, Any]:
    from pooltui.session.advice import gather
    from pooltui.session.advice_plan import plan_peak
    from pooltui.session.replay import ReplayError

    cfg = a.config()
    if provider is not None and provider not in cfg.providers:
        raise UserError(unknown_provider(provider, cfg.providers))
    history = a.history(cfg)
    if provider is None:
        used = {r["provider"]: r["requests"] for r in history.usage(since, "provider")
                if r["provider"] in cfg.providers}
        if not used and not cfg.providers:
            raise UserError("no provider configured; add one with `pooltui provider add`")
        provider = max(used, key=lambda name: used[name]) if used else sorted(cfg.providers)[0]
    p = cfg.providers[provider]
    entries = p.pool_keys()
    data = gather(history, provider, since, [e.label for e in entries], tuple(p.fallback),
                  {e.label: e.budget for e in entries if e.budget.is_set()})
    peak = None
    if size:
        try:
            peak = plan_peak(history, cfg, since, provider, target_wait_s=max_wait)
        except ReplayError as exc:
            raise UserError(str(exc)) from None
    return data, peak


def _on_scenario(name: str, size: bool, max_wait: float) -> tuple[Any, Any]:
    """The scenario's traffic run once in simulated time (its own strategy) into a history of its own, judged."""
    from pooltui.session.advice import gather
    from pooltui.session.advice_plan import plan_workload
    from pooltui.session.lab import run_strategy
    from pooltui.session.simtime import run_simulated
    from pooltui.session.workload import seeded_workload
    from pooltui.store.history import History

    sc = load_scenario_or_fail(name)
    t = sc.traffic
    arrivals = seeded_workload(sc, requests=t.requests, rate=t.rate, seed=sc.seed)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="pooltui-advise-") as tmp:
        history = History(Path(tmp) / "history.db")
        try:
            run_simulated(run_strategy(sc, t.strategy, arrivals, concurrency=t.concurrency, seed=sc.seed,
                                       history=history))
            data = gather(history, sc.primary.name, started - 60, [k.label for k in sc.primary.keys],  # per minute
                          tuple(p.name for p in sc.fallbacks))
        finally:
            history.close()
    peak = None
    if size:
        peak = plan_workload(sc, arrivals, f"scenario {sc.name}", concurrency=t.concurrency, seed=sc.seed,
                             target_wait_s=max_wait)
    return data, peak
