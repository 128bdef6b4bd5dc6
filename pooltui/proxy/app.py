"""The pooling proxy: real agents send their traffic through the pool, the monitor shows it live.

It speaks the openai-compatible API (``/v1/chat/completions``, ``/v1/models``, other ``/v1/...`` passed
through) and the anthropic Messages API (``/v1/messages``, ``/v1/messages/count_tokens``), and puts the
pool's key for each request into the upstream's auth scheme. The caller's own key and hop-by-hop headers
never go upstream; a retry on another key happens only before the first byte goes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import logging
import math
import secrets
import socket
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pooltui.client.after_answer import AFTER_ANSWER, answer_first, settle_after
from pooltui.client.pool_client import (
    PoolClient,
    PoolResponse,
    PoolUnavailableError,
    RequestRefusedError,
)
from pooltui.client.sockets import listen
from pooltui.core.clock import Clock, SystemClock
from pooltui.core.errors import message_of
from pooltui.core.events import Event
from pooltui.core.masking import scrub, scrub_bytes
from pooltui.core.trace import format_trace
from pooltui.providers.profiles import ApiRequest, ProviderProfile
from pooltui.proxy.answer_headers import DROP_RESPONSE, relayed
from pooltui.proxy.dialects import (
    ANTHROPIC,
    OPENAI,
    Bridge,
    as_it_came,
    family_of,
    translatable,
    upstream_request,
)
from pooltui.proxy.direct import ChunkedAnswer, cycle_of, send_whole
from pooltui.proxy.exchange import Exchange
from pooltui.proxy.guard import (
    AccessGuard,
    AccessPolicy,
    PathRefused,
    connection_named,
    resolves_to_loopback,
    safe_path,
    safe_query,
)
from pooltui.proxy.limits import GONE_KEY, ClientLimits, limited_protocol, trust
from pooltui.proxy.logs import OPERATIONS
from pooltui.proxy.models import ModelCatalog, render
from pooltui.proxy.observe import Observer
from pooltui.proxy.peek import peek_fields
from pooltui.proxy.raw import Caller, Reply
from pooltui.proxy.relayed import RelayedStream
from pooltui.session.local import MonitorSession
from pooltui.session.views import ClientSeries, StateView, TraceView, event_dict, panel

# headers that describe one hop, or the caller's own credentials/account: never forwarded upstream
DROP_REQUEST = frozenset({
    "host", "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "content-length", "accept-encoding", "authorization",
    "x-api-key", "x-goog-api-key", "api-key", "openai-organization", "openai-project", "cookie",
})
# the caller's trace context: not sent on to a provider unless [telemetry] propagate_upstream says so (privacy)
TRACE_CONTEXT = frozenset({"traceparent", "tracestate", "baggage"})
#: a request body this large has its model and stream flags peeked at (proxy/peek.py) rather than parsed whole
PEEK_MIN_BYTES = 128 * 1024
PEEKED = frozenset({"model", "stream", "stream_options"})
_server_log = logging.getLogger("uvicorn.error")  # where uvicorn logs an ASGI app's unforeseen exception


def _parsed(body: bytes) -> Any:
    """A caller's body parsed (None when it is empty or not JSON)."""
    if body:
        with contextlib.suppress(ValueError):
            return json.loads(body)
    return None


def is_loopback(host: str) -> bool:
    """True when every address ``host`` resolves to is loopback (``127.attacker.example`` is not)."""
    return resolves_to_loopback(host)


#: what agents probe to recognise a local model server (Hermes before each prompt): answered by the proxy
METADATA_PROBES = ("/v1/props", "/props", "/version", "/api/tags", "/api/show", "/api/v1/models")


MAX_RETRY_AFTER_S = 86400 * 7  # a retry-after beyond this says nothing a caller can use
_log = logging.getLogger(OPERATIONS)


def unavailable_status(api: str, cause: str) -> tuple[int, str, str]:
    """The caller's status, error code and one sentence for a request no provider could serve, by its cause:
    429 when keys are rate limited (a wait helps), 529 (anthropic) or 503 (openai) when the upstream is
    overloaded or down, 503 when no key is usable at all."""
    if cause == "rate_limited":
        return 429, "pool_exhausted", "every key that could serve this request is rate limited; retry after the reset"
    if cause == "overloaded":
        return (529 if api == ANTHROPIC else 503), "upstream_overloaded", (
            "the upstream is overloaded or failing and no fallback could serve this request")
    return 503, "no_usable_key", "no usable key: every key is invalid, forbidden, out of quota or disabled"


def error_body(api: str, status: int, message: str, kind: str) -> bytes:
    """An error in the caller's dialect."""
    if api == ANTHROPIC:
        etype = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
                 413: "request_too_large", 429: "rate_limit_error", 400: "invalid_request_error",
                 529: "overloaded_error"}.get(status, "api_error")
        body: dict[str, Any] = {"type": "error", "error": {"type": etype, "message": message}}
    else:
        body = {"error": {"message": message, "type": kind, "param": None, "code": kind}}
    return json.dumps(body).encode()


