"""``pooltui fleet``: the processes sharing one pool through Redis, and the key states they share."""

from __future__ import annotations

import asyncio
import json
import time

import click

from pooltui.commands.common import UserError, app
from pooltui.core.terminal import printable
from pooltui.core.timefmt import duration
from pooltui.core.words import plural


@click.command("fleet")
@click.option("--state", "url", default=None, help="the Redis URL (default: [state] url of the config)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
def fleet(ctx: click.Context, url: str | None, as_json: bool) -> None:
    """Every process serving the pool (host, pid, requests/s, last seen) and the shared key states."""
    from pooltui.store.fleet import failure_of, redact_url, shown_url
    from pooltui.store.fleet import fleet as read_fleet

    prefix = "pooltui"
    if url is None:
        cfg = app(ctx).config()
        if cfg.state.backend != "redis":
            raise UserError("no shared state: set [state] backend = \"redis\" and url in the config, or pass --state")
        url, prefix = cfg.state.url or "", cfg.state.prefix
    elif not url.startswith(("redis://", "rediss://", "unix://")):
        raise UserError(f"--state needs a Redis URL (redis://host:port/db, rediss://..., unix://...), not "
                        f"{shown_url(url)}")
    try:
        seen = asyncio.run(read_fleet(url, prefix))
    except Exception as exc:
        status = asyncio.run(failure_of(url, exc))
        raise UserError(f"cannot read the shared state at {redact_url(url)} ({status})") from None
    for line in seen["skipped"]:  # what anyone wrote to the store: one line each, never the whole command
        click.echo(f"pooltui: fleet: {line}", err=True)
    if as_json:  # JSON escapes every control character
        click.echo(json.dumps({k: v for k, v in seen.items() if k != "skipped"}, indent=2))
        return
    now = time.time()
    click.echo(f"{plural(len(seen['procs']), 'process', 'processes')} serving")
    for p in seen["procs"]:  # host and reasons come from the store: stripped of terminal control sequences
        click.echo(f"  {printable(p['host']):<20} pid {p['pid']:<7} {p['requests_per_s']:6.1f} req/s  seen "
                   f"{duration(now - p['last_seen'])} ago  {', '.join(p['providers'])}")
        for w in p.get("windows") or []:  # its share of each key's budget held across the fleet
            click.echo(f"    {w['provider']}/{printable(w['key'])} {w['what']} per {duration(w['window_s'])}: "
                       f"{w['mine']} here of {w['fleet']} in use across the fleet (limit {w['limit']})")
    click.echo("shared key states")
    for k in seen["keys"]:
        left = f" {duration(k['until'] - now)} left" if k.get("until") and k["until"] > now else ""
        reason = printable(k.get("reason") or "")
        click.echo(f"  {k['provider']}/{k['key']:<16} {k['state']}{left}  {reason}".rstrip())
