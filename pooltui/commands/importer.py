"""``pooltui import hermes``: bring a Hermes Agent credential pool over: providers mapped, labels kept,
secrets resolved as Hermes resolves them, states and request counts carried, idempotent."""

from __future__ import annotations

import time
from pathlib import Path

import click

from pooltui.commands.common import Failure, UserError, app
from pooltui.core.masking import fingerprint, mask
from pooltui.core.words import plural
from pooltui.store.config import ProviderConfig
from pooltui.store.hermes import HermesKey, Skipped, hermes_home, read_pool, slug, until_of
from pooltui.store.keys import add_key, forget
from pooltui.store.secrets import SecretStoreError


@click.group("import")
def import_group() -> None:
    """Import keys from other tools."""


@import_group.command("hermes")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--profile", default=None, help="a Hermes profile (~/.hermes/profiles/NAME); default: HERMES_HOME, "
                                              "else Hermes's active profile")
@click.pass_context
def import_hermes(ctx: click.Context, path: Path | None, profile: str | None) -> None:
    """Import the api keys of a Hermes Agent pool (default: the active Hermes home's auth.json).

    Re-importing changes nothing already imported (keys are matched by their secret's fingerprint). Prints
    no secret."""
    a = app(ctx)
    try:
        home = path.parent if path is not None else hermes_home(profile)
        pool = read_pool(home, path)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    store = a.store()
    stored: list[str] = []
    added: list[tuple[HermesKey, str, str]] = []
    unchanged: list[tuple[HermesKey, str, str]] = []  # (Hermes key, the pooltui provider and label holding it)
    skipped = list(pool.skipped)
    try:
        with a.edit() as cfg:
            for hk in pool.keys:
                p = cfg.providers.get(hk.provider)
                if p is not None and p.kind != hk.kind:
                    skipped.append(Skipped(hk.hermes_provider, hk.original_label,
                                           f"pooltui's provider {hk.provider!r} is a {p.kind} provider"))
                    continue
                held = _holder(cfg, p, hk, store)
                if held is not None:
                    unchanged.append((hk, *held))
                    continue
                if p is None:
                    p = cfg.providers[hk.provider] = ProviderConfig(hk.provider, hk.kind, hk.base_url)
                    p.strategy = pool.strategies.get(hk.provider, p.strategy)
                label = slug(hk.label, {k.label for k in p.keys})
                note = "imported from Hermes Agent" + (f" (its label: {hk.original_label!r})"
                                                       if label != hk.original_label else "")
                entry = add_key(p, store, label, secret=hk.secret or "", env_var=None if hk.secret else hk.env_var,
                                note=note, stored=stored)
                added.append((hk, label, entry.secret))
    except SecretStoreError as exc:
        forget(store, stored)
        raise Failure(str(exc)) from None
    except BaseException:
        forget(store, stored)
        raise
    carried = _carry_states(a, cfg, [(hk, hk.provider, label, True) for hk, label, _ in added]
                            + [(hk, provider, label, False) for hk, provider, label in unchanged])
    for hk, label, ref in added:
        shown = mask(hk.secret) if hk.secret else f"${hk.env_var}"
        state = carried.get((hk.provider, label), "")
        click.echo(f"imported {hk.hermes_provider} -> {hk.provider}/{label}  {shown}  -> {store.where(ref)}"
                   + (f"  ({state})" if state else ""))
    for hk, provider, label in unchanged:
        state = carried.get((provider, label), "")
        click.echo(f"already  {hk.hermes_provider}/{hk.original_label} is {provider}/{label} (the same key)"
                   + (f"; {provider}/{label}: {state}" if state else ""))
    for s in skipped:
        click.echo(f"skipped  {s.provider}/{s.label}: {s.why}")
    click.echo(f"{plural(len(added), 'key')} imported, {len(unchanged)} already there, {len(skipped)} skipped"
               f" (from {pool.home})")
    a.warn_unencrypted()


def _holder(cfg, p: ProviderConfig | None, hk: HermesKey, store) -> tuple[str, str] | None:
    """(provider, label) of the pooltui key that already holds ``hk``'s secret: in its own provider first,
    then under any other provider (one account is pooled once, as ``auth add`` refuses it twice)."""
    others = [q for q in cfg.providers.values() if q is not p]
    for q in ([p] if p is not None else []) + others:
        if hk.secret is not None:
            holder = q.holder_of(hk.secret, store.get)
        elif hk.env_var is not None:
            own = next((k for k in q.keys if k.secret == f"env:{hk.env_var}"), None)
            holder = own if q is p else None
        else:
            holder = None
        if holder is not None:
            return q.name, holder.label
    return None


def _carry_states(a, cfg, targets: list[tuple[HermesKey, str, str, bool]]) -> dict:
    """Hermes's states go to the history, which the pool restores them from: dead -> invalid, exhausted ->
    cooling (a 429) or parked until the reset Hermes honours. ``targets``: (Hermes key, pooltui provider,
    label, new); a key imported before gets Hermes's newer dead/exhausted mark too, request counts only a new
    one. Returns what was set."""
    history = a.history(cfg)
    if history is None or not targets:
        return {}
    now = time.time()
    carried: dict[tuple[str, str], str] = {}
    counts: dict[str, dict[str, int]] = {}
    for hk, provider, label, new in targets:
        fp = fingerprint(hk.secret) if hk.secret else None
        reason = f"Hermes: {hk.error_reason or hk.status} ({hk.error_code})" if hk.error_code else \
            f"Hermes: {hk.error_reason or hk.status}"
        if hk.status == "dead":
            history.set_key_status(provider, label, "invalid", None, None, reason, hk.error_code, hk.status_at, fp)
            carried[(provider, label)] = "invalid, as Hermes marked it dead"
        elif hk.status == "exhausted":
            until = until_of(hk)
            if until is not None and until > now:
                state = "cooling" if hk.error_code == 429 else "exhausted"
                source = "known-reset" if hk.reset_at is not None else "default"
                history.set_key_status(provider, label, state, until, source, reason, hk.error_code,
                                       hk.status_at, fp)
                carried[(provider, label)] = f"{state} for {fmt_left(until - now)} more, as in Hermes"
        if new and hk.request_count:
            counts.setdefault(provider, {})[label] = hk.request_count
    for provider, per_key in counts.items():
        history.add_requests(provider, per_key)
    return carried


def fmt_left(seconds: float) -> str:
    """``59m 54s``, as ``hermes auth list`` says how long is left."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m" if hours else f"{minutes}m {secs}s" if minutes else f"{secs}s"
