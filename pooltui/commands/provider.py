"""``pooltui provider``: set, show and list providers (strategy, pool order, fallbacks, endpoint)."""

from __future__ import annotations

import click

from pooltui.commands.common import FiniteFloat, UserError, app, checked, strategy_option, table
from pooltui.core import validate
from pooltui.core.words import plural
from pooltui.providers.profiles import PROFILES
from pooltui.store.config import ProviderConfig


@click.group()
def provider() -> None:
    """Providers: strategy, credential pool order, fallbacks, endpoint."""


def _csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [checked(validate.label, v.strip()) for v in value.split(",") if v.strip()]


@provider.command("set")
@click.argument("name")
@click.option("--credential-pool", help="the pool's keys in order: a,b,c")
@click.option("--pool-strategy", callback=strategy_option, help="round-robin, random, failover, least-used, headroom")
@click.option("--fallback", help="fallback providers in order: p,q ('' for none)")
@click.option("--base-url", help="the API endpoint (e.g. a `pooltui sim serve` address)")
@click.option("--kind", type=click.Choice(sorted(PROFILES)), help="the provider's API dialect")
@click.option("--cooldown", type=FiniteFloat(0, strict=True),
              help="default cooldown in seconds after a 429 without a reset")
@click.option("--capacity-alert", type=click.IntRange(0), help="alert when fewer usable keys than this")
@click.option("--default-model", help="the model asked of this provider when the caller's model is not its own "
              "(a fallback of another dialect); '' for the kind's default")
@click.option("--model-map", help="the caller's model -> this provider's: "
              "'claude-sonnet-4-5=anthropic/claude-sonnet-4.5,a=b' ('' for none)")
@click.pass_context
def provider_set(ctx: click.Context, name: str, credential_pool: str | None, pool_strategy: str | None,
                 fallback: str | None, base_url: str | None, kind: str | None, cooldown: float | None,
                 capacity_alert: int | None, default_model: str | None, model_map: str | None) -> None:
    """Create or change provider NAME."""
    a = app(ctx)
    name = checked(validate.provider_name, name)
    if base_url is not None:
        base_url = checked(validate.base_url, base_url)
    with a.edit() as cfg:
        p = cfg.providers.get(name)
        if p is None:
            if kind is None and name not in PROFILES:
                raise UserError(f"new provider {name!r}: say which API it speaks with --kind "
                                f"({', '.join(sorted(PROFILES))})")
            p = cfg.providers[name] = ProviderConfig(name, kind or name)
        if kind is not None:
            p.kind = kind
        if base_url is not None:
            p.base_url = base_url
        if pool_strategy is not None:
            p.strategy = pool_strategy
        pool = _csv(credential_pool)
        if pool is not None:
            unknown = [label for label in pool if p.key(label) is None]
            if unknown:
                raise UserError(f"{name} has no key labelled {unknown[0]!r} (add it with `pooltui auth add`)")
            if len(set(pool)) != len(pool):
                raise UserError("--credential-pool names a key twice")
            p.credential_pool = pool
        fb = _csv(fallback)
        if fb is not None:
            missing = [f for f in fb if f not in cfg.providers or f == name]
            if missing:
                raise UserError(f"fallback {missing[0]!r} is not another configured provider")
            p.fallback = fb
        if cooldown is not None:
            p.cooldown_s = cooldown
            p.cooldown_max_s = max(p.cooldown_max_s, cooldown)
        if capacity_alert is not None:
            p.capacity_alert = capacity_alert
        if default_model is not None:
            p.default_model = checked(validate.model_name, default_model) if default_model.strip() else None
        if model_map is not None:
            p.model_map = _model_map(model_map)
    click.echo(_describe(p))


def _model_map(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in (x.strip() for x in text.split(",") if x.strip()):
        asked, sep, mapped = pair.partition("=")
        if not sep:
            raise UserError(f"--model-map wants CALLER_MODEL=PROVIDER_MODEL pairs, not {pair!r}")
        out[checked(validate.model_name, asked)] = checked(validate.model_name, mapped)
    return out


def _describe(p: ProviderConfig) -> str:
    pool = ", ".join(k.label for k in p.pool_keys()) or "(no keys)"
    lines = [
        f"provider {p.name}",
        f"  kind            {p.kind}",
        f"  base url        {p.profile.base_url}" + ("" if p.base_url else " (default)"),
        f"  strategy        {p.strategy}",
        f"  credential pool {pool}",
        f"  fallback        {', '.join(p.fallback) or '-'}",
        f"  default model   {p.profile.default_model}" + ("" if p.default_model else " (the kind's default)"),
        f"  model map       {', '.join(f'{a} -> {b}' for a, b in p.model_map.items()) or '-'}",
        f"  cooldown        {p.cooldown_s:g} s, escalating to {p.cooldown_max_s:g} s",
        f"  capacity alert  below {plural(p.capacity_alert, 'usable key')}",
    ]
    if p.limits is not None:
        lines.append(f"  limits          {p.limits.describe()} (each key, unless it declares its own)")
    for model, lim in p.model_limits.items():
        lines.append(f"  limits {model}: {lim.describe()}")
    for entry in p.keys:
        if entry.limits is not None:
            lines.append(f"  key {entry.label}: {entry.limits.describe()}")
    outside = [k.label for k in p.keys if k not in p.pool_keys()]
    if outside:
        lines.append(f"  not in pool     {', '.join(outside)}")
    return "\n".join(lines)


@provider.command("show")
@click.argument("name")
@click.pass_context
def provider_show(ctx: click.Context, name: str) -> None:
    """Show one provider's settings."""
    click.echo(_describe(app(ctx).provider(name)))


@provider.command("list")
@click.pass_context
def provider_list(ctx: click.Context) -> None:
    """List the configured providers."""
    cfg = app(ctx).config()
    if not cfg.providers:
        click.echo("no providers configured; start with `pooltui auth add anthropic --pool primary`")
        return
    rows = [[p.name, p.kind, p.strategy, str(len(p.pool_keys())), ", ".join(p.fallback) or "-",
             p.profile.base_url] for p in cfg.providers.values()]
    click.echo(table(["provider", "kind", "strategy", "keys", "fallback", "base url"], rows))
