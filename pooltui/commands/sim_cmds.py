"""``pooltui sim``: serve the simulated provider, print its keys, list scenarios."""

from __future__ import annotations

import click

from pooltui.commands.common import UserError


def load_scenario_or_fail(name: str):
    from pooltui.sim.scenario import ScenarioError, load_scenario

    try:
        return load_scenario(name)
    except ScenarioError as exc:
        raise UserError(str(exc)) from None


@click.group()
def sim() -> None:
    """The simulated provider."""


@sim.command("serve")
@click.option("--scenario", default="steady", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8600, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="loopback address to bind")
def sim_serve(scenario: str, port: int, host: str) -> None:
    """Serve a scenario on loopback until interrupted."""
    from pooltui.sim.server import serve_forever

    if host not in ("localhost", "::1") and not host.startswith("127."):
        raise UserError(f"the simulator only binds loopback addresses, not {host}")
    sc = load_scenario_or_fail(scenario)
    click.echo(f"pooltui sim: scenario {sc.name} on http://{host}:{port}", err=True)
    for p in sc.providers:
        base = f"http://{host}:{port}/{p.name}" + ("" if p.dialect == "anthropic" else "/v1")
        click.echo(f"  provider {p.name} ({p.dialect}): base URL {base}  [{len(p.keys)} keys]", err=True)
    try:
        serve_forever(sc, host, port)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@sim.command("keys")
@click.option("--scenario", default="steady", show_default=True)
@click.option("--provider", default=None, help="only this provider's keys")
def sim_keys(scenario: str, provider: str | None) -> None:
    """Print ``label secret`` per key of a scenario (fake keys the simulator accepts)."""
    sc = load_scenario_or_fail(scenario)
    if provider is not None and provider not in {p.name for p in sc.providers}:
        raise UserError(f"unknown provider {provider!r} in scenario {sc.name} "
                        f"(it has: {', '.join(p.name for p in sc.providers)})")
    for p in sc.providers:
        if provider and p.name != provider:
            continue
        for k in p.keys:
            click.echo(f"{k.label} {k.secret}")


@sim.command("list")
def sim_list() -> None:
    """List the built-in scenarios."""
    from pooltui.sim.scenario import builtin_names, load_scenario

    for name in builtin_names():
        click.echo(f"{name:12} {load_scenario(name).description}")