def _header_value(value: str) -> str:
    """An upstream header value without any known secret (masked in ASCII: headers are latin-1)."""
    cleaned = scrub(value)
    return value if cleaned is value else cleaned.replace("…", "...")


def latin1_items(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """An answer's header lines as (lowercased name, value), decoded as latin-1 (each byte one character: the caller
    gets the bytes the upstream sent, whatever their encoding), repeated names joined with ", " as one."""
    out: dict[str, str] = {}
    for key, value in raw:
        name, text = key.decode("latin-1").lower(), value.decode("latin-1")
        out[name] = f"{out[name]}, {text}" if name in out else text
    return list(out.items())


@dataclass
class ProxyStats:
    """Proxy-level counters for /metrics."""

    requests: Counter = field(default_factory=Counter)  # (api, status)
    refused: int = 0
    started: float = field(default_factory=time.time)


class PoolProxy:
    """The proxy's request handling over one PoolClient per API family."""

    def __init__(self, clients: dict[str, PoolClient], *, token: str | None = None,
                 deadline_s: float | None = None, clock: Clock | None = None, session: MonitorSession | None = None,
                 admin_token: str | None = None, allow_hosts: tuple[str, ...] = (),
                 allow_origins: tuple[str, ...] = (), client_limits: ClientLimits | None = None,
                 observer: Observer | None = None) -> None:
        self.clients = clients
        #: the per-request hooks (access log, response headers, traces): begin and finish, in serve_api()
        self.observer = observer or Observer()
        self.drop_request = DROP_REQUEST if self.observer.propagate_upstream else DROP_REQUEST | TRACE_CONTEXT
        self._drop_raw = frozenset(name.encode() for name in self.drop_request)  # as caller lines' names come
        self.clock = clock or SystemClock()
        #: the MonitorSession over the same clients (one of its own when none is given): it runs the commands,
        #: saves to the config, and owns each client's series and incident tracker, which the proxy shares
        self.session = session if session is not None else MonitorSession(clients, clock=self.clock,
                                                                           autostart_traffic=False)
        self.token = token
        # the control endpoints' token; without one given, a random one nobody knows keeps them closed
        self.admin_token = admin_token or secrets.token_urlsafe(32)
        self.allow_hosts = tuple(allow_hosts)
        self.allow_origins = tuple(allow_origins)
        self.client_limits = client_limits or ClientLimits()  # what one client connection may hold
        self.deadline_s = deadline_s
        self.stats = ProxyStats()
        self._events: deque[tuple[int, Event]] = deque(maxlen=500)
        self._seq = itertools.count(1)
        self.catalog = ModelCatalog()  # what GET /v1/models lists, per client
        self.series: dict[str, ClientSeries] = self.session.series  # the session's: one per client
        self.by_family: dict[str, PoolClient] = {}
        self.route()
        self.session.client_listeners.append(self.route)  # providers added, removed or changed while running

    def route(self) -> None:
        """(Re)compute the routing from ``clients`` as they are now: each API family goes to the first client
        whose primary speaks it, and each client's series (the session's, /metrics, /pooltui/state) passes its
        events to the proxy's ring. Called at start and after every config change; requests in flight keep the
        client they began on."""
        for series in self.series.values():
            if self._keep not in series.listeners:
                series.listeners.append(self._keep)
            if self.observer.on_event not in series.listeners:
                series.listeners.append(self.observer.on_event)
        by_family: dict[str, PoolClient] = {}
        for client in self.clients.values():
            self.observer.attach(client)
            fam = family_of(client.primary.profile.dialect)
            if fam is not None:
                by_family.setdefault(fam, client)
        self.by_family = by_family

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _presents(request: Request | Caller, header: str, token: str) -> bool:
        """Whether the request carries ``token`` in ``header`` or as ``Authorization: Bearer``."""
        headers = request.headers
        presented = headers.get(header) or ""
        auth = headers.get("authorization") or ""
        if not presented and auth[:7].lower() == "bearer ":
            presented = auth[7:].strip()
        return bool(presented) and hmac.compare_digest(presented.encode(), token.encode())

    def _authorized(self, request: Request | Caller) -> bool:
        """Callers present the proxy token as their API key (any key is fine when no token is set). An authorised
        request marks its connection: it is never closed to make room for a newcomer."""
        if self.token is None or self._presents(request, "x-api-key", self.token):
            if isinstance(request, Caller):
                request.trust()
            else:
                trust(request.scope)
            return True
        return False

    def _admin(self, request: Request) -> bool:
        """The control endpoints want the admin token (``Authorization: Bearer`` or ``x-pooltui-admin-token``)."""
        return self._presents(request, "x-pooltui-admin-token", self.admin_token)

    def _error(self, api: str, status: int, message: str, kind: str, headers: dict[str, str] | None = None
               ) -> Response:
        self.stats.requests[(api, status)] += 1
        return Response(error_body(api, status, scrub(message), kind), status, headers or {}, "application/json")

    def _refusal(self, api: str, status: int, message: str, kind: str, headers: dict[str, str] | None = None
                 ) -> Reply:
        """An error of the API routes, in the caller's dialect."""
        self.stats.requests[(api, status)] += 1
        return Reply(status, headers or {}, error_body(api, status, scrub(message), kind), "application/json")

    @staticmethod
    def _upstream_path(profile: ProviderProfile, path: str) -> str:
        """The caller's path on ``profile``'s base URL (one that ends in ``/v1`` already has it)."""
        return path[3:] if profile.base_url.rstrip("/").endswith("/v1") and path.startswith("/v1/") else path

    @staticmethod
    def _scrub(status: int, content: bytes) -> bytes:
        """Every known secret out of an upstream body of any status; error bodies also lose anything key-shaped."""
        if status < 400:
            return scrub_bytes(content)
        return scrub(content.decode("utf-8", "replace")).encode()

    @classmethod
    def _reply_headers(cls, upstream_headers: httpx.Headers, served: str, bridge: Bridge | None
                       ) -> tuple[list[tuple[bytes, bytes]], dict[str, str]]:
        """An answer's header lines for its caller: the upstream's relayed as bytes (proxy/answer_headers.py) and
        the proxy's own (``x-pooltui-*``) as text, after them; or, when the upstream's need the text path, all of
        them as text (``_response_headers``), in the same order either way."""
        lines = relayed(upstream_headers, bridge is not None)
        if lines is None:
            return [], cls._response_headers(upstream_headers, served, bridge)
        ours = {"x-pooltui-translated": bridge.label} if bridge is not None else {}
        ours["x-pooltui-served-by"] = served
        return lines, ours

    @staticmethod
    def _stream_media(upstream_headers: httpx.Headers, headers: dict[str, str], lines: list[tuple[bytes, bytes]],
                      bridge: Bridge | None) -> str | None:
        """A stream's media type when its header lines name none (``Reply.media_type``): the caller's dialect's
        events when translated, else the upstream's type (events when it names none); None when the lines name
        one already, the upstream's own (its headers not looked up again)."""
        if bridge is not None:
            return "text/event-stream"
        if "content-type" in headers or b"content-type" in [name for name, _ in lines]:
            return None
        return upstream_headers.get("content-type", "text/event-stream")

    @staticmethod
    def _response_headers(upstream_headers: httpx.Headers, served: str, bridge: Bridge | None = None
                          ) -> dict[str, str]:
        """An answer's header lines for its caller, all as text (the upstream's decoded, filtered, joined and
        masked)."""
        items = latin1_items(upstream_headers.raw)
        named = connection_named(items)
        out = {k: v for k, v in items if k not in DROP_RESPONSE and k not in named}
        if bridge is not None:  # the body is ours now: its type is the caller's dialect's
            out = {k: v for k, v in out.items() if k.lower() != "content-type"}
            out["x-pooltui-translated"] = bridge.label
        joined = "\n".join(out.values())
        if scrub(joined) is not joined:  # one pass over all values; per value only when something was found
            out = {k: _header_value(v) for k, v in out.items()}
        out["x-pooltui-served-by"] = served
        return out

    # ------------------------------------------------------------------ the API
    async def forward(self, request: Caller, api: str) -> Reply:
        """A caller's API request served: its answer (``serve_api`` calls it between the observer's two hooks)."""
        if not self._authorized(request):
            self.stats.refused += 1
            return self._refusal(api, 401, "pooltui proxy: present the proxy token as your API key",
                                 "invalid_api_key")
        client = self.by_family.get(api)
        if client is None:
            return self._refusal(api, 404, f"pooltui proxy: no {api}-style provider is configured", "not_found")
        try:
            path = safe_path(request.raw_path)
        except PathRefused as exc:
            return self._refusal(api, 400, f"pooltui proxy: {exc}", "invalid_request_error")
        query = safe_query(request.query_string.decode("latin-1"))  # Starlette's URL costs more
        body = await request.body(client.max_body_bytes)
        if body is None:
            return self._refusal(api, 413, f"pooltui proxy: request body over {client.max_body_bytes / 2**20:g} MiB",
                                 "request_too_large")
        crosses = translatable(api, path, request.method)
        ups = [up for up in client.upstreams
               if (fam := family_of(up.profile.dialect)) == api or (fam is not None and crosses)]
        # a large body's model and stream flags peeked at, when no pool reads its conversation: parsed whole only if
        # a provider needs it so (another dialect, a model mapped)
        peeked = peek_fields(body, PEEKED) if len(body) >= PEEK_MIN_BYTES and not any(
            up.pool is not None and up.pool.affinity != "off" for up in ups) else None
        parsed = _parsed(body) if peeked is None else None
        fields = peeked if peeked is not None else parsed if isinstance(parsed, dict) else {}
        stream = fields.get("stream") is True
        headers = request.forwarded(self._drop_raw)
        bridges: dict[str, Bridge | None] = {}  # per provider tried: how its answer crosses back

        def build(profile: ProviderProfile) -> ApiRequest:
            nonlocal parsed, peeked
            target = self._upstream_path(profile, path) + (f"?{query}" if query else "")
            if peeked is not None:
                sent = as_it_came(api, profile, request.method, target, peeked.get("model"), headers, stream, body)
                if sent is not None:
                    bridges[profile.name] = None
                    return sent
                parsed, peeked = _parsed(body), None
            req, bridges[profile.name] = upstream_request(
                api, profile, request.method, target, parsed if isinstance(parsed, dict) else None, headers, stream,
                body)
            return req

        try:
            if stream:
                options = fields.get("stream_options")
                include_usage = isinstance(options, dict) and options.get("include_usage") is True
                return await self._stream(client, api, build, ups, bridges, include_usage)
            resp = await client.send(build, upstreams=ups, deadline_s=self.deadline_s)
        except PoolUnavailableError as exc:
            return self._unavailable(api, exc)
        except RequestRefusedError as exc:
            return self._refusal(api, exc.status, str(exc), "invalid_request_error")
        self.observer.answered(resp)
        return self._whole(api, resp, bridges.get(resp.provider))

    def _whole(self, api: str, resp: PoolResponse, bridge: Bridge | None) -> Reply:
        """A provider's whole answer for its caller: in the caller's dialect, scrubbed, its headers relayed."""
        content = resp.content if bridge is None else bridge.answer(resp.status, resp.content)
        self.stats.requests[(api, resp.status)] += 1
        lines, headers = self._reply_headers(resp.headers, f"{resp.provider}/{resp.key}", bridge)
        return Reply(resp.status, headers, self._scrub(resp.status, content), lines=lines)

    def _unavailable(self, api: str, exc: PoolUnavailableError) -> Reply:
        if exc.kind == "deadline":
            return self._refusal(api, 504, f"pooltui: the upstream did not answer in time: {exc}", "timeout")
        if exc.kind == "too_large":
            return self._refusal(api, 502, f"pooltui: {exc}", "upstream_too_large")
        if exc.kind == "unusable":
            return self._refusal(api, 503, f"pooltui: {exc}", "pool_unusable", {"x-should-retry": "false"})
        headers = {}
        if exc.retry_after_s is not None and exc.should_retry:
            headers["retry-after"] = str(max(1, math.ceil(min(exc.retry_after_s, MAX_RETRY_AFTER_S))))
        if not exc.should_retry:
            headers["x-should-retry"] = "false"
        status, kind, said = unavailable_status(api, exc.cause)
        return self._refusal(api, status, f"pooltui: {said} ({exc})", kind, headers)

    async def _stream(self, client: PoolClient, api: str, build, ups, bridges: dict[str, Bridge | None],
                      include_usage: bool) -> Reply:
        stream = await client.open_stream(build, upstreams=ups, deadline_s=self.deadline_s)
        self.observer.served(stream.trace, stream.status)
        bridge = bridges.get(stream.provider)
        if isinstance(stream, PoolResponse):  # a request error: no stream, the answer goes back as it is
            return self._whole(api, stream, bridge)
        translator = bridge.stream(include_usage)() if bridge is not None else None
        self.stats.requests[(api, stream.status)] += 1
        lines, headers = self._reply_headers(stream.headers, f"{stream.provider}/{stream.key}", bridge)
        media = self._stream_media(stream.headers, headers, lines, bridge)
        return Reply(stream.status, headers, media_type=media, body_iterator=RelayedStream(stream, api, translator),
                     lines=lines)

    async def probe(self, request: Request) -> Response:
        """Probes for a local model server (llama.cpp's /props, Ollama's /api/tags and /api/show, /version...)
        that agents such as Hermes send before each prompt: answered here, at once, with a 404. No key is
        spent and nothing waits in the queue, even in a storm."""
        return self._error(OPENAI, 404, f"pooltui proxy: {request.url.path} is not served here (a metadata probe, "
                                        "answered without a key)", "not_found")

    async def model(self, request: Request) -> Response:
        """``GET /v1/models/{id}``: the model, described here (no key spent, never queued)."""
        if not self._authorized(request):
            self.stats.refused += 1
            return self._error(OPENAI, 401, "pooltui proxy: present the proxy token as your API key",
                               "invalid_api_key")
        model_id = request.path_params.get("rest", "")
        if not model_id or len(model_id) > 256 or any(c in model_id for c in "\r\n\x00"):
            return self._error(OPENAI, 400, "pooltui proxy: bad model id", "invalid_request_error")
        if request.headers.get("anthropic-version"):
            body: dict[str, Any] = {"type": "model", "id": model_id, "display_name": model_id,
                                    "created_at": "1970-01-01T00:00:00Z"}
        else:
            body = {"id": model_id, "object": "model", "created": 0, "owned_by": "pooltui"}
        return JSONResponse(body)

    async def models(self, request: Request) -> Response:
        """``GET /v1/models``: the pool's models from the catalog (fetched in the background with a key free at
        the time, else what is known), in the caller's dialect. No key is waited for, even in a storm."""
        anthropic = bool(request.headers.get("anthropic-version"))
        api = ANTHROPIC if anthropic or request.headers.get("x-api-key") else OPENAI
        if not self._authorized(request):
            self.stats.refused += 1
            return self._error(api, 401, "pooltui proxy: present the proxy token as your API key", "invalid_api_key")
        client = self.by_family.get(api) or next(iter(self.by_family.values()), None)
        if client is None:
            return self._error(api, 404, "pooltui proxy: no openai- or anthropic-style provider is configured",
                               "not_found")
        listing = render(await self.catalog.models(client), anthropic)
        self.stats.requests[(api, 200)] += 1
        return Response(scrub_bytes(json.dumps(listing).encode()), 200, media_type="application/json")

    # ------------------------------------------------------------------ observability
    def _keep(self, event: Event) -> None:
        self._events.append((next(self._seq), event))

    def state(self) -> StateView:
        """What the monitor shows, per provider, as plain data (``pooltui --proxy`` attaches to it). No secrets."""
        now = self.clock.now()
        alerts = self.session.capacity_alert
        shown: dict[str, str] = {name: name for name in self.clients}  # every provider in view -> its client
        for name, c in self.clients.items():
            shown.update({up.name: name for up in c.fallbacks if up.name not in shown})
        traces: dict[str, list[TraceView]] = {
            name: [{"request_id": t.request_id, "text": format_trace(t)} for t in list(c.traces)[-20:]]
            for name, c in self.clients.items()}
        return {
            "started": self.stats.started,
            "providers": {name: panel(self.clients[owner], self.series[owner], now, alerts.get(name, 1), name)
                          for name, owner in shown.items()},
            "events": [event_dict(e, seq) for seq, e in list(self._events)[-200:]],
            "traces": {name: traces[owner] for name, owner in shown.items()},
        }

    async def command(self, request: Request) -> Response:
        """Key and pool commands from an attached monitor: toggle, move, strategy, reset, verify."""
        if not self._admin(request):
            return self._admin_refused()
        try:
            cmd = await request.json()
            provider, action = str(cmd["provider"]), str(cmd["action"])
            s = self.session
            if provider not in s.providers:  # a client's own, or a fallback of one
                raise ValueError(f"unknown provider {provider!r}")
            label = cmd.get("label")  # each command names its provider: what the session shows stays as it is
            if action == "toggle":
                result: Any = s.toggle_key(str(label), provider)
            elif action == "move":
                result = s.move(str(label), int(cmd.get("delta", 0)), provider)
            elif action == "strategy":
                strategy = cmd.get("strategy")
                result = s.set_strategy(str(strategy), provider) if strategy else s.cycle_strategy(provider)
            elif action == "reset":
                result = s.reset_cooldowns(str(label) if label else None, provider)
            elif action == "verify":
                found = await s.verify([str(label)] if label else None, provider)
                result = [r.as_dict() for r in found]
            else:
                raise ValueError(f"unknown command {action!r}")
        except (KeyError, ValueError, TypeError) as exc:
            return JSONResponse({"error": scrub(message_of(exc))}, 400)
        return Response(scrub_bytes(json.dumps({"ok": True, "result": result}).encode()), 200,
                        media_type="application/json")

    async def state_endpoint(self, request: Request) -> Response:
        if not self._admin(request):
            return self._admin_refused()
        return Response(scrub_bytes(json.dumps(self.state()).encode()), 200, media_type="application/json")

    async def metrics(self, request: Request) -> Response:
        if not self._admin(request):
            return self._admin_refused()
        from pooltui.proxy.metrics import render

        return Response(scrub_bytes(render(self)), 200, media_type="text/plain; version=0.0.4; charset=utf-8")

    def count_refused(self) -> None:
        self.stats.refused += 1

    def _admin_refused(self) -> Response:
        self.count_refused()
        return JSONResponse({"error": "pooltui proxy: the admin token is required (see `pooltui proxy "
                                      "--show-admin-token`)"}, 401, {"www-authenticate": "Bearer"})

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"ok": True})


