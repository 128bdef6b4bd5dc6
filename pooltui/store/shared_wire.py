"""What comes in from the shared store, checked like input from the network.

Anyone who can write to the Redis a fleet shares can publish a message or plant a value. Every value read
from it goes through one of these functions before it reaches a pool, a breaker or the terminal: the
types are checked, numbers must be finite, times bounded (no deadline further than :data:`MAX_AHEAD_S`
ahead), states known and names label-shaped. A bad message gives ``None`` and a one-line reason
(:class:`Rejected`); the caller drops it and logs that reason once. Validation happens when a value is
read, never per pick.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time
from typing import Any

from pooltui.core import validate
from pooltui.core.health import DeadlineSource, KeyState

MAX_AHEAD_S = 366 * 86400.0  # no shared deadline lies further ahead than this (a quota parks up to a month)
MAX_CLOCK_SKEW_S = 300.0  # a message's own time ("at") may be this far in the future, no further
MAX_TEXT = 300  # reasons and origins are cut to this many characters
MAX_CONFIG_BYTES = 1 << 20
MAX_MODELS = 64
MAX_ORDER = 1000
_STATES = frozenset(s.value for s in KeyState)
_SOURCES = frozenset(s.value for s in DeadlineSource)


class Rejected(ValueError):
    """A value from the shared store that is not what it claims to be (one line, no secret)."""


def _text(value: object, what: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise Rejected(f"{what} is not text")
    return value[:limit]


def _optional_text(value: object, what: str) -> str | None:
    return None if value is None else _text(value, what)


def _name(value: object, what: str) -> str:
    try:
        return validate.label(value, what)
    except ValueError:
        raise Rejected(f"{what} is not label-shaped") from None


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Rejected(f"{what} is not a finite number")
    return float(value)


def _deadline(value: object, what: str, now: float) -> float | None:
    """None, or a finite time no further than :data:`MAX_AHEAD_S` from ``now``."""
    if value is None:
        return None
    at = _number(value, what)
    if at > now + MAX_AHEAD_S:
        raise Rejected(f"{what} is too far ahead")
    return at


def _moment(value: object, what: str, now: float) -> float:
    """When something happened: finite, positive, not in the future (beyond clock skew)."""
    at = _number(value, what)
    if at < 0 or at > now + MAX_CLOCK_SKEW_S:
        raise Rejected(f"{what} is not a plausible time")
    return at


def _mapping(message: object) -> dict[str, Any]:
    if not isinstance(message, dict):
        raise Rejected("not an object")
    return message


def key_state(message: object, now: float) -> dict[str, Any]:
    """A key's shared state: provider, label, fingerprint, a known state, bounded deadlines."""
    m = _mapping(message)
    state = m.get("state")
    if state not in _STATES:
        raise Rejected("unknown key state")
    source = m.get("source")
    if source is not None and source not in _SOURCES:
        raise Rejected("unknown deadline source")
    status = m.get("status")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int) or not 0 <= status < 1000):
        raise Rejected("status is not an HTTP status")
    fingerprint = _text(m.get("fingerprint"), "fingerprint", 64)
    models_in = m.get("models") or {}
    if not isinstance(models_in, dict) or len(models_in) > MAX_MODELS:
        raise Rejected("models is not a small object")
    models = {}
    for model, until in models_in.items():
        try:
            name = validate.model_name(model)
        except ValueError:
            raise Rejected("a model name is not model-shaped") from None
        models[name] = _deadline(until, "a model's cooldown", now)
    return {"from": _optional_text(m.get("from"), "from"), "provider": _name(m.get("provider"), "provider"),
            "key": _name(m.get("key"), "key label"), "fingerprint": fingerprint, "state": state,
            "until": _deadline(m.get("until"), "until", now), "source": source,
            "reason": _optional_text(m.get("reason"), "reason"), "status": status,
            "at": _moment(m.get("at", now), "at", now), "models": models}


def breaker(message: object, now: float) -> dict[str, Any]:
    """A provider's outage breaker opening or closing."""
    m = _mapping(message)
    opened = m.get("open")
    if not isinstance(opened, bool):
        raise Rejected("open is not true or false")
    return {"kind": "breaker", "from": _optional_text(m.get("from"), "from"),
            "provider": _name(m.get("provider"), "provider"), "open": opened,
            "until": _deadline(m.get("until"), "until", now), "reason": _optional_text(m.get("reason"), "reason"),
            "at": _moment(m.get("at", now), "at", now)}


def pool_setting(message: object) -> dict[str, Any]:
    """A pool setting from a fleet monitor: a strategy, or a key order (labels)."""
    m = _mapping(message)
    out: dict[str, Any] = {"kind": "pool", "from": _optional_text(m.get("from"), "from"),
                           "provider": _name(m.get("provider"), "provider")}
    if m.get("strategy") is not None:
        out["strategy"] = _name(m["strategy"], "strategy")
    order = m.get("order")
    if order is not None:
        if not isinstance(order, list) or len(order) > MAX_ORDER:
            raise Rejected("order is not a list of labels")
        out["order"] = [_name(label, "key label") for label in order]
    return out


