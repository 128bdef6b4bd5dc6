"""OpenTelemetry traces of the proxy's requests (the ``otel`` extra; imported only when tracing is on).

One SERVER span per caller request, named ``{gen_ai.operation.name} {gen_ai.request.model}``, continuing the
caller's ``traceparent``; one CLIENT child span per upstream attempt. On the request's path tracing is the sampling
decision and a compact record of the request (``spans.Finished``: numbers, strings and bytes, no object of the
request kept); the request's own thread writes the records in batches down a pipe to the span export process
(export_process.py), which builds the spans (spans.py), writes them as OTLP protobuf (otlp_wire.py) and sends
them: the proxy's interpreter lock never waits on span building, nor goes to a thread of ours. Attributes follow
the GenAI semantic conventions (``gen_ai.*``); pooltui's own go under ``pooltui.*``. Key labels only, never a
secret (known secrets are taken out before a record leaves the proxy); prompt and completion text only with
``capture_content`` (and scrubbed even then).
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from marshal import dumps
from typing import TYPE_CHECKING, Any

import pooltui
from pooltui.core.events import Event
from pooltui.core.masking import scrub, scrub_bytes
from pooltui.core.trace import RequestTrace, Step, pick_step
from pooltui.providers.profiles import ProviderProfile
from pooltui.proxy import otlp_wire
from pooltui.proxy.batching import PipeBatches
from pooltui.proxy.export_process import frame
from pooltui.proxy.logs import OPERATIONS as OPERATIONS_LOG
from pooltui.proxy.spans import AnswerFacts, EventRecord, SpanBuilder, StepRecord, json_object, summary
from pooltui.store.telemetry import TelemetryConfig

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from pooltui.proxy.observe import RequestWatch

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

QUEUED_BODY_MAX = 64 * 1024  # content capture: a larger answer is read on the request's path, not held
#: what a step's detail keeps for its spans (as plain values)
STEP_DETAIL = frozenset({"status", "latency_ms", "outcome", "reason", "candidates", "excluded", "learned", "seconds",
                         "from"})
PLAIN = frozenset({int, float, str, bool, type(None)})
#: a pick's detail as the engine records it (core/trace.py's pick_step) when no learnt limit paced it
PICKED = frozenset({"candidates", "excluded", "excluded_total"})
#: the marshal format of a record: 2 keeps no table of the objects written, so the export process interns no
#: string again when it reads one (a third less to read; about the same to write)
RECORD_VERSION = 2


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



class Tracing:
    """Spans of the proxy's requests exported over OTLP/HTTP in batches by the official exporter's HTTP client
    (endpoint, headers, compression, timeout and retries from ``[telemetry]`` and the ``OTEL_*`` variables), in
    the span export process.

    On the request's path: the sampler's decision and the request's compact record queued; a full batch (or the
    loop's timer) writes the records down the pipe to the export process, without blocking."""

    def __init__(self, config: TelemetryConfig | None = None, *, environ: Mapping[str, str] = os.environ) -> None:
        from opentelemetry.context import Context
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
        # the batch delay: the config's, else OTEL_BSP_SCHEDULE_DELAY, else the SDK's 5 s
        delay_ms = config.schedule_delay_ms or _whole(environ, "OTEL_BSP_SCHEDULE_DELAY", 5000)
        # an endpoint from the config is the OTLP base URL; without one the exporter reads the OTEL_* variables
        self._export = ExportProcess(("init", f"{config.endpoint}/v1/traces" if config.endpoint else None,
                                      otlp_wire.resource(dict(resource.attributes)),  # type: ignore[arg-type]
                                      otlp_wire.scope("pooltui.proxy", __version__), resource.schema_url or "",
                                      self.latest), self._frame, delay_s=delay_ms / 1000,
                                     max_batch=_whole(environ, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512),
                                     max_queue=_whole(environ, "OTEL_BSP_MAX_QUEUE_SIZE", 2048))
        self.batches = self._export.batches
        self._server = SpanKind.SERVER
        self._propagator = TraceContextTextMapPropagator()
        self._no_context = Context()
        self._names = SpanBuilder(self.latest)  # span names by path and model, for the sampler
        ids = self.provider.id_generator
        self._new_trace_id = ids.generate_trace_id
        # the default sampler (parent-based, else always) or always: a request with no caller context is sampled
        self._root_sampled = self.provider.sampler in (sampling.DEFAULT_ON, sampling.ALWAYS_ON)
        self.profiles: dict[str, ProviderProfile] = {}  # every upstream's, by provider name (the proxy's observer)
        self._closed = False
        atexit.register(self.shutdown)  # the last spans go before the process ends, however it ends

    @property
    def export_pid(self) -> int:
        """The span export process's id."""
        return self._export.proc.pid

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Send every span queued so far; False if that took longer than ``timeout_s``."""
        return self._export.flush(timeout_s)

    def shutdown(self) -> None:
        """Send the spans still queued, then stop the export process (once)."""
        if self._closed:
            return
        self._closed = True
        self._export.close()
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
            self.batches.put(dumps(self._finished(watch, body, ended, trace_id, 0, False, ""), RECORD_VERSION))
            return trace_id.to_bytes(16, "big").hex()  # 32 hex digits, as f"{trace_id:032x}" but cheaper
        from opentelemetry.trace import get_current_span

        operation, name, _ = self._names.named(watch.path, watch.model or "")
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
            self.batches.put(dumps(self._finished(watch, body, ended, trace_id,
                                                  parent.span_id if valid and parent else 0,
                                                  bool(valid and parent and parent.is_remote), state),
                                   RECORD_VERSION))
        return f"{trace_id:032x}"

    def _finished(self, watch: RequestWatch, body: bytes | None, ended: float, trace_id: int, parent_id: int,
                  remote: bool, state: str) -> tuple[Any, ...]:
        """The request's record for the export process (spans.Finished, as a plain tuple): nothing of the request
        kept, every text from outside cleared of the known secrets."""
        trace = watch.trace
        provider, key = watch.served
        facts = watch.answer
        capture = self.capture_content
        return (trace_id, parent_id, remote, state, watch.started, ended, watch.path, watch.model or "",
                watch.status, watch.outcome, watch.translated or "", provider, key,
                (watch.tokens_in, watch.tokens_out, watch.cache_read, watch.cache_write), watch.cost,
                watch.queue_wait_ms, trace.request_id if trace is not None else -1,
                _step_records(trace) if trace is not None else (),
                tuple(map(_event_record, watch.events)) if watch.events else (),
                None if facts is None else _answer_record(facts),
                scrub_bytes(watch.body) if watch.body is not None and capture else None,
                self._content_of(body) if capture else None)

    def _content_of(self, body: bytes | None) -> bytes | dict[str, Any] | None:
        """What content capture keeps of the caller's answer until its batch goes (nothing without it)."""
        if body is None or not self.capture_content:
            return None
        if len(body) > QUEUED_BODY_MAX:  # not held while queued: only what spans show
            return summary(json_object(scrub_bytes(body)))
        return scrub_bytes(body)

    def _frame(self, batch: list[bytes]) -> bytes:
        """A batch of records as the export process reads it, with the upstreams' dialects and URLs."""
        profiles = {name: (p.dialect, p.base_url) for name, p in list(self.profiles.items())}
        return frame(("batch", profiles, batch))

    def _provider_attrs(self, dialect: str) -> dict[str, str]:
        return self._names.provider_attrs(dialect)