#: the API routes served without Starlette's routing and middleware (POST only): path -> the caller's dialect. Every
#: other request (other /v1/... paths, /v1/models, the control endpoints, /metrics) goes to the Starlette app,
#: which routes these paths to the same ``forward``
API_ROUTES: dict[str, str] = {
    "/v1/chat/completions": OPENAI, "/v1/completions": OPENAI, "/v1/embeddings": OPENAI, "/v1/responses": OPENAI,
    "/v1/messages": ANTHROPIC, "/v1/messages/count_tokens": ANTHROPIC,
}


class ApiFront:
    """The proxy's ASGI entry: the API routes (``API_ROUTES``) straight to ``PoolProxy.forward``, everything
    else to the Starlette app. Behind the proxy's own protocol, an API route reaches it only when the exchange
    path (``ApiRoutes``) leaves it: a HEAD, a refused request, HTTP/1.0."""

    def __init__(self, proxy: PoolProxy, app: ASGIApp) -> None:
        self.proxy = proxy
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """The route's own awaitable (no frame of this layer stays on the request's path)."""
        api = API_ROUTES.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if api is None:
            return self.app(scope, receive, send)
        return serve_api(self.proxy, api, scope, receive, send)


class ApiEndpoint:
    """One dialect's API as a Starlette route's ASGI endpoint (the ``/v1/...`` paths not in ``API_ROUTES``)."""

    def __init__(self, proxy: PoolProxy, api: str) -> None:
        self.proxy = proxy
        self.api = api

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        return serve_api(self.proxy, self.api, scope, receive, send)


