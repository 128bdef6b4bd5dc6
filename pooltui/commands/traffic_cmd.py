"""``pooltui traffic``: test traffic through the engine, against the simulator or a configured provider."""

from __future__ import annotations

import asyncio
import json

import click

from pooltui.commands.common import FiniteFloat, UserError, app, checked, strategy_option
from pooltui.commands.sim_cmds import load_scenario_or_fail
from pooltui.core import validate
from pooltui.core.errors import no_keys
from pooltui.core.strategies import STRATEGIES
from pooltui.core.trace import format_trace
from pooltui.core.words import plural
from pooltui.sim.scenario import MAX_RATE, MIN_RATE


@click.command()
@click.option("--scenario", default=None, help="built-in scenario name or a TOML file (default: steady)")
@click.option("--provider", default=None, help="send through this configured provider's pool instead (recorded)")
@click.option("--strategy", callback=strategy_option, help=f"one of {', '.join(STRATEGIES)} (or a Hermes alias)")
@click.option("--requests", "n_requests", type=click.IntRange(1, 10_000_000), help="how many requests")
@click.option("--concurrency", type=click.IntRange(1, 4096),
              help="requests in flight at once with --rate 0; with a rate, arrivals are open-loop (callers do not "
              "wait for each other, a backlog builds as in production)")
@click.option("--rate", type=FiniteFloat(0, MAX_RATE, smallest=MIN_RATE),
              help="requests per second (0 = as fast as concurrency allows)")
@click.option("--stream", is_flag=True, help="stream every response (SSE)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead of a table")
@click.option("--trace", "n_traces", type=click.IntRange(0), default=0, help="print the last N request traces")
@click.option("--seed", type=int, default=None, help="seed for the traffic's random choices")
@click.option("--models", default=None, help="models the requests take in turn: a,b (providers limit per model)")
@click.pass_context
def traffic(ctx: click.Context, scenario: str | None, provider: str | None, strategy: str | None,
            n_requests: int | None, concurrency: int | None, rate: float | None, stream: bool, as_json: bool,
            n_traces: int, seed: int | None, models: str | None) -> None:
    """Run test traffic through the engine and summarise what each key did.

    With --scenario (the default) the simulator is served on a free loopback port; with --provider the
    traffic goes through that provider's configured pool and lands in the history. Exits 0 when every
    request succeeded, 1 when any failed (the summary names the causes the callers saw), 2 for bad input.
    """
    from pooltui.session.traffic import run_scenario_traffic, summary

    mix = [checked(validate.model_name, m) for m in models.split(",") if m.strip()] if models else None
    if scenario and provider:
        raise UserError("choose one of --scenario and --provider")
    if provider:
        result, client, name = _provider_traffic(app(ctx), provider, strategy, n_requests or 20, concurrency or 4,
                                                 rate or 0.0, stream, seed, mix)
    else:
        sc = load_scenario_or_fail(scenario or "steady")
        result, client, _ = asyncio.run(run_scenario_traffic(
            sc, strategy=strategy, requests=n_requests, concurrency=concurrency, rate=rate, stream=stream,
            seed=seed, models=mix))
        name = f"scenario {sc.name}"
    data = summary(result, client)
    traces = list(client.traces)[-n_traces:] if n_traces else []
    if as_json:
        if traces:
            data["traces"] = [t.as_dict() for t in traces]
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        print_summary(name, data)
        for t in traces:
            click.echo("")
            click.echo(format_trace(t))
    if data["failed"]:
        ctx.exit(1)


def _provider_traffic(a, provider: str, strategy: str | None, n: int, concurrency: int, rate: float,
                      stream: bool, seed: int | None, models: list[str] | None):
    from pooltui.session.build import HistoryRecorder, build_client
    from pooltui.session.traffic import TrafficGenerator

    cfg = a.config()
    a.provider(provider, cfg)
    history = a.history(cfg)
    built = build_client(cfg, provider, a.store(), history)
    for problem in built.problems:
        click.echo(f"pooltui: warning: {problem}", err=True)
    client = built.client
    if client.primary.pool is not None and not len(client.primary.pool):  # it would refuse every request
        if cfg.provider(provider).keys:
            raise UserError(f"provider {provider!r}: none of its keys could be loaded (see the warnings above)")
        raise UserError(no_keys(provider))
    if strategy and client.primary.pool is not None:
        client.primary.pool.set_strategy(strategy)
    recorder = HistoryRecorder(history, client)

    async def go():
        async with client:
            gen = TrafficGenerator(client, rate=rate, concurrency=concurrency, stream=stream, seed=seed,
                                   models=models)
            return await gen.run(n)

    try:
        result = asyncio.run(go())
    finally:
        recorder.close()
    return result, client, f"provider {provider}"


def print_summary(name: str, data: dict) -> None:
    click.echo(f"{name}: {plural(data['requests'], 'request')}, {data['succeeded']} succeeded, "
               f"{data['failed']} failed in {data['elapsed_s']:.1f} s "
               f"(strategy {data['strategy']}, fallback used {data['fallback_used']}x)")
    if data["errors"]:
        from pooltui.session.traffic import causes_line

        click.echo(f"errors: {causes_line(data['errors'])}")
    felt = data.get("callers") or {}
    if felt.get("latency_p50_ms") is not None:
        from pooltui.core.timefmt import millis

        line = (f"callers: p50 {millis(felt['latency_p50_ms'])}, p95 {millis(felt['latency_p95_ms'])} "
                "from arrival to answer")
        if felt.get("wait_max_s"):
            line += (f"; waited for a key p95 {millis(felt['wait_p95_s'] * 1000)}, "
                     f"longest {millis(felt['wait_max_s'] * 1000)}")
        click.echo(line)
    click.echo(f"pool: {data['pool']}")
    cols = ("provider", "label", "masked", "state", "requests", "ok", "rate_limited", "invalid", "quota",
            "server_errors", "transport", "p50_ms")
    heads = ("provider", "key", "secret", "state", "req", "ok", "429", "401", "quota", "5xx", "net", "p50 ms")
    from pooltui.commands.common import table

    click.echo(table(list(heads), [[_cell(k.get(c)) for c in cols] for k in data["keys"]]))


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)
