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
    history = known_history(a, provider)
    rows = history.events(since, provider, limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no events in that period")
        return
    click.echo(table(["time", "provider", "key", "event", "status", "reason", "action"],
                     [[when(r["ts"]), r["provider"], r["key"] or "-", r["kind"], str(r["status"] or "-"),
                       (r["reason"] or "")[:60], r["action"] or ""] for r in rows]))


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
    """Requests, tokens and cost per key (or provider, day, model): which key paid for what."""
    if as_json and as_csv:
        raise UserError("choose one of --json and --csv")
    a = app(ctx)
    history = known_history(a, provider)
    rows = history.usage(since, by, provider)
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
    if not rows:
        click.echo("no usage recorded in that period")
        return
    heads = [k for k in rows[0] if k not in ("requests", "ok", "tokens_in", "tokens_out", "cost")]
    click.echo(table([*heads, "requests", "ok", "tokens in", "tokens out", "cost $"],
                     [[str(r[h]) for h in heads] + [str(r["requests"]), str(r["ok"]), str(r["tokens_in"]),
                                                    str(r["tokens_out"]), f"{r['cost']:.4f}"] for r in rows]))


def known_history(a, provider: str | None):
    """The history, once ``provider`` (when given) is known: configured now, or with a past in the history."""
    cfg = a.config()
    history = a.history(cfg)
    if provider is not None and provider not in cfg.providers and not history.knows_provider(provider):
        raise UserError(unknown_provider(provider, cfg.providers) + "; nothing of it in the history either")
    return history