async def serve_api(proxy: PoolProxy, api: str, scope: Scope, receive: Receive, send: Send) -> None:
    """One API request served and answered as plain ASGI messages (no Starlette Request or Response): errors in
    the caller's dialect, an unforeseen exception a 500 in it (the traceback to the log), as the Starlette app
    would give."""
    started = False
    after = answer_first()  # the accounting of a success once its answer is written (client/after_answer.py)

    async def sent(message: Message) -> None:
        nonlocal started
        started = True
        await send(message)

    try:
        caller, observer = Caller.of_scope(scope, receive), proxy.observer
        # the observer's hooks at the request's start and end, here rather than in a frame of their own around
        # forward: every wake of the request's task resumes each frame it is awaiting through
        watch = await observer.begin(caller, api)
        reply = observer.finish(watch, await proxy.forward(caller, api))
        on_gone = scope.get(GONE_KEY)
        if reply.body_iterator is not None:
            if on_gone is None:  # a server without the proxy's protocol: Starlette watches for the disconnect
                streaming = StreamingResponse(reply.body_iterator, reply.status_code)
                streaming.raw_headers = reply.raw_headers()
                try:
                    await streaming(scope, receive, sent)
                finally:
                    if isinstance(reply.body_iterator, RelayedStream):  # a caller gone: its upstream closes now
                        await reply.body_iterator.stream.aclose()
                    _stream_ended(reply, after)
            else:
                started = True
                cycle = cycle_of(scope)
                await _relay(reply, send, on_gone, lambda: None if cycle is None else
                             ChunkedAnswer.start(cycle, reply.status_code, reply.raw_headers()))
        elif (cycle := cycle_of(scope)) is None or not send_whole(cycle, reply.status_code, reply.raw_headers(),
                                                                  reply.body):
            started = True
            await send(reply.start())
            await send({"type": "http.response.body", "body": reply.body})
    except Exception as exc:
        if not started:
            await _error_response(api, exc)(scope, receive, send)
        raise  # logged by the server, as Starlette's error middleware does
    finally:
        settle_after(after, _log)