def config(message: object, now: float) -> dict[str, Any]:
    """A config another host published: its text (bounded), where from, when (not in the future)."""
    m = _mapping(message)
    text = m.get("text")
    if not isinstance(text, str) or len(text.encode("utf-8", "replace")) > MAX_CONFIG_BYTES:
        raise Rejected("config text is not text of at most 1 MiB")
    return {"kind": "config", "from": _optional_text(m.get("from"), "from"), "text": text,
            "origin": _optional_text(m.get("origin"), "origin") or "another host",
            "at": _moment(m.get("at"), "at", now), "sha": m.get("sha") if isinstance(m.get("sha"), str) else None}


MAX_LEARNED_LIMIT = 1_000_000
MAX_LEARNED_WINDOW_S = 3600.0


def learned(message: object, now: float) -> dict[str, Any]:
    """A key's limit learnt by another process: ``limit`` requests per ``window_s`` (bounded), how ``sure``."""
    m = _mapping(message)
    limit = m.get("limit")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LEARNED_LIMIT:
        raise Rejected("limit is not a whole number of requests")
    window_s = _number(m.get("window_s"), "window_s")
    if not 0 < window_s <= MAX_LEARNED_WINDOW_S:
        raise Rejected("window_s is not a window length")
    sure = _number(m.get("sure"), "sure")
    if not 0 <= sure <= 1:
        raise Rejected("sure is not between 0 and 1")
    model = m.get("model")
    if model != "":
        try:
            model = validate.model_name(model)
        except ValueError:
            raise Rejected("a model name is not model-shaped") from None
    return {"kind": "learned", "from": _optional_text(m.get("from"), "from"),
            "provider": _name(m.get("provider"), "provider"), "key": _name(m.get("key"), "key label"),
            "fingerprint": _text(m.get("fingerprint"), "fingerprint", 64), "model": model, "limit": limit,
            "window_s": window_s, "sure": sure, "at": _moment(m.get("at", now), "at", now)}


MAX_LEARNED_TOKENS = 10**10
TOKEN_WINDOWS = ("tpm", "itpm", "otpm")


def learned_tokens(message: object, now: float) -> dict[str, Any]:
    """A key's token budget learnt by another process from a 429: ``limit`` tokens per minute in ``window``."""
    m = _mapping(message)
    limit = m.get("limit")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LEARNED_TOKENS:
        raise Rejected("limit is not a whole number of tokens")
    window = m.get("window")
    if window not in TOKEN_WINDOWS:
        raise Rejected("window is not a token window")
    return {"kind": "learned_tokens", "from": _optional_text(m.get("from"), "from"),
            "provider": _name(m.get("provider"), "provider"), "key": _name(m.get("key"), "key label"),
            "fingerprint": _text(m.get("fingerprint"), "fingerprint", 64), "window": window, "limit": limit,
            "at": _moment(m.get("at", now), "at", now)}


def _canonical(message: dict[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in message.items() if k != "sig"}, sort_keys=True,
                      separators=(",", ":")).encode()


def signed(message: dict[str, Any], secret: str | None) -> str:
    """``message`` as JSON text, with an HMAC-SHA256 of it under the fleet ``secret`` (none without one)."""
    if secret is None:
        return json.dumps(message)
    sig = hmac.new(secret.encode(), _canonical(message), hashlib.sha256).hexdigest()
    return json.dumps({**message, "sig": sig})


def verify(message: object, secret: str | None) -> None:
    """Raise :class:`Rejected` unless ``message`` carries a valid HMAC under ``secret`` (with a fleet secret,
    a process ignores whatever was not signed by a member)."""
    if secret is None:
        return
    if not isinstance(message, dict) or not isinstance(message.get("sig"), str):
        raise Rejected("not signed by a member of the fleet")
    want = hmac.new(secret.encode(), _canonical(message), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, message["sig"]):
        raise Rejected("not signed by a member of the fleet")


def count(raw: object) -> int | None:
    """A counter as Redis returns it (text or a number): None when absent, else a whole number >= 0."""
    if raw is None:
        return None
    try:
        value = int(raw) if isinstance(raw, str | int) and not isinstance(raw, bool) else -1
    except ValueError:
        value = -1
    if not 0 <= value < 2**62:
        raise Rejected("a counter is not a whole number")
    return value


def amount(raw: object) -> float | None:
    """A spent amount as Redis returns it: None when absent, else a finite number >= 0."""
    if raw is None:
        return None
    try:
        value = float(raw) if isinstance(raw, str | int | float) and not isinstance(raw, bool) else -1.0
    except ValueError:
        value = -1.0
    if not 0 <= value < 1e15:
        raise Rejected("an amount is not a finite number")
    return value


