"""``pooltui proxy``: the pooling proxy for real agents."""

from __future__ import annotations

import gc
import signal

import click

from pooltui.client.loops import loop_name, runner
from pooltui.commands.common import UserError, app
from pooltui.core.errors import message_of, no_keys
from pooltui.core.words import plural


def admin_token_of(a, *, create: bool) -> str | None:
    """The proxy's admin token from the data dir (created on a proxy's first start)."""
    from pooltui.store.admin_token import AdminTokenError, ensure_admin_token, read_admin_token

    try:
        return ensure_admin_token(a.data) if create else read_admin_token(a.data)
    except AdminTokenError as exc:
        raise UserError(str(exc)) from None


def build_proxy(a, provider: str | None, token: str | None, *, need_proxy: bool = True,
                allow_hosts: tuple[str, ...] = (), allow_origins: tuple[str, ...] = (), access_log: bool = True):
    """The proxy over the configured providers, with a history recorder per client, traced when ``[telemetry]``
    or the ``OTEL_*`` variables say so."""
    from pooltui.proxy.app import PoolProxy
    from pooltui.proxy.observe import observer_for
    from pooltui.session.local import config_session

    cfg = a.config()
    try:
        session, problems = config_session(cfg, a.store(), a.history(cfg), provider)
    except (KeyError, ValueError) as exc:
        raise UserError(message_of(exc)) from None
    for problem in problems:
        click.echo(f"pooltui: warning: {problem}", err=True)
    try:
        observer = observer_for(cfg.telemetry, access_log=access_log)
    except ImportError:
        raise UserError("tracing is configured but OpenTelemetry is not installed: pip install 'pooltui[otel]'") \
            from None
    proxy = PoolProxy(session.clients, token=token, session=session, admin_token=admin_token_of(a, create=True),
                      allow_hosts=allow_hosts, allow_origins=allow_origins, observer=observer)
    if need_proxy and not proxy.by_family:
        raise UserError("no configured provider speaks the openai or anthropic API")
    return proxy, session


def log_to(path: str | None, fmt: str, level: str, session) -> None:
    """The proxy's log lines (access and operational, the session's own lines too) to the file ``path``
    (appended to), else to stderr; a file that cannot be opened is one clear line."""
    import os

    from pooltui.proxy.logs import configure

    stream = None
    if path:
        try:
            stream = open(os.path.expanduser(path), "a", encoding="utf-8")  # noqa: SIM115 - open while it runs
        except OSError as exc:
            raise UserError(f"cannot write the log file {path}: {exc.strerror or exc}") from None
    ops = configure(fmt, level, stream)
    session.log_sinks.append(lambda line: ops.info(line))


def describe(proxy, url: str) -> list[str]:
    lines = [f"pooltui proxy on {url}"]
    for family, client in proxy.by_family.items():
        pool = client.primary.pool
        keys = f"{plural(len(pool), 'key')}, {pool.strategy}" if pool is not None else "no keys"
        fallbacks = ", ".join(_fallback_text(family, up) for up in client.fallbacks) or "none"
        lines.append(f"  {family:9} -> {client.primary.name} ({keys}; fallback {fallbacks})")
        if pool is not None and not len(pool):
            lines.append(f"  warning: {no_keys(client.primary.name)} (until then its callers get 503)")
    if "openai" in proxy.by_family:
        lines.append(f"  point openai clients at  OPENAI_BASE_URL={url}/v1")
    if "anthropic" in proxy.by_family:
        lines.append(f"  point anthropic clients at  ANTHROPIC_BASE_URL={url}")
    lines.append("  callers must present the proxy token as their API key" if proxy.token
                 else "  any API key is accepted (and never forwarded); use --token to require one")
    lines.append(f"  metrics {url}/metrics   state {url}/pooltui/state   (admin token: "
                 "`pooltui proxy --show-admin-token`)")
    if proxy.allow_hosts:
        lines.append(f"  also answers to Host {', '.join(proxy.allow_hosts)}")
    if proxy.allow_origins:
        lines.append(f"  browser origins allowed: {', '.join(proxy.allow_origins)}")
    return lines


