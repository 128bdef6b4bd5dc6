"""``pooltui fleet``: the processes sharing one pool through Redis, and the key states they share."""

from __future__ import annotations

import asyncio
import json
import time

import click

from pooltui.commands.common import UserError, app
from pooltui.core.timefmt import duration
from pooltui.core.words import plural


@click.command("fleet")
@click.option("--state", "url", default=None, help="the Redis URL (default: [state] url of the config)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
def fleet(ctx: click.Context, url: str | None, as_json: bool) -> None:
    """Every process serving the pool (host, pid, requests/s, last seen) and the shared key states."""
    from pooltui.store.fleet import fleet as read_fleet

    prefix = "pooltui"
    if url is None:
        cfg = app(ctx).config()
        if cfg.state.backend != "redis":
            raise UserError("no shared state: set [state] backend = \"redis\" and url in the config, or pass --state")
        url, prefix = cfg.state.redis_url(), cfg.state.prefix
    elif not url.startswith(("redis://", "rediss://", "unix://")):
        raise UserError(f"--state needs a Redis URL (redis://host:port/db), not {url!r}")
    try:
        seen = asyncio.run(read_fleet(url, prefix))
    except Exception as exc:
        raise UserError(f"cannot read the shared state ({type(exc).__name__})") from None
    if as_json:
        click.echo(json.dumps(seen, indent=2))
        return
    now = time.time()
    click.echo(f"{plural(len(seen['procs']), 'process', 'processes')} serving")
    for p in seen["procs"]:
        click.echo(f"  {p['host']:<20} pid {p['pid']:<7} {p['requests_per_s']:6.1f} req/s  seen "
                   f"{duration(now - p['last_seen'])} ago  {', '.join(p['providers'])}")
    click.echo("shared key states")
    for k in seen["keys"]:
        left = f" {duration(k['until'] - now)} left" if k.get("until") and k["until"] > now else ""
        click.echo(f"  {k['provider']}/{k['key']:<16} {k['state']}{left}  {k.get('reason') or ''}".rstrip())
