"""``pooltui auth``: add, list, remove and reset keys."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import click

from pooltui.commands.common import Failure, UserError, app, checked, table, when
from pooltui.core import validate
from pooltui.core.accounts import short_org
from pooltui.core.masking import fingerprint, mask
from pooltui.core.words import plural
from pooltui.providers.profiles import PROFILES
from pooltui.store.config import ProviderConfig
from pooltui.store.history import AccountRow
from pooltui.store.keys import DuplicateKeyError, add_key, forget
from pooltui.store.secrets import SecretStoreError


@click.group()
def auth() -> None:
    """Keys: add, list, remove, reset."""


def _label(label: str) -> str:
    return checked(validate.label, label)


def ensure_provider(cfg, name: str) -> ProviderConfig:
    """The configured provider, or a new one when ``name`` is a known provider kind."""
    if name in cfg.providers:
        return cfg.providers[name]
    checked(validate.provider_name, name)
    if name not in PROFILES:
        raise UserError(f"unknown provider {name!r}: configure it first with "
                        f"`pooltui provider set {name} --kind KIND --base-url URL` "
                        f"(kinds: {', '.join(sorted(PROFILES))})")
    cfg.providers[name] = ProviderConfig(name, name)
    return cfg.providers[name]


def verify_one(provider: ProviderConfig, label: str, secret: str):
    from pooltui.providers.verify import verify_all

    return asyncio.run(verify_all([(provider.profile, label, secret)]))[0]


@auth.command("add")
@click.argument("provider")
@click.option("--pool", "label", required=True, help="the key's label in the pool (e.g. primary)")
@click.option("--stdin", "from_stdin", is_flag=True, help="read the key from standard input")
@click.option("--env", "env_var", help="store a reference to this environment variable instead of the key")
@click.option("--no-verify", is_flag=True, help="add without checking the key with the provider")
@click.option("--note", default="", help="a note to keep with the key")
@click.option("--quota-group", default=None, help="keys sharing one provider budget (e.g. a gemini project)")
@click.option("--link", is_flag=True, help="the key is already in the pool under another label: add it anyway, "
                                           "both labels in one quota group")
@click.pass_context
def auth_add(ctx: click.Context, provider: str, label: str, from_stdin: bool, env_var: str | None,
             no_verify: bool, note: str, quota_group: str | None, link: bool) -> None:
    """Add a key to PROVIDER's pool (masked prompt unless --stdin or --env)."""
    a = app(ctx)
    label = _label(label)
    if quota_group is not None:
        quota_group = checked(lambda v: validate.label(v, "quota group"), quota_group)
    cfg = a.config()
    p = ensure_provider(cfg, provider)
    if p.key(label):
        raise UserError(f"{provider} already has a key labelled {label!r}; remove it first or pick another label")
    if env_var is not None:
        checked(validate.env_name, env_var)
        secret = os.environ.get(env_var, "").strip()
    elif from_stdin:
        secret = sys.stdin.readline().strip()
    else:
        secret = click.prompt(f"{provider} key for {label!r}", hide_input=True, default="", show_default=False)
    secret = secret.strip()
    if secret or env_var is None:
        secret = checked(validate.secret, secret)
    store = a.store()
    if env_var is None:
        try:  # a keyring that cannot take the key is said before the provider is asked about it
            _ = store.backend
        except SecretStoreError as exc:
            raise UserError(str(exc)) from None
    result = None
    if not no_verify and secret:
        if p.base_url is None:  # said before the key leaves this machine: the user may have meant another endpoint
            click.echo(f"verifying against {p.profile.base_url} (the {p.kind} default; set another with "
                       f"`pooltui provider set {provider} --base-url URL`)", err=True)
        result = verify_one(p, label, secret)
        if result.result in ("invalid", "forbidden"):
            raise Failure(f"not added: {provider}/{label} ({mask(secret)}) is {result.result}"
                          f" ({result.status}: {result.detail}); use --no-verify to add it anyway")
    stored: list[str] = []
    try:
        # one transaction under the config lock: a concurrent add of the same label waits, then finds it
        with a.edit() as cfg:
            try:
                ref = add_key(ensure_provider(cfg, provider), store, label, secret=secret, env_var=env_var,
                              note=note, quota_group=quota_group, link=link, stored=stored).secret
            except DuplicateKeyError as exc:
                raise UserError(str(exc)) from None
            except SecretStoreError as exc:
                raise Failure(str(exc)) from None
    except BaseException:
        forget(store, stored)
        raise
    where = {"keyring": "the OS keyring", "file": str(store.file), "env": f"${env_var}"}[store.where(ref)]
    shown = f"{mask(secret)}  fp {fingerprint(secret)}" if secret else f"(${env_var} is not set now)"
    click.echo(f"added {provider}/{label}  {shown}  -> {where}")
    if store.where(ref) == "file":
        click.echo(f"pooltui: warning: stored unencrypted in {store.file} (no usable OS keyring: "
                   f"{store.keyring_note or 'file store chosen'})", err=True)
    if result is not None:
        extra = f"; {result.detail}" if result.detail else ""
        credits = f"; credits {result.credits}" if result.credits else ""
        click.echo(f"verify: {result.result} (HTTP {result.status}, {result.latency_ms:.0f} ms{extra}{credits})")
        a.history(cfg).set_verified(provider, label, result.result, org=result.org)
    elif no_verify:
        click.echo("verify: skipped (--no-verify)")


