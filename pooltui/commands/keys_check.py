"""``pooltui verify``: zero-token verification of every key, concurrently."""

from __future__ import annotations

import asyncio
import json
import time

import click

from pooltui.commands.common import UserError, app, table
from pooltui.core.events import Event, EventKind, StateChange
from pooltui.store.secrets import SecretStoreError

_STATE_AFTER = {"invalid": "invalid", "forbidden": "forbidden", "quota": "exhausted"}


@click.command("verify")
@click.argument("provider", required=False)
@click.option("--pool", "label", help="only this key")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per key, as a list")
@click.pass_context
def verify(ctx: click.Context, provider: str | None, label: str | None, as_json: bool) -> None:
    """Verify keys with each provider's cheapest call. Exit 0 when every key is valid, else 1."""
    from pooltui.providers.verify import VerifyResult, verify_all

    a = app(ctx)
    cfg = a.config()
    providers = [a.provider(provider, cfg)] if provider else list(cfg.providers.values())
    store = a.store()
    items, missing = [], []
    for p in providers:
        for k in p.keys:
            if label and k.label != label:
                continue
            try:
                items.append((p.profile, k.label, store.get(k.secret)))
            except SecretStoreError as exc:
                missing.append(VerifyResult(p.name, k.label, "(missing)", "-", "error", None, 0.0, str(exc)))
    if label and not items and not missing:
        raise UserError(f"no key labelled {label!r}" + (f" in {provider}" if provider else ""))
    if not items and not missing:
        raise UserError("no keys to verify; add one with `pooltui auth add PROVIDER --pool LABEL`")
    results = asyncio.run(verify_all(items)) + missing
    history = a.history(cfg)
    now = time.time()
    events = []
    for r in results:
        if r.result == "error" and r.masked == "(missing)":
            continue
        history.set_verified(r.provider, r.label, r.result, now, org=r.org)
        state = _STATE_AFTER.get(r.result)
        if state:
            history.set_key_status(r.provider, r.label, state, None, None, f"verify: {r.detail}", r.status, now,
                                   r.fingerprint)
        elif r.result == "valid":
            history.clear_key_status(r.provider, r.label)
        events.append(Event(now, r.provider, r.label, EventKind.STATE, r.status, f"verified {r.result}",
                             f"verify: {r.detail}" if r.detail else "verify",
                             change=StateChange.VERIFIED if r.result == "valid" else StateChange.CHECKED))
    history.add_events(events)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        rows = [[r.provider, r.label, r.masked, r.result, str(r.status or "-"), f"{r.latency_ms:.0f} ms",
                 r.credits or "-", r.detail[:70]] for r in results]
        click.echo(table(["provider", "key", "secret", "result", "http", "latency", "credits", "detail"], rows))
        bad = sum(r.result != "valid" for r in results)
        click.echo(f"{len(results) - bad} of {len(results)} valid")
    ctx.exit(0 if all(r.result == "valid" for r in results) else 1)
