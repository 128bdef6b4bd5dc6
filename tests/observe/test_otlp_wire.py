"""pooltui's own OTLP encoder writes what the official one writes: the same spans encoded by otlp_wire and by the
OpenTelemetry SDK's exporter encoding decode (with opentelemetry-proto) to equal messages."""

from __future__ import annotations

import marshal
import os

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from pooltui.proxy import otlp_wire
from pooltui.proxy.batching import BatchThread, PipeBatches
from tests.conftest import until

TRACE, SERVER, CLIENT, CALLER = 0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, 0x1234, 0xFFFF_FFFF_FFFF_FFF0
STATE = TraceState([("vendor", "abc"), ("other", "x-1")])
SERVER_ATTRS = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini", "pooltui.attempts": 2,
                "pooltui.queue_wait_ms": 12.5, "pooltui.cost": 0.0, "pooltui.big": 2**62, "pooltui.negative": -3,
                "pooltui.flag": True, "pooltui.off": False, "pooltui.zero": 0, "gen_ai.response.finish_reasons":
                ["stop", "length"], "pooltui.unicode": "clé ✓ 模型", "gen_ai.input.messages": "x" * 5000}
CLIENT_ATTRS = {"pooltui.key": "team-b", "http.response.status_code": 429, "pooltui.attempt.outcome": "rate_limited"}
EVENTS = [(1_700_000_000_100_000_000, "rotated", {"pooltui.key": "k1", "pooltui.status": 429}),
          (1_700_000_000_200_000_000, "wait", {})]


def ours() -> bytes:
    server = otlp_wire.SpanRecord(TRACE, SERVER, CALLER, "chat gpt-4o-mini", otlp_wire.SPAN_KIND_SERVER,
                                  1_700_000_000_000_000_000, 1_700_000_000_900_000_000, SERVER_ATTRS, EVENTS,
                                  error="http 502", trace_state="vendor=abc,other=x-1", parent_remote=True)
    client = otlp_wire.SpanRecord(TRACE, CLIENT, SERVER, "chat gpt-4o-mini", otlp_wire.SPAN_KIND_CLIENT,
                                  1_700_000_000_000_500_000, 1_700_000_000_400_000_000, CLIENT_ATTRS,
                                  trace_state="vendor=abc,other=x-1")
    ok = otlp_wire.SpanRecord(TRACE, CLIENT + 1, SERVER, "chat", otlp_wire.SPAN_KIND_CLIENT, 5, 6, {})
    resource = otlp_wire.resource({"service.name": "pooltui", "service.version": "1.0"})
    return otlp_wire.export_request(resource, otlp_wire.scope("pooltui.proxy", "1.0"),
                                    [otlp_wire.span(s) for s in (server, client, ok)], "https://schema/1")


def theirs() -> bytes:
    flags = TraceFlags(TraceFlags.SAMPLED)
    resource = Resource({"service.name": "pooltui", "service.version": "1.0"}, "https://schema/1")
    scope = InstrumentationScope("pooltui.proxy", "1.0")
    server_ctx = SpanContext(TRACE, SERVER, False, flags, STATE)
    caller = SpanContext(TRACE, CALLER, True, flags)
    spans = [
        ReadableSpan("chat gpt-4o-mini", server_ctx, caller, resource, SERVER_ATTRS,
                     [Event(name, attrs, ts) for ts, name, attrs in EVENTS], kind=SpanKind.SERVER,
                     start_time=1_700_000_000_000_000_000, end_time=1_700_000_000_900_000_000,
                     status=Status(StatusCode.ERROR, "http 502"), instrumentation_scope=scope),
        ReadableSpan("chat gpt-4o-mini", SpanContext(TRACE, CLIENT, False, flags, STATE), server_ctx, resource,
                     CLIENT_ATTRS, kind=SpanKind.CLIENT, start_time=1_700_000_000_000_500_000,
                     end_time=1_700_000_000_400_000_000, instrumentation_scope=scope),
        ReadableSpan("chat", SpanContext(TRACE, CLIENT + 1, False, flags), server_ctx, resource, {},
                     kind=SpanKind.CLIENT, start_time=5, end_time=6, instrumentation_scope=scope),
    ]
    return encode_spans(spans).SerializeToString()


def test_our_encoding_decodes_as_the_sdks() -> None:
    for _ in range(2):  # the second time from the cache of encoded attributes
        mine, official = ExportTraceServiceRequest.FromString(ours()), ExportTraceServiceRequest.FromString(theirs())
        assert mine == official
    assert mine.resource_spans[0].scope_spans[0].spans[0].attributes[-1].value.string_value == "x" * 5000


def test_the_batch_thread_sends_everything_at_a_flush_and_at_shutdown() -> None:
    sent: list[list[int]] = []
    batches = BatchThread(sent.append, delay_s=60, max_batch=4, max_queue=10)
    for i in range(6):
        batches.put(i)
    assert batches.flush(5) and [x for b in sent for x in b] == list(range(6))  # a full batch, then the rest
    batches.put(6)
    batches.shutdown()
    assert [x for b in sent for x in b] == list(range(7)) and all(len(b) <= 4 for b in sent)


