"""``pooltui compare``: the same seeded workload once per strategy, each against a fresh simulator of the
scenario, in one table (or JSON, CSV, and an SVG chart). In simulated time by default (a scenario's minutes
take seconds); ``--real-time`` sends it over a loopback socket as it happens."""

from __future__ import annotations

import csv
import io
import json
import textwrap
import time
from pathlib import Path

import click

from pooltui.commands.common import FiniteFloat, UserError, app, output_file, since_option
from pooltui.commands.sim_cmds import load_scenario_or_fail
from pooltui.core.words import plural
from pooltui.sim.scenario import MAX_RATE, MIN_RATE

COLUMNS = (("strategy", "strategy", 20), ("requests", "requests", 8), ("succeeded", "ok", 5), ("failed", "failed", 6),
           ("upstream_429", "429 up", 6), ("upstream_other_errors", "err up", 6),
           ("attempts_per_success", "calls/ok", 8), ("p50_ms", "p50 ms", 7), ("p95_ms", "p95 ms", 7),
           ("max_ms", "max ms", 7), ("evenness", "even", 5), ("fallback", "fallbk", 6), ("tokens", "tokens", 7),
           ("cache_hit_rate", "cache hit", 9), ("cost_usd", "cost $", 8))


def plan_options(command):
    """``--plan``, ``--target-wait``, ``--max-keys``: the planner's options (compare and replay)."""
    command = click.option("--max-keys", type=click.IntRange(1, 1024), default=64, show_default=True,
                           help="the largest pool the planner tries")(command)
    command = click.option("--target-wait", type=FiniteFloat(0, 3600), default=2.0, show_default=True,
                           help="seconds a caller may wait for a key: capacity is short beyond it")(command)
    return click.option("--plan", is_flag=True,
                        help="say how many keys like the primary's would serve this traffic (run even when "
                             "capacity is not short)")(command)


@click.command()
@click.option("--scenario", default="peak-hour", show_default=True, help="built-in scenario name or a TOML file")
@click.option("--strategies", default="all", show_default=True,
              help="comma-separated: round-robin, failover, random, least-used, headroom, hermes-fill-first, "
                   "hermes-round-robin (Hermes Agent's own pool, emulated), or all")
@click.option("--requests", "n_requests", type=click.IntRange(1, 100_000), help="requests per strategy "
              "(default: the scenario's)")
@click.option("--rate", type=FiniteFloat(0, MAX_RATE, smallest=MIN_RATE),
              help="arrivals per second, Poisson (0: all at once)")
@click.option("--concurrency", type=click.IntRange(1, 4096), help="requests in flight at once")
@click.option("--seed", type=int, default=None, help="the workload's seed (default: the scenario's)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object")
@click.option("--csv", "as_csv", is_flag=True, help="CSV, one row per strategy")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None, callback=output_file,
              help="also write the chart (successes and 429s per second, per strategy) to this SVG file")
@click.option("--learn/--no-learn", default=True, show_default=True,
              help="pooltui's strategies learn each key's limit from its 429s and pace picks by it")
@click.option("--real-time", "real_time", is_flag=True,
              help="run in real time against a simulator on a loopback socket (default: simulated time, in-process)")
@click.option("--affinity", type=click.Choice(["off", "on", "both"]), default="off", show_default=True,
              help="keep each conversation on the key that holds its prompt cache: off, on, or both (each strategy "
                   "without it, then with it: round-robin+affinity)")
@plan_options
def compare(scenario: str, strategies: str, n_requests: int | None, rate: float | None, concurrency: int | None,
            seed: int | None, as_json: bool, as_csv: bool, plot: Path | None, learn: bool, real_time: bool,
            affinity: str, plan: bool, target_wait: float, max_keys: int) -> None:
    """Compare rotation strategies on the same seeded traffic, each against its own fresh simulator."""
    from pooltui.session.lab import parse_strategies, with_affinity
    from pooltui.session.workload import seeded_workload

    if as_json and as_csv:
        raise UserError("choose one of --json and --csv")
    sc = load_scenario_or_fail(scenario)
    try:
        names = with_affinity(parse_strategies(strategies), affinity)
    except ValueError as exc:
        raise UserError(f"--strategies: {exc}") from None
    t = sc.traffic
    n, r, c, s = n_requests or t.requests, t.rate if rate is None else rate, concurrency or t.concurrency, (
        sc.seed if seed is None else seed)
    arrivals = seeded_workload(sc, requests=n, rate=r, seed=s)
    header = (f"scenario {sc.name}: {plural(n, 'request')}, {f'{r:g}/s (Poisson)' if r else 'all at once'}, "
              f"{c} in flight, seed {s}; each strategy against a fresh simulator, {time_mode(real_time)}"
              + ("" if learn else "; learned limits off"))
    quiet = as_json or as_csv
    if not quiet:
        click.echo(header, err=True)
    results = run(sc, names, arrivals, c, s, quiet, real_time, learn)
    rec = None if as_csv else advise(results, sc, arrivals, c, s, plan=plan, target_wait=target_wait,
                                     max_keys=max_keys, learn=learn, quiet=quiet)
    report(results, header, {"scenario": sc.name, "requests": n, "rate": r, "concurrency": c, "seed": s,
                             "learn": learn, "real_time": real_time, "affinity": affinity},
           as_json=as_json, as_csv=as_csv, plot=plot, real_time=real_time, recommendation=rec)


