"""Who may talk to the proxy, and which paths may go upstream.

The proxy listens on loopback, but a web page in the user's browser can reach loopback too: directly
(a cross-site form post) or by DNS rebinding (a name of the attacker's that resolves to 127.0.0.1). So
every request must name the proxy in its ``Host`` (a loopback literal or ``localhost`` with the proxy's
port, or a name the user allowed), must not come from a browser origin the user did not allow, and a
POST must be JSON (a ``text/plain`` or form post is what a page can send without asking). The guard is
plain ASGI middleware: it answers before any route runs, in the caller's dialect. The API routes served on the
proxy's own protocol (proxy/exchange.py) are checked there first (``check_head``): one it would refuse goes the
ASGI way, and this middleware refuses it.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

# query parameters that carry a caller's credentials: never forwarded upstream
CREDENTIAL_PARAMS = frozenset({
    "key", "api_key", "apikey", "api-key", "x-api-key", "token", "access_token", "auth", "authorization",
    "secret", "client_secret", "password", "sig", "signature",
})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_WATCHED = frozenset({b"host", b"origin", b"sec-fetch-site", b"content-type"})
_VERDICTS_KEPT = 256  # verdicts remembered per guard (a proxy sees a few sets of these values)
_UNSEEN = (0, "")  # no verdict remembered (None is one: the request passes)


def is_loopback_literal(host: str) -> bool:
    """True for an IP literal in the loopback range (``127.0.0.0/8``, ``::1``); never for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolves_to_loopback(host: str) -> bool:
    """True when every address ``host`` resolves to is loopback (for the address the proxy binds)."""
    if is_loopback_literal(host):
        return True
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(is_loopback_literal(str(a).split("%")[0]) for a in addresses)