def test_the_batch_thread_drops_past_its_queue_and_counts() -> None:
    sent: list[list[int]] = []
    batches = BatchThread(sent.append, delay_s=60, max_batch=100, max_queue=10)
    for i in range(14):
        batches.put(i)
    batches.shutdown()
    assert sent == [list(range(10))] and batches.dropped == 4


def _frames(data: bytes) -> list[list[int]]:
    """The batches in what a PipeBatches wrote (each frame: a 4-byte length, then a marshal'd list)."""
    out = []
    while data:
        size = int.from_bytes(data[:4], "little")
        out.append(marshal.loads(data[4:4 + size]))
        data = data[4 + size:]
    return out


def _frame(batch: list[int]) -> bytes:
    data = marshal.dumps(batch)
    return len(data).to_bytes(4, "little") + data


def _drain(fd: int) -> bytes:
    os.set_blocking(fd, False)
    out = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            return out
        if not chunk:
            return out
        out += chunk


def test_pipe_batches_write_full_batches_at_once_and_the_rest_at_a_flush() -> None:
    read, write = os.pipe()
    try:
        batches = PipeBatches(write, _frame, delay_s=60, max_batch=4, max_queue=10)
        for i in range(6):
            batches.put(i)
        assert _frames(_drain(read)) == [[0, 1, 2, 3]]  # the full batch went in the putting thread, no thread
        assert batches.flush(b"", 5) and _frames(_drain(read)) == [[4, 5]]
    finally:
        os.close(read)
        os.close(write)


async def test_pipe_batches_the_loops_timer_sends_a_batch_that_never_fills() -> None:
    read, write = os.pipe()
    got = bytearray()
    try:
        batches = PipeBatches(write, _frame, delay_s=0.05, max_batch=100, max_queue=1000)
        batches.put(1)
        await until(lambda: bool(got.extend(_drain(read))) or _frames(bytes(got)) == [[1]], "the timer's batch")
    finally:
        os.close(read)
        os.close(write)


async def test_pipe_batches_hold_what_a_full_pipe_cannot_take_then_drop_and_count() -> None:
    """A reader that falls behind: the batches the pipe cannot take wait, up to max_queue items; later ones are
    dropped (counted, said once); what was kept arrives whole and in order once the reader reads again."""
    read, write = os.pipe()
    said: list[int] = []
    big = list(range(1_000_000))  # a batch's frame (5 MB) far larger than the pipe
    try:
        batches = PipeBatches(write, lambda b: _frame(big + b), delay_s=60, max_batch=2, max_queue=4,
                              on_drop=said.append)
        for i in range(10):  # 5 batches: the first partly in the pipe, the second waiting, the rest dropped
            batches.put(i)
        assert batches.dropped == 6 and said == [2]  # counted; said the first time only
        got = bytearray()

        def drained() -> bool:
            got.extend(_drain(read))
            return batches.flush(b"", 0.01)

        await until(drained, "the batches kept")
        got.extend(_drain(read))
        assert [b[len(big):] for b in _frames(bytes(got))] == [[0, 1], [2, 3]]
    finally:
        os.close(read)
        os.close(write)


def test_spans_follow_an_upstream_whose_address_or_dialect_changed() -> None:
    """The export process keeps an attempt's and a request's attributes encoded by their values; a batch that brings
    an upstream's new base URL or dialect (the config reloaded) has the next spans say the new ones."""
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    from pooltui.proxy.spans import Finished, SpanBuilder

    steps = ((10.0, "pick", "up", "k1", {"candidates": 2}),
             (10.5, "attempt", "up", "k1", {"status": 200, "outcome": "ok", "latency_ms": 400.0, "reason": ""}))
    done = Finished(TRACE, 0, False, "", 9.9, 10.6, "/v1/chat/completions", "m", 200, "ok", "", "up", "k1",
                    (3, 1, 0, 0), 0.0, 0.0, 7, steps, (), ("m", "id-1", ("stop",), None), None, None)

    def attributes(builder: SpanBuilder) -> dict[int, dict[str, object]]:
        body = otlp_wire.export_request(b"", b"", builder.spans_of(done))
        message = ExportTraceServiceRequest.FromString(body)
        return {s.kind: {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in s.attributes}
                for s in message.resource_spans[0].scope_spans[0].spans}

    builder = SpanBuilder(latest=True)
    builder.use_profiles({"up": ("openai", "http://127.0.0.1:1111/v1")})
    before = attributes(builder)
    assert before[Span.SPAN_KIND_CLIENT]["server.port"] == 1111
    assert before[Span.SPAN_KIND_SERVER]["gen_ai.provider.name"] == "openai"
    builder.use_profiles({"up": ("anthropic", "http://127.0.0.1:2222")})
    after = attributes(builder)
    assert after[Span.SPAN_KIND_CLIENT]["server.port"] == 2222
    assert after[Span.SPAN_KIND_CLIENT]["gen_ai.provider.name"] == "anthropic"
    assert after[Span.SPAN_KIND_SERVER]["gen_ai.provider.name"] == "anthropic"
    assert after[Span.SPAN_KIND_CLIENT]["pooltui.pick.candidates"] == 2
