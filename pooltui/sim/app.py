"""The simulated provider as an ASGI app (Starlette): anthropic Messages and openai Chat Completions.

Each scenario provider is served under ``/{name}``; the primary one also at the root, so an SDK pointed at
``http://127.0.0.1:PORT/v1`` (openai) or ``http://127.0.0.1:PORT`` (anthropic) just works.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from pooltui.core.masking import mask
from pooltui.sim import corpus
from pooltui.sim.limits import ProviderState, SimState, Verdict
from pooltui.sim.prompt_cache import tokens_of
from pooltui.sim.scenario import Scenario, SimKey
from pooltui.sim.shapes import (
    completion,
    error_response,
    models,
    org_header,
    rate_headers,
    sse_events,
    with_stream_fault,
)
from pooltui.sim.tools import plan

_JSON = "application/json"


def _secret(request: Request) -> tuple[str, str | None]:
    """(api flavour implied by the auth header, the secret presented)."""
    headers = request.headers
    key = headers.get("x-api-key")
    if key is not None:
        return "anthropic", key
    auth = headers.get("authorization")
    if auth is not None:
        return "openai", auth[7:].strip() if auth[:7].lower() == "bearer " else auth
    goog = headers.get("x-goog-api-key") or request.query_params.get("key")
    return "openai", goog


def _dump(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


class SimApp:
    """Request handling over a :class:`SimState`."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    def _provider(self, request: Request) -> ProviderState | None:
        name = request.path_params.get("provider")
        return self.state.primary if name is None else self.state.providers.get(name)

    def _error(self, dialect: str, verdict: Verdict, secret: str | None, key: SimKey | None = None) -> Response:
        if verdict.kind == "corpus" and key is not None and key.corpus_case is not None:
            status, replayed, raw = corpus.replay(key.corpus_case)
            return Response(raw, status, replayed)
        echo = secret if key is not None and key.echo_secret else None  # a key planted to leak its secret
        status, body, headers = error_response(dialect, verdict, echo or mask(secret or ""))
        if echo:
            body["error"]["message"] += f" (request made with key {echo})"
            headers["x-sim-echo"] = echo
        if not (key is not None and key.retry_after is not None and verdict.kind == "rate_limited"):
            headers.update(rate_headers(dialect, verdict, self.state.wall()))  # a key's own retry_after comes alone
        headers["x-request-id" if dialect == "openai" else "request-id"] = self._next_id("req")
        if key is not None:
            headers.update(org_header(dialect, key.org_id))
        return Response(_dump(body), status, headers, _JSON)

    @staticmethod
    def _count(ps: ProviderState, key, resp: Response) -> Response:
        """Record the status actually sent for ``key`` (tests compare it with the engine's counters)."""
        if key is not None:
            ps.record(key.label, resp.status_code)
        return resp

    def _next_id(self, prefix: str) -> str:
        self.state.request_seq += 1
        return f"{prefix}_sim_{self.state.request_seq:08d}"

    async def _serve(self, request: Request, dialect: str) -> Response:
        caller = self._caller(request)
        if caller is None:
            return JSONResponse({"error": {"message": "unknown simulated provider", "type": "not_found"}}, 404)
        ps, _, secret, key = caller
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return self._error(dialect, Verdict("bad_request", 400), secret, key)
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or 16
        tokens_out = max(1, min(int(max_tokens) if isinstance(max_tokens, int) else 16, 12))
        tokens_in = max(1, tokens_of(len(raw)))
        verdict = ps.decide(key, model=str(body.get("model") or ""), tokens=(tokens_in, tokens_out))
        delay = ps.latency_s()
        if delay:
            await asyncio.sleep(delay)
        if verdict.kind != "ok":
            return self._count(ps, key, self._error(dialect, verdict, secret, key))
        if key is not None:
            ps.counters[key.label].by_status[200] += 1
        model = str(body.get("model") or "sim-model")
        cache = ps.cache_for(key, model, body) if key is not None else None
        headers = rate_headers(dialect, verdict, self.state.wall()) if ps.spec.success_headers else {}
        req_id = self._next_id("msg" if dialect == "anthropic" else "chatcmpl")
        headers["x-request-id" if dialect == "openai" else "request-id"] = req_id
        if key is not None:
            headers.update(org_header(dialect, key.org_id))
        echo = key is not None and key.echo_secret and secret
        if echo:
            headers["x-sim-echo"] = str(secret)
        answer = plan(dialect, body)
        if body.get("stream"):
            chunks = sse_events(dialect, model, req_id, tokens_in, tokens_out, answer, cache)
            if key is not None and key.stream_fault:
                chunks = with_stream_fault(dialect, chunks, key.stream_fault)
            if echo:  # the key inside a data event, split over two chunks as a network would
                data = _dump({"echo": f"you sent {secret}"})
                cut = data.index(str(secret).encode()) + len(str(secret)) // 2
                chunks = [chunks[0], b"data: " + data[:cut], data[cut:] + b"\n\n", *chunks[1:]]
            return StreamingResponse(_drip(chunks), 200, headers, "text/event-stream")
        whole = completion(dialect, model, req_id, tokens_in, tokens_out, answer, cache)
        if echo:
            whole["echo"] = f"you sent {secret}"
        if key is not None and key.answer_bytes:
            whole["pad"] = "x" * key.answer_bytes
        return Response(_dump(whole), 200, headers, _JSON)

    async def chat_completions(self, request: Request) -> Response:
        return await self._serve(request, "openai")

    async def messages(self, request: Request) -> Response:
        return await self._serve(request, "anthropic")

    def _caller(self, request: Request) -> tuple[ProviderState, str, str | None, SimKey | None] | None:
        """(provider, auth flavour, secret presented, the key it names) or None for an unknown provider."""
        ps = self._provider(request)
        if ps is None:
            return None
        flavour, secret = _secret(request)
        return ps, flavour, secret, ps.by_secret.get(secret or "")

    async def count_tokens(self, request: Request) -> Response:
        caller = self._caller(request)
        if caller is None:
            return JSONResponse({"error": "unknown provider"}, 404)
        ps, _, secret, key = caller
        verdict = ps.decide(key, consume=False)
        if verdict.kind not in ("ok", "rate_limited"):
            return self._error("anthropic", verdict, secret, key)
        raw = await request.body()
        return JSONResponse({"input_tokens": max(1, tokens_of(len(raw)))})

    async def list_models(self, request: Request) -> Response:
        caller = self._caller(request)
        if caller is None:
            return JSONResponse({"error": "unknown provider"}, 404)
        ps, flavour, secret, key = caller
        verdict = ps.decide(key, spend_quota=False)  # listing models spends no daily quota (verify relies on it)
        if verdict.kind not in ("ok", "quota"):  # a key with no credit still lists models
            return self._count(ps, key, self._error(flavour, verdict, secret, key))
        listing, headers = models(flavour), rate_headers(flavour, verdict, self.state.wall())
        if key is not None:
            headers.update(org_header(flavour, key.org_id))
        if key is not None and key.echo_secret and secret:
            listing["echo"], headers["x-sim-echo"] = f"you sent {secret}", secret
        resp = Response(_dump(listing), 200, headers, _JSON)
        return self._count(ps, key, resp)

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.state.stats())

    def _on_key(self, request: Request, action: str) -> Response:
        """Apply a test hook (``revoke`` or ``restore``) to the key the path names."""
        ps = self.state.providers.get(request.path_params["provider"])
        label = request.path_params["label"]
        if ps is None or label not in ps.counters:
            return JSONResponse({"error": "no such provider or key"}, 404)
        getattr(ps, action)(label)
        return JSONResponse({f"{action}d": label})

    async def revoke(self, request: Request) -> Response:
        return self._on_key(request, "revoke")

    async def restore(self, request: Request) -> Response:
        """Top-up and permission restored: the key's quota, revocation and 403 are lifted."""
        return self._on_key(request, "restore")

    async def outage(self, request: Request) -> Response:
        ps = self.state.providers.get(request.path_params["provider"])
        if ps is None:
            return JSONResponse({"error": "no such provider"}, 404)
        status = request.query_params.get("status", "off")
        ps.outage_override = None if status == "off" else int(status)
        return JSONResponse({"outage": ps.outage_override})


