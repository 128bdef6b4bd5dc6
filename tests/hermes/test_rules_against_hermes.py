"""Every rule of ``pooltui.core.hermes_rules`` against Hermes Agent's own code (hermes-agent 0.19,
``agent/credential_pool.py``), on the same inputs: one Hermes process computes its answers, pooltui's
emulation computes its own, the test compares them. Line numbers (``cp:N``) are those of the installed
``agent/credential_pool.py``."""

from __future__ import annotations

import json
import time

import pytest

from pooltui.core import hermes_rules as rules
from pooltui.store import hermes_auth

#: runs in Hermes's venv: reads the cases on stdin, answers with Hermes's own functions
HERMES_SIDE = r"""
import json, sys, time
from agent import credential_pool as cp
from agent.credential_pool import CredentialPool, PooledCredential, _exhausted_until

cases = json.load(sys.stdin)
FIELDS = cases["fields"]
out = {}
P = "openai-api"

def pool(entries, strategy="fill_first"):
    p = CredentialPool(P, [PooledCredential.from_dict(P, dict(e)) for e in entries])
    p._strategy = strategy
    return p

out["ttl"] = [_exhausted_until(PooledCredential.from_dict(P, e)) for e in cases["ttl"]]
marks = []
for status, context in cases["mark"]:
    p = pool([cases["one"]])
    p._mark_exhausted(p.entries()[0], status, context)
    e = p.entries()[0]
    marks.append({k: getattr(e, k) for k in FIELDS})
out["mark"] = marks
sole = pool([cases["one"]])
first = sole.select()
after = sole.mark_exhausted_and_rotate(status_code=429, api_key_hint=first.runtime_api_key)
e = sole.entries()[0]
out["sole"] = {"after": after and after.id, "select": sole.select() and sole.select().id,
               "bench": _exhausted_until(e) - e.last_status_at}
p = pool(cases["skip"])
out["skip"] = [e.id for e in p._available_entries(clear_expired=True)]
out["skip_cleared"] = {e.id: {k: getattr(e, k) for k in FIELDS} for e in p.entries()}
for name in ("order", "order_one"):
    out[name] = {}
    for strategy in ("fill_first", "round_robin"):
        p = pool(cases[name], strategy)
        picks = [p.select().id for _ in range(5)]
        out[name][strategy] = {"picks": picks, "priorities": [e.id for e in sorted(p.entries(),
                                                                                   key=lambda e: e.priority)]}
print(json.dumps(out))
"""


def entry(i: str, **fields) -> dict:
    return {"id": i, "label": i, "auth_type": "api_key", "priority": int(i[1:]), "source": "manual",
            "access_token": f"sk-test-hermes-rules-{i}-0000000000000", **fields}


@pytest.fixture
def compared(hermes):
    """Hermes's answers and the inputs they came from."""
    now = time.time()
    at = now - 120.0
    exhausted = {"last_status": "exhausted", "last_status_at": at}
    cases = {
        "ttl": [entry("k0", **exhausted, last_error_code=code) for code in (401, 429, 402, 403, 500, None)]
        + [entry("k0", **exhausted, last_error_code=429, last_error_reset_at=reset)
           for reset in (now + 90, (now + 90) * 1000, "2030-01-01T00:00:00Z", str(now + 30), "", 0, -5)]
        + [entry("k0", last_status="exhausted", last_status_at=None, last_error_code=429),
           entry("k0", last_status="dead", last_status_at=at, last_error_code=401),
           entry("k0", last_status="ok", last_status_at=at)],
        "one": entry("k0"),
        "mark": [[429, {}], [401, {}], [402, {"reason": "billing"}], [401, {"reason": "invalid_token"}],
                 [401, {"reason": " Token_Revoked "}], [401, {"reason": "token_expired"}],
                 [403, {"reason": "invalid_token"}], [429, {"message": "Please retry after 20 seconds"}],
                 [429, {"message": "Usage limit. Resets in 2hr 5min"}], [429, {"reset_at": now + 90}],
                 [429, {"resets_at": (now + 600) * 1000}], [429, {"retry_until": "2030-01-01T00:00:00+00:00"}],
                 [429, {"message": "Please retry after 20 seconds", "reset_at": now + 90}]],  # the absolute one wins
        "skip": [entry("k0"), entry("k1", **exhausted, last_error_code=429),
                 entry("k2", **exhausted, last_error_code=401, last_error_reset_at=now - 1),
                 entry("k3", last_status="dead", last_status_at=at, last_error_code=401),
                 entry("k4", access_token=""), entry("k5", last_status="exhausted", last_error_code=429),
                 entry("k6", last_status="exhausted", last_status_at=now - 400, last_error_code=401)],
        "fields": list(rules.STATUS_FIELDS),
        "order": [entry("k0"), entry("k1", **exhausted, last_error_code=429), entry("k2"), entry("k3")],
        "order_one": [entry("k0"), entry("k1", **exhausted, last_error_code=429)],  # one available: no rotation
    }
    out = hermes.py_stdin(HERMES_SIDE, json.dumps(cases))
    return cases, json.loads(out.strip().splitlines()[-1]), now


