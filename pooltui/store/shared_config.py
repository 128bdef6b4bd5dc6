"""What of a config a host shares with its fleet, and how a host applies what another shared.

Shared: per provider, its strategy, its pool order and its keys as labels with their secret *references*,
``disabled``, quota group and budgets. Never shared: the ``[state]`` URL (and its password), ``[alerts]``
destinations, base URLs, fallbacks and every other setting, which stay in each host's own file.

Applied: only to providers configured on this host, and only keys this host already has under the same label
*with the same reference* (an ``env:``/``file:`` reference planted for a label would otherwise send another
variable or another key's secret upstream). A shared config that would leave a provider with no key is not
applied to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pooltui.core import validate
from pooltui.store.config import _BUDGET_FIELDS, Config, parse_config
from pooltui.store.toml_merge import dumps_merged

_KEY_FIELDS = frozenset({"label", "secret", "disabled", "quota_group", "cache_group", *_BUDGET_FIELDS})


def shared_part(cfg: Config) -> str:
    """The part of ``cfg`` its host publishes (JSON text): strategies, pool orders and key references."""
    providers: dict[str, Any] = {}
    for p in cfg.providers.values():
        shared: dict[str, Any] = {"strategy": p.strategy,
                                  "keys": [{k: v for k, v in e.to_dict().items() if k in _KEY_FIELDS} for e in p.keys]}
        if p.credential_pool is not None:
            shared["credential_pool"] = list(p.credential_pool)
        providers[p.name] = shared
    return json.dumps({"providers": providers}, sort_keys=True)


def _shown(value: object) -> str:
    """A name from another host, fit to print (label-shaped, or said to be bad)."""
    try:
        return validate.label(value)
    except ValueError:
        return "(a bad name)"


def merge_shared(own: Config, text: str) -> tuple[Config, list[str]]:
    """``own`` (this host's config) with the shared part another host published applied to it, and one line
    per thing not applied. Raises ``ValueError`` (one line) when ``text`` is not a shared part at all."""
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError("not a shared config (not JSON)") from None
    providers = data.get("providers") if isinstance(data, dict) else None
    if not isinstance(providers, dict):
        raise ValueError("not a shared config (no providers)")
    merged = own.to_dict()
    notes: list[str] = []
    for name, theirs in providers.items():
        mine = merged["providers"].get(name)
        if mine is None or not isinstance(theirs, dict) or not isinstance(theirs.get("keys"), list):
            notes.append(f"{_shown(name)}: not configured on this host, not applied")
            continue
        known = {k["label"]: k["secret"] for k in mine.get("keys", [])}
        keys = []
        for entry in theirs["keys"]:
            label = entry.get("label") if isinstance(entry, dict) else None
            if isinstance(label, str) and label in known and entry.get("secret") == known[label]:
                keys.append({k: v for k, v in entry.items() if k in _KEY_FIELDS})
            else:
                notes.append(f"{name}/{_shown(label)}: not applied (this host has no key of that label with "
                             "that reference)")
        if not keys:
            notes.append(f"{name}: not applied (it would leave no key)")
            continue
        mine["keys"] = keys
        if isinstance(theirs.get("strategy"), str):
            mine["strategy"] = theirs["strategy"]
        labels = {k["label"] for k in keys}
        order = theirs.get("credential_pool")
        if isinstance(order, list):
            mine["credential_pool"] = [label for label in order if label in labels]
        else:
            mine.pop("credential_pool", None)
    return parse_config(dumps_merged("", merged), Path("<shared config>")), notes