@auth.command("list")
@click.argument("provider", required=False)
@click.pass_context
def auth_list(ctx: click.Context, provider: str | None) -> None:
    """Keys with their masked value, fingerprint, store, state and last verification."""
    a = app(ctx)
    cfg = a.config()
    providers = [a.provider(provider, cfg)] if provider else list(cfg.providers.values())
    store = a.store()
    history = a.history(cfg)
    statuses, accounts = history.key_statuses(), history.accounts()
    rows = []
    now = time.time()
    for p in providers:
        in_pool = {k.label for k in p.pool_keys()}
        for k in p.keys:
            try:
                secret = store.get(k.secret)
                shown, fp = mask(secret), fingerprint(secret)
            except SecretStoreError:
                shown, fp = "(missing)", "-"
            st = statuses.get((p.name, k.label))
            state = "ok"
            if st and st.state != "ok" and (st.until is None or st.until > now):
                state = st.state + (f" until {when(st.until)}" if st.until else "")
            verified = f"{when(st.verified_at)} {st.verify_result}" if st and st.verified_at else "never"
            rows.append([p.name, k.label + ("" if k.label in in_pool else " (not in pool)"), shown, fp,
                         store.where(k.secret), state, verified, account_cell(accounts.get((p.name, k.label)),
                                                                              k.label, k.quota_group)])
    if not rows:
        click.echo("no keys configured; add one with `pooltui auth add PROVIDER --pool LABEL`")
        return
    click.echo(table(["provider", "label", "key", "fingerprint", "store", "state", "last verified", "account"], rows))
    a.warn_unencrypted()


def account_cell(acct: AccountRow | None, label: str, quota_group: str | None) -> str:
    """``org…3f2a``, and ``one account with b, c`` when keys were found to share it (``grouped``: in one
    quota group already)."""
    if acct is None:
        return "-"
    text = short_org(acct.org)
    others = [x for x in (acct.shares or "").split(",") if x and x != label]
    if others:
        text += f", one account with {', '.join(others)}" + (" (grouped)" if quota_group else "")
    return text


@auth.command("group")
@click.argument("labels", nargs=-1, required=True)
@click.option("--provider", help="the provider of the keys (default: the one that has them all)")
@click.option("--name", "group", default=None, help="the quota group's name (default: account-FIRST_LABEL)")
@click.pass_context
def auth_group(ctx: click.Context, labels: tuple[str, ...], provider: str | None, group: str | None) -> None:
    """Put keys of one account in one quota group: they cool down together, as the provider limits them."""
    labels = tuple(dict.fromkeys(_label(x) for x in labels))
    if len(labels) < 2:
        raise UserError("name at least two keys to group (a quota group of one key changes nothing)")
    name = _label(group) if group is not None else f"account-{labels[0]}"
    a = app(ctx)
    with a.edit() as cfg:
        if provider is not None:
            p = a.provider(provider, cfg)
        else:
            holders = [q for q in cfg.providers.values() if all(q.key(x) is not None for x in labels)]
            if len(holders) != 1:
                raise UserError(f"no provider has all of {', '.join(labels)}" if not holders else
                                f"{' and '.join(q.name for q in holders)} both have them: say which with --provider")
            p = holders[0]
        missing = [x for x in labels if p.key(x) is None]
        if missing:
            raise UserError(f"{p.name} has no key labelled {missing[0]!r}")
        for entry in p.keys:
            if entry.label in labels:
                entry.quota_group = name
    click.echo(f"{p.name}: {', '.join(labels)} in quota group {name} (they cool down together)")


@auth.command("remove")
@click.argument("provider")
@click.argument("label")
@click.pass_context
def auth_remove(ctx: click.Context, provider: str, label: str) -> None:
    """Remove a key from the pool and forget its secret."""
    a = app(ctx)
    store = a.store()
    with a.edit() as cfg:
        p = cfg.provider(provider)
        entry = p.key(label)
        if entry is None:
            raise UserError(f"{provider} has no key labelled {label!r}")
        p.keys.remove(entry)
        if p.credential_pool is not None and label in p.credential_pool:
            p.credential_pool.remove(label)
        try:  # before the config is saved: a secret that cannot be removed leaves the config as it was
            store.delete(entry.secret)
        except SecretStoreError as exc:
            raise Failure(f"not removed: {exc}") from None
    a.history(cfg).forget_key(provider, label)
    click.echo(f"removed {provider}/{label}")


@auth.command("reset")
@click.argument("provider")
@click.argument("label", required=False)
@click.pass_context
def auth_reset(ctx: click.Context, provider: str, label: str | None) -> None:
    """Clear cooldowns and quota parking (of one key, or all of PROVIDER's keys)."""
    a = app(ctx)
    cfg = a.config()
    p = a.provider(provider, cfg)
    if label is not None and p.key(label) is None:
        raise UserError(f"{provider} has no key labelled {label!r}")
    n = a.history(cfg).clear_key_status(provider, label, ("cooling", "exhausted"))
    said = f"reset {plural(n, 'key')} of {provider}" + (f" ({label})" if label else "")
    if cfg.state.backend == "redis" and cfg.state.url:
        from pooltui.store.fleet import clear_states, redact_url
        from pooltui.store.state_store import fleet_secret

        try:
            secret = fleet_secret(cfg.state, a.store())
        except SecretStoreError as exc:
            click.echo(said)
            raise Failure(f"shared states not cleared: the fleet secret ([state] secret) cannot be read: "
                          f"{exc}") from None
        try:
            shared = asyncio.run(clear_states(cfg.state.url, cfg.state.prefix, provider, label, secret))
        except Exception as exc:
            click.echo(said)
            raise Failure(f"shared states not cleared: cannot reach Redis at {redact_url(cfg.state.url)} "
                          f"({type(exc).__name__})") from None
        said += f"; cleared {plural(shared, 'shared state')} on {redact_url(cfg.state.url)}"
    click.echo(said)