async def _relay(reply: Reply, send: Send, on_gone: Callable[[Callable[[], None] | None], None],
                 direct_start: Callable[[], ChunkedAnswer | None]) -> None:
    """A stream to its caller chunk by chunk as they come, without the task Starlette starts per stream to watch
    for a disconnect: the connection calls back when its caller goes, and the relay is cancelled then (the
    upstream stream is closed at once, as Starlette's would be). Its end hook (``Reply.on_end``) runs once its
    end is written, after the stream's own accounting (client/after_answer.py)."""
    task = asyncio.current_task()
    assert task is not None
    gone = False

    def leave() -> None:
        nonlocal gone
        gone = True
        task.cancel()

    on_gone(leave)
    body = reply.body_iterator
    assert body is not None
    after = AFTER_ANSWER.get()
    chunks: AsyncIterator[bytes] | None = None
    try:
        direct = direct_start()
        if direct is not None and isinstance(body, RelayedStream):
            chunks = body.chunks()
            await _relay_pool_stream(body, chunks, direct, after)
        elif direct is not None:  # straight through the connection: no ASGI message per chunk
            chunks = aiter(body)
            async for chunk in chunks:
                await direct.write(chunk)
                if after:  # what the first chunk need not wait for, once it has gone
                    settle_after(after, _log)
            direct.end()
        else:
            chunks = aiter(body)
            await send(reply.start())
            async for chunk in chunks:
                await send({"type": "http.response.body", "more_body": True, "body": chunk})
                if after:
                    settle_after(after, _log)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not gone:
            raise
        task.uncancel()
        closing = getattr(chunks, "aclose", None)
        if closing is not None:  # left at a yield while a send waited: its upstream stream closes now
            await closing()
        if isinstance(body, RelayedStream):  # (closed already, unless its chunks never began)
            await body.stream.aclose()
    finally:
        on_gone(None)
        _stream_ended(reply, after)


