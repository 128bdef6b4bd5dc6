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


def ns(seconds: float) -> int:
    return int(seconds * 1e9)


@dataclass(slots=True)
class Pending:
    """A sampled request waiting for the export thread: its spans are built and encoded there."""

    watch: RequestWatch
    answer: bytes | dict[str, Any] | None  # the response's body, or what the spans need of a large one
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
        from opentelemetry.sdk.trace import TracerProvider
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
        self._servers: dict[str, dict[str, AttrValue]] = {}  # server.address/port, by provider
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
        """Queue the request's spans for export; returns the trace id (32 hex digits).

        The configured sampler (``OTEL_TRACES_SAMPLER``; by default the caller's sampled flag, else always)
        decides here, once per request; a request not sampled costs nothing more."""
        from opentelemetry.trace import get_current_span

        operation = OPERATIONS.get(watch.path, watch.path.rsplit("/", 1)[-1] or "request")
        model = watch.model or ""
        if watch.carrier:
            parent_context = self._propagator.extract(watch.carrier)
            parent = get_current_span(parent_context).get_span_context()
            valid = parent.is_valid
        else:
            parent_context, parent, valid = self._no_context, None, False
        trace_id = parent.trace_id if valid and parent is not None else self.provider.id_generator.generate_trace_id()
        decision = self.provider.sampler.should_sample(
            parent_context, trace_id, f"{operation} {model}".strip(), self._server,
            {"gen_ai.operation.name": operation, "gen_ai.request.model": model})
        if decision.decision.is_sampled():
            state = ",".join(f"{k}={v}" for k, v in decision.trace_state.items()) if decision.trace_state else ""
            answer: bytes | dict[str, Any] | None = body
            if body is not None and len(body) > QUEUED_BODY_MAX:  # not held while queued: only what spans show
                answer = _summary(_json(body), self.capture_content)
            self.batches.put(Pending(watch, answer, ended, trace_id, parent.span_id if valid and parent else 0,
                                     bool(valid and parent and parent.is_remote), state))
        return f"{trace_id:032x}"

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

    def spans_of(self, pending: Pending) -> list[otlp_wire.SpanRecord]:
        """The request's SERVER span and a CLIENT span per upstream attempt, with the request's steps and engine
        events as the server span's events."""
        watch, trace_id, state = pending.watch, pending.trace_id, pending.trace_state
        operation = OPERATIONS.get(watch.path, watch.path.rsplit("/", 1)[-1] or "request")
        model = watch.model or ""
        name = f"{operation} {model}".strip()
        new_id = self.provider.id_generator.generate_span_id
        server_id = new_id()
        answer = _json(pending.answer) if isinstance(pending.answer, bytes) else pending.answer
        attrs = self._request_attrs(watch, operation, answer)
        if self.capture_content:
            attrs.update(_content(watch.body, answer))
        spans: list[otlp_wire.SpanRecord] = []
        events: list[tuple[float, str, dict[str, AttrValue]]] = []
        steps = watch.trace.steps if watch.trace is not None else []
        served_at = max((i for i, s in enumerate(steps) if s.kind == "attempt"), default=-1)
        pick: Step | None = None
        for i, step in enumerate(steps):
            if step.kind == "pick":
                pick = step
                if step.key is not None:
                    continue  # a key was picked: its attempt's span says why (pooltui.pick.*)
            if step.kind != "attempt":
                events.append((step.ts, step.kind, _step_attrs(step)))
                continue
            status = step.detail.get("status")
            failed = not isinstance(status, int) or status >= 400
            latency = float(step.detail.get("latency_ms") or 0.0) / 1000
            served = i == served_at
            spans.append(otlp_wire.SpanRecord(
                trace_id, new_id(), server_id, name, otlp_wire.SPAN_KIND_CLIENT, ns(step.ts - latency), ns(step.ts),
                self._attempt_attrs(step, pick, operation, model, answer if served else None,
                                    watch.status if served else None),
                error=str(step.detail.get("outcome") or "") if failed else None, trace_state=state))
            pick = None
        for event in watch.events:
            events.append((event.ts, event.change.value if event.change else event.kind.value, _drop_empty({
                "pooltui.provider": event.provider, "pooltui.key": event.key or "", "pooltui.status": event.status,
                "pooltui.reason": scrub(event.reason), "pooltui.action": scrub(event.action)})))
        events.sort(key=lambda e: e[0])
        failed = watch.status >= 500 or watch.outcome == "error"
        spans.append(otlp_wire.SpanRecord(
            trace_id, server_id, pending.parent_id, name, otlp_wire.SPAN_KIND_SERVER, ns(watch.started),
            ns(pending.ended), attrs, [(ns(ts), what, a) for ts, what, a in events],
            error=f"http {watch.status}" if failed else None, trace_state=state,
            parent_remote=pending.parent_remote))
        return spans

    def _request_attrs(self, watch: RequestWatch, operation: str, answer: dict[str, Any] | None
                       ) -> dict[str, AttrValue]:
        provider, key = watch.served
        profile = None
        if watch.trace is not None and watch.trace.steps:
            profile = self._profile_of(watch.trace.steps[0].provider)
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": operation, "gen_ai.request.model": watch.model or "",
            "url.path": watch.path, "http.response.status_code": watch.status,
            "pooltui.provider": provider, "pooltui.key": key, "pooltui.attempts": watch.attempts,
            "pooltui.queue_wait_ms": round(watch.queue_wait_ms, 1), "pooltui.fallback": watch.fallback,
            "pooltui.translation": watch.translated or "", "pooltui.outcome": watch.outcome,
        }
        if profile is not None:
            attrs.update(self._provider_attrs(profile.dialect))
        if watch.trace is not None:
            attrs["pooltui.request_id"] = watch.trace.request_id  # as the inspector and `traffic --trace` show it
        attrs.update(_usage_attrs(answer, watch.tokens_in, watch.tokens_out, served=False))
        if watch.cost:
            attrs["pooltui.cost"] = round(watch.cost, 6)
        return _drop_empty(attrs)

    def _attempt_attrs(self, step: Step, pick: Step | None, operation: str, model: str,
                       answer: dict[str, Any] | None, caller_status: int | None) -> dict[str, AttrValue]:
        d = step.detail
        attrs: dict[str, Any] = {"gen_ai.operation.name": operation, "gen_ai.request.model": model,
                                 "pooltui.provider": step.provider, "pooltui.key": step.key or "",
                                 "pooltui.attempt.outcome": d.get("outcome") or ""}
        if d.get("outcome") != "ok" and d.get("reason"):
            attrs["pooltui.attempt.reason"] = scrub(str(d["reason"]))
        if isinstance(d.get("status"), int):
            attrs["http.response.status_code"] = d["status"]
        profile = self._profile_of(step.provider)
        if profile is not None:
            attrs.update(self._provider_attrs(profile.dialect))
            attrs.update(self._server_of(step.provider, profile))
        if pick is not None and pick.key == step.key:
            attrs.update(_pick_attrs(pick))
        if answer is not None and caller_status is not None and caller_status < 400:
            attrs.update(_usage_attrs(answer, 0, 0))
        return _drop_empty(attrs)

    def _provider_attrs(self, dialect: str) -> dict[str, str]:
        name = PROVIDER_NAMES.get(dialect, dialect)
        return {"gen_ai.provider.name": name} if self.latest else {"gen_ai.provider.name": name,
                                                                   "gen_ai.system": name}

    def _profile_of(self, provider: str) -> ProviderProfile | None:
        return self.profiles.get(provider)

    def _server_of(self, provider: str, profile: ProviderProfile) -> dict[str, AttrValue]:
        """``server.address`` and ``server.port`` of a provider's base URL (parsed once)."""
        known = self._servers.get(provider)
        if known is None or known.get("url") != profile.base_url:
            url = urlsplit(profile.base_url)
            known = self._servers[provider] = {"url": profile.base_url, "server.address": url.hostname or ""}
            if url.port:
                known["server.port"] = url.port
        return {k: v for k, v in known.items() if k != "url"}


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


