"""``pooltui events`` and ``pooltui usage``: what the history remembers."""

from __future__ import annotations

import csv
import io
import json

import click

from pooltui.commands.common import UserError, app, since_option, table, unknown_provider, when


@click.command("events")
@click.option("--since", "since", default="12h", show_default=True, callback=since_option,
              help="how far back: 90m, 12h, 30d")
@click.option("--provider", help="only this provider")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=1000, show_default=True,
              help="at most this many events, the most recent")
@click.option("--json", "as_json", is_flag=True, help="a JSON list instead of a table")
@click.pass_context
def events(ctx: click.Context, since: float, provider: str | None, limit: int, as_json: bool) -> None:
    """Past events (429s, 401s, quota, 5xx, state changes) from the history."""
    a = app(ctx)
    rows = known_history(a, a.config(), provider).events(since, provider, limit, folded=True)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no events in that period")
        return
    click.echo(table(["time", "provider", "key", "event", "status", "reason", "action"],
                     [[when(r["ts"]), r["provider"], r["key"] or "-", r["kind"], str(r["status"] or "-"),
                       (r["reason"] or "")[:60], (r["action"] or "") + repeats(r["repeats"])] for r in rows]))


def repeats(n: int) -> str:
    """How many events a row stands for (a key's repeats within 10 s are stored as one row), when more than one."""
    return f" (×{n} within 10 s)" if n > 1 else ""


@click.command("usage")
@click.option("--since", "since", default="30d", show_default=True, callback=since_option,
              help="how far back: 90m, 12h, 30d")
@click.option("--by", type=click.Choice(["key", "provider", "day", "model"]), default="key", show_default=True,
              help="one row per key, provider, day (UTC) or model")
@click.option("--provider", help="only this provider")
@click.option("--json", "as_json", is_flag=True, help="a JSON list instead of a table")
@click.option("--csv", "as_csv", is_flag=True, help="CSV instead of a table")
@click.pass_context
def usage(ctx: click.Context, since: float, by: str, provider: str | None, as_json: bool, as_csv: bool) -> None:
    """Callers' requests, upstream calls, tokens and cost per key (or provider, day, model): which key paid for
    what. A caller's request is counted once; each upstream call it took (a retry on another key, a fallback)
    counts as one upstream call."""
    if as_json and as_csv:
        raise UserError("choose one of --json and --csv")
    a = app(ctx)
    cfg = a.config()
    history = known_history(a, cfg, provider)
    priced = bool(cfg.prices.per_model)
    callers = history.caller_requests(since, "provider" if by == "key" else by, provider)
    rows = usage_rows(history.usage(since, by, provider), by, callers, priced)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if as_csv:
        out = io.StringIO()
        if rows:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        click.echo(out.getvalue(), nl=False)
        return
    if not rows and not callers:
        click.echo("no usage recorded in that period")
        return
    if rows:
        click.echo(table([USAGE_TITLES.get(name, name) for name in rows[0]],
                         [[_cell(name, value) for name, value in row.items()] for row in rows]))
    else:  # callers were refused before any key was tried (none usable)
        click.echo("no upstream calls in that period")
    if by == "key":
        for name, (n, served) in sorted(callers.items()):
            click.echo(f"callers' requests to {name}: {n} ({served} served)")
        from pooltui.session.advice import account_lines

        budgets = {(p.name, e.label): e.budget for p in cfg.providers.values() for e in p.keys if e.budget.is_set()}
        for line in account_lines(history.usage(since, "key", provider), history, budgets):
            click.echo(line)
    click.echo("upstream calls: each attempt on a key (a retry or a fallback is one more); callers' requests: each "
               "once" + ("" if priced else "; cost: needs [prices] in the config"))


USAGE_TITLES = {"caller_requests": "callers' requests", "caller_served": "served", "upstream_calls": "upstream calls",
                "upstream_ok": "calls ok", "tokens_in": "tokens in", "tokens_out": "tokens out", "cost": "cost $",
                "cache_hit_rate": "cache hit", "cache_read": "cache reads", "cache_write": "cache writes",
                "cache_saved": "saved $", "cost_no_cache": "no-cache $", "cost_round_robin": "round-robin $"}
MONEY = ("cost", "cache_saved", "cost_no_cache", "cost_round_robin")


def _cell(name: str, value) -> str:
    if value is None:
        return "-"
    if name == "cache_hit_rate":
        return f"{value:.0%}"
    return f"{value:.4f}" if name in MONEY else str(value)


def cache_figures(r: dict, priced: bool) -> dict:
    """A usage row's prompt-cache figures: hit rate (tokens read from cache / cacheable input), reads, writes, the
    money caching saved, what the same tokens would have cost with no cache use, and what round-robin without
    affinity would have paid (an estimate: core/round_robin_cost.py) (None where unknown)."""
    cacheable, read = r.get("cacheable", 0), r.get("cache_read", 0)
    money = priced or bool(r.get("cost"))
    return {"cache_hit_rate": round(read / cacheable, 4) if cacheable else None, "cache_read": read,
            "cache_write": r.get("cache_write", 0),
            "cache_saved": round(r.get("cost_no_cache", 0.0) - r["cost"], 6) if money else None,
            "cost_no_cache": r.get("cost_no_cache", 0.0) if money else None,
            "cost_round_robin": r.get("cost_round_robin", r["cost"]) if money else None}


def usage_rows(rows: list[dict], group: str, callers: dict[str, tuple[int, int]], priced: bool) -> list[dict]:
    """The history's usage rows (upstream calls) with the callers' requests of the same ``group`` (provider, day
    or model) beside them; none per key (a caller's request is not one key's). No cost (None) where no price
    was ever set."""
    out = []
    for r in rows:
        if group == "key":
            row = {"provider": r["provider"], "key": r["key"]}
        else:
            n, served = callers.get(r[group], (0, 0))
            row = {group: r[group], "caller_requests": n, "caller_served": served}
        out.append(row | {"upstream_calls": r["requests"], "upstream_ok": r["ok"], "tokens_in": r["tokens_in"],
                          "tokens_out": r["tokens_out"], "cost": r["cost"] if priced or r["cost"] else None}
                   | cache_figures(r, priced))
    if group != "key":  # requests that never reached an upstream (no usable key) have no usage row of their own
        seen = {r[group] for r in rows}
        out += [{group: name, "caller_requests": n, "caller_served": served, "upstream_calls": 0, "upstream_ok": 0,
                 "tokens_in": 0, "tokens_out": 0, "cost": 0.0 if priced else None}
                | cache_figures({"cost": 0.0}, priced)
                for name, (n, served) in sorted(callers.items()) if name not in seen]
    return out


def known_history(a, cfg, provider: str | None):
    """The history, once ``provider`` (when given) is known: configured now, or with a past in the history."""
    history = a.history(cfg)
    if provider is not None and provider not in cfg.providers and not history.knows_provider(provider):
        raise UserError(unknown_provider(provider, cfg.providers) + "; nothing of it in the history either")
    return history