async def _relay_pool_stream(body: RelayedStream, chunks: AsyncIterator[bytes], direct: ChunkedAnswer,
                             after: list[Callable[[], object]] | None) -> None:
    """A pool stream's chunks straight through the connection, each translated and scrubbed here (no layer of
    async generator per chunk); the last written with the answer's end when the upstream's answer is known to
    be complete as it is read (one write, and the stream's closing accounting after it), else the end once
    the upstream's is; an upstream that breaks told in-band, then the end."""
    out, stream, ended = body.out, body.stream, False
    try:
        async for chunk in chunks:
            piece = out(chunk)
            if stream.at_end:  # nothing more comes: the caller's answer ends with this chunk
                ended = True
                await direct.last(piece + body.last())
            else:
                await direct.write(piece)
            if after:  # what the first chunk need not wait for, once it has gone
                settle_after(after, _log)
    except Exception as exc:
        if ended:  # the caller has its whole answer: nothing more can go to it
            _log.exception("a stream failed after its end was written")
            return
        await direct.last(body.broke(exc))
        return
    if not ended:
        await direct.last(body.last())


def _stream_ended(reply: Reply, after: list[Callable[[], object]] | None) -> None:
    """A stream's end hook, after what its end deferred (its accounting), or at once without a list."""
    if reply.on_end is not None:
        if after is None:
            reply.on_end()
        else:
            after.append(reply.on_end)


