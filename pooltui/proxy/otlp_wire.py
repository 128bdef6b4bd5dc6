"""OTLP trace export bodies (``ExportTraceServiceRequest`` in protobuf, what OTLP/HTTP sends) written directly from
pooltui's own span records in one pass: no SDK span object, no intermediate message. The attributes that repeat
from request to request (operation, model, provider, key label, outcome...) are encoded once and reused, which
is most of what encoding a span costs. The official decoder (opentelemetry-proto) reads what this writes: see
tests/observe/test_otlp_wire.py."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

AttrValue = str | bool | int | float | Sequence[str]

SPAN_KIND_SERVER, SPAN_KIND_CLIENT = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
STATUS_ERROR = 2  # Status.StatusCode.STATUS_CODE_ERROR
#: Span.flags: the "is the parent remote" bit is known (and, with the second, set)
FLAG_HAS_IS_REMOTE, FLAG_IS_REMOTE = 0x100, 0x200
CACHED_MAX = 8192  # encoded attributes kept for reuse (cleared when full)
CACHED_VALUE_MAX = 200  # longer string values (captured content) are encoded each time

_SMALL = [bytes([i]) for i in range(128)]
_FIXED64 = struct.Struct("<Q")
_DOUBLE = struct.Struct("<d")
_FIXED32 = struct.Struct("<I")
_TIMES = struct.Struct("<BQBQ")  # start_time_unix_nano 7 and end 8, fixed64 each, with their tags


def varint(n: int) -> bytes:
    if 0 <= n < 0x80:
        return _SMALL[n]
    if 0 < n < 0x4000:  # two bytes: most lengths
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    n &= (1 << 64) - 1  # int64: a negative number is its 64-bit two's complement
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def delimited(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, bytes."""
    n = len(payload)
    return tag + (_SMALL[n] if n < 0x80 else varint(n)) + payload


def text(tag: bytes, value: str) -> bytes:
    return delimited(tag, value.encode())


def any_value(value: AttrValue) -> bytes:
    """``AnyValue``: string 1, bool 2, int 3, double 4, array 5."""
    if isinstance(value, str):
        return text(b"\x0a", value)
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + varint(value)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE.pack(value)
    return delimited(b"\x2a", b"".join(delimited(b"\x0a", any_value(v)) for v in value))


_encoded: dict[tuple[bytes, str, type, AttrValue], bytes] = {}


def key_value(key: str, value: AttrValue) -> bytes:
    """``KeyValue``: key 1, value 2."""
    return text(b"\x0a", key) + delimited(b"\x12", any_value(value))


def attributes(tag: bytes, attrs: Mapping[str, AttrValue]) -> bytes:
    """Each attribute as a ``KeyValue`` field ``tag``; the ones seen before from the cache."""
    parts = []
    for key, value in attrs.items():
        if isinstance(value, str | int) and not (isinstance(value, str) and len(value) > CACHED_VALUE_MAX):
            cached = _encoded.get((tag, key, type(value), value))
            if cached is None:
                if len(_encoded) >= CACHED_MAX:
                    _encoded.clear()
                cached = _encoded[(tag, key, type(value), value)] = delimited(tag, key_value(key, value))
            parts.append(cached)
        else:
            parts.append(delimited(tag, key_value(key, value)))
    return b"".join(parts)


class Field:
    """One attribute key written as ``KeyValue`` fields ``tag`` (a span's 9 by default, an event's 3): its key's
    bytes made once, and (with ``cache``) the encoded field of each value seen before kept (strings up to
    ``CACHED_VALUE_MAX`` and whole numbers), so a repeated value costs one dictionary look-up. ``clean``: what a
    string passes through before it is written (a scrubber), once per value kept."""

    __slots__ = ("_cache", "_clean", "_floats", "_head", "_seen", "key", "tag")

    def __init__(self, key: str, tag: bytes = b"\x4a", *, cache: bool = True,
                 clean: Callable[[str], str] | None = None) -> None:
        self.key, self.tag, self._cache, self._clean = key, tag, cache, clean
        self._head = text(b"\x0a", key)
        self._seen: dict[str | int | tuple[str, ...], bytes] = {}
        self._floats: dict[float, bytes] = {}  # apart: 0.0 == 0 would find the int's field

    def _field(self, value: bytes) -> bytes:
        return delimited(self.tag, self._head + delimited(b"\x12", value))

    def of_str(self, value: str) -> bytes:
        hit = self._seen.get(value)
        if hit is None:
            hit = self._field(text(b"\x0a", self._clean(value) if self._clean is not None else value))
            if self._cache and len(value) <= CACHED_VALUE_MAX:
                if len(self._seen) >= CACHED_MAX:
                    self._seen.clear()
                self._seen[value] = hit
        return hit

    def of_int(self, value: int) -> bytes:
        hit = self._seen.get(value)
        if hit is None:
            hit = self._field(b"\x18" + varint(value))
            if not self._cache:
                return hit
            if len(self._seen) >= CACHED_MAX:
                self._seen.clear()
            self._seen[value] = hit
        return hit

    def of_strs(self, values: tuple[str, ...]) -> bytes:
        """A list of strings (kept as a whole when short)."""
        hit = self._seen.get(values)
        if hit is None:
            clean = self._clean
            hit = self._field(any_value([clean(v) for v in values] if clean is not None else values))
            if self._cache and sum(map(len, values)) <= CACHED_VALUE_MAX:
                if len(self._seen) >= CACHED_MAX:
                    self._seen.clear()
                self._seen[values] = hit
        return hit

    def of_float(self, value: float) -> bytes:
        """A double (kept when ``cache``: give it rounded, as a wait in 0.1 ms, for the values to repeat)."""
        hit = self._floats.get(value)
        if hit is None:
            hit = self._field(b"\x21" + _DOUBLE.pack(value))
            if self._cache:
                if len(self._floats) >= CACHED_MAX:
                    self._floats.clear()
                self._floats[value] = hit
        return hit

    def of_any(self, value: AttrValue) -> bytes:
        """Any attribute value (a bool, a list of strings...), not cached."""
        return self._field(any_value(value))


