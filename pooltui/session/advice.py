"""Is pooling helping? The history of one provider read as a verdict with its figures (``pooltui advise``, the
monitor's "Is pooling helping?").

:func:`advise` is pure: it reads an :class:`AdviceInput` (what :func:`gather` takes from the history, or a test
builds) and says one of:

- ``no-traffic``: nothing recorded in the period;
- ``one-key-enough``: no 429, and the busiest minute stayed within what one key allows (when no limit is known:
  no 429 at all): the traffic never needed a second key (a personal agent with a few dozen requests a day);
- ``shared-limit``: 429s, and the limit is one the keys share, so pooling adds no capacity: keys of one account
  (the same organization in their answers, or counters that fall as one: core/accounts.py), or the pool never
  served more in its busiest minute than :data:`SHARED_MARGIN` times what one key allows;
- ``pooling-helps``: 429s from per-key limits (the pool served well beyond one key's limit), or no 429 while
  the traffic needed more than one key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pooltui.core.accounts import short_org
from pooltui.core.budget import Budget
from pooltui.core.events import EventKind
from pooltui.core.words import plural
from pooltui.store.history import History

#: the pool served at most this many times one key's limit in its busiest minute: the keys share one limit
SHARED_MARGIN = 1.25
PARKED = ("exhausted", "invalid", "forbidden", "disabled")
VERDICTS = ("no-traffic", "one-key-enough", "pooling-helps", "shared-limit")


@dataclass(slots=True)
class KeyUse:
    """One key of the provider over the period."""

    label: str
    requests: int = 0
    ok: int = 0
    limited: int = 0  # 429s
    tokens: int = 0
    cost: float = 0.0
    state: str = "ok"
    org: str | None = None  # fingerprint (core/accounts.py)
    shares: tuple[str, ...] = ()  # the keys found to share its account, itself included
    per_minute: float | None = None  # its request limit, per minute (stated by headers or learnt)
    budget_cost_month: float | None = None
    budget_tokens_month: float | None = None


@dataclass(slots=True)
class AdviceInput:
    provider: str
    since: float
    until: float
    keys: list[KeyUse]
    ok_per_minute: dict[int, int] = field(default_factory=dict)  # minute bucket -> successes on the provider
    fallback: dict[str, tuple[int, int, float]] = field(default_factory=dict)  # name -> (ok, tokens, cost)


@dataclass(slots=True)
class Advice:
    verdict: str
    sentences: list[str]
    figures: dict[str, Any]

    def text(self) -> str:
        return " ".join(self.sentences)

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "advice": self.sentences, **self.figures}


def _money(cost: float) -> str:
    return f"${cost:.2f}" if cost >= 0.01 or cost == 0 else f"${cost:.4f}"


def account_groups(keys: list[KeyUse]) -> list[tuple[str, ...]]:
    """The groups of keys (two or more) found to share an account."""
    return sorted({k.shares for k in keys if len(k.shares) > 1})


def advise(data: AdviceInput) -> Advice:
    """The verdict on ``data`` and a few sentences with the figures (rules in the module's docstring)."""
    keys, hours = data.keys, max(1.0, round((data.until - data.since) / 3600))
    requests = sum(k.requests for k in keys)
    limited = sum(k.limited for k in keys)
    peak_minute, peak = max(data.ok_per_minute.items(), key=lambda kv: (kv[1], -kv[0]), default=(0, 0))
    limits = [k.per_minute for k in keys if k.per_minute]
    one_key = min(limits) if limits else None
    groups = account_groups(keys)
    used = [k for k in keys if k.requests]
    figures: dict[str, Any] = {
        "provider": data.provider, "requests": requests, "http_429": limited,
        "per_day": round(requests / hours * 24, 1),
        "peak_ok_per_minute": peak, "peak_minute": peak_minute or None,
        "one_key_per_minute": round(one_key, 2) if one_key else None,
        "shared_accounts": [list(g) for g in groups],
        "keys": [{"label": k.label, "requests": k.requests, "ok": k.ok, "http_429": k.limited, "state": k.state,
                  "tokens": k.tokens, "cost": round(k.cost, 6), "org": short_org(k.org) if k.org else None,
                  "budget_cost_month": k.budget_cost_month} for k in keys],
        "fallback": {name: {"ok": ok, "tokens": tok, "cost": round(cost, 6)}
                     for name, (ok, tok, cost) in data.fallback.items()},
    }
    if requests == 0:
        return Advice("no-traffic", [f"No request to {data.provider} was recorded in the period."], figures)
    when = time.strftime("%H:%M UTC", time.gmtime(peak_minute)) if peak_minute else "?"
    limit_text = f"; one key allows {one_key:.0f} a minute" if one_key else "; no key's limit is known"
    rate = f"{requests / hours * 24:.0f} a day" if hours >= 24 else f"in {hours:.0f} h"
    sentences = [f"{plural(requests, 'request')} to {data.provider} ({rate}), "
                 f"the busiest minute served {peak} at {when}{limit_text}."]
    limited_keys = [k.label for k in keys if k.limited]
    if limited:
        sentences.append(f"{plural(limited, '429')} came back, on {len(limited_keys)} of {len(keys)} keys.")
    else:
        sentences.append("No 429 came back.")
    shared_used = [g for g in groups if sum(1 for k in used if k.label in g) > 1]
    capped = bool(one_key and len(used) > 1 and peak <= SHARED_MARGIN * one_key)
    if limited and (shared_used or capped):
        verdict = "shared-limit"
        why = [f"{', '.join(g)} belong to one account ({short_org(_org_of(keys, g))})" for g in shared_used]
        if capped:
            why.append(f"at its busiest the pool served {peak} a minute, no more than one key's {one_key:.0f}")
        sentences.append(f"The 429s come from a limit the keys share ({'; '.join(why)}): pooling them adds no "
                         "capacity and may look like evasion to the provider; a higher tier or a key of another "
                         "account would.")
    elif limited:
        verdict = "pooling-helps"
        beyond = f" ({peak / one_key:.1f} times one key's limit)" if one_key else ""
        sentences.append(f"The 429s come from per-key limits: the pool served {peak} a minute at its busiest{beyond}, "
                         "so pooling helps; `pooltui advise --keys` says how many keys the peak needs.")
    elif one_key and peak > one_key:
        verdict = "pooling-helps"
        sentences.append(f"The busiest minute needed more than one key ({peak} against {one_key:.0f}): pooling "
                         "spread it with no 429.")
    else:
        verdict = "one-key-enough"
        sentences.append("The traffic never needed more than one key: a pool adds nothing here but keys to look "
                         "after.")
    sentences.append(_load(keys, requests))
    sentences.append(_fallback(data))
    cost = _costs(keys, data, groups)
    if cost:
        sentences.append(cost)
    return Advice(verdict, sentences, figures)


def _org_of(keys: list[KeyUse], group: tuple[str, ...]) -> str | None:
    return next((k.org for k in keys if k.label in group and k.org), None)


def _load(keys: list[KeyUse], requests: int) -> str:
    """Which keys carried the load, which sat idle, which are parked."""
    busy = sorted((k for k in keys if k.requests), key=lambda k: -k.requests)
    parts = [", ".join(f"{k.label} {k.requests / requests:.0%}" for k in busy[:6]) + " of the requests"]
    idle = [k.label for k in keys if not k.requests and k.state not in PARKED]
    parked = [f"{k.label} ({k.state})" for k in keys if k.state in PARKED]
    if idle:
        parts.append(f"{', '.join(idle)} sat idle")
    if parked:
        parts.append(f"{', '.join(parked)} parked")
    return "Load: " + "; ".join(parts) + "."


def _fallback(data: AdviceInput) -> str:
    served = {name: v for name, v in data.fallback.items() if v[0]}
    if not served:
        return "The fallback served nothing." if data.fallback else "There is no fallback."
    return "The fallback served " + ", ".join(f"{plural(ok, 'request')} ({name}, {_money(cost)})"
                                              for name, (ok, _, cost) in served.items()) + "."


def _costs(keys: list[KeyUse], data: AdviceInput, groups: list[tuple[str, ...]]) -> str:
    """Tokens and cost per key and account, against each key's monthly budget; the fallback's share."""
    total = sum(k.cost for k in keys) + sum(c for _, _, c in data.fallback.values())
    tokens = sum(k.tokens for k in keys)
    if not tokens:
        return ""
    parts = []
    priced = total > 0
    for k in keys:
        if not k.tokens:
            continue
        budget = f" of a {_money(k.budget_cost_month)} month budget" if k.budget_cost_month else ""
        parts.append(f"{k.label} {k.tokens} tokens" + (f", {_money(k.cost)}{budget}" if priced else ""))
    for g in groups if priced else ():
        parts.append(f"account {short_org(_org_of(keys, g))} ({'+'.join(g)}) "
                     f"{_money(sum(k.cost for k in keys if k.label in g))}")
    text = "Spend: " + "; ".join(parts) + "."
    fallback_cost = sum(c for _, _, c in data.fallback.values())
    if total > 0 and fallback_cost > 0:
        text += f" The fallback carried {fallback_cost / total:.0%} of the cost."
    return text


def account_lines(rows: list[dict[str, Any]], history: History, budgets: dict[tuple[str, str], Budget]) -> list[str]:
    """``pooltui usage --by key``'s lines below its table: each account of keys found to share one (tokens and
    cost together), and each key with a monthly budget (what this period spent of it)."""
    by_key = {(r["provider"], r["key"]): r for r in rows}
    groups: dict[tuple[str, str], tuple[str | None, list[str]]] = {}
    for (provider, _), acct in history.accounts().items():
        if acct.shares and len(acct.shares.split(",")) > 1:
            groups.setdefault((provider, acct.shares), (acct.org, acct.shares.split(",")))
    out = []
    for (provider, _), (org, labels) in sorted(groups.items()):
        used = [by_key[(provider, x)] for x in labels if (provider, x) in by_key]
        tokens = sum(r["tokens_in"] + r["tokens_out"] for r in used)
        out.append(f"account {short_org(org)} of {provider} ({'+'.join(labels)}, one account): {tokens} tokens, "
                   f"{_money(sum(r['cost'] or 0.0 for r in used))}")
    for (provider, label), budget in sorted(budgets.items()):
        r = by_key.get((provider, label))
        if r is not None and budget.cost_month:
            out.append(f"{provider}/{label}: {_money(r['cost'] or 0.0)} of its {_money(budget.cost_month)} month "
                       f"budget ({(r['cost'] or 0.0) / budget.cost_month:.0%})")
    return out


def gather(history: History, provider: str, since: float, labels: list[str], fallbacks: tuple[str, ...] = (),
           budgets: dict[str, Budget] | None = None, until: float | None = None) -> AdviceInput:
    """What :func:`advise` reads, from the history: the keys ``labels`` of ``provider`` and its ``fallbacks``."""
    budgets = budgets or {}
    keys = {label: KeyUse(label) for label in labels}
    for row in history.usage(since, "key", provider):
        k = keys.setdefault(row["key"], KeyUse(row["key"]))
        k.requests, k.ok = row["requests"], row["ok"]
        k.tokens, k.cost = row["tokens_in"] + row["tokens_out"], row["cost"]
    for e in history.events(since, provider, 1_000_000, folded=True):
        if e["kind"] == EventKind.RATE_LIMITED.value and e["key"] in keys:
            keys[e["key"]].limited += e["repeats"]
    for (_, label), st in history.key_statuses(provider).items():
        if label in keys:
            keys[label].state = st.state
    for (_, label), acct in history.accounts(provider).items():
        if label in keys:
            keys[label].org = acct.org
            keys[label].shares = tuple(acct.shares.split(",")) if acct.shares else ()
    stated = history.key_limits(provider)
    for learned in history.learned_limits(provider):  # a stated count that agrees is the same limit (replay.py)
        if learned.key in keys and not learned.model and stated.get(learned.key, (None, None))[0] in (
                None, learned.requests):
            keys[learned.key].per_minute = learned.requests * 60 / learned.window_s
    for label, (req, _) in stated.items():
        if label in keys and req and keys[label].per_minute is None:
            keys[label].per_minute = float(req)  # stated limits are per minute (OpenAI's, Anthropic's)
    for label, budget in budgets.items():
        if label in keys:
            keys[label].budget_cost_month = budget.cost_month
            keys[label].budget_tokens_month = budget.tokens_month
    per_minute = history.ok_per_minute(since, provider)
    fallback = {}
    for name in fallbacks:
        rows = history.usage(since, "provider", name)
        fallback[name] = ((rows[0]["ok"], rows[0]["tokens_in"] + rows[0]["tokens_out"], rows[0]["cost"]) if rows
                          else (0, 0, 0.0))
    end = until if until is not None else max(time.time(), max(per_minute, default=0) + 60)
    return AdviceInput(provider, since, end, list(keys.values()), per_minute, fallback)
