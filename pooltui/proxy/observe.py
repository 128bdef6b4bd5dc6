"""Each caller request seen from outside the terminal: the access log line, the response headers that tell the
caller how it was served, the per-key upstream latency histograms, and (when on) its OpenTelemetry spans.

The proxy calls ``begin`` when a request arrives and ``finish`` with the response it is about to send (a stream
is finished when its last chunk has gone). What happened in between comes from the client's own listeners
(outcome, request, usage, events), matched to the request through a context variable: nothing in the client
or the engine knows about logs or traces.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from pooltui.client.after_answer import AFTER_ANSWER
from pooltui.client.pool_client import PoolClient, PoolResponse, RequestRecord, UsageRecord, outcome_of
from pooltui.core.events import Event, StateChange
from pooltui.core.stats import Histogram
from pooltui.core.trace import RequestTrace, Step
from pooltui.providers.profiles import ProviderProfile
from pooltui.proxy.logs import ACCESS, ACCESS_FIELDS, OPERATIONS, direct_handler
from pooltui.proxy.spans import AnswerFacts, facts_of
from pooltui.store.telemetry import TelemetryConfig

if TYPE_CHECKING:
    from pooltui.proxy.raw import Caller, Reply
    from pooltui.proxy.telemetry import Tracing

#: upstream attempt latency buckets, seconds: one answer's time, from a cached reply (tens of ms) to a long
#: generation (minutes); queue waits are not in it (they are in the callers' histograms)
UPSTREAM_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
MAX_EVENTS = 64  # engine events kept per request (a storm's request sees a few)
CAPTURE_MAX_BYTES = 1 << 20  # a caller's body read early for content capture, when it says it is this small
#: state changes logged as warnings (the rest as info)
WARN_CHANGES = frozenset({StateChange.PARKED, StateChange.BARRED, StateChange.OUTAGE_OPENED})

T = TypeVar("T")
_current: ContextVar[RequestWatch | None] = ContextVar("pooltui_request", default=None)


@dataclass(slots=True)
class RequestWatch:
    """What the proxy learns about one caller request while it is served."""

    api: str
    method: str
    path: str
    started: float  # wall clock, seconds
    perf: float  # perf_counter at arrival
    carrier: dict[str, str]  # the caller's traceparent / tracestate
    body: bytes | None = None  # the caller's body, only when content capture is on
    trace: RequestTrace | None = None
    outcome: str = ""
    model: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    cache_read: int = 0  # prompt-cache tokens read and written (in tokens_in)
    cache_write: int = 0
    answer: AnswerFacts | None = None  # tracing on: what a whole answer said (model, id, finish reasons)
    answer_counted: bool = False  # the client counted the answer's usage
    events: list[Event] = field(default_factory=list)
    latency_ms: float = 0.0  # arrival to the response's headers (a stream's first byte)
    status: int = 0
    translated: str | None = None
    trace_id: str = ""

    @property
    def attempts(self) -> int:
        return len(self.trace.of_kind("attempt")) if self.trace else 0

    @property
    def queue_wait_ms(self) -> float:
        return self.trace.waited_s * 1000 if self.trace else 0.0

    @property
    def served(self) -> tuple[str, str]:
        """(provider, key label) that served, or empty strings."""
        provider, _, key = (self.trace.served_by or "").partition("/") if self.trace else ("", "", "")
        return provider, "" if key == "None" else key

    @property
    def fallback(self) -> str:
        """The fallback provider that served, or ""."""
        return self.outline()[3]

    def outline(self) -> tuple[str, str, int, str]:
        """(provider, key label, attempts, fallback) as the properties give them, from one pass over the trace's
        steps (no pick's step built)."""
        trace = self.trace
        if trace is None:
            return "", "", 0, ""
        provider, _, key = (trace.served_by or "").partition("/")
        attempts, went = 0, False
        for entry in trace.entries:
            if type(entry) is Step:
                if entry.kind == "attempt":
                    attempts += 1
                elif entry.kind == "fallback" and entry.provider == provider:
                    went = True
        return provider, "" if key == "None" else key, attempts, provider if went else ""


def caller_trace_id(carrier: dict[str, str]) -> str:
    """The trace id of a well-formed W3C ``traceparent`` (``00-<32 hex>-<16 hex>-<2 hex>``), else ""."""
    parent = carrier.get("traceparent")
    if not parent:
        return ""
    parts = parent.strip().split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and parts[1] != "0" * 32:
        try:
            int(parts[1], 16)
        except ValueError:
            return ""
        return parts[1].lower()
    return ""


class Observer:
    """The proxy's per-request hooks and what they feed: logs, headers, histograms, traces."""

    def __init__(self, *, access_log: bool = True, tracing: Tracing | None = None,
                 propagate_upstream: bool = False) -> None:
        self._access_log = access_log
        self.propagate_upstream = propagate_upstream  # the caller's traceparent goes on to the provider
        self._tracing = tracing
        #: something reads a request's model, tokens and cost (its access line or its spans): the usage and
        #: request listeners fill them in, and its log line and spans are made once its answer has gone
        self._wanted = access_log or tracing is not None
        self.capture = tracing is not None and tracing.capture_content
        #: every upstream's profile, by provider name
        self.profiles: dict[str, ProviderProfile] = tracing.profiles if tracing is not None else {}
        #: per (provider, key): each attempt's latency (proxied requests and test traffic alike)
        self.upstream_latency: dict[tuple[str, str], Histogram] = {}
        self._attached: weakref.WeakSet[PoolClient] = weakref.WeakSet()
        self.access = logging.getLogger(ACCESS)
        self._record_base: dict[str, Any] | None = None  # see _access_record
        self.ops = logging.getLogger(OPERATIONS)

    @property
    def access_log(self) -> bool:
        """A line per caller request (its level may still be turned off at run time: ``logs.ACCESS``)."""
        return self._access_log

    @access_log.setter
    def access_log(self, on: bool) -> None:
        self._access_log = on
        self._rewire()

    @property
    def tracing(self) -> Tracing | None:
        return self._tracing

    @tracing.setter
    def tracing(self, tracing: Tracing | None) -> None:
        self._tracing = tracing
        self.capture = tracing is not None and tracing.capture_content
        self._rewire()

    def attach(self, client: PoolClient) -> None:
        """Listen to ``client`` (once however often it is called: the proxy re-routes on config changes)."""
        for up in client.upstreams:
            self.profiles[up.name] = up.profile
        if client in self._attached:
            return
        self._attached.add(client)
        client.outcome_listeners.append(self._outcome)
        self._listen(client)

    def _listen(self, client: PoolClient) -> None:
        """The usage and request listeners on ``client`` only while something reads what they fill in (with no
        access line and no tracing they would be called per request for nothing)."""
        _wire(client.request_listeners, self._request, self._wanted)
        _wire(client.usage_listeners, self._usage, self._wanted)

    def _rewire(self) -> None:
        self._wanted = self._access_log or self._tracing is not None
        for client in list(self._attached):
            self._listen(client)

    # ------------------------------------------------------------------ the two hooks
    async def begin(self, request: Caller, api: str) -> RequestWatch:
        """A caller request arrived: its watch, current for everything that runs for it."""
        headers = request.headers
        carrier: dict[str, str] = {}
        if self._wanted:  # only the access line and the spans read the caller's trace context
            if parent := headers.get("traceparent"):
                carrier["traceparent"] = parent
            if state := headers.get("tracestate"):
                carrier["tracestate"] = state
        path = request.path  # Starlette's URL (built per request) only for a path it would escape
        if "?" in path or "#" in path or "\\" in path:
            path = request.url.path
        watch = RequestWatch(api, request.method, path, time.time(), time.perf_counter(), carrier)
        if self.capture:
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) <= CAPTURE_MAX_BYTES:
                watch.body = await request.body()  # kept by Starlette: the proxy reads the same bytes again
        _current.set(watch)
        return watch

    def finish(self, watch: RequestWatch, response: Reply) -> Reply:
        """The response is about to go: it gets the attempts and queue wait headers; the log line and spans follow
        now, or when a stream's last chunk has gone."""
        watch.latency_ms = (time.perf_counter() - watch.perf) * 1000
        watch.status = response.status_code
        watch.translated = response.headers.get("x-pooltui-translated")
        if watch.trace is not None:
            response.headers["x-pooltui-attempts"] = str(watch.attempts)
            response.headers["x-pooltui-queue-wait-ms"] = f"{watch.queue_wait_ms:.0f}"
        if not self._wanted:  # no log line, no spans: nothing more to do for this request
            return response
        if response.body_iterator is not None:  # once its end is written (the relay calls it: proxy/app.py)
            response.on_end = partial(self._done, watch, None)
        else:
            body = bytes(response.body) if self.capture else None
            after = AFTER_ANSWER.get()
            if after is None:
                self._done(watch, body)
            else:  # the log line and spans once the answer is written (client/after_answer.py)
                after.append(partial(self._done, watch, body))
        return response

    def _done(self, watch: RequestWatch, body: bytes | None) -> None:
        if self.tracing is not None:
            try:
                watch.trace_id = self.tracing.export(watch, body, time.time())
            except Exception:  # a trace never breaks a request
                self.ops.exception("trace not exported")
        if not watch.trace_id:
            watch.trace_id = caller_trace_id(watch.carrier)
        if self.access_log and self.access.isEnabledFor(logging.INFO):
            handler = direct_handler(self.access)
            if handler is not None:  # ours alone: the values, formatted by its thread (logs.AccessLine)
                handler.put_access((time.time(), access_values(watch)))
            else:
                self.access.handle(self._access_record(
                    f"{watch.api} {watch.method} {watch.path} {watch.status}", access_fields(watch)))

    def _access_record(self, message: str, fields: dict[str, Any]) -> logging.LogRecord:
        """The access line's record, as ``Logger.info`` makes it but from a copy of one made once: no caller's
        frame looked up (every line comes from here), no path split, level or process looked up again."""
        base = self._record_base
        if base is None:
            base = self._record_base = vars(self.access.makeRecord(
                ACCESS, logging.INFO, __file__, 0, "", (), None, "_done"))
        created = time.time()
        record = logging.LogRecord.__new__(logging.LogRecord)
        record.__dict__.update(base)
        record.msg, record.fields = message, fields
        record.created, record.msecs = created, int((created - int(created)) * 1000) + 0.0
        record.relativeCreated = base["relativeCreated"] + (created - base["created"]) * 1000
        if logging.logThreads:
            record.thread, record.threadName = threading.get_ident(), threading.current_thread().name
        return record

    # ------------------------------------------------------------------ the client's listeners
    def _outcome(self, outcome: str, served_by: str, trace: RequestTrace) -> None:
        for step in trace.of_kind("attempt"):  # the picks' steps are built only when something reads them
            if step.key is not None:
                hist = self.upstream_latency.get((step.provider, step.key))
                if hist is None:
                    hist = self.upstream_latency[(step.provider, step.key)] = Histogram(UPSTREAM_BUCKETS)
                hist.observe(float(step.detail.get("latency_ms") or 0.0) / 1000)
        watch = _current.get()
        if watch is not None and watch.trace is None:
            watch.trace, watch.outcome = trace, outcome

    def _request(self, record: RequestRecord) -> None:
        watch = _current.get()
        if watch is not None and watch.model is None and record.model != "-":
            watch.model = record.model

    def _usage(self, record: UsageRecord) -> None:
        watch = _current.get()
        if watch is not None:
            watch.tokens_in += record.tokens_in
            watch.tokens_out += record.tokens_out
            watch.cost += record.cost
            if record.cache_read or record.cache_write:
                watch.cache_read += record.cache_read
                watch.cache_write += record.cache_write

    def served(self, trace: RequestTrace, status: int) -> None:
        """The pool's answer is in: its trace and outcome for the response's headers and the log line (the
        client's outcome listeners may hear of it only once the answer is written: client/after_answer.py)."""
        watch = _current.get()
        if watch is not None and watch.trace is None:
            watch.trace, watch.outcome = trace, outcome_of(status)

    def answered(self, response: PoolResponse) -> None:
        """A provider's whole answer (not a stream's): served, and its facts for the spans (model, id, finish
        reasons), read from the body as the client parsed it (parsed here only when the client did not: past its
        parse limit)."""
        self.served(response.trace, response.status)
        if self.tracing is None or response.status >= 400:
            return
        after = AFTER_ANSWER.get()
        if after is not None:  # after the client's accounting, which reads the answer's usage
            after.append(partial(self._answered, response))
        else:
            self._answered(response)

    def _answered(self, response: PoolResponse) -> None:
        watch = _current.get()
        if watch is not None:
            watch.answer_counted = bool(response.usage.input or response.usage.output)
            try:
                body = response.json()
            except ValueError:  # not JSON: no facts
                return
            watch.answer = facts_of(body, watch.answer_counted)

    def on_event(self, event: Event) -> None:
        """An engine event: a state change is an operational log line; any event joins its request's spans."""
        watch = _current.get()
        if watch is not None and len(watch.events) < MAX_EVENTS:
            watch.events.append(event)
        if event.change is None:
            return
        level = logging.WARNING if event.change in WARN_CHANGES else logging.INFO
        if self.ops.isEnabledFor(level):
            where = f"{event.provider}/{event.key}" if event.key else event.provider
            self.ops.log(level, f"{where} {event.change.value}: {event.reason}; {event.action}",
                         extra={"fields": {"provider": event.provider, "key": event.key or "",
                                           "change": event.change.value, "kind": event.kind.value,
                                           "status": event.status}})


