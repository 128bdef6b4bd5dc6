"""An upstream answer's header lines as its caller gets them, relayed as the bytes they came in (no decoding into a
dict and encoding back): names lowered, hop-by-hop and framing headers dropped (``DROP_RESPONSE`` and any the
``Connection`` header names), the content type too when the body was translated into the caller's dialect.

What to keep of a set of header names (and ``Connection`` values) is worked out once per set, since an upstream
sends the same names answer after answer; an answer then costs a lookup, a pick of its values and one scan of them
for secrets. An answer whose kept lines repeat a name (joined with ", " for the caller), carry an ``x-pooltui-``
header of the upstream's own, or a value with a secret in it is left to ``PoolProxy._response_headers`` (the text
path, which masks the secret), so the caller gets the same lines either way."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter

import httpx

from pooltui.client.upstream_http import header_columns
from pooltui.core.masking import scrub
from pooltui.proxy.guard import connection_named

#: headers of the upstream's answer that would be wrong once the body is re-sent (decoded, re-framed)
DROP_RESPONSE = frozenset({
    "connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "upgrade", "trailer",
    "set-cookie", "date", "server",
})
_PLANS_KEPT = 256  # distinct sets of names remembered (an upstream sends a few)

Pick = Callable[[Sequence[bytes]], tuple[bytes, ...]]
#: per (names, Connection values, translated): the kept names and the pick of their values; None: the text path
_plans: dict[tuple[tuple[bytes, ...], tuple[bytes, ...], bool], tuple[tuple[bytes, ...], Pick] | None] = {}


def _pick(at: list[int]) -> Pick:
    """The values at positions ``at``, as a tuple (in C, for any number of them)."""
    if len(at) == 1:
        one = at[0]
        return lambda values: (values[one],)
    if not at:
        return lambda values: ()
    return itemgetter(*at)  # a tuple for two positions or more


def _plan(names: tuple[bytes, ...], connection: tuple[bytes, ...], translated: bool
          ) -> tuple[tuple[bytes, ...], Pick] | None:
    """What an answer with these header names keeps, by the text path's rules (None when it must take it)."""
    if not all(name.isascii() for name in names):  # lowered as text, such a name could differ from its bytes'
        return None
    text = [name.decode("latin-1") for name in names]
    named = connection_named([("connection", value.decode("latin-1")) for value in connection])
    kept = [i for i, name in enumerate(text) if name not in DROP_RESPONSE and name not in named
            and not (translated and name == "content-type")]
    kept_names = [text[i] for i in kept]
    if len(set(kept_names)) != len(kept_names) or any(name.startswith("x-pooltui-") for name in kept_names):
        return None  # lines joined for the caller, or a name of the proxy's own: the text path's dict does it
    return tuple(names[i] for i in kept), _pick(kept)


def relayed(headers: httpx.Headers, translated: bool) -> list[tuple[bytes, bytes]] | None:
    """The upstream's header lines its caller gets (names lowered, values as they came), or None when the answer
    needs the text path (see the module's doc)."""
    names, values = header_columns(headers)
    connection: tuple[bytes, ...] = ()
    if b"connection" in names:
        connection = tuple(value for name, value in zip(names, values, strict=True) if name == b"connection")
    key = (names, connection, translated)
    try:
        plan = _plans[key]
    except KeyError:
        if len(_plans) >= _PLANS_KEPT:
            _plans.clear()
        plan = _plans[key] = _plan(names, connection, translated)
    if plan is None:
        return None
    kept_names, pick = plan
    kept = pick(values)
    joined = b"\n".join(kept).decode("latin-1")
    if scrub(joined) is not joined:  # a secret (or something key-shaped) in a value: masked on the text path
        return None
    return list(zip(kept_names, kept, strict=True))
