"""The ``pooltui`` command tree."""

from __future__ import annotations

import os
import sys

import click

from pooltui.commands.advise_cmd import advise
from pooltui.commands.alerts_cmd import alerts
from pooltui.commands.auth import auth
from pooltui.commands.common import AppContext, UserError
from pooltui.commands.compare_cmd import compare, replay
from pooltui.commands.doctor import doctor
from pooltui.commands.fleet_cmd import fleet
from pooltui.commands.hermes_cmd import hermes
from pooltui.commands.history_cmds import events, usage
from pooltui.commands.importer import import_group
from pooltui.commands.keys_check import verify
from pooltui.commands.monitor_cmds import demo, monitor
from pooltui.commands.provider import provider
from pooltui.commands.proxy_cmd import proxy
from pooltui.commands.sim_cmds import sim
from pooltui.commands.traffic_cmd import traffic
from pooltui.store.paths import config_path

__all__ = ["UserError", "cli", "main"]


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="config file (default: $POOLTUI_CONFIG or the user config dir)")
@click.option("--secret-store", type=click.Choice(["keyring", "file"]), default=None,
              help="where new secrets go (default: the OS keyring if it works, else a 0600 file)")
@click.option("--proxy", "proxy_port", type=click.IntRange(0, 65535), is_flag=False, flag_value=8787,
              default=None, help="with the monitor: watch the pooling proxy on this port (default 8787): "
                                 "attach to the one running there, else run it inside the monitor")
@click.option("--log-file", default=None, metavar="PATH",
              help="with --proxy: the proxy's log lines go to this file (default: [telemetry] log_file)")
@click.version_option(package_name="pooltui")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, secret_store: str | None, proxy_port: int | None,
        log_file: str | None) -> None:
    """pooltui: credential pools for LLM APIs, with a simulator and a live monitor."""
    ctx.obj = AppContext(config_path(config_file), secret_store)
    ctx.obj.proxy_port = proxy_port
    ctx.obj.log_file = log_file
    if ctx.invoked_subcommand is None:
        ctx.invoke(monitor)


for command in (demo, monitor, proxy, traffic, sim, auth, provider, verify, events, usage, import_group, doctor,
                alerts, hermes, fleet, compare, replay, advise):
    cli.add_command(command)


class ScrubbedStream:
    """stdout/stderr as the CLI sees them: every known secret is masked on the way out, whatever printed it."""

    def __init__(self, stream) -> None:
        self._stream = stream
        #: the stream itself, past the scrubber: see ``common.unscrubbed_stdout``
        self.unscrubbed = stream

    def write(self, text: str) -> int:
        from pooltui.core.masking import scrub

        self._stream.write(scrub(text))
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> None:
    """Entry point: no traceback ever reaches a user (set POOLTUI_DEBUG=1 to see one)."""
    if not isinstance(sys.stdout, ScrubbedStream):
        sys.stdout, sys.stderr = ScrubbedStream(sys.stdout), ScrubbedStream(sys.stderr)
    try:
        rc = cli.main(args=argv, prog_name="pooltui", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("pooltui: aborted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        click.echo(f"pooltui: error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
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
    sys.exit(rc if isinstance(rc, int) else 0)
