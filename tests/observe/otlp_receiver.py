"""A real OTLP/HTTP trace receiver on 127.0.0.1 for tests: decodes each ``ExportTraceServiceRequest`` with
opentelemetry-proto and keeps its spans (and the raw bytes, to scan for what must never be exported)."""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span


def value_of(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [value_of(x) for x in v.array_value.values]
    return getattr(v, which) if which else None


@dataclass
class Received:
    """One span as exported: ids in hex, kind, attributes and events as plain values."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    service: str

    @property
    def server(self) -> bool:
        return self.kind == Span.SPAN_KIND_SERVER

    @property
    def client(self) -> bool:
        return self.kind == Span.SPAN_KIND_CLIENT


class OtlpReceiver:
    """``POST /v1/traces`` on a port the OS picks; ``wait_for(n)`` waits until n spans have arrived."""

    def __init__(self) -> None:
        self.spans: list[Received] = []
        self.raw: list[bytes] = []
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.take(self.path, body)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def take(self, path: str, body: bytes) -> None:
        assert path == "/v1/traces", path
        request = ExportTraceServiceRequest.FromString(body)
        spans = []
        for rs in request.resource_spans:
            service = next((value_of(a.value) for a in rs.resource.attributes if a.key == "service.name"), "")
            for ss in rs.scope_spans:
                for s in ss.spans:
                    spans.append(Received(
                        s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.kind,
                        {a.key: value_of(a.value) for a in s.attributes},
                        [(e.name, {a.key: value_of(a.value) for a in e.attributes}) for e in s.events], service))
        with self.changed:
            self.raw.append(body)
            self.spans += spans
            self.changed.notify_all()

    def wait_for(self, n: int, timeout_s: float = 20.0) -> list[Received]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.spans) >= n, timeout_s), (
                f"{len(self.spans)} spans received, waited for {n}")
            return list(self.spans)

    def __enter__(self) -> OtlpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