@dataclass(slots=True)
class SpanRecord:
    """One finished span as pooltui knows it: ids as integers, times in ns since the epoch."""

    trace_id: int
    span_id: int
    parent_id: int  # 0: none
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: Mapping[str, AttrValue] | bytes  # bytes: the KeyValue fields already encoded (Field)
    events: Sequence[tuple[int, str, Mapping[str, AttrValue] | bytes]] = ()  # (time ns, name, attributes)
    error: str | None = None  # the status's message when the span failed (status ERROR), else status unset
    trace_state: str = ""
    parent_remote: bool = False


def span(record: SpanRecord) -> bytes:
    """``Span``: trace_id 1, span_id 2, trace_state 3, parent_span_id 4, name 5, kind 6, start 7, end 8,
    attributes 9, events 11, status 15, flags 16."""
    return span_bytes(trace_head(record.trace_id, record.trace_state), record.span_id.to_bytes(8, "big"),
                      record.parent_id.to_bytes(8, "big") if record.parent_id else b"", record.name, record.kind,
                      record.start_ns, record.end_ns, _attrs(b"\x4a", record.attributes), events(record.events),
                      record.error, record.parent_remote)


def trace_head(trace_id: int, trace_state: str = "") -> bytes:
    """A span's trace_id and trace_state fields: the same for every span of a trace, encoded once for them all."""
    head = b"\x0a\x10" + trace_id.to_bytes(16, "big")
    return head + text(b"\x1a", trace_state) if trace_state else head


def span_bytes(head: bytes, span_id: bytes, parent_id: bytes, name: str, kind: int, start_ns: int, end_ns: int,
               attributes: bytes, events: bytes = b"", error: str | None = None, remote: bool = False) -> bytes:
    """A ``Span`` from its parts, encoded: ``head`` from ``trace_head``, ids as 8 bytes (``parent_id`` empty for
    none), ``attributes`` and ``events`` already encoded, ``error`` the status's message when the span failed."""
    named = _NAMES.get(name)
    if named is None:
        if len(_NAMES) >= CACHED_MAX:
            _NAMES.clear()
        named = _NAMES[name] = text(b"\x2a", name)
    if error is None:
        status = b"\x7a\x00"
    else:  # Status: message 2, code 3
        status = delimited(b"\x7a", (text(b"\x12", error) if error else b"") + b"\x18" + varint(STATUS_ERROR))
    return b"".join((head, b"\x12\x08", span_id, b"\x22\x08" + parent_id if parent_id else b"", named,
                     _KINDS.get(kind) or b"\x30" + varint(kind), _TIMES.pack(0x39, start_ns, 0x41, end_ns),
                     attributes, events, status, _REMOTE if remote else _LOCAL))


def events(items: Iterable[tuple[int, str, Mapping[str, AttrValue] | bytes]]) -> bytes:
    """A span's events (time ns, name, attributes): Event: time 1, name 2, attributes 3."""
    return b"".join(delimited(b"\x5a", b"\x09" + _FIXED64.pack(ts) + text(b"\x12", name) + _attrs(b"\x1a", attrs))
                    for ts, name, attrs in items)


_NAMES: dict[str, bytes] = {}  # span names, encoded (operation and model: a handful)
_KINDS = {kind: b"\x30" + varint(kind) for kind in range(6)}
_LOCAL, _REMOTE = (b"\x85\x01" + _FIXED32.pack(FLAG_HAS_IS_REMOTE | remote) for remote in (0, FLAG_IS_REMOTE))


def _attrs(tag: bytes, attrs: Mapping[str, AttrValue] | bytes) -> bytes:
    return attrs if isinstance(attrs, bytes) else attributes(tag, attrs)


def resource(attrs: Mapping[str, AttrValue]) -> bytes:
    """``Resource``: attributes 1."""
    return attributes(b"\x0a", attrs)


def scope(name: str, version: str) -> bytes:
    """``InstrumentationScope``: name 1, version 2."""
    return text(b"\x0a", name) + (text(b"\x12", version) if version else b"")


def export_request(resource_bytes: bytes, scope_bytes: bytes, spans: Iterable[bytes], schema_url: str = "") -> bytes:
    """``ExportTraceServiceRequest`` of one resource and one scope: resource_spans 1 {resource 1, scope_spans 2
    {scope 1, spans 2}, schema_url 3}. Each length is worked out before anything is joined, so the spans are copied
    once, into the body (not once more per enclosing message)."""
    parts = [b"", b"", b"", delimited(b"\x0a", scope_bytes)]  # the heads go in front once their lengths are known
    for s in spans:  # each span's tag and length beside it
        parts += (b"\x12", varint(len(s)), s)
    scope_spans = sum(map(len, parts))
    tail = text(b"\x1a", schema_url) if schema_url else b""
    resource_field = delimited(b"\x0a", resource_bytes)
    scope_head = b"\x12" + varint(scope_spans)
    parts[0] = b"\x0a" + varint(len(resource_field) + len(scope_head) + scope_spans + len(tail))
    parts[1], parts[2] = resource_field, scope_head
    parts.append(tail)
    return b"".join(parts)
