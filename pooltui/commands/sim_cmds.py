"""``pooltui sim``: serve the simulated provider, print its keys, list scenarios."""

from __future__ import annotations

import click

from pooltui.commands.common import UserError, unscrubbed_stdout
from pooltui.core.words import plural


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
@click.option("--scenario", default="steady", show_default=True, help="built-in scenario name or a TOML file")
@click.option("--port", type=click.IntRange(0, 65535), default=8600, show_default=True,
              help="port to listen on (0: a free one)")
@click.option("--host", default="127.0.0.1", show_default=True, help="loopback address to bind")
def sim_serve(scenario: str, port: int, host: str) -> None:
    """Serve a scenario on loopback until interrupted."""
    from pooltui.client.sockets import listen
    from pooltui.sim.server import serve_forever

    if host not in ("localhost", "::1") and not host.startswith("127."):
        raise UserError(f"the simulator only binds loopback addresses, not {host}")
    sc = load_scenario_or_fail(scenario)
    try:  # listening before the banner: a port in use is said alone
        sock = listen(host, port)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    port = sock.getsockname()[1]
    click.echo(f"pooltui sim: scenario {sc.name} on http://{host}:{port}", err=True)
    for p in sc.providers:
        base = f"http://{host}:{port}/{p.name}" + ("" if p.dialect == "anthropic" else "/v1")
        click.echo(f"  provider {p.name} ({p.dialect}): base URL {base}  [{plural(len(p.keys), 'key')}]", err=True)
    serve_forever(sc, host, port, sock=sock)


@sim.command("keys")
@click.option("--scenario", default="steady", show_default=True, help="built-in scenario name or a TOML file")
@click.option("--provider", default=None, help="only this provider's keys")
def sim_keys(scenario: str, provider: str | None) -> None:
    """Print ``label secret`` per key of a scenario: the fake keys the simulator accepts, in clear (the one
    command whose output is not scrubbed of secrets: these guard nothing)."""
    sc = load_scenario_or_fail(scenario)
    if provider is not None and provider not in {p.name for p in sc.providers}:
        raise UserError(f"unknown provider {provider!r} in scenario {sc.name} "
                        f"(it has: {', '.join(p.name for p in sc.providers)})")
    out = unscrubbed_stdout()
    for p in sc.providers:
        if provider and p.name != provider:
            continue
        for k in p.keys:
            click.echo(f"{k.label} {k.secret}", file=out)


@sim.command("list")
def sim_list() -> None:
    """List the built-in scenarios."""
    from pooltui.sim.scenario import builtin_names, load_scenario

    for name in builtin_names():
        click.echo(f"{name:12} {load_scenario(name).description}")
