"""The SSE scanner once data flows: whole events that say nothing it acts on are passed over in one look at the
chunk, and what it does act on is still found wherever it lies in a chunk of many events (usage objects, errors,
the end, an event begun in an earlier chunk). ``feed(chunk, until_data=True)`` stops at the first data event and
reads the rest on the next ``feed`` or ``catch_up``."""

from __future__ import annotations

import pytest

from pooltui.core.sse import SSELineTooLongError, SSEScanner
from pooltui.sim.shapes import sse_events


def scanned(*chunks: bytes) -> SSEScanner:
    scanner = SSEScanner(max_line=1 << 20)
    for chunk in chunks:
        scanner.feed(chunk)
    return scanner


def joined(events: list[bytes], size: int) -> list[bytes]:
    """The events as they come when an upstream's writes are read together, ``size`` to a read."""
    return [b"".join(events[i:i + size]) for i in range(0, len(events), size)]


def test_usage_is_counted_from_the_last_event_however_the_events_are_read_together() -> None:
    for dialect in ("openai", "anthropic"):
        events = sse_events(dialect, "m", "id1", 7, 12)
        for size in (1, 2, 3, 5, 16, len(events)):
            s = scanned(*joined(events, size))
            assert (s.tokens_in, s.tokens_out, s.done) == (7, 12, True), (dialect, size)


def test_a_usage_object_among_usage_null_chunks_is_found_and_a_spaced_one_too() -> None:
    quiet = b'data: {"choices":[{"delta":{"content":"a"}}],"usage":null}\n\n'
    usage = b'data: {"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":9}}\n\n'
    spaced = b'data: {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}\n\n'
    assert scanned(quiet, quiet * 3 + usage + quiet).tokens_out == 9
    assert (scanned(quiet, quiet + spaced).tokens_in, scanned(quiet, spaced + quiet).tokens_out) == (5, 2)


def test_an_error_after_data_in_a_chunk_of_many_events_is_kept() -> None:
    data = b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'
    s = scanned(data, data * 2 + b'event: error\ndata: {"message":"overloaded"}\n\n' + data)
    assert s.error == {"message": "overloaded"} and s.saw_data
    # an event whose name comes after its data, in the next chunk: its data line was held, not passed over
    late = scanned(data, data * 2 + b'data: {"message":"went away"}\n', b"event: error\n\n")
    assert late.error == {"message": "went away"}


def test_an_event_begun_in_an_earlier_chunk_is_read_whole() -> None:
    data = b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'
    # the usage event's first data line came with the chunk before: this chunk alone names no usage
    s = scanned(data, data + b'data: {"usage":\n', b'data: {"input_tokens":5,"output_tokens":6}}\n\n' + data)
    assert (s.tokens_in, s.tokens_out) == (5, 6)
    named = scanned(data, data + b"event: error\n", b'data: {"message":"overloaded"}\n\n' + data)
    assert named.error == {"message": "overloaded"}  # named an error in the chunk before; its data does not say so
    held = scanned(data, data + b'data: {"us', b'age":{"output_tokens":8}}\n\n' + data)  # a line cut in two
    assert held.tokens_out == 8


def test_crlf_events_read_together_end_where_they_should() -> None:
    events = [e.replace(b"\n", b"\r\n") for e in sse_events("openai", "m", "id1", 3, 4)]
    s = scanned(*joined(events, 3))
    assert (s.tokens_in, s.tokens_out, s.done) == (3, 4, True)
    usage = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}\r\n\r\n'
    half = scanned(events[0], events[1] + usage[:10], usage[10:] + events[2])  # cut inside the usage event
    assert (half.tokens_in, half.tokens_out) == (3, 4)


def test_until_data_stops_at_the_first_data_event_and_catch_up_reads_the_rest() -> None:
    events = sse_events("anthropic", "m", "id1", 7, 12)
    s = SSEScanner()
    s.feed(b": keep-alive\n\n" + b"".join(events), until_data=True)
    assert s.saw_data and s.tokens_in == 7 and s.tokens_out == 1  # message_start only: its usage
    assert not s.done
    s.catch_up()
    assert (s.tokens_in, s.tokens_out, s.done) == (7, 12, True)
    t = SSEScanner()
    t.feed(b"".join(events), until_data=True)
    t.feed(b": keep-alive\n\n")  # the next chunk reads what was left first
    assert (t.tokens_in, t.tokens_out, t.done) == (7, 12, True)


def test_an_event_over_the_limit_is_refused_even_whole_in_one_chunk_once_data_flows() -> None:
    s = SSEScanner(max_line=100)
    s.feed(b'data: {"choices":[]}\n\n')
    s.feed(b"data:" + b"x" * 100 + b"\n\n")  # at the limit
    with pytest.raises(SSELineTooLongError, match="longer than"):
        s.feed(b"data:" + b"x" * 101 + b"\n\n")
