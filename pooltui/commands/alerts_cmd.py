"""``pooltui alerts test``: send a sample alert to the configured command and webhook."""

from __future__ import annotations

import asyncio
import time

import click

from pooltui.commands.common import Failure, UserError, app
from pooltui.core.words import plural


@click.group("alerts")
def alerts() -> None:
    """Alerts beyond the terminal ([alerts] in the config: a command and/or a webhook)."""


@alerts.command("test")
@click.pass_context
def alerts_test(ctx: click.Context) -> None:
    """Send a sample alert now to every configured destination; exit 1 if one did not take it."""
    from pooltui.session.alerts import AlertSender, payload, where

    cfg = app(ctx).config()
    sender = AlertSender.from_config(cfg.alerts)
    if sender is None:
        raise UserError("no alerts configured: add an [alerts] table with `command = [...]` and/or `webhook = "
                        f"\"https://...\"` to {cfg.path}")
    sample = payload("example", "test", "amber", "pooltui alerts test: a sample alert, nothing is wrong",
                     ["primary"], time.time())
    problems = asyncio.run(sender.deliver(sample))
    for line in problems:
        click.echo(f"FAIL  {line}")
    if sender.webhook and not any(line.startswith("webhook") for line in problems):
        click.echo(f"ok    webhook {where(sender.webhook)} took the sample alert")
    if sender.command and not any(line.startswith("command") for line in problems):
        click.echo(f"ok    command {sender.command[0]} ran with the sample alert")
    if problems:
        raise Failure(f"{plural(len(problems), 'destination')} did not take the alert")
