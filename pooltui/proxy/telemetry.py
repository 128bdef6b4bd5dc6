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
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
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
        self.scope = InstrumentationScope("pooltui.proxy", __version__)
        self._server, self._client = SpanKind.SERVER, SpanKind.CLIENT
        self._propagator = TraceContextTextMapPropagator()
        self.profiles: dict[str, ProviderProfile] = {}  # every upstream's, by provider name (the proxy's observer)

    def flush(self, timeout_s: float = 10.0) -> bool:
        return self.provider.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        self.provider.shutdown()

    def export(self, watch: RequestWatch, body: bytes | None, ended: float) -> str:
        """The request's spans, handed to the batch processor; returns the trace id (32 hex digits).

        The spans are made whole here, from the request's record, as the SDK's ``ReadableSpan`` (what a span is
        once ended) and given to the span processor: no live span, lock or attribute check per request, which
        is most of what tracing would cost. The configured sampler (``OTEL_TRACES_SAMPLER``; by default the
        caller's sampled flag, else always) decides once per request."""
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags, get_current_span

        operation = OPERATIONS.get(watch.path, watch.path.rsplit("/", 1)[-1] or "request")
        model = watch.model or ""
        name = f"{operation} {model}".strip()
        parent_context = self._propagator.extract(watch.carrier)
        parent = get_current_span(parent_context).get_span_context()
        ids = self.provider.id_generator
        trace_id = parent.trace_id if parent.is_valid else ids.generate_trace_id()
        decision = self.provider.sampler.should_sample(parent_context, trace_id, name, self._server, {
            "gen_ai.operation.name": operation, "gen_ai.request.model": model})
        if not decision.decision.is_sampled():  # nothing more is built for a request not sampled
            return f"{trace_id:032x}"
        answer = _json(body) if body else None
        attrs = self._request_attrs(watch, operation, answer)
        if self.capture_content:
            attrs.update(_content(watch.body, answer))
        flags = TraceFlags(TraceFlags.SAMPLED)
        server = SpanContext(trace_id, ids.generate_span_id(), False, flags, decision.trace_state)
        spans: list[ReadableSpan] = []
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
            spans.append(ReadableSpan(
                name, SpanContext(trace_id, ids.generate_span_id(), False, flags, decision.trace_state), server,
                self.provider.resource, self._attempt_attrs(step, pick, operation, model, answer if i == served_at
                                                            else None, watch.status if i == served_at else None),
                kind=self._client, start_time=ns(step.ts - latency), end_time=ns(step.ts),
                status=Status(StatusCode.ERROR, str(step.detail.get("outcome") or "")) if failed else Status(),
                instrumentation_scope=self.scope))
            pick = None
        for event in watch.events:
            events.append((event.ts, event.change.value if event.change else event.kind.value, _drop_empty({
                "pooltui.provider": event.provider, "pooltui.key": event.key or "", "pooltui.status": event.status,
                "pooltui.reason": scrub(event.reason), "pooltui.action": scrub(event.action)})))
        events.sort(key=lambda e: e[0])
        failed = watch.status >= 500 or watch.outcome == "error"
        spans.append(ReadableSpan(
            name, server, parent if parent.is_valid else None, self.provider.resource, attrs,
            [Event(what, attributes, ns(ts)) for ts, what, attributes in events], kind=self._server,
            start_time=ns(watch.started), end_time=ns(ended),
            status=Status(StatusCode.ERROR, f"http {watch.status}") if failed else Status(),
            instrumentation_scope=self.scope))
        for span in spans:
            self.processor.on_end(span)
        return f"{trace_id:032x}"

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