async def serve_exchange(proxy: PoolProxy, exchange: Exchange) -> None:
    """One API request served from the proxy's protocol (proxy/exchange.py), without an ASGI scope, messages or
    cycle: answered as ``serve_api`` answers, an unforeseen exception a 500 in the caller's dialect (the traceback
    to uvicorn's error log, and the connection closes)."""
    api = exchange.api
    after = answer_first()  # the accounting of a success once its answer is written (client/after_answer.py)
    try:
        caller = Caller(exchange.method, exchange.path, exchange.raw_path, exchange.query_string, exchange.headers,
                        exchange)
        observer = proxy.observer
        watch = await observer.begin(caller, api)
        reply = observer.finish(watch, await proxy.forward(caller, api))
        if reply.body_iterator is not None:
            await _relay(reply, exchange.send, exchange.watch_gone,
                         lambda: exchange.chunked(reply.status_code, reply.raw_headers()))
        else:
            await exchange.answer(reply.status_code, reply.raw_headers(), reply.body)
    except Exception as exc:
        _server_log.error("Exception in the proxy's API request\n", exc_info=exc)
        exchange.fail(error_body(api, 500, _internal_message(exc), "internal_error"))
    except BaseException:  # cancelled: nothing more goes to this caller
        exchange.transport.close()
        raise
    finally:
        settle_after(after, _log)