async def _drip(chunks: list[bytes]):
    for i, chunk in enumerate(chunks):
        yield chunk
        if i % 4 == 3:
            await asyncio.sleep(0)


def create_app(scenario: Scenario, state: SimState | None = None) -> Starlette:
    """The simulator's ASGI app for ``scenario``; its state is at ``app.state.sim``."""
    sim = SimApp(state or SimState(scenario))
    routes = []
    for prefix in ("", "/{provider}"):
        routes += [
            Route(prefix + "/v1/chat/completions", sim.chat_completions, methods=["POST"]),
            Route(prefix + "/v1/messages", sim.messages, methods=["POST"]),
            Route(prefix + "/v1/messages/count_tokens", sim.count_tokens, methods=["POST"]),
            Route(prefix + "/v1/models", sim.list_models, methods=["GET"]),
        ]
    routes = [
        Route("/_sim/stats", sim.stats, methods=["GET"]),
        Route("/_sim/revoke/{provider}/{label}", sim.revoke, methods=["POST"]),
        Route("/_sim/restore/{provider}/{label}", sim.restore, methods=["POST"]),
        Route("/_sim/outage/{provider}", sim.outage, methods=["POST"]),
        *routes,
    ]
    app = Starlette(routes=routes)
    app.state.sim = sim.state
    return app
