"""``pooltui hermes``: watch (and tend) Hermes Agent's own credential pool, live, no proxy needed."""

from __future__ import annotations

from pathlib import Path

import click

from pooltui.commands.common import UserError


@click.command("hermes")
@click.option("--profile", default=None, help="a Hermes profile (~/.hermes/profiles/NAME); default: HERMES_HOME, "
                                              "else Hermes's active profile")
@click.option("--home", "home_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="a Hermes home folder to watch instead")
@click.option("--read-only", is_flag=True, help="watch only: no reset, move or remove")
def hermes(profile: str | None, home_dir: Path | None, read_only: bool) -> None:
    """Hermes Agent's own pool, live: states with the reset Hermes will honour, the entry it picks next;
    r reset, v re-verify, K/J move, x remove (through Hermes's own lock)."""
    from pooltui.session.hermes_watch import HermesWatch
    from pooltui.store.hermes import hermes_home
    from pooltui.tui.hermes_app import HermesApp

    try:
        home = home_dir.expanduser() if home_dir is not None else hermes_home(profile)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if not home.is_dir():
        raise UserError(f"{home}: no Hermes home there (run Hermes once, or pass --home / --profile)")
    HermesApp(HermesWatch(home, read_only=read_only)).run()