def split_host(value: str) -> tuple[str, int | None]:
    """``"127.0.0.1:8787"`` -> ("127.0.0.1", 8787); ``"[::1]:80"`` -> ("::1", 80); bad port -> (.., -1)."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return value, -1
        name, rest = value[1:end], value[end + 1:]
        if not rest:
            return name, None
        port_text = rest[1:] if rest.startswith(":") else "x"
    elif value.count(":") == 1:
        name, port_text = value.split(":")
    elif ":" in value:  # a bare IPv6 literal is not a valid Host
        return value, -1
    else:
        return value, None
    return name, int(port_text) if port_text.isdigit() and len(port_text) <= 5 else -1


@dataclass(slots=True)
class AccessPolicy:
    """The names and origins the proxy answers to."""

    port: int
    bind_host: str = "127.0.0.1"
    allow_hosts: frozenset[str] = field(default_factory=frozenset)
    allow_origins: frozenset[str] = field(default_factory=frozenset)
    _seen: dict[str, bool] = field(default_factory=dict, repr=False)  # verdicts per Host value (few distinct)

    @classmethod
    def build(cls, port: int, bind_host: str, hosts: Iterable[str] = (), origins: Iterable[str] = ()
              ) -> AccessPolicy:
        return cls(port, bind_host.strip("[]").lower(), frozenset(h.strip().lower() for h in hosts if h.strip()),
                   frozenset(o.strip().rstrip("/").lower() for o in origins if o.strip()))

    def host_allowed(self, value: str | None) -> bool:
        if not value:
            return False
        verdict = self._seen.get(value)
        if verdict is None:
            verdict = self._host_allowed(value)
            if len(self._seen) < 256:
                self._seen[value] = verdict
        return verdict

    def _host_allowed(self, value: str) -> bool:
        name, port = split_host(value)
        if port == -1:
            return False
        if name in self.allow_hosts or value.strip().lower() in self.allow_hosts:
            return True
        if port not in (None, self.port) or (port is None and self.port != 80):
            return False
        return name == "localhost" or is_loopback_literal(name) or (
            name == self.bind_host and not is_loopback_literal(self.bind_host) and name != "0.0.0.0")

    def origin_allowed(self, origin: str) -> bool:
        return origin.strip().rstrip("/").lower() in self.allow_origins


def refusal_body(path: str, status: int, message: str) -> bytes:
    """The refusal in the dialect the path implies (anthropic for /v1/messages, openai for /v1, else plain)."""
    if path.startswith("/v1/messages"):
        body: dict[str, Any] = {"type": "error", "error": {"type": "permission_error", "message": message}}
    elif path.startswith("/v1/"):
        body = {"error": {"message": message, "type": "permission_error", "param": None, "code": "forbidden"}}
    else:
        body = {"error": message}
    return json.dumps(body).encode()


class AccessGuard:
    """ASGI middleware: refuses rebinding Hosts, browser origins and non-JSON posts before any route runs."""

    def __init__(self, app: ASGIApp, policy: AccessPolicy, on_refuse: Callable[[str], None] | None = None) -> None:
        self.app = app
        self.policy = policy
        self.on_refuse = on_refuse
        #: the verdict per (method, Host, Origin, Sec-Fetch-Site, Content-Type) as they came (bounded): the same
        #: values every request of a client, judged once
        self._verdicts: dict[tuple[str | None, bytes | None, bytes | None, bytes | None, bytes | None],
                             tuple[int, str] | None] = {}

    def check(self, scope: Scope) -> tuple[int, str] | None:
        """(status, why) when the request must be refused, else None."""
        return self.check_head(scope.get("method"), scope.get("headers") or ())

    def check_head(self, method: str | None, raw_headers: Iterable[tuple[bytes, bytes]]) -> tuple[int, str] | None:
        """``check`` of a request's method and header lines (lower-case names, as ASGI servers give them)."""
        headers: dict[bytes, bytes] = {}
        for k, v in raw_headers:
            if k in _WATCHED and k not in headers:  # ASGI servers give lower-case names
                headers[k] = v
        get = headers.get
        seen = (method, get(b"host"), get(b"origin"), get(b"sec-fetch-site"), get(b"content-type"))
        verdicts = self._verdicts
        verdict = verdicts.get(seen, _UNSEEN)
        if verdict is _UNSEEN:
            verdict = self._verdict(method, headers)
            if len(verdicts) < _VERDICTS_KEPT:
                verdicts[seen] = verdict
        return verdict

    def _verdict(self, method: str | None, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        """``check_head``'s verdict from the first of each watched header line."""
        host = headers.get(b"host", b"").decode("latin-1")
        if not self.policy.host_allowed(host):
            return 403, (f"pooltui proxy: Host {host!r} is not this proxy (use 127.0.0.1 or localhost with its "
                         "port, or start the proxy with --allow-host NAME)")
        origin = headers.get(b"origin")
        site = headers.get(b"sec-fetch-site", b"").lower()
        if origin is not None or site in (b"cross-site", b"same-site"):
            text = (origin or b"").decode("latin-1")
            if not (origin is not None and self.policy.origin_allowed(text)):
                return 403, (f"pooltui proxy: requests from a browser origin ({text or 'cross-site'}) are refused; "
                             "allow one with --allow-origin URL")
        if method in _BODY_METHODS:
            ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if ctype != b"application/json":
                return 415, (f"pooltui proxy: {method} needs content-type application/json, "
                             f"not {ctype.decode('latin-1') or 'none'}")
        return None

    def __call__(self, scope: Scope, receive, send) -> Awaitable[None]:
        """The app's own awaitable when the request passes (no frame of this layer stays on its path), else the
        refusal's."""
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        refused = self.check(scope)
        if refused is None:
            return self.app(scope, receive, send)
        return self._refuse(scope, send, *refused)

    async def _refuse(self, scope: Scope, send, status: int, why: str) -> None:
        if self.on_refuse is not None:
            self.on_refuse(why)
        body = refusal_body(scope.get("path", ""), status, why)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


# ---------------------------------------------------------------------------------------------- paths
class PathRefused(ValueError):
    """A caller path that must not go upstream."""


def safe_path(raw_path: bytes | str) -> str:
    """The caller's path, still percent-encoded, once it is known to name nothing outside its base.

    Refused: anything not starting with ``/``, backslashes (raw or encoded), empty segments (``//``),
    ``.`` and ``..`` segments (raw or encoded, any case), encoded slashes, control characters.
    """
    path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else raw_path
    if not path.startswith("/") or path.startswith("//"):
        raise PathRefused("the path must be a plain /v1/... path")
    if "\\" in path or "%5c" in path.lower():
        raise PathRefused("backslashes are not allowed in the path")
    if "//" in path:
        raise PathRefused("empty path segments are not allowed")
    if "%" not in path and "/." not in path:
        return path  # nothing encoded and no dot segment: the common case, no per-segment work
    for segment in path[1:].split("/"):
        decoded = unquote(segment)
        if decoded in (".", ".."):
            raise PathRefused("dot segments are not allowed in the path")
        if "/" in decoded or "\\" in decoded:
            raise PathRefused("encoded slashes are not allowed in the path")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded):
            raise PathRefused("control characters are not allowed in the path")
    return path


def safe_query(query: str) -> str:
    """The query string without parameters that carry credentials (``key=``, ``api_key=``, ``token=`` ...)."""
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if k.strip().lower() not in CREDENTIAL_PARAMS]
    if len(kept) == len(pairs):
        return query
    return urlencode(kept)


def connection_named(headers: Iterable[tuple[str, str]]) -> frozenset[str]:
    """Header names listed in ``Connection:`` (hop-by-hop by declaration): dropped on both sides."""
    names: set[str] = set()
    for k, v in headers:
        if k.lower() == "connection":
            names.update(t.strip().lower() for t in v.split(",") if t.strip())
    return frozenset(names)
