"""OpenTelemetry traces of the proxy's requests (the ``otel`` extra; imported only when tracing is on).

One SERVER span per caller request, named ``{gen_ai.operation.name} {gen_ai.request.model}``, continuing the
caller's ``traceparent``; one CLIENT child span per upstream attempt, built when the request ends from the
engine's own record of it (core/trace.py), so tracing adds nothing while a request is served. Attributes follow
the GenAI semantic conventions (``gen_ai.*``); pooltui's own go under ``pooltui.*``. Key labels only, never a
secret; prompt and completion text only with ``capture_content`` (and scrubbed even then).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pooltui.core.masking import scrub
from pooltui.core.trace import Step
from pooltui.providers.profiles import ProviderProfile
from pooltui.store.telemetry import TelemetryConfig

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

    from pooltui.proxy.observe import RequestWatch

#: the GenAI conventions' provider names, by wire dialect
PROVIDER_NAMES = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini"}
#: the conventions' operation names, by path
OPERATIONS = {"/v1/chat/completions": "chat", "/v1/messages": "chat", "/v1/completions": "text_completion",
              "/v1/embeddings": "embeddings", "/v1/responses": "chat"}
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

AttrValue = str | bool | int | float | Sequence[str]


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


class Tracing:
    """A tracer provider exporting over OTLP/HTTP in batches, and the spans of one request built from its watch."""

    def __init__(self, config: TelemetryConfig | None = None, *, environ: Mapping[str, str] = os.environ) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
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
        # an endpoint from the config is the OTLP base URL; without one the exporter reads the OTEL_* variables
        endpoint = f"{config.endpoint}/v1/traces" if config.endpoint else None
        self.provider: TracerProvider = TracerProvider(resource=Resource.create(attrs))
        # the batch delay: the config's, else OTEL_BSP_SCHEDULE_DELAY, else the SDK's 5 s
        self.processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint),
                                            schedule_delay_millis=config.schedule_delay_ms)
        self.provider.add_span_processor(self.processor)
        self.tracer: Tracer = self.provider.get_tracer("pooltui.proxy", __version__)
        self._server, self._client = SpanKind.SERVER, SpanKind.CLIENT
        self._propagator = TraceContextTextMapPropagator()
        self.profiles: dict[str, ProviderProfile] = {}  # every upstream's, by provider name (the proxy's observer)

    def flush(self, timeout_s: float = 10.0) -> bool:
        return self.provider.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        self.provider.shutdown()

    def export(self, watch: RequestWatch, body: bytes | None, ended: float) -> str:
        """The request's spans, handed to the batch processor; returns the trace id (32 hex digits)."""
        from opentelemetry.trace import Status, StatusCode, set_span_in_context

        operation = OPERATIONS.get(watch.path, watch.path.rsplit("/", 1)[-1] or "request")
        model = watch.model or ""
        name = f"{operation} {model}".strip()
        answer = _json(body) if body else None
        server = self.tracer.start_span(name, context=self._propagator.extract(watch.carrier), kind=self._server,
                                        start_time=ns(watch.started), attributes=self._request_attrs(
                                            watch, operation, answer))
        inside = set_span_in_context(server)
        trace = watch.trace
        steps = trace.steps if trace is not None else []
        served_at = max((i for i, s in enumerate(steps) if s.kind == "attempt"), default=-1)
        pick: Step | None = None
        for i, step in enumerate(steps):
            if step.kind == "pick":
                pick = step
            elif step.kind == "attempt":
                attrs = self._attempt_attrs(step, pick, operation, model, answer if i == served_at else None,
                                            watch.status if i == served_at else None)
                latency = float(step.detail.get("latency_ms") or 0.0) / 1000
                span = self.tracer.start_span(name, context=inside, kind=self._client,
                                              start_time=ns(step.ts - latency), attributes=attrs)
                status = step.detail.get("status")
                if not isinstance(status, int) or status >= 400:
                    span.set_status(Status(StatusCode.ERROR, str(step.detail.get("outcome") or "")))
                span.end(end_time=ns(step.ts))
                pick = None
            if step.kind != "attempt":
                server.add_event(step.kind, _step_attrs(step), ns(step.ts))
        for event in watch.events:
            server.add_event(event.change.value if event.change else event.kind.value,
                             _drop_empty({"pooltui.provider": event.provider, "pooltui.key": event.key or "",
                                          "pooltui.status": event.status, "pooltui.reason": scrub(event.reason),
                                          "pooltui.action": scrub(event.action)}), ns(event.ts))
        if self.capture_content:
            self._content(server, watch.body, answer)
        if watch.status >= 500 or watch.outcome == "error":
            server.set_status(Status(StatusCode.ERROR, f"http {watch.status}"))
        server.end(end_time=ns(ended))
        return f"{server.get_span_context().trace_id:032x}"

    def _request_attrs(self, watch: RequestWatch, operation: str, answer: dict[str, Any] | None
                       ) -> dict[str, AttrValue]:
        provider, key = watch.served
        profile = None
        if watch.trace is not None and watch.trace.steps:
            profile = self._profile_of(watch.trace.steps[0].provider)
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": operation, "gen_ai.request.model": watch.model or "",
            "http.request.method": watch.method, "url.path": watch.path,
            "http.response.status_code": watch.status, "pooltui.api": watch.api,
            "pooltui.provider": provider, "pooltui.key": key, "pooltui.attempts": watch.attempts,
            "pooltui.queue_wait_ms": round(watch.queue_wait_ms, 1), "pooltui.fallback": watch.fallback,
            "pooltui.translation": watch.translated or "", "pooltui.outcome": watch.outcome,
            "pooltui.latency_ms": round(watch.latency_ms, 1),
        }
        if profile is not None:
            attrs.update(self._provider_attrs(profile.dialect))
        if watch.trace is not None:
            attrs["pooltui.request_id"] = watch.trace.request_id
            attrs["pooltui.strategy"] = watch.trace.strategy
            attrs["pooltui.result"] = scrub(watch.trace.result)
        attrs.update(_usage_attrs(answer, watch.tokens_in, watch.tokens_out))
        if watch.cost:
            attrs["pooltui.cost"] = round(watch.cost, 6)
        return _drop_empty(attrs)

    def _attempt_attrs(self, step: Step, pick: Step | None, operation: str, model: str,
                       answer: dict[str, Any] | None, caller_status: int | None) -> dict[str, AttrValue]:
        d = step.detail
        attrs: dict[str, Any] = {"gen_ai.operation.name": operation, "gen_ai.request.model": model,
                                 "pooltui.provider": step.provider, "pooltui.key": step.key or "",
                                 "pooltui.attempt.outcome": d.get("outcome") or "",
                                 "pooltui.attempt.reason": scrub(str(d.get("reason") or "")),
                                 "pooltui.attempt.latency_ms": round(float(d.get("latency_ms") or 0.0), 1)}
        if isinstance(d.get("status"), int):
            attrs["http.response.status_code"] = d["status"]
        profile = self._profile_of(step.provider)
        if profile is not None:
            attrs.update(self._provider_attrs(profile.dialect))
            url = urlsplit(profile.base_url)
            attrs["server.address"] = url.hostname or ""
            if url.port:
                attrs["server.port"] = url.port
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

    @staticmethod
    def _content(span: Span, body: bytes | None, answer: dict[str, Any] | None) -> None:
        """Prompt and completion text (opt-in), scrubbed of every known secret."""
        asked = _json(body) if body else None
        if asked is not None:
            said = [m for m in asked.get("messages") or [] if isinstance(m, dict)]
            if asked.get("system"):
                span.set_attribute("gen_ai.system_instructions", scrub(json.dumps(asked["system"])))
            span.set_attribute("gen_ai.input.messages", scrub(json.dumps(said)))
        if answer is not None:
            if isinstance(answer.get("choices"), list):  # openai
                out: Any = [c.get("message") for c in answer["choices"] if isinstance(c, dict)]
            else:  # anthropic
                out = [{"role": "assistant", "content": answer.get("content")}]
            span.set_attribute("gen_ai.output.messages", scrub(json.dumps(out)))


def _json(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _usage_attrs(answer: dict[str, Any] | None, tokens_in: int, tokens_out: int) -> dict[str, Any]:
    """Tokens (cache tokens where the answer states them), the response's model, id and finish reasons."""
    out: dict[str, Any] = {}
    if tokens_in or tokens_out:
        out["gen_ai.usage.input_tokens"], out["gen_ai.usage.output_tokens"] = tokens_in, tokens_out
    if answer is None:
        return out
    if isinstance(answer.get("model"), str):
        out["gen_ai.response.model"] = answer["model"]
    if isinstance(answer.get("id"), str):
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
    if reasons and all(isinstance(r, str) for r in reasons):
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