def _wire(listeners: list[Callable[[T], None]], listener: Callable[[T], None], on: bool) -> None:
    """``listener`` in ``listeners`` (once) when ``on``, else out of them."""
    if on and listener not in listeners:
        listeners.append(listener)
    elif not on and listener in listeners:
        listeners.remove(listener)


def access_values(watch: RequestWatch) -> tuple[Any, ...]:
    """The access line's values, in ``logs.ACCESS_FIELDS`` order."""
    provider, key, attempts, fallback = watch.outline()
    trace = watch.trace
    waited, cost = trace.waited_s * 1000 if trace else 0.0, watch.cost
    # ``x and round(x, n)`` is round(x, n) without the call for a zero (no wait, no price: the common case)
    return (watch.api, watch.method, watch.path, watch.model or "", watch.status, round(watch.latency_ms, 1),
            waited and round(waited, 1), provider, key, attempts, fallback, watch.translated or "", watch.tokens_in,
            watch.tokens_out, cost and round(cost, 6), watch.outcome, watch.trace_id)


def access_fields(watch: RequestWatch) -> dict[str, Any]:
    """The access line's fields (``logs.ACCESS_FIELDS``), as a record of it carries them."""
    return dict(zip(ACCESS_FIELDS, access_values(watch), strict=True))


def observer_for(config: TelemetryConfig | None, *, access_log: bool = True) -> Observer:
    """The proxy's observer: tracing on when ``[telemetry]`` or the ``OTEL_*`` variables name an endpoint (the
    OpenTelemetry packages are imported only then)."""
    from pooltui.proxy.telemetry import Tracing, wanted

    tracing = Tracing(config) if wanted(config) else None
    return Observer(access_log=access_log, tracing=tracing,
                    propagate_upstream=config.propagate_upstream if config is not None else False)
