"""Keys of one account: found from the organization a provider names in its answers, and from rate-limit
counters that fall as one.

Providers say which organization a key belongs to in a header of every answer: OpenAI ``openai-organization``
(the organization's id or slug), Anthropic ``anthropic-organization-id`` (a UUID). The id is something a user
would not share, so only a short hash of it is kept (:func:`org_fingerprint`) and shown (``org…3f2a``).

Counters that fall as one (:func:`counters_move_together`): two keys of one account draw on one budget, so
each request on either key lowers the ``remaining`` both report. The rule, over each key's series of
``(time, remaining, limit)`` samples from successful answers:

- only keys with the same ``limit`` are compared;
- merge the two series in time order and look at each *cross step*: a sample of one key followed, within
  :data:`MAX_GAP_S` seconds, by a sample of the other;
- a cross step *falls as one* when the second key's ``remaining`` is below the first key's (the other key's
  request was already counted against it); keys with budgets of their own sent at similar rates show the
  same value, or one above, about half the time (round-robin: 9, 9, 8, 8, ...), where a shared budget reads
  9, 8, 7, 6, ...;
- the keys share a counter when at least :data:`MIN_CROSS_STEPS` cross steps were seen and at least
  :data:`SHARED_FRACTION` of them fall as one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from itertools import pairwise
from typing import NamedTuple

#: the headers naming the organization of the key that was used (lower case)
ORG_HEADERS = ("openai-organization", "anthropic-organization-id")
MAX_GAP_S = 2.0
MIN_CROSS_STEPS = 8
SHARED_FRACTION = 0.8


class CounterSample(NamedTuple):
    """One successful answer's request budget: when, how many left, out of how many."""

    ts: float
    remaining: int
    limit: int


@lru_cache(maxsize=256)  # read on every answer: the same few ids again and again
def org_fingerprint(org_id: str) -> str:
    """A short stable hash of an organization id: enough to tell two apart, never the id itself."""
    return hashlib.sha256(org_id.strip().encode("utf-8", "replace")).hexdigest()[:12]


def short_org(fingerprint: str | None) -> str:
    """How an organization is shown: ``org…3f2a`` (the last 4 of its fingerprint); ``-`` when unknown."""
    return f"org…{fingerprint[-4:]}" if fingerprint else "-"


def read_org(headers: Mapping[str, str]) -> str | None:
    """The fingerprint of the organization an answer's headers name (lower-case keys), or None."""
    for name in ORG_HEADERS:
        value = headers.get(name)
        if value and isinstance(value, str) and len(value) <= 200 and value.strip():
            return org_fingerprint(value)
    return None


def counters_move_together(a: Sequence[CounterSample], b: Sequence[CounterSample]) -> bool:
    """Whether two keys' request counters fall as one (the rule is in the module's docstring)."""
    limits_a, limits_b = {s.limit for s in a}, {s.limit for s in b}
    if not limits_a or limits_a != limits_b:
        return False
    merged = sorted([(s.ts, 0, s.remaining) for s in a] + [(s.ts, 1, s.remaining) for s in b])
    steps = falls = 0
    for (t1, who1, r1), (t2, who2, r2) in pairwise(merged):
        if who1 == who2 or t2 - t1 > MAX_GAP_S:
            continue
        steps += 1
        falls += r2 < r1
    return steps >= MIN_CROSS_STEPS and falls >= SHARED_FRACTION * steps


def shared_groups(orgs: Mapping[str, str | None], series: Mapping[str, Sequence[CounterSample]]) -> list[list[str]]:
    """Keys found to share an account, as groups of labels (each sorted, two keys or more): the same
    organization named in their answers, or counters that fall as one."""
    parent = {label: label for label in {*orgs, *series}}

    def root(x: str) -> str:
        while parent[x] != x:
            x = parent[x]
        return x

    def join(x: str, y: str) -> None:
        parent[root(x)] = root(y)

    by_org: dict[str, str] = {}
    for label, org in sorted(orgs.items()):
        if org:
            if org in by_org:
                join(label, by_org[org])
            else:
                by_org[org] = label
    labels = sorted(series)
    for i, x in enumerate(labels):
        for y in labels[i + 1:]:
            if root(x) != root(y) and counters_move_together(series[x], series[y]):
                join(x, y)
    groups: dict[str, list[str]] = {}
    for label in sorted(parent):
        groups.setdefault(root(label), []).append(label)
    return sorted(g for g in groups.values() if len(g) > 1)


def group_of(label: str, groups: Iterable[list[str]]) -> list[str] | None:
    """The group ``label`` is in, if any."""
    return next((g for g in groups if label in g), None)