class ExportProcess:
    """The span export process (export_process.py), started at once, and the pipe to it: batches of records
    written by the request's own thread without blocking (``PipeBatches``), the process's acknowledgements and
    log lines read by a thread."""

    def __init__(self, init: tuple[Any, ...], encode: Callable[[list[bytes]], bytes], *, delay_s: float,
                 max_batch: int, max_queue: int) -> None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(pooltui.__file__)))
        code = ("import signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                f"sys.path.insert(0, {root!r}); from pooltui.proxy.export_process import main; main()")
        # a session of its own: a Ctrl-C at the terminal is the proxy's to handle; the process ends when its input
        # closes, once it has sent what it was given
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, start_new_session=True)  # logs come on stdout
        assert self.proc.stdin is not None
        self._closing = False  # close() asked it to end (its input closed): an exit code 0 then is no news
        self._killed = False  # close() killed it, having waited for it in vain
        self._acked = threading.Condition()
        self._acks = self._asked = 0
        self._gone = False  # the process ended, or its pipe broke
        self._reader = threading.Thread(target=self._read, name="pooltui-otlp-acks", daemon=True)
        self._reader.start()
        self.batches: PipeBatches[bytes] = PipeBatches(
            self.proc.stdin.fileno(), encode, delay_s=delay_s, max_batch=max_batch, max_queue=max_queue,
            on_drop=_said_dropped)
        self.batches.flush(frame(init), 0.0)  # the first frame: written at once into the empty pipe

    def flush(self, timeout_s: float) -> bool:
        """True once the process has sent everything queued so far (False after ``timeout_s``, or once its end
        has been said: it is gone)."""
        deadline = time.monotonic() + timeout_s
        with self._acked:
            self._asked += 1
            asked = self._asked
        if not self.batches.flush(frame(("flush", asked)), timeout_s):
            if self.batches.broken:  # its pipe broke: it is gone, and says so once the reader has seen it end
                with self._acked:
                    self._acked.wait_for(lambda: self._gone, max(0.0, deadline - time.monotonic()))
            return False
        with self._acked:
            return self._acked.wait_for(lambda: self._acks >= asked or self._gone,
                                        max(0.0, deadline - time.monotonic())) and not self._gone

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, close its input (it sends what it has, then ends) and wait for it; killed after
        ``timeout_s``."""
        self.batches.flush(b"", timeout_s)
        self._closing = True
        if self.batches.dropped:
            logging.getLogger(OPERATIONS_LOG).warning(
                "the spans of %d requests were dropped: the span export process fell behind", self.batches.dropped)
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._killed = True
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout_s)

    def _read(self) -> None:
        """The process's acknowledgements and log lines, until its output ends; then its end, said (unless close()
        asked for it) before a flush waiting on it hears of it."""
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if line.startswith("ack "):
                with self._acked:
                    self._acks = max(self._acks, int(line[4:]))
                    self._acked.notify_all()
            elif line.startswith("log "):
                level, name, text = [*line[4:].split(" ", 2), "", ""][:3]
                logging.getLogger(name or OPERATIONS_LOG).log(int(level) if level.isdigit() else logging.ERROR,
                                                              "%s", scrub(text))
        code = self.proc.wait()
        # its exit code says whether close() ended it, whoever got there first: a death that close() raced (a kill
        # just before a shutdown) is said too; and it is said before the waiters are woken, so that a flush that
        # returns False has been preceded by it (a shutdown right after no longer hides it)
        if not self._closing or (code != 0 and not self._killed):
            logging.getLogger(OPERATIONS_LOG).error(
                "the span export process ended (exit code %s): spans are no longer sent", code)
        with self._acked:
            self._gone = True
            self._acked.notify_all()


def _said_dropped(count: int) -> None:
    logging.getLogger(OPERATIONS_LOG).warning(
        "the span export process falls behind: the spans of %d requests dropped (more are counted)", count)


def _step_records(trace: RequestTrace) -> tuple[StepRecord, ...]:
    """The engine's trace as step records, read from its entries as recorded: a pick that passed no key over and
    was paced by no learnt limit goes straight from its pick record (no ``Step`` nor detail built for the spans);
    the trace's own steps stay unbuilt until something else reads them."""
    records = []
    for entry in trace.entries:
        if isinstance(entry, Step):
            records.append(_step_record(entry))
        elif not entry[4] and entry[6] is None:  # ts, provider, key, candidates, no exclusion, no learnt limit
            records.append((entry[0], "pick", entry[1], entry[2] or "", {"candidates": entry[3]}))
        else:
            records.append(_step_record(pick_step(entry)))
    return tuple(records)


