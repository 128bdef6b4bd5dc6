"""``pooltui proxy``: the pooling proxy for real agents."""

from __future__ import annotations

import asyncio

import click

from pooltui.commands.common import UserError, app


def build_proxy(a, provider: str | None, token: str | None, *, need_proxy: bool = True):
    """The proxy over the configured providers, with a history recorder per client."""
    from pooltui.monitor import config_session
    from pooltui.proxy import PoolProxy

    cfg = a.config()
    try:
        session, problems = config_session(cfg, a.store(), a.history(cfg), provider)
    except (KeyError, ValueError) as exc:
        raise UserError(str(exc.args[0]) if exc.args else str(exc)) from None
    for problem in problems:
        click.echo(f"pooltui: warning: {problem}", err=True)
    proxy = PoolProxy(session.clients, token=token, session=session)
    if need_proxy and not proxy.by_family:
        raise UserError("no configured provider speaks the openai or anthropic API")
    return proxy, session


def describe(proxy, url: str) -> list[str]:
    lines = [f"pooltui proxy on {url}"]
    for family, client in proxy.by_family.items():
        pool = client.primary.pool
        keys = f"{len(pool)} keys, {pool.strategy}" if pool is not None else "no keys"
        fallbacks = ", ".join(up.name for up in client.fallbacks) or "none"
        lines.append(f"  {family:9} -> {client.primary.name} ({keys}; fallback {fallbacks})")
    if "openai" in proxy.by_family:
        lines.append(f"  point openai clients at  OPENAI_BASE_URL={url}/v1")
    if "anthropic" in proxy.by_family:
        lines.append(f"  point anthropic clients at  ANTHROPIC_BASE_URL={url}")
    lines.append("  callers must present the proxy token as their API key" if proxy.token
                 else "  any API key is accepted (and never forwarded); use --token to require one")
    lines.append(f"  metrics {url}/metrics   state {url}/pooltui/state")
    return lines


@click.command("proxy")
@click.option("--port", type=click.IntRange(0, 65535), default=8787, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--provider", default=None, help="serve this provider first (its API family)")
@click.option("--token", default=None, envvar="POOLTUI_PROXY_TOKEN",
              help="callers must present this as their API key (required off loopback)")
@click.pass_context
def proxy(ctx: click.Context, port: int, host: str, provider: str | None, token: str | None) -> None:
    """Run the pooling proxy: point an agent's base URL here and it gets the pool."""
    from pooltui.proxy import is_loopback, make_server

    if not is_loopback(host) and not token:
        raise UserError(f"refusing to listen on {host} without --token: anyone who can reach it could spend the pool")
    a = app(ctx)
    px, session = build_proxy(a, provider, token)
    try:
        server, sock = make_server(px, host, port, loop="uvloop")
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    url = f"http://{host}:{sock.getsockname()[1]}"
    for line in describe(px, url):
        click.echo(line, err=True)

    async def main() -> None:
        flusher = asyncio.create_task(_flush(session))
        try:
            await server.serve(sockets=[sock])
        finally:
            flusher.cancel()
            for recorder in session.recorders:
                recorder.close()
            for client in session.clients.values():
                await client.aclose()

    try:
        import uvloop

        uvloop.run(main())
    except KeyboardInterrupt:
        pass


async def _flush(session) -> None:
    while True:
        await asyncio.sleep(1.0)
        for recorder in session.recorders:
            recorder.flush()
