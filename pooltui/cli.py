"""The ``pooltui`` command tree."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import click

from pooltui.core.strategies import STRATEGIES, UnknownStrategyError, normalize_strategy
from pooltui.core.trace import format_trace


class UserError(click.ClickException):
    """A problem with what the user asked for: one line, exit code 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"pooltui: error: {self.format_message()}", err=True)


def _strategy(_ctx, _param, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return normalize_strategy(value)
    except UnknownStrategyError as exc:
        raise click.BadParameter(str(exc)) from None


def _scenario(name: str):
    from pooltui.sim.scenario import ScenarioError, load_scenario

    try:
        return load_scenario(name)
    except ScenarioError as exc:
        raise UserError(str(exc)) from None


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pooltui")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """pooltui: credential pools for LLM APIs, with a simulator and a live monitor."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@cli.command()
@click.option("--scenario", default="steady", show_default=True, help="built-in scenario name or a TOML file")
@click.option("--strategy", callback=_strategy, help=f"one of {', '.join(STRATEGIES)} (or a Hermes alias)")
@click.option("--requests", "n_requests", type=click.IntRange(1, 10_000_000), help="how many requests")
@click.option("--concurrency", type=click.IntRange(1, 4096), help="requests in flight at once")
@click.option("--rate", type=click.FloatRange(0), help="requests per second (0 = as fast as concurrency allows)")
@click.option("--stream", is_flag=True, help="stream every response (SSE)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead of a table")
@click.option("--trace", "n_traces", type=click.IntRange(0), default=0, help="print the last N request traces")
@click.option("--seed", type=int, default=None, help="seed for the traffic's random choices")
def traffic(scenario: str, strategy: str | None, n_requests: int | None, concurrency: int | None,
            rate: float | None, stream: bool, as_json: bool, n_traces: int, seed: int | None) -> None:
    """Run test traffic through the engine against the simulator (served on a free loopback port)."""
    from pooltui.traffic import run_scenario_traffic, summary

    sc = _scenario(scenario)
    result, client, _ = asyncio.run(run_scenario_traffic(
        sc, strategy=strategy, requests=n_requests, concurrency=concurrency, rate=rate, stream=stream, seed=seed))
    data = summary(result, client)
    if as_json:
        if n_traces:
            data["traces"] = [t.as_dict() for t in list(client.traces)[-n_traces:]]
        click.echo(json.dumps(data, indent=2, default=str))
        return
    _print_summary(sc.name, data)
    if n_traces:
        click.echo("")
        for t in list(client.traces)[-n_traces:]:
            click.echo(format_trace(t))


def _print_summary(name: str, data: dict) -> None:
    click.echo(f"scenario {name}: {data['requests']} requests, {data['succeeded']} succeeded, "
               f"{data['failed']} failed in {data['elapsed_s']:.1f} s "
               f"(strategy {data['strategy']}, fallback used {data['fallback_used']}x)")
    if data["errors"]:
        click.echo("errors: " + ", ".join(f"{k} {v}" for k, v in sorted(data["errors"].items())))
    click.echo(f"pool: {data['pool']}")
    cols = ("provider", "label", "masked", "state", "requests", "ok", "rate_limited", "invalid", "quota",
            "server_errors", "transport", "p50_ms")
    heads = ("provider", "key", "secret", "state", "req", "ok", "429", "401", "quota", "5xx", "net", "p50 ms")
    rows = [[_cell(k.get(c)) for c in cols] for k in data["keys"]]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(heads)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)))
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


@cli.group()
def sim() -> None:
    """The simulated provider."""


@sim.command("serve")
@click.option("--scenario", default="steady", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8600, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="loopback address to bind")
def sim_serve(scenario: str, port: int, host: str) -> None:
    """Serve a scenario on loopback until interrupted."""
    from pooltui.sim.server import serve_forever

    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
        raise UserError(f"the simulator only binds loopback addresses, not {host}")
    sc = _scenario(scenario)
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
    sc = _scenario(scenario)
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


def main(argv: list[str] | None = None) -> None:
    """Entry point: no traceback ever reaches a user (set POOLTUI_DEBUG=1 to see one)."""
    try:
        cli.main(args=argv, prog_name="pooltui", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("pooltui: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("pooltui: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("POOLTUI_DEBUG"):
            raise
        click.echo(f"pooltui: error: {type(exc).__name__}: {exc}".splitlines()[0], err=True)
        sys.exit(1)
    sys.exit(0)