def message(raw: object, now: float | None = None) -> dict[str, Any]:
    """Any message of the shared channel, by its kind; raises :class:`Rejected` for a bad one."""
    now = time.time() if now is None else now
    kind = raw.get("kind") if isinstance(raw, dict) else None
    if kind is None:
        return key_state(raw, now)
    if kind == "breaker":
        return breaker(raw, now)
    if kind == "pool":
        return pool_setting(raw)
    if kind == "config":
        return config(raw, now)
    if kind == "learned":
        return learned(raw, now)
    if kind == "learned_tokens":
        return learned_tokens(raw, now)
    raise Rejected("unknown message kind")


def heartbeat(raw: object, now: float) -> dict[str, Any]:
    """A process's heartbeat as ``pooltui fleet`` shows it."""
    m = _mapping(raw)
    pid = m.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid < 0:
        raise Rejected("pid is not a whole number")
    providers = m.get("providers") or []
    if not isinstance(providers, list):
        raise Rejected("providers is not a list")
    out = {"instance": _text(m.get("instance"), "instance"), "host": _text(m.get("host"), "host", 255),
           "pid": pid, "last_seen": _moment(m.get("last_seen"), "last_seen", now),
           "requests_per_s": _number(m.get("requests_per_s", 0.0), "requests_per_s"),
           "providers": [_name(p, "provider") for p in providers[:64]]}
    if isinstance(m.get("panels"), dict):
        out["panels"] = m["panels"]
    if m.get("windows") is not None:
        out["windows"] = windows_in_use(m["windows"])
    return out


def windows_in_use(raw: object) -> list[dict[str, Any]]:
    """A process's share of each shared budget window, as its heartbeat tells it."""
    if not isinstance(raw, list) or len(raw) > 256:
        raise Rejected("windows is not a short list")
    out = []
    for w in raw:
        m = _mapping(w)
        limit, mine, fleet = (count(m.get(f)) for f in ("limit", "mine", "fleet"))
        window_s = _number(m.get("window_s"), "window_s")
        key = _text(m.get("key"), "key", 300)
        if limit is None or mine is None or fleet is None or not 0 < window_s <= 366 * 86400:
            raise Rejected("a window in use is not counts and a length")
        try:
            validate.label(key.split("@", 1)[0], "key label")
            model = key.split("@", 1)[1] if "@" in key else None
            if model is not None:
                validate.model_name(model)
        except ValueError:
            raise Rejected("a window's key is not label-shaped") from None
        out.append({"provider": _name(m.get("provider"), "provider"), "key": key,
                    "what": _name(m.get("what"), "what"), "limit": limit, "window_s": window_s, "mine": mine,
                    "fleet": fleet})
    return out


def lease_answer(raw: object, want: int, limit: int,
                 window_ms: int) -> tuple[int, int, int, int, int, int, int]:
    """What the shared window's script answered a lease: (granted, Redis time in ms, ms until the rest fits,
    units held in the window, entries refused, 1 if Redis lost the windows, units held by settled uses); raises
    :class:`Rejected` for anything else."""
    if not isinstance(raw, list | tuple) or len(raw) not in (7, 8):  # the 8th: the others' units (others_in_view)
        raise Rejected("a lease answer is not seven numbers")
    got, at, opens, held, refused, lost, in_use = (count(v) for v in raw[:7])
    if got is None or at is None or opens is None or held is None or refused is None or lost is None or \
            in_use is None:
        raise Rejected("a lease answer is not seven numbers")
    if got > want or got > limit or opens > window_ms or lost > 1 or in_use > held:
        raise Rejected("a lease answer is out of bounds")
    if abs(at / 1000 - time.time()) > MAX_CLOCK_SKEW_S:
        raise Rejected("a lease answer's time is not plausible")
    return got, at, opens, held, refused, lost, in_use


MAX_VIEW = 4096  # parts of the others' units a lease answer may carry (owners times steps)


def others_in_view(raw: object, limit: int, steps: int) -> dict[str, list[tuple[int, int, int]]]:
    """The other processes' units in a lease answer (its 8th part: owner, steps, units, of those leased, ...), by
    owner: (steps until they leave the window, units, of those leased); raises :class:`Rejected` for anything
    else (an owner not text, more units than the limit, a step past ``steps``)."""
    if not isinstance(raw, list | tuple) or len(raw) % 4 or len(raw) > 4 * MAX_VIEW:
        raise Rejected("the others' units in a lease answer are not (owner, steps, units, leased) parts")
    view: dict[str, list[tuple[int, int, int]]] = {}
    for i in range(0, len(raw), 4):
        owner, step, units, leased = raw[i], count(raw[i + 1]), count(raw[i + 2]), count(raw[i + 3])
        if not isinstance(owner, str) or not owner:  # only told apart, never shown: any text the script let by
            raise Rejected("an owner in a lease answer is not a process's tag")
        if step is None or units is None or leased is None or not 1 <= step <= steps or units > limit or \
                leased > units:
            raise Rejected("the others' units in a lease answer are out of bounds")
        view.setdefault(owner[:64], []).append((step, units, leased))
    return view