def _step_record(step: Step) -> StepRecord:
    """A step of the engine's trace as plain values: its detail as it is when it holds only plain values that the
    spans read (an attempt's: ``marshal`` copies it at once), else what of it they read, made plain."""
    d = step.detail
    if d.keys() <= STEP_DETAIL and PLAIN.issuperset(map(type, d.values())):
        kept = d
    elif d.keys() == PICKED and not d["excluded"]:  # the engine's pick that passed no key over: its candidates
        kept = {"candidates": d["candidates"]}
    else:
        kept = {k: v if type(v) in PLAIN else _plain(k, v, d) for k, v in d.items() if k in STEP_DETAIL}
    return step.ts, step.kind, step.provider, step.key or "", kept


def _plain(name: str, value: object, detail: dict[str, Any]) -> object:
    if name == "excluded":  # the keys a pick passed over, and why
        return [f"{e.label} {e.state}" + (f" ({scrub(e.reason)})" if e.reason else "")
                for e in detail.get("excluded") or ()]
    return str(value)


def _answer_record(facts: AnswerFacts) -> tuple[Any, ...]:
    """What the answer said, as a plain tuple (marshal takes no other), known secrets out: its model, id and finish
    reasons scrubbed in one pass, and one by one only when that pass found something."""
    model, answer_id, reasons, usage = facts
    said = "\n".join((model, answer_id, *reasons))  # no secret holds a line break: none is found across two
    if scrub(said) is said:
        return model, answer_id, reasons, usage
    return scrub(model), scrub(answer_id), tuple(map(scrub, reasons)), usage


def _event_record(event: Event) -> EventRecord:
    return (event.ts, event.change.value if event.change else event.kind.value, event.provider, event.key or "",
            event.status or 0, scrub(event.reason), scrub(event.action))


def _whole(environ: Mapping[str, str], name: str, default: int) -> int:
    """A positive whole number from the environment, else ``default`` (as the SDK reads its OTEL_BSP_*)."""
    try:
        value = int(environ.get(name, "").strip() or default)
    except ValueError:
        return default
    return value if value > 0 else default
