"""The corpus of captured provider error responses (tests/corpus/), and how pooltui reads each case.

Used three ways: the parametrised test (every case reads as its source says), ``python -m pooltui.bench corpus``
(the figure per provider) and the simulator (``corpus_case = "<id>"`` replays a case's status, headers, body).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

from pooltui.core import Classification, FakeClock, KeySpec, KeyState, Outcome, Pool, classify

CORPUS_DIR = Path(__file__).resolve().parents[2] / "tests" / "corpus"
DEFAULT_NOW = "2026-09-21T14:13:20Z"  # 07:13:20 in Los Angeles: a day's quota still has hours to run
_FATE = {KeyState.INVALID: "barred", KeyState.FORBIDDEN: "barred", KeyState.EXHAUSTED: "parked",
         KeyState.COOLING: "cooled", KeyState.OK: "untouched"}


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@cache
def cases() -> tuple[dict, ...]:
    """Every case of the corpus, sorted by provider then id (empty when the corpus is not installed)."""
    if not CORPUS_DIR.is_dir():
        return ()
    found = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(CORPUS_DIR.glob("*/*.json"))]
    return tuple(sorted(found, key=lambda c: (c["provider"], c["id"])))


def case(case_id: str) -> dict:
    """One case by id; KeyError naming the known ids' count when there is none."""
    for c in cases():
        if c["id"] == case_id:
            return c
    raise KeyError(f"no corpus case {case_id!r} (the corpus has {len(cases())})")


def raw_body(c: dict) -> bytes:
    """The body as it came on the wire."""
    body = c["body"]
    return body.encode() if isinstance(body, str) else json.dumps(body, ensure_ascii=False).encode()


@dataclass(slots=True)
class Reading:
    """What pooltui made of one case: the classification, the key's fate in a pool, its event."""

    result: Classification
    now: float
    fate: str
    model_cooling: bool  # it cools for the case's model only (or will, once another model is asked for)
    event_reason: str
    event_status: int | None


def read(c: dict) -> Reading:
    """Classify the case, then report it to a two-key pool that has served only the case's model."""
    now = _ts(c.get("now") or DEFAULT_NOW)
    result = classify(c["dialect"], c["status"], c["headers"], raw_body(c), now)
    model = c.get("model") or "model-a"
    pool = Pool(c["provider"], [KeySpec("k0", "sk-corpus-000000000000000000000000"),
                                KeySpec("k1", "sk-corpus-111111111111111111111111")],
                "failover", clock=FakeClock(now))
    key = pool.pick(model=model)
    assert key is not None, "a fresh pool of two keys has one to pick"
    pool.report(key, result, model=model)
    events = pool.events.recent()
    last = events[-1] if events else None
    per_model = model in pool.model_cooldowns(key) or (key.state is KeyState.COOLING and key.cool_model == model)
    return Reading(result, now, _FATE.get(key.state, key.state.value), per_model,
                   last.reason if last else "", last.status if last else None)


def misses(c: dict) -> list[str]:
    """How pooltui's reading of the case differs from what its source says (empty: read right)."""
    r = read(c)
    want = c["expect"]
    out = []
    if r.result.outcome.value != want["outcome"]:
        out.append(f"outcome {r.result.outcome.value}, source says {want['outcome']}")
    fate = "cooled" if r.model_cooling and r.fate == "untouched" else r.fate
    if fate != want["key"]:
        out.append(f"key {fate}, source says {want['key']}")
    wait = want.get("wait_s")
    if "until" in want:
        wait = _ts(want["until"]) - r.now
    got = r.result.retry_after_s
    if (wait is None) != (got is None) or (wait is not None and abs(got - wait) > 0.01):
        out.append(f"wait {got}, source says {wait}")
    source = r.result.source.value if r.result.source is not None else None
    if source != want.get("wait_source"):
        out.append(f"wait from {source}, source says {want.get('wait_source')}")
    if want.get("learned") != (r.result.outcome is Outcome.RATE_LIMITED):
        out.append(f"learned {r.result.outcome is Outcome.RATE_LIMITED}, source says {want.get('learned')}")
    if want["outcome"] == "rate_limited" and r.result.outcome is Outcome.RATE_LIMITED:
        scope = "model" if r.model_cooling else "key"
        if scope != want.get("scope"):
            out.append(f"cooled per {scope}, source says per {want.get('scope')}")
    if want["key"] in ("barred", "parked") and r.event_status != c["status"]:
        out.append(f"no event says the key went on its HTTP {c['status']} (last event: {r.event_reason!r})")
    return out


def figures(selection: tuple[dict, ...] | None = None) -> dict[str, tuple[int, int, list[str]]]:
    """Per provider: cases, read as the source says, and each miss ("case-id: what differs"); of ``selection``,
    else of the whole corpus."""
    out: dict[str, tuple[int, int, list[str]]] = {}
    for c in cases() if selection is None else selection:
        total, right, missed = out.get(c["provider"], (0, 0, []))
        wrong = misses(c)
        missed = [*missed, f"{c['id']}: {'; '.join(wrong)}"] if wrong else missed
        out[c["provider"]] = (total + 1, right + (not wrong), missed)
    return out


def replay(case_id: str) -> tuple[int, dict[str, str], bytes]:
    """The status, headers and body to answer with when a scenario key replays ``case_id``."""
    c = case(case_id)
    headers = {str(k): str(v) for k, v in c["headers"].items() if str(k).lower() != "content-length"}
    if not isinstance(c["body"], str):
        headers.setdefault("content-type", "application/json")
    return c["status"], headers, raw_body(c)


def ids() -> list[str]:
    return [c["id"] for c in cases()]
