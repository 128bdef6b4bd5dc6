"""``pooltui import hermes``: bring a Hermes Agent credential pool over (labels, order, secrets)."""

from __future__ import annotations

from pathlib import Path

import click

from pooltui.commands.common import Failure, UserError, app
from pooltui.core.masking import mask
from pooltui.providers.profiles import PROFILES
from pooltui.store.config import ProviderConfig, validate_base_url, validate_label
from pooltui.store.hermes import default_path, read_auth_json
from pooltui.store.keys import add_key, forget
from pooltui.store.secrets import SecretStoreError


@click.group("import")
def import_group() -> None:
    """Import keys from other tools."""


@import_group.command("hermes")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def import_hermes(ctx: click.Context, path: Path | None) -> None:
    """Import api keys from a Hermes Agent auth.json (default ~/.hermes/auth.json). Prints no secret."""
    a = app(ctx)
    path = path or default_path()
    try:
        found, skipped = read_auth_json(path)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    store = a.store()
    stored: list[str] = []
    added = []
    try:
        with a.edit() as cfg:
            for hk in found:
                if hk.provider not in cfg.providers and hk.provider not in PROFILES:
                    skipped.append(_skip(hk, "unknown provider kind (configure it with `pooltui provider set`)"))
                    continue
                p = cfg.providers.get(hk.provider) or cfg.providers.setdefault(
                    hk.provider, ProviderConfig(hk.provider, hk.provider))
                try:
                    label = validate_label(hk.label)
                except ValueError:
                    label = validate_label(f"key{len(p.keys) + 1}")
                holder = p.holder_of(hk.secret, store.get) if hk.secret else None
                if holder is not None:
                    skipped.append(_skip(hk, f"the same key is already in the pool as {hk.provider}/{holder.label}"))
                    continue
                if p.key(label):
                    skipped.append(_skip(hk, f"{hk.provider} already has a key labelled {label!r}"))
                    continue
                if hk.base_url and not p.base_url:
                    try:
                        p.base_url = validate_base_url(hk.base_url)
                    except ValueError:
                        pass
                entry = add_key(p, store, label, secret=hk.secret or "", env_var=None if hk.secret else hk.env_var,
                                note="imported from Hermes Agent", stored=stored)
                added.append((hk, label, entry.secret))
    except SecretStoreError as exc:
        forget(store, stored)
        raise Failure(str(exc)) from None
    except BaseException:
        forget(store, stored)
        raise
    for hk, label, ref in added:
        shown = mask(hk.secret) if hk.secret else f"${hk.env_var}"
        click.echo(f"imported {hk.provider}/{label}  {shown}  -> {store.where(ref)}")
    for s in skipped:
        click.echo(f"skipped  {s.provider}/{s.label}: {s.why}")
    click.echo(f"{len(added)} key(s) imported, {len(skipped)} skipped")
    a.warn_unencrypted()


def _skip(hk, why: str):
    from pooltui.store.hermes import Skipped

    return Skipped(hk.provider, hk.label, why)