class ApiRoutes:
    """The proxy's front for its protocol (``Front``, proxy/exchange.py): which requests are served on an
    ``Exchange`` (the API routes: a POST to ``API_ROUTES``, or what the Starlette app routes to an
    ``ApiEndpoint``, no HEAD) when the access guard passes them; a refused one goes the ASGI way (the guard
    refuses it there, and counts it)."""

    MAX_ROUTED = 1024  # (method, path) verdicts kept from the Starlette routes

    def __init__(self, proxy: PoolProxy, guard: AccessGuard, routes: list[BaseRoute]) -> None:
        self.proxy = proxy
        self.guard = guard
        self.routes = routes
        self._routed: dict[tuple[str, str], str | None] = {}

    def api(self, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> str | None:
        api = API_ROUTES.get(path) if method == "POST" else None
        if api is None and (api := self._routed.get((method, path), "")) == "":
            api = self._route(method, path)
            if len(self._routed) < self.MAX_ROUTED:
                self._routed[(method, path)] = api
        if api is None or self.guard.check_head(method, headers) is not None:
            return None
        return api

    def _route(self, method: str, path: str) -> str | None:
        """The dialect of the ``ApiEndpoint`` the Starlette app gives this request (its first full match), else
        None."""
        if method == "HEAD":
            return None
        scope = {"type": "http", "method": method, "path": path, "root_path": ""}
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                endpoint = getattr(route, "endpoint", None)
                return endpoint.api if isinstance(endpoint, ApiEndpoint) else None
        return None

    def serve(self, exchange: Exchange) -> Coroutine[Any, Any, None]:
        return serve_exchange(self.proxy, exchange)


def create_proxy_app(proxy: PoolProxy, policy: AccessPolicy | None = None) -> ASGIApp:
    """The proxy's ASGI app; behind the access guard when a policy (the bound port, allowed names) is given."""
    return _front_and_app(proxy, policy)[1]


def _front_and_app(proxy: PoolProxy, policy: AccessPolicy | None) -> tuple[ApiRoutes | None, ASGIApp]:
    """The protocol's front (with a policy) and the ASGI app behind it."""
    routes = _routes(proxy)
    app = ApiFront(proxy, routes)
    if policy is None:
        return None, app
    guard = AccessGuard(app, policy, on_refuse=lambda _why: proxy.count_refused())
    return ApiRoutes(proxy, guard, routes.routes), guard


def _routes(proxy: PoolProxy) -> Starlette:
    routes = [
        Route("/healthz", proxy.healthz, methods=["GET"]),
        Route("/metrics", proxy.metrics, methods=["GET"]),
        Route("/pooltui/state", proxy.state_endpoint, methods=["GET"]),
        Route("/pooltui/command", proxy.command, methods=["POST"]),
        Route("/v1/messages", ApiEndpoint(proxy, ANTHROPIC), methods=["POST"]),
        Route("/v1/messages/count_tokens", ApiEndpoint(proxy, ANTHROPIC), methods=["POST"]),
        Route("/v1/models", proxy.models, methods=["GET"]),
        Route("/v1/models/{rest:path}", proxy.model, methods=["GET"]),
        *(Route(path, proxy.probe, methods=["GET", "POST"]) for path in METADATA_PROBES),
        Route("/v1/{rest:path}", ApiEndpoint(proxy, OPENAI), methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]
    app = Starlette(routes=routes, exception_handlers={Exception: _internal_error})
    app.state.proxy = proxy
    return app


async def _internal_error(request: Request, exc: Exception) -> Response:
    """What a caller gets when something unforeseen broke its request: one error in its dialect (Starlette's
    default is a plain-text 500); the traceback goes to the proxy's log only."""
    return _error_response(ANTHROPIC if request.url.path.startswith("/v1/messages") else OPENAI, exc)


def _internal_message(exc: Exception) -> str:
    return f"pooltui proxy: internal error ({type(exc).__name__}); see the proxy's log"


def _error_response(api: str, exc: Exception) -> Response:
    return Response(error_body(api, 500, _internal_message(exc), "internal_error"), 500,
                    media_type="application/json")


class QuietServer(uvicorn.Server):
    """uvicorn that leaves signal handling to its host (the monitor, or a test)."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def make_server(proxy: PoolProxy, host: str, port: int, *, quiet_signals: bool = False,
                loop: str = "auto") -> tuple[uvicorn.Server, socket.socket]:
    """A uvicorn server for the proxy and its bound socket (port 0 picks a free one)."""
    if not is_loopback(host) and not proxy.token:
        raise ValueError(f"refusing to listen on {host} without --token: anyone who can reach it could spend "
                         "the pool")
    sock = listen(host, port)
    policy = AccessPolicy.build(sock.getsockname()[1], host, proxy.allow_hosts, proxy.allow_origins)
    limits = proxy.client_limits
    front, app = _front_and_app(proxy, policy)
    config = uvicorn.Config(app, host=host, port=sock.getsockname()[1], log_level="warning",
                            access_log=False, lifespan="off", loop=loop, http=limited_protocol(limits, front),
                            # said, not guessed: the front layers hand on their route's awaitable (plain functions)
                            interface="asgi3",
                            # nothing reads the client address or scheme X-Forwarded-* would rewrite: no layer for it
                            proxy_headers=False,
                            # uvicorn types it int; any number of seconds works (it goes to loop.call_later)
                            timeout_keep_alive=limits.idle_timeout_s)  # type: ignore[arg-type]
    server = (QuietServer if quiet_signals else uvicorn.Server)(config)
    return server, sock


class ProxyService:
    """The proxy as a background service inside another asyncio program (the monitor, a test)."""

    def __init__(self, proxy: PoolProxy, host: str = "127.0.0.1", port: int = 8787) -> None:
        self.proxy = proxy
        self.server, self.sock = make_server(proxy, host, port, quiet_signals=True)
        self.host, self.port = self.sock.getsockname()[:2]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def run(self) -> None:
        await self.server.serve(sockets=[self.sock])

    async def stop(self) -> None:
        self.server.should_exit = True
