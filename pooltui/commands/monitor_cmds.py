"""``pooltui`` (the monitor on the user's config) and ``pooltui demo`` (the monitor on the simulator)."""

from __future__ import annotations

import click

from pooltui.commands.common import UserError, app, strategy_option


def run_monitor(session) -> None:
    from pooltui.tui.app import PoolMonitorApp

    PoolMonitorApp(session).run()


@click.command()
@click.option("--scenario", default="peak-hour", show_default=True, help="built-in scenario or TOML file")
@click.option("--strategy", callback=strategy_option, help="rotation strategy to start with")
@click.option("--rate", type=click.FloatRange(0.1, 5000), help="test traffic, requests per second")
@click.option("--seed", type=int, default=None)
def demo(scenario: str, strategy: str | None, rate: float | None, seed: int | None) -> None:
    """Open the monitor on the embedded simulator with test traffic running (no keys, no network)."""
    from pooltui.commands.sim_cmds import load_scenario_or_fail
    from pooltui.monitor import demo_session

    load_scenario_or_fail(scenario)
    run_monitor(demo_session(scenario, strategy, rate=rate, seed=seed))


@click.command("monitor")
@click.option("--provider", default=None, help="start on this provider")
@click.pass_context
def monitor(ctx: click.Context, provider: str | None) -> None:
    """Open the monitor on your configured providers."""
    from pooltui.monitor import config_session

    a = app(ctx)
    cfg = a.config()
    try:
        session, problems = config_session(cfg, a.store(), a.history(cfg), provider)
    except (KeyError, ValueError) as exc:
        raise UserError(str(exc.args[0]) if exc.args else str(exc)) from None
    for problem in problems:
        click.echo(f"pooltui: warning: {problem}", err=True)
    run_monitor(session)
