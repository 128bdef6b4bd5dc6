"""``pooltui`` (the monitor on the user's config) and ``pooltui demo`` (the monitor on the simulator)."""

from __future__ import annotations

import click

from pooltui.commands.common import FiniteFloat, UserError, app, strategy_option


def run_monitor(session) -> None:
    from pooltui.tui.app import PoolMonitorApp

    PoolMonitorApp(session).run()


@click.command()
@click.option("--scenario", default="peak-hour", show_default=True, help="built-in scenario or TOML file")
@click.option("--strategy", callback=strategy_option, help="rotation strategy to start with")
@click.option("--rate", type=FiniteFloat(0.1, 5000), help="test traffic, requests per second")
@click.option("--seed", type=int, default=None,
              help="seed for the random choices of the test traffic and of the key picks")
def demo(scenario: str, strategy: str | None, rate: float | None, seed: int | None) -> None:
    """Open the monitor on the embedded simulator with test traffic running (no keys, no network)."""
    from pooltui.commands.sim_cmds import load_scenario_or_fail
    from pooltui.session.local import demo_session

    load_scenario_or_fail(scenario)
    run_monitor(demo_session(scenario, strategy, rate=rate, seed=seed))


@click.command("monitor")
@click.option("--provider", default=None, help="start on this provider")
@click.option("--proxy", "proxy_port", type=click.IntRange(0, 65535), is_flag=False, flag_value=8787, default=None,
              help="watch the pooling proxy on this port (default 8787): attach to the one running there, "
                   "else run it inside the monitor")
@click.option("--attach", "attach_url", default=None, help="attach to a running proxy at this URL")
@click.option("--token", default=None, envvar="POOLTUI_PROXY_TOKEN",
              help="the callers' token of the proxy this monitor runs")
@click.option("--admin-token", default=None, envvar="POOLTUI_ADMIN_TOKEN",
              help="the admin token of the proxy to attach to (default: read from the data dir)")
@click.option("--state", "state_url", default=None, metavar="URL",
              help="watch every process sharing the pool on this Redis (redis://host:port/db); "
                   "key actions apply to all of them")
@click.option("--state-prefix", default=None, help="the Redis key prefix of that pool (default: [state] prefix)")
@click.option("--log-file", default=None, metavar="PATH",
              help="with --proxy: the proxy's access and operational log lines go to this file (default: "
                   "[telemetry] log_file, else none: the monitor owns the terminal)")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="with --log-file: human-readable lines, or one JSON object per line")
@click.pass_context
def monitor(ctx: click.Context, provider: str | None, proxy_port: int | None, attach_url: str | None,
            token: str | None, admin_token: str | None, state_url: str | None, state_prefix: str | None,
            log_file: str | None, log_format: str) -> None:
    """Open the monitor on your configured providers, on a running proxy's live traffic, or on a whole fleet
    sharing one pool through Redis."""
    from pooltui.commands.proxy_cmd import admin_token_of, build_proxy

    a = app(ctx)
    if state_url is not None:
        run_monitor(_fleet(a, state_url, state_prefix, provider))
        return
    proxy_port = proxy_port if proxy_port is not None else a.proxy_port
    if attach_url is None and proxy_port:
        url = f"http://127.0.0.1:{proxy_port}"
        if _listening("127.0.0.1", proxy_port):
            attach_url = url
    if attach_url is not None:
        run_monitor(_attached(attach_url, admin_token or admin_token_of(a, create=False)))
        return
    if proxy_port is not None:
        run_monitor(proxy_in_monitor(a, provider, token, proxy_port, log_file or a.log_file, log_format))
        return
    run_monitor(build_proxy(a, provider, token, need_proxy=False)[1])


def proxy_in_monitor(a, provider: str | None, token: str | None, port: int, log_file: str | None,
                     log_format: str = "text"):
    """The session of a monitor running the proxy on ``port``: traced as ``[telemetry]`` and ``OTEL_*`` say,
    its log lines in ``log_file`` (else ``[telemetry] log_file``, else nowhere), which the title names."""
    from pooltui.commands.proxy_cmd import build_proxy, describe, log_to
    from pooltui.proxy.app import ProxyService

    px, session = build_proxy(a, provider, token)
    path = log_file or a.config().telemetry.log_file
    if path:
        log_to(path, log_format, "info", session)
    try:
        service = ProxyService(px, "127.0.0.1", port)
    except OSError as exc:
        raise UserError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None
    session.services.append(service)
    session.title = f"pooltui · proxy {service.url} · " + (f"log {path}" if path else "no log file (--log-file)")
    for line in describe(px, service.url):
        click.echo(line, err=True)
    click.echo(f"  log lines to {path}" if path else
               "  no log lines: the monitor owns the terminal (--log-file PATH or [telemetry] log_file)", err=True)
    return session


def _listening(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


def _fleet(a, url: str, prefix: str | None, provider: str | None):
    """A session on every process sharing a pool through Redis; a clear error if Redis does not answer."""
    import asyncio

    from pooltui.core import validate
    from pooltui.core.words import plural
    from pooltui.session.fleet_view import FleetSession
    from pooltui.store.fleet import FleetLink, redact_url, shown_url
    from pooltui.store.secrets import SecretStoreError
    from pooltui.store.state_store import fleet_secret

    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise UserError(f"--state needs a Redis URL (redis://host:port/db, rediss://..., unix://...), not "
                        f"{shown_url(url)}")
    cfg = a.config()
    if prefix is None:
        prefix = cfg.state.prefix if cfg.state.backend == "redis" else "pooltui"
    try:  # the monitor's key actions are signed with the fleet secret of the config, when it names one
        secret = fleet_secret(cfg.state, a.store()) if cfg.state.backend == "redis" else None
    except SecretStoreError as exc:
        raise UserError(f"the fleet secret ([state] secret) cannot be read: {exc}") from None
    try:
        prefix = validate.label(prefix, "--state-prefix")
    except ValueError as exc:
        raise UserError(str(exc)) from None

    async def check() -> int:
        link = FleetLink(url, prefix)
        try:
            return len(await link.processes())
        finally:
            await link.aclose()

    try:
        n = asyncio.run(check())
    except Exception as exc:
        raise UserError(f"cannot reach Redis at {redact_url(url)} ({type(exc).__name__})") from None
    click.echo(f"watching {plural(n, 'process', 'processes')} sharing the pool '{prefix}' on {redact_url(url)}",
               err=True)
    return FleetSession(url, current=provider or "", prefix=prefix, secret=secret)


def _attached(url: str, admin_token: str | None):
    """A session on a running proxy; a clear error if it is not one."""
    import asyncio

    from pooltui.session.attached import AttachError, RemoteSession, fetch_state

    try:
        asyncio.run(fetch_state(url, admin_token))
    except AttachError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"attaching to the proxy at {url}", err=True)
    return RemoteSession(url, admin_token)