def advise(results: list, sc, arrivals: list, concurrency: int, seed: int, *, plan: bool, target_wait: float,
           max_keys: int, learn: bool = True, quiet: bool = False):
    """The lab's recommendation; the planner is run when capacity is short or ``plan`` asks (in simulated time,
    a progress line per pool size tried unless ``quiet``)."""
    from pooltui.session.planner import plan_keys
    from pooltui.session.recommend import recommend

    rec = recommend(results, target_wait_s=target_wait)
    if not (plan or rec.capacity_short):
        return rec

    def progress(trial) -> None:
        if not quiet:
            click.echo(f"  plan, {plural(trial.keys, 'key')}: {trial.served}/{trial.requests} served, longest wait "
                       f"{trial.max_wait_ms / 1000:.1f} s, {plural(trial.upstream_429, '429')} upstream", err=True)

    rec.plan = plan_keys(sc, arrivals, concurrency=concurrency, seed=seed, strategy=rec.plan_strategy,
                         target_wait_s=target_wait, max_keys=max_keys, learn=learn, progress=progress)
    return rec


def time_mode(real_time: bool) -> str:
    return "in real time over a loopback socket" if real_time else "in simulated time"


def run(sc, names: list[str], arrivals: list, concurrency: int, seed: int, quiet: bool, real_time: bool,
        learn: bool = True) -> list:
    """Every strategy's run (several processes at once for a long simulated one), a progress line per strategy
    as it finishes (none with --json or --csv)."""
    from pooltui.session.lab import lab_workers, run_lab

    started = time.perf_counter()

    def progress(result) -> None:
        if quiet:
            return
        took = (f"{result.seconds:.1f} s" if real_time else
                f"{result.seconds:.1f} s simulated in {result.wall_s:.1f} s")
        click.echo(f"  {result.strategy}: {result.succeeded}/{result.requests} served, {took} "
                   f"({time.perf_counter() - started:.1f} s so far)", err=True)

    workers = 1 if real_time else lab_workers(len(names), len(arrivals))
    return run_lab(sc, names, arrivals, concurrency=concurrency, seed=seed, progress=progress, learn=learn,
                   real_time=real_time, workers=workers)


def report(results: list, header: str, meta: dict, *, as_json: bool, as_csv: bool, plot: Path | None,
           real_time: bool = False, recommendation=None) -> None:
    """The comparison as a table (or JSON, or CSV), the recommendation after it, and the chart when asked."""
    rows = [res.row() for res in results]
    if plot is not None:
        from pooltui.commands.lab_svg import write_chart

        try:
            write_chart(results, header.split(";")[0], plot)
        except OSError as exc:
            raise UserError(f"cannot write {plot}: {exc.strerror or exc}") from None
    if as_json:
        click.echo(json.dumps({**meta, "strategies": rows, "per_second": {res.strategy: {
            "served": res.ok_per_s, "upstream_429": res.limited_per_s} for res in results},
            "recommendation": None if recommendation is None else recommendation.as_dict()}, indent=2))
        return
    if as_csv:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else [name for name, _, _ in COLUMNS])
        writer.writeheader()
        writer.writerows(rows)
        click.echo(out.getvalue().rstrip("\n"))
        return
    click.echo(table(rows))
    click.echo("calls/ok: upstream calls per success; even: 1.00 = the primary's keys used equally (Jain's index);"
               " latencies from arrival. "
               + ("Timings vary a little between runs (real time on this machine)." if real_time else
                  "Simulated time: the same seed gives the same table (--real-time: over a socket, as it happens)."))
    if recommendation is not None:
        click.echo("")
        click.echo(textwrap.fill(f"Recommended: {recommendation.text()}", width=118, break_on_hyphens=False))
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
@click.option("--real-time", "real_time", is_flag=True,
              help="run in real time against a simulator on a loopback socket (default: simulated time, in-process)")
@plan_options
@click.pass_context
def replay(ctx: click.Context, since: float, provider: str | None, strategies: str, concurrency: int,
           as_json: bool, as_csv: bool, plot: Path | None, real_time: bool, plan: bool, target_wait: float,
           max_keys: int) -> None:
    """Replay recorded traffic (its arrival times, models and sizes, and the limits the provider's headers
    stated) against a simulator like that provider, once per strategy."""
    from pooltui.core.timefmt import clock
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
              f"(over {span:.0f} s), {concurrency} in flight; each strategy against a fresh simulator, "
              f"{time_mode(real_time)}")
    quiet = as_json or as_csv
    if not quiet:
        click.echo(header, err=True)
        for note in rp.notes:
            click.echo(f"  assumed: {note}", err=True)
    results = run(rp.scenario, names, rp.arrivals, concurrency, 1, quiet, real_time)
    rec = None if as_csv else advise(results, rp.scenario, rp.arrivals, concurrency, 1, plan=plan,
                                     target_wait=target_wait, max_keys=max_keys, quiet=quiet)
    report(results, header, {"provider": rp.provider, "since": since, "requests": len(rp.arrivals),
                             "concurrency": concurrency, "assumed": rp.notes, "real_time": real_time},
           as_json=as_json, as_csv=as_csv, plot=plot, real_time=real_time, recommendation=rec)
