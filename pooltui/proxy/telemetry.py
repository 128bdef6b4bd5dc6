"""OpenTelemetry traces of the proxy's requests (the ``otel`` extra; imported only when tracing is on).

One SERVER span per caller request, named ``{gen_ai.operation.name} {gen_ai.request.model}``, continuing the
caller's ``traceparent``; one CLIENT child span per upstream attempt, built when the request ends from the
engine's own record of it (core/trace.py) in the export thread, and written as OTLP protobuf directly
(otlp_wire.py): on the request's path tracing is a sampling decision and a queue append. Attributes follow
the GenAI semantic conventions (``gen_ai.*``); pooltui's own go under ``pooltui.*``. Key labels only, never a
secret; prompt and completion text only with ``capture_content`` (and scrubbed even then).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pooltui.core.masking import scrub
from pooltui.core.trace import Step
from pooltui.providers.profiles import ProviderProfile
from pooltui.proxy import otlp_wire
from pooltui.proxy.batching import BatchThread
from pooltui.proxy.logs import OPERATIONS as OPERATIONS_LOG
from pooltui.store.telemetry import TelemetryConfig

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from pooltui.proxy.observe import RequestWatch

#: the GenAI conventions' provider names, by wire dialect
PROVIDER_NAMES = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini"}
#: the conventions' operation names, by path
OPERATIONS = {"/v1/chat/completions": "chat", "/v1/messages": "chat", "/v1/completions": "text_completion",
              "/v1/embeddings": "embeddings", "/v1/responses": "chat"}
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

AttrValue = otlp_wire.AttrValue
QUEUED_BODY_MAX = 64 * 1024  # a larger response is read on the request's path, not held until its spans are built


def wanted(config: TelemetryConfig | None, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether tracing is on: an endpoint in ``[telemetry]`` or in the standard variables, and the SDK not
    disabled (``OTEL_SDK_DISABLED=true``, ``OTEL_TRACES_EXPORTER=none``)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return bool((config is not None and config.endpoint) or any(environ.get(v) for v in ENDPOINT_VARIABLES))


def latest_conventions(environ: Mapping[str, str] = os.environ) -> bool:
    """``OTEL_SEMCONV_STABILITY_OPT_IN`` names ``gen_ai_latest_experimental``: the older ``gen_ai.system`` is
    left out (``gen_ai.provider.name`` is always there)."""
    return "gen_ai_latest_experimental" in {
        part.strip() for part in environ.get("OTEL_SEMCONV_STABILITY_OPT_IN", "").split(",")}


_F = otlp_wire.Field
OPERATION, REQUEST_MODEL, URL_PATH = _F("gen_ai.operation.name"), _F("gen_ai.request.model"), _F("url.path")
STATUS, PROVIDER, KEY = _F("http.response.status_code"), _F("pooltui.provider"), _F("pooltui.key")
ATTEMPTS, QUEUE_WAIT, FALLBACK = _F("pooltui.attempts"), _F("pooltui.queue_wait_ms"), _F("pooltui.fallback")
TRANSLATION, OUTCOME = _F("pooltui.translation"), _F("pooltui.outcome")
REQUEST_ID = _F("pooltui.request_id", cache=False)  # one per request: never seen again
PROVIDER_NAME, SYSTEM, COST = _F("gen_ai.provider.name"), _F("gen_ai.system"), _F("pooltui.cost")
SERVER_ADDRESS, SERVER_PORT = _F("server.address"), _F("server.port")
INPUT_TOKENS, OUTPUT_TOKENS = _F("gen_ai.usage.input_tokens"), _F("gen_ai.usage.output_tokens")
CACHE_READ, CACHE_WRITE = _F("gen_ai.usage.cache_read.input_tokens"), _F("gen_ai.usage.cache_creation.input_tokens")
# what the answer said: scrubbed (a value is scrubbed once when it repeats)
RESPONSE_MODEL = _F("gen_ai.response.model", clean=scrub)
RESPONSE_ID = _F("gen_ai.response.id", cache=False, clean=scrub)
FINISH_REASONS = _F("gen_ai.response.finish_reasons", clean=scrub)
ATTEMPT_OUTCOME = _F("pooltui.attempt.outcome")
ATTEMPT_REASON = _F("pooltui.attempt.reason", cache=False, clean=scrub)
PICK_CANDIDATES, PICK_EXCLUDED = _F("pooltui.pick.candidates"), _F("pooltui.pick.excluded")
PICK_LEARNED = _F("pooltui.pick.learned", cache=False)


def ns(seconds: float) -> int:
    return int(seconds * 1e9)


@dataclass(slots=True)
class Pending:
    """A sampled request waiting for the export thread: its spans are built and encoded there."""

    watch: RequestWatch
    content: bytes | dict[str, Any] | None  # with content capture: the caller's answer (a large one: its summary)
    ended: float
    trace_id: int
    parent_id: int  # the caller's span, 0 if none
    parent_remote: bool
    trace_state: str


class Tracing:
    """Spans of the proxy's requests exported over OTLP/HTTP in batches by the official exporter's HTTP client
    (endpoint, headers, compression, timeout and retries from ``[telemetry]`` and the ``OTEL_*`` variables).

    On the request's path: the sampler's decision and a queue append. In the export thread: the spans, built
    from the request's record and written as OTLP protobuf in one pass (otlp_wire.py), with no SDK span object
    and no per-attribute message."""

    def __init__(self, config: TelemetryConfig | None = None, *, environ: Mapping[str, str] = os.environ) -> None:
        from opentelemetry.context import Context
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider, sampling
        from opentelemetry.trace import SpanKind
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        from pooltui import __version__

        config = config or TelemetryConfig()
        self.capture_content = config.capture_content
        self.propagate_upstream = config.propagate_upstream
        self.latest = latest_conventions(environ)
        attrs: dict[str, str] = {"service.version": __version__}
        if not environ.get("OTEL_SERVICE_NAME"):
            attrs["service.name"] = config.service_name
        # the provider holds the resource (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME), the sampler
        # (OTEL_TRACES_SAMPLER) and the id generator; no span goes through it
        self.provider: TracerProvider = TracerProvider(resource=Resource.create(attrs), shutdown_on_exit=False)
        resource = self.provider.resource
        self._resource = otlp_wire.resource(dict(resource.attributes))  # type: ignore[arg-type]
        self._schema_url = resource.schema_url
        self._scope = otlp_wire.scope("pooltui.proxy", __version__)
        # an endpoint from the config is the OTLP base URL; without one the exporter reads the OTEL_* variables
        self.exporter = OTLPSpanExporter(endpoint=f"{config.endpoint}/v1/traces" if config.endpoint else None)
        # the batch delay: the config's, else OTEL_BSP_SCHEDULE_DELAY, else the SDK's 5 s
        delay_ms = config.schedule_delay_ms or _whole(environ, "OTEL_BSP_SCHEDULE_DELAY", 5000)
        self.batches: BatchThread[Pending] = BatchThread(
            self._send, delay_s=delay_ms / 1000, name="pooltui-otlp",
            max_batch=_whole(environ, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512),
            max_queue=_whole(environ, "OTEL_BSP_MAX_QUEUE_SIZE", 2048))
        self._server = SpanKind.SERVER
        self._propagator = TraceContextTextMapPropagator()
        self._no_context = Context()
        self._names: dict[tuple[str, str], tuple[str, str, bytes]] = {}  # by (path, model): see _named
        self._upstreams: dict[str, tuple[str, bytes, bytes]] = {}  # by provider: see _upstream_blocks
        ids = self.provider.id_generator
        self._new_trace_id, self._new_span_id = ids.generate_trace_id, ids.generate_span_id
        # the default sampler (parent-based, else always) or always: a request with no caller context is sampled
        self._root_sampled = self.provider.sampler in (sampling.DEFAULT_ON, sampling.ALWAYS_ON)
        self.profiles: dict[str, ProviderProfile] = {}  # every upstream's, by provider name (the proxy's observer)
        self._closed = False
        atexit.register(self.shutdown)  # the last spans go before the process ends, however it ends

    def flush(self, timeout_s: float = 10.0) -> bool:
        return self.batches.flush(timeout_s)

    def shutdown(self) -> None:
        """Send the spans still queued, then close the exporter (once)."""
        if self._closed:
            return
        self._closed = True
        self.batches.shutdown()
        self.exporter.shutdown()
        self.provider.shutdown()
        atexit.unregister(self.shutdown)

    def export(self, watch: RequestWatch, body: bytes | None, ended: float) -> str:
        """Queue the request's spans for export; returns the trace id (32 hex digits). ``body``: the answer as the
        caller got it, only when content capture is on.

        The configured sampler (``OTEL_TRACES_SAMPLER``; by default the caller's sampled flag, else always)
        decides here, once per request; a request not sampled costs nothing more. With no caller context and
        the default sampler the decision is known without asking it."""
        if not watch.carrier and self._root_sampled:
            trace_id = self._new_trace_id()
            self.batches.put(Pending(watch, self._content_of(body), ended, trace_id, 0, False, ""))
            return f"{trace_id:032x}"
        from opentelemetry.trace import get_current_span

        operation, name, _ = self._named(watch.path, watch.model or "")
        if watch.carrier:
            parent_context = self._propagator.extract(watch.carrier)
            parent = get_current_span(parent_context).get_span_context()
            valid = parent.is_valid
        else:
            parent_context, parent, valid = self._no_context, None, False
        trace_id = parent.trace_id if valid and parent is not None else self._new_trace_id()
        decision = self.provider.sampler.should_sample(
            parent_context, trace_id, name, self._server,
            {"gen_ai.operation.name": operation, "gen_ai.request.model": watch.model or ""})
        if decision.decision.is_sampled():
            state = ",".join(f"{k}={v}" for k, v in decision.trace_state.items()) if decision.trace_state else ""
            self.batches.put(Pending(watch, self._content_of(body), ended, trace_id,
                                     parent.span_id if valid and parent else 0,
                                     bool(valid and parent and parent.is_remote), state))
        return f"{trace_id:032x}"

    def _content_of(self, body: bytes | None) -> bytes | dict[str, Any] | None:
        """What content capture keeps of the caller's answer until the spans are built (nothing without it)."""
        if body is None or not self.capture_content:
            return None
        if len(body) > QUEUED_BODY_MAX:  # not held while queued: only what spans show
            return _summary(_json(body))
        return body

    def _send(self, batch: list[Pending]) -> None:
        """In the export thread: one OTLP request for the batch, through the official exporter's client."""
        spans: list[bytes] = []
        for pending in batch:
            try:
                spans += [otlp_wire.span(record) for record in self.spans_of(pending)]
            except Exception:  # one request's odd record costs its own spans, not the batch's
                logging.getLogger(OPERATIONS_LOG).exception("a request's spans not built")
        body = otlp_wire.export_request(self._resource, self._scope, spans, self._schema_url or "")
        self.exporter._client.export(body)  # the exporter's own retries, headers, compression; it logs failures

    def _named(self, path: str, model: str) -> tuple[str, str, bytes]:
        """(operation, span name, its encoded operation and model attributes) of a path and model."""
        known = self._names.get((path, model))
        if known is None:
            if len(self._names) >= otlp_wire.CACHED_MAX:
                self._names.clear()
            operation = OPERATIONS.get(path, path.rsplit("/", 1)[-1] or "request")
            known = self._names[(path, model)] = (
                operation, f"{operation} {model}".strip(),
                OPERATION.of_str(operation) + (REQUEST_MODEL.of_str(model) if model else b""))
        return known

    def spans_of(self, pending: Pending) -> list[otlp_wire.SpanRecord]:
        """The request's SERVER span and a CLIENT span per upstream attempt, with the request's steps and engine
        events as the server span's events: attributes written straight to OTLP bytes from what the request's
        path recorded (its watch, the engine's trace), nothing parsed again."""
        watch, trace_id, state = pending.watch, pending.trace_id, pending.trace_state
        _, name, named = self._named(watch.path, watch.model or "")
        new_id = self._new_span_id
        server_id = new_id()
        served_ok = watch.status < 400
        content = _json(pending.content) if isinstance(pending.content, bytes) else pending.content
        spans: list[otlp_wire.SpanRecord] = []
        events: list[tuple[float, str, dict[str, AttrValue]]] = []
        steps = watch.trace.steps if watch.trace is not None else []
        served_at, attempts, fell_back = -1, 0, False
        for i, step in enumerate(steps):
            if step.kind == "attempt":
                served_at, attempts = i, attempts + 1
            elif step.kind == "fallback":
                fell_back = True
        pick: Step | None = None
        for i, step in enumerate(steps):
            kind = step.kind
            if kind == "pick":
                pick = step
                if step.key is not None:
                    continue  # a key was picked: its attempt's span says why (pooltui.pick.*)
            if kind != "attempt":
                events.append((step.ts, kind, _step_attrs(step)))
                continue
            d = step.detail
            status = d.get("status")
            failed = not isinstance(status, int) or status >= 400
            latency = float(d.get("latency_ms") or 0.0) / 1000
            outcome = str(d.get("outcome") or "")
            attrs = [named, self._upstream_blocks(step.provider)[0], KEY.of_str(step.key) if step.key else b"",
                     ATTEMPT_OUTCOME.of_str(outcome) if outcome else b""]
            if outcome != "ok" and d.get("reason"):
                attrs.append(ATTEMPT_REASON.of_str(str(d["reason"])))
            if isinstance(status, int):
                attrs.append(STATUS.of_int(status))
            if pick is not None and pick.key == step.key:
                attrs.append(_pick_fields(pick))
            if i == served_at and served_ok:
                attrs.append(self._answer_fields(watch, True))
            spans.append(otlp_wire.SpanRecord(
                trace_id, new_id(), server_id, name, otlp_wire.SPAN_KIND_CLIENT, int((step.ts - latency) * 1e9),
                int(step.ts * 1e9),
                b"".join(attrs), error=outcome if failed else None, trace_state=state))
            pick = None
        for event in watch.events:
            events.append((event.ts, event.change.value if event.change else event.kind.value, _drop_empty({
                "pooltui.provider": event.provider, "pooltui.key": event.key or "", "pooltui.status": event.status,
                "pooltui.reason": scrub(event.reason), "pooltui.action": scrub(event.action)})))
        events.sort(key=lambda e: e[0])
        fields = self._request_fields(watch, named, served_at >= 0 and served_ok, attempts, fell_back)
        if content is not None:
            fields += otlp_wire.attributes(b"\x4a", _content(watch.body, content))
        failed = watch.status >= 500 or watch.outcome == "error"
        spans.append(otlp_wire.SpanRecord(
            trace_id, server_id, pending.parent_id, name, otlp_wire.SPAN_KIND_SERVER, int(watch.started * 1e9),
            int(pending.ended * 1e9), fields, [(ns(ts), what, a) for ts, what, a in events],
            error=f"http {watch.status}" if failed else None, trace_state=state,
            parent_remote=pending.parent_remote))
        return spans

    def _request_fields(self, watch: RequestWatch, named: bytes, answered: bool, attempts: int, fell_back: bool
                        ) -> bytes:
        """The server span's attributes, encoded."""
        trace = watch.trace
        provider, key = watch.served
        attrs = [named, URL_PATH.of_str(watch.path), STATUS.of_int(watch.status),
                 ATTEMPTS.of_int(attempts), QUEUE_WAIT.of_float(round(watch.queue_wait_ms, 1))]
        if provider:
            attrs.append(PROVIDER.of_str(provider))
        if key:
            attrs.append(KEY.of_str(key))
        if trace is not None:
            fallback = watch.fallback if fell_back else ""
            if fallback:
                attrs.append(FALLBACK.of_str(fallback))
            if trace.steps:
                attrs.append(self._upstream_blocks(trace.steps[0].provider)[1])
            attrs.append(REQUEST_ID.of_int(trace.request_id))  # as the inspector and `traffic --trace` show it
        if watch.translated:
            attrs.append(TRANSLATION.of_str(watch.translated))
        if watch.outcome:
            attrs.append(OUTCOME.of_str(watch.outcome))
        attrs.append(self._answer_fields(watch, False) if answered else _token_fields(watch))
        if watch.cost:
            attrs.append(COST.of_float(round(watch.cost, 6)))
        return b"".join(attrs)

    def _answer_fields(self, watch: RequestWatch, served: bool) -> bytes:
        """Tokens (cache tokens too), the response's model; for the attempt that ``served``, its id and finish
        reasons too: from what the request's path already read of the answer (observe.AnswerFacts)."""
        out = _token_fields(watch)
        facts = watch.answer
        if facts is None:
            return out
        if facts.model:
            out += RESPONSE_MODEL.of_str(facts.model)
        if served:
            if facts.id:
                out += RESPONSE_ID.of_str(facts.id)
            if facts.finish_reasons:
                out += FINISH_REASONS.of_strs(facts.finish_reasons)
        return out

    def _upstream_blocks(self, provider: str) -> tuple[bytes, bytes]:
        """A provider's attributes encoded once (again if its base URL changed): an attempt's (pooltui.provider,
        gen_ai.provider.name, server.address and port) and a request's (gen_ai.provider.name)."""
        profile = self.profiles.get(provider)
        url = profile.base_url if profile is not None else ""
        known = self._upstreams.get(provider)
        if known is None or known[0] != url:
            dialect = b""
            if profile is not None:
                dialect = b"".join(PROVIDER_NAME.of_str(v) if k == "gen_ai.provider.name" else SYSTEM.of_str(v)
                                   for k, v in self._provider_attrs(profile.dialect).items())
            attempt = (PROVIDER.of_str(provider) if provider else b"") + dialect
            if profile is not None:
                parsed = urlsplit(profile.base_url)
                if parsed.hostname:
                    attempt += SERVER_ADDRESS.of_str(parsed.hostname)
                if parsed.port:
                    attempt += SERVER_PORT.of_int(parsed.port)
            known = self._upstreams[provider] = (url, attempt, dialect)
        return known[1], known[2]

    def _provider_attrs(self, dialect: str) -> dict[str, str]:
        name = PROVIDER_NAMES.get(dialect, dialect)
        return {"gen_ai.provider.name": name} if self.latest else {"gen_ai.provider.name": name,
                                                                   "gen_ai.system": name}


def _whole(environ: Mapping[str, str], name: str, default: int) -> int:
    """A positive whole number from the environment, else ``default`` (as the SDK reads its OTEL_BSP_*)."""
    try:
        value = int(environ.get(name, "").strip() or default)
    except ValueError:
        return default
    return value if value > 0 else default

def _content(body: bytes | None, answer: dict[str, Any] | None) -> dict[str, AttrValue]:
    """Prompt and completion text (opt-in), scrubbed of every known secret."""
    out: dict[str, AttrValue] = {}
    asked = _json(body) if body else None
    if asked is not None:
        said = [m for m in asked.get("messages") or [] if isinstance(m, dict)]
        if asked.get("system"):
            out["gen_ai.system_instructions"] = scrub(json.dumps(asked["system"]))
        out["gen_ai.input.messages"] = scrub(json.dumps(said))
    if answer is not None:
        if isinstance(answer.get("choices"), list):  # openai
            shown: Any = [c.get("message") for c in answer["choices"] if isinstance(c, dict)]
        else:  # anthropic
            shown = [{"role": "assistant", "content": answer.get("content")}]
        out["gen_ai.output.messages"] = scrub(json.dumps(shown))
    return out


def _summary(answer: dict[str, Any] | None) -> dict[str, Any] | None:
    """What content capture shows of a large answer (its choices or content)."""
    if answer is None:
        return None
    return {k: answer[k] for k in ("choices", "content") if k in answer}


def _json(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _token_fields(watch: RequestWatch) -> bytes:
    """Tokens the request's usage records counted (input includes cache reads and writes, as the conventions
    ask), and the cache's when there were any."""
    tokens_in, tokens_out, read, written = watch.tokens_in, watch.tokens_out, watch.cache_read, watch.cache_write
    said = watch.answer.usage if watch.answer is not None else None
    if said is not None and not (tokens_in or tokens_out):  # an answer the client did not read: its own word
        tokens_in, tokens_out, read, written = said.input, said.output, said.cache_read, said.cache_write
    out = b""
    if tokens_in or tokens_out:
        out = INPUT_TOKENS.of_int(tokens_in) + OUTPUT_TOKENS.of_int(tokens_out)
    if read:
        out += CACHE_READ.of_int(read)
    if written:
        out += CACHE_WRITE.of_int(written)
    return out


def _excluded(detail: dict[str, Any]) -> list[str]:
    """The keys a pick passed over, and why."""
    return [f"{e.label} {e.state}" + (f" ({scrub(e.reason)})" if e.reason else "")
            for e in detail.get("excluded") or ()]


def _pick_fields(pick: Step) -> bytes:
    """Why this key, encoded: the candidates, the keys passed over and why, a learnt limit's pacing."""
    d = pick.detail
    out = PICK_CANDIDATES.of_int(d.get("candidates") or 0)
    if d.get("excluded"):
        out += PICK_EXCLUDED.of_any(_excluded(d))
    if d.get("learned"):
        out += PICK_LEARNED.of_str(str(d["learned"]))
    return out


def _pick_attrs(pick: Step) -> dict[str, Any]:
    """Why this key: the candidates, the keys passed over and why, a learnt limit's pacing."""
    d = pick.detail
    out: dict[str, Any] = {"pooltui.pick.candidates": d.get("candidates") or 0}
    if d.get("excluded"):
        out["pooltui.pick.excluded"] = _excluded(d)
    if d.get("learned"):
        out["pooltui.pick.learned"] = str(d["learned"])
    return out


def _step_attrs(step: Step) -> dict[str, AttrValue]:
    d = step.detail
    attrs: dict[str, Any] = {"pooltui.provider": step.provider, "pooltui.key": step.key or "",
                             "pooltui.reason": scrub(str(d.get("reason") or ""))}
    if isinstance(d.get("seconds"), float | int):
        attrs["pooltui.seconds"] = round(float(d["seconds"]), 3)
    if d.get("from"):
        attrs["pooltui.from"] = str(d["from"])
    if step.kind == "pick":
        attrs.update(_pick_attrs(step))
    return _drop_empty(attrs)


def _drop_empty(attrs: dict[str, Any]) -> dict[str, AttrValue]:
    return {k: v for k, v in attrs.items() if v is not None and v != "" and v != []}
