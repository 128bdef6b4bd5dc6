"""``pooltui compare``: the same seeded workload once per strategy, each against a fresh simulator of the
scenario, in one table (or JSON, CSV, and an SVG chart)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import click

from pooltui.commands.common import FiniteFloat, UserError, app, output_file, since_option
from pooltui.commands.sim_cmds import load_scenario_or_fail
from pooltui.core.words import plural

COLUMNS = (("strategy", "strategy", 18), ("requests", "requests", 8), ("succeeded", "ok", 5), ("failed", "failed", 6),
           ("upstream_429", "429 up", 6), ("upstream_other_errors", "err up", 6),
           ("attempts_per_success", "calls/ok", 8), ("p50_ms", "p50 ms", 7), ("p95_ms", "p95 ms", 7),
           ("max_ms", "max ms", 7), ("evenness", "even", 5), ("fallback", "fallbk", 6), ("tokens", "tokens", 7),
           ("cost_usd", "cost $", 8))


@click.command()
@click.option("--scenario", default="peak-hour", show_default=True, help="built-in scenario name or a TOML file")
@click.option("--strategies", default="all", show_default=True,
              help="comma-separated: round-robin, failover, random, least-used, headroom, hermes-fill-first, "
                   "hermes-round-robin (Hermes Agent's own pool, emulated), or all")
@click.option("--requests", "n_requests", type=click.IntRange(1, 100_000), help="requests per strategy "
              "(default: the scenario's)")
@click.option("--rate", type=FiniteFloat(0, 10_000), help="arrivals per second, Poisson (0: all at once)")
@click.option("--concurrency", type=click.IntRange(1, 4096), help="requests in flight at once")
@click.option("--seed", type=int, default=None, help="the workload's seed (default: the scenario's)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object")
@click.option("--csv", "as_csv", is_flag=True, help="CSV, one row per strategy")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None, callback=output_file,
              help="also write the chart (successes and 429s per second, per strategy) to this SVG file")
@click.option("--learn/--no-learn", default=True, show_default=True,
              help="pooltui's strategies learn each key's limit from its 429s and pace picks by it")
def compare(scenario: str, strategies: str, n_requests: int | None, rate: float | None, concurrency: int | None,
            seed: int | None, as_json: bool, as_csv: bool, plot: Path | None, learn: bool) -> None:
    """Compare rotation strategies on the same seeded traffic, each against its own fresh simulator."""
    from pooltui.session.lab import compare as run_compare
    from pooltui.session.lab import parse_strategies
    from pooltui.session.workload import seeded_workload

    if as_json and as_csv:
        raise UserError("choose one of --json and --csv")
    sc = load_scenario_or_fail(scenario)
    try:
        names = parse_strategies(strategies)
    except ValueError as exc:
        raise UserError(f"--strategies: {exc}") from None
    t = sc.traffic
    n, r, c, s = n_requests or t.requests, t.rate if rate is None else rate, concurrency or t.concurrency, (
        sc.seed if seed is None else seed)
    arrivals = seeded_workload(sc, requests=n, rate=r, seed=s)
    header = (f"scenario {sc.name}: {plural(n, 'request')}, {f'{r:g}/s (Poisson)' if r else 'all at once'}, "
              f"{c} in flight, seed {s}; each strategy against a fresh simulator"
              + ("" if learn else "; learned limits off"))
    quiet = as_json or as_csv
    if not quiet:
        click.echo(header, err=True)
    progress = progress_printer(quiet)
    results = asyncio.run(run_compare(sc, names, arrivals, concurrency=c, seed=s, progress=progress, learn=learn))
    report(results, header, {"scenario": sc.name, "requests": n, "rate": r, "concurrency": c, "seed": s,
                             "learn": learn},
           as_json=as_json, as_csv=as_csv, plot=plot)


def progress_printer(quiet: bool):
    def progress(result) -> None:
        if not quiet:
            click.echo(f"  {result.strategy}: {result.succeeded}/{result.requests} in {result.seconds:.1f} s",
                       err=True)

    return progress


def report(results: list, header: str, meta: dict, *, as_json: bool, as_csv: bool, plot: Path | None) -> None:
    """The comparison as a table (or JSON, or CSV), and the chart when asked."""
    rows = [res.row() for res in results]
    if plot is not None:
        from pooltui.commands.lab_svg import write_chart

        try:
            write_chart(results, header.split(";")[0], plot)
        except OSError as exc:
            raise UserError(f"cannot write {plot}: {exc.strerror or exc}") from None
    if as_json:
        click.echo(json.dumps({**meta, "strategies": rows, "per_second": {res.strategy: {
            "served": res.ok_per_s, "upstream_429": res.limited_per_s} for res in results}}, indent=2))
        return
    if as_csv:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=[name for name, _, _ in COLUMNS])
        writer.writeheader()
        writer.writerows(rows)
        click.echo(out.getvalue().rstrip("\n"))
        return
    click.echo(table(rows))
    click.echo("calls/ok: upstream calls per success; even: 1.00 = the primary's keys used equally (Jain's index);"
               " latencies from arrival. Timings vary a little between runs (real time on this machine).")
    if plot is not None:
        click.echo(f"chart written to {plot}")


def table(rows: list[dict]) -> str:
    """The comparison as aligned text."""
    from pooltui.session.lab import cell_text

    lines = ["  ".join(f"{title:>{width}}" if i else f"{title:<{width}}"
                       for i, (_, title, width) in enumerate(COLUMNS))]
    for row in rows:
        cells = []
        for i, (name, _, width) in enumerate(COLUMNS):
            text = cell_text(name, row[name])
            cells.append(f"{text:>{width}}" if i else f"{text:<{width}}")
        lines.append("  ".join(cells))
    return "\n".join(lines)


@click.command()
@click.option("--since", "since", default="24h", show_default=True, callback=since_option,
              help="how far back: 90m, 24h, 7d")
@click.option("--provider", default=None, help="the provider whose requests to replay (default: the busiest)")
@click.option("--strategies", default="all", show_default=True, help="as for `pooltui compare`")
@click.option("--concurrency", type=click.IntRange(1, 4096), default=16, show_default=True,
              help="requests in flight at once")
@click.option("--json", "as_json", is_flag=True, help="one JSON object")
@click.option("--csv", "as_csv", is_flag=True, help="CSV, one row per strategy")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None, callback=output_file,
              help="also write the chart to this SVG file")
@click.pass_context
def replay(ctx: click.Context, since: float, provider: str | None, strategies: str, concurrency: int,
           as_json: bool, as_csv: bool, plot: Path | None) -> None:
    """Replay recorded traffic (its arrival times, models and sizes, and the limits the provider's headers
    stated) against a simulator like that provider, once per strategy."""
    from pooltui.core.timefmt import clock
    from pooltui.session.lab import compare as run_compare
    from pooltui.session.lab import parse_strategies
    from pooltui.session.replay import ReplayError, build_replay

    if as_json and as_csv:
        raise UserError("choose one of --json and --csv")
    try:
        names = parse_strategies(strategies)
    except ValueError as exc:
        raise UserError(f"--strategies: {exc}") from None
    a = app(ctx)
    cfg = a.config()
    try:
        rp = build_replay(a.history(cfg), cfg, since, provider)
    except ReplayError as exc:
        raise UserError(str(exc)) from None
    span = rp.arrivals[-1].at_s if rp.arrivals else 0.0
    header = (f"replay of {plural(len(rp.arrivals), 'request')} recorded for {rp.provider} since {clock(since)} "
              f"(over {span:.0f} s), {concurrency} in flight; each strategy against a fresh simulator")
    quiet = as_json or as_csv
    if not quiet:
        click.echo(header, err=True)
        for note in rp.notes:
            click.echo(f"  assumed: {note}", err=True)
    results = asyncio.run(run_compare(rp.scenario, names, rp.arrivals, concurrency=concurrency, seed=1,
                                      progress=progress_printer(quiet)))
    report(results, header, {"provider": rp.provider, "since": since, "requests": len(rp.arrivals),
                             "concurrency": concurrency, "assumed": rp.notes},
           as_json=as_json, as_csv=as_csv, plot=plot)