def _fallback_text(family: str, up) -> str:
    """``backup`` or, for a fallback of the other dialect, ``openrouter (openai API, translated; model
    anthropic/claude-sonnet-4.5)``."""
    from pooltui.proxy.dialects import family_of

    theirs = family_of(up.profile.dialect)
    if theirs is None:
        return f"{up.name} (not served through the proxy: {up.profile.dialect} API)"
    if theirs == family:
        return up.name
    mapped = ", ".join(f"{a} -> {b}" for a, b in up.profile.model_map)
    models = f"models {mapped}, else {up.profile.default_model}" if mapped else f"model {up.profile.default_model}"
    return f"{up.name} ({theirs} API, chats translated; {models})"


@click.command("proxy")
@click.option("--port", type=click.IntRange(0, 65535), default=8787, show_default=True,
              help="port to listen on (0: a free one)")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on (off loopback only with --token)")
@click.option("--provider", default=None, help="serve this provider first (its API family)")
@click.option("--token", default=None, envvar="POOLTUI_PROXY_TOKEN",
              help="callers must present this as their API key (required off loopback)")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="also answer requests whose Host is NAME (or NAME:PORT); repeatable")
@click.option("--allow-origin", "allow_origins", multiple=True, metavar="URL",
              help="accept browser requests from this origin (e.g. http://localhost:3000); repeatable")
@click.option("--show-admin-token", is_flag=True, help="print the admin token of the control endpoints and exit")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="stderr log lines: human-readable, or one JSON object per line")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True, help="the least level logged")
@click.option("--no-access-log", "no_access_log", is_flag=True, help="no line per caller request")
@click.option("--log-file", default=None, metavar="PATH",
              help="log lines to this file instead of stderr (default: [telemetry] log_file)")
@click.pass_context
def proxy(ctx: click.Context, port: int, host: str, provider: str | None, token: str | None,
          allow_hosts: tuple[str, ...], allow_origins: tuple[str, ...], show_admin_token: bool, log_format: str,
          log_level: str, no_access_log: bool, log_file: str | None) -> None:
    """Run the pooling proxy: point an agent's base URL here and it gets the pool."""
    from pooltui.proxy.app import is_loopback, make_server
    from pooltui.proxy.limits import raise_open_file_limit

    a = app(ctx)
    if show_admin_token:
        click.echo(admin_token_of(a, create=True))
        return
    if token is not None and not token.strip():
        raise UserError("--token is empty")
    for name in allow_hosts:
        _check_host_name(name)
    for origin in allow_origins:
        _check_origin(origin)
    if not is_loopback(host) and not token:
        raise UserError(f"refusing to listen on {host} without --token: anyone who can reach it could spend the pool")
    px, session = build_proxy(a, provider, token, allow_hosts=allow_hosts, allow_origins=allow_origins,
                              access_log=not no_access_log)
    raise_open_file_limit()  # idle clients hold descriptors: the connection cap is set from this limit
    try:
        server, sock = make_server(px, host, port, loop=loop_name())
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    url = f"http://{host}:{sock.getsockname()[1]}"
    for line in describe(px, url):
        click.echo(line, err=True)

    log_to(log_file or a.config().telemetry.log_file, log_format, log_level, session)

    async def main() -> None:
        session.start_background()  # history, re-verification and alerts, as in the monitor
        await session.ready()  # what the fleet learnt before this process serves
        # what start-up built (modules, config, pools, the app) lives as long as the process: out of the cycle
        # collector's full passes, which scanned ~57,000 such objects each (about half its time in `bench proxy`)
        gc.freeze()
        try:
            await server.serve(sockets=[sock])
        finally:
            if px.observer.tracing is not None:
                px.observer.tracing.shutdown()  # the last spans are sent before the process ends
            session.stop_background()
            for client in [*session.clients.values(), *session.retired]:
                await client.aclose()

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        runner()(main())
    except KeyboardInterrupt:
        pass


def _interrupt(_signum: int, _frame: object) -> None:
    """SIGTERM (a service manager stopping the proxy) ends it as Ctrl-C does: the history gets its last lines and
    a running alert command is stopped with its process group, where the default action would leave both."""
    raise KeyboardInterrupt


def _check_host_name(name: str) -> None:
    import re

    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})(:\d{1,5})?", name.strip()):
        raise UserError(f"--allow-host needs a host name (optionally NAME:PORT), not {name!r}")


def _check_origin(origin: str) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.username:
        raise UserError(f"--allow-origin needs an origin like http://localhost:3000, not {origin!r}")
