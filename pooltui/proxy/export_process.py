"""The span export process: the proxy's finished requests come in on stdin (``marshal`` frames, each a 4-byte
length then the data), their spans are built (spans.py), encoded (otlp_wire.py) and sent through the official
OTLP/HTTP exporter's client, one OTLP request per batch; all of it off the proxy's interpreter lock.

Frames: ``("init", endpoint, resource, scope, schema_url, latest)`` first, then ``("batch", profiles, records)``
(each record a ``marshal``'d ``spans.Finished``: made into bytes as the request ends, so that no record's objects
wait in the proxy for the garbage collector to walk)
and ``("flush", n)``, which is answered ``ack n`` on stdout once everything before it has been sent. Log lines of
warning and above go to stdout too (``log LEVEL LOGGER MESSAGE``), for the proxy to log as its own. The process
ends when stdin closes (the proxy stopped, however it stopped), after sending what it was given; it runs in a
session of its own and ignores SIGINT and SIGTERM, so that no batch is lost to a Ctrl-C or a stop meant for the
proxy (which closes its input as it ends)."""

from __future__ import annotations

import logging
import marshal
import signal
import struct
import sys
import threading
from typing import IO, Any

LENGTH = struct.Struct("<I")


def read_frame(source: IO[bytes]) -> Any:
    """The next message, or None at the end of the input."""
    head = source.read(LENGTH.size)
    if len(head) < LENGTH.size:
        return None
    data = source.read(LENGTH.unpack(head)[0])
    return marshal.loads(data)


def frame(message: tuple[Any, ...]) -> bytes:
    data = marshal.dumps(message)
    return LENGTH.pack(len(data)) + data


class _LineHandler(logging.Handler):
    """Log records as one line each on the proxy's side of stdout."""

    def __init__(self, out: IO[str], lock: threading.Lock) -> None:
        super().__init__(logging.WARNING)
        self.out, self.writing = out, lock

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage() + (f" ({record.exc_info[1]!r})" if record.exc_info else "")
            line = f"log {record.levelno} {record.name} {text}".replace("\n", " ")
            with self.writing:
                self.out.write(line + "\n")
                self.out.flush()
        except (OSError, ValueError):
            pass


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    source, out, lock = sys.stdin.buffer, sys.stdout, threading.Lock()
    logging.basicConfig(handlers=[_LineHandler(out, lock)], level=logging.WARNING)
    init = read_frame(source)
    if init is None:
        return
    _, endpoint, resource, scope, schema_url, latest = init

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from pooltui.proxy import otlp_wire
    from pooltui.proxy.spans import SpanBuilder

    exporter = OTLPSpanExporter(endpoint=endpoint)
    builder = SpanBuilder(latest)
    log = logging.getLogger("pooltui.proxy")
    try:
        while (message := read_frame(source)) is not None:
            if message[0] == "batch":
                builder.use_profiles(message[1])
                spans: list[bytes] = []
                for record in message[2]:
                    try:
                        spans += builder.spans_of(marshal.loads(record))  # a spans.Finished, as a plain tuple
                    except Exception:  # one request's odd record costs its own spans, not the batch's
                        log.exception("a request's spans not built")
                try:  # the exporter's own retries, headers, compression; it logs failures
                    if spans:
                        exporter._client.export(otlp_wire.export_request(resource, scope, spans, schema_url))
                except Exception:  # a failed export never ends the process
                    log.exception("a batch of spans not sent")
            elif message[0] == "flush":
                with lock:
                    out.write(f"ack {message[1]}\n")
                    out.flush()
    finally:
        exporter.shutdown()


if __name__ == "__main__":
    main()