def test_the_bench_per_status_and_the_reset_that_wins(compared) -> None:
    """cp:121-123, cp:289-295 (TTL per status), cp:376-384 (the reset wins; no status time: no bench),
    cp:298-325 (how a reset is parsed)."""
    cases, hermes, _ = compared
    ours = [rules.bench_until(e) for e in cases["ttl"]]
    assert ours == pytest.approx(hermes["ttl"])
    assert None in hermes["ttl"]  # the cases cover an entry Hermes does not bench


def test_marking_an_entry_after_an_error(compared) -> None:
    """cp:650-679 (what is written), cp:78-85 and cp:627-648 (a terminal 401 is dead), cp:351-373 and
    cp:328-348 (the reset read in the error)."""
    cases, hermes, now = compared
    for (status, context), theirs in zip(cases["mark"], hermes["mark"], strict=True):
        at = theirs["last_status_at"]
        ours = rules.marked(status, at, context.get("reason"), context.get("message"),
                            context.get("reset_at") or context.get("resets_at") or context.get("retry_until"))
        assert abs(at - now) < 30
        assert {k: v for k, v in ours.items() if k != "last_error_reset_at"} == \
            {k: v for k, v in theirs.items() if k != "last_error_reset_at"}, (status, context)
        assert ours["last_error_reset_at"] == pytest.approx(theirs["last_error_reset_at"], abs=2.0), (status, context)
    assert [m["last_status"] for m in hermes["mark"]].count("dead") == 2


def test_a_sole_key_is_benched_the_full_hour(compared) -> None:
    """cp:1694-1738 then cp:1649-1654: a pool's only key after a 429 with no reset: Hermes selects nothing
    for an hour (no shorter rule for a sole key)."""
    _, hermes, now = compared
    assert hermes["sole"] == {"after": None, "select": None, "bench": rules.TTL_429_S}
    model = rules.HermesPoolModel([rules.HermesEntry("k0", "sk-test-hermes-rules-sole-000000000")])
    only = model.entry(now)
    assert model.exhaust_and_rotate(only, 429, now) is None
    assert model.entry(now + 3599) is None and only.exhausted_until - now == hermes["sole"]["bench"]


def test_what_select_skips_and_clears(compared) -> None:
    """cp:1515-1633: no key (cp:1530), dead (cp:1575-1603), still benched (cp:1605-1608) are skipped; an
    expired bench is cleared to ok with every other status field null (cp:1609-1621)."""
    cases, hermes, now = compared
    assert [e["id"] for e in cases["skip"] if rules.selectable(e, now)] == hermes["skip"]
    for e in cases["skip"]:
        if e["id"] in hermes["skip"] and e.get("last_status") == "exhausted":
            assert hermes["skip_cleared"][e["id"]] == {**dict.fromkeys(rules.STATUS_FIELDS), "last_status": "ok"}


def test_fill_first_and_round_robin_pick_as_hermes(compared) -> None:
    """cp:1649-1686: fill_first keeps the first available; round_robin moves the selected entry to the end."""
    cases, hermes, now = compared
    for name in ("order", "order_one"):
        for strategy, theirs in hermes[name].items():
            model = rules.HermesPoolModel([rules.HermesEntry(e["id"], e["access_token"],
                                                             exhausted_until=rules.bench_until(e))
                                           for e in cases[name]], strategy)
            picks = [model.select(now).label for _ in range(5)]
            assert picks == theirs["picks"], (name, strategy)
            assert [e.label for e in model.entries] == theirs["priorities"], (name, strategy)


def test_reset_clears_what_hermes_auth_reset_clears(hermes) -> None:
    """cp:1822-1844 (``hermes auth reset``): pooltui's reset of an entry leaves it as Hermes's own reset does."""
    now = time.time()
    marked = entry("k0", **rules.marked(429, now - 5, "rate_limit", "slow down", now + 600))
    (hermes.home / "auth.json").write_text(json.dumps({"version": 1, "credential_pool": {"openai-api": [marked]}}))
    hermes_auth.reset(hermes.home, "openai-api", "k0")
    ours = json.loads((hermes.home / "auth.json").read_text())["credential_pool"]["openai-api"][0]
    (hermes.home / "auth.json").write_text(json.dumps({"version": 1, "credential_pool": {"openai-api": [marked]}}))
    hermes.cli("auth", "reset", "openai-api")
    theirs = json.loads((hermes.home / "auth.json").read_text())["credential_pool"]["openai-api"][0]
    assert {k: ours.get(k) for k in rules.STATUS_FIELDS} == {k: theirs.get(k) for k in rules.STATUS_FIELDS} \
        == rules.reset_fields(marked)