def _summary(answer: dict[str, Any] | None, content: bool) -> dict[str, Any] | None:
    """What the spans read of a response (model, id, usage, finish reasons; the text only with ``content``)."""
    if answer is None:
        return None
    out: dict[str, Any] = {k: answer[k] for k in ("model", "id", "usage", "stop_reason") if k in answer}
    if isinstance(answer.get("choices"), list):
        out["choices"] = [c if content else {"finish_reason": c.get("finish_reason")}
                          for c in answer["choices"] if isinstance(c, dict)]
    if content and "content" in answer:
        out["content"] = answer["content"]
    return out


def _json(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _usage_attrs(answer: dict[str, Any] | None, tokens_in: int, tokens_out: int, served: bool = True
                 ) -> dict[str, Any]:
    """Tokens (cache tokens where the answer states them) and the response's model; for the attempt that
    ``served``, its id and finish reasons too."""
    out: dict[str, Any] = {}
    if tokens_in or tokens_out:
        out["gen_ai.usage.input_tokens"], out["gen_ai.usage.output_tokens"] = tokens_in, tokens_out
    if answer is None:
        return out
    if isinstance(answer.get("model"), str):
        out["gen_ai.response.model"] = answer["model"]
    if served and isinstance(answer.get("id"), str):
        out["gen_ai.response.id"] = answer["id"]
    usage = answer.get("usage")
    if isinstance(usage, dict):
        tin = usage.get("input_tokens", usage.get("prompt_tokens"))
        tout = usage.get("output_tokens", usage.get("completion_tokens"))
        if isinstance(tin, int) and isinstance(tout, int):
            out["gen_ai.usage.input_tokens"], out["gen_ai.usage.output_tokens"] = tin, tout
        details = usage.get("prompt_tokens_details")
        read = usage.get("cache_read_input_tokens",
                         details.get("cached_tokens") if isinstance(details, dict) else None)
        if isinstance(read, int):
            out["gen_ai.usage.cache_read.input_tokens"] = read
        if isinstance(usage.get("cache_creation_input_tokens"), int):
            out["gen_ai.usage.cache_creation.input_tokens"] = usage["cache_creation_input_tokens"]
    reasons = [c.get("finish_reason") for c in answer.get("choices") or [] if isinstance(c, dict)]
    if isinstance(answer.get("stop_reason"), str):
        reasons = [answer["stop_reason"]]
    if served and reasons and all(isinstance(r, str) for r in reasons):
        out["gen_ai.response.finish_reasons"] = reasons
    return out


def _pick_attrs(pick: Step) -> dict[str, Any]:
    """Why this key: the candidates, the keys passed over and why, a learnt limit's pacing."""
    d = pick.detail
    out: dict[str, Any] = {"pooltui.pick.candidates": d.get("candidates") or 0}
    excluded = d.get("excluded") or ()
    if excluded:
        out["pooltui.pick.excluded"] = [f"{e.label} {e.state}" + (f" ({scrub(e.reason)})" if e.reason else "")
                                        for e in excluded]
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
