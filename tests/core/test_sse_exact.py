"""The SSE scanner to the byte: its line and event limits at their edges (and what the errors say), lines split
across chunks however they arrive, CRLF streams, fields without a space, non-UTF-8 event names, data spread
over several lines, an `event: error` whose data does not say "error", and the statuses an in-stream error maps
to. Written from the mutation run's survivors."""

from __future__ import annotations

import json

import pytest

from pooltui.core.sse import SSELineTooLongError, SSEScanner, stream_error_status

USAGE = b'data: {"type":"message_delta","usage":{"input_tokens":12,"output_tokens":7}}\n\n'


def scanned(*chunks: bytes, max_line: int = 1 << 20) -> SSEScanner:
    scanner = SSEScanner(max_line=max_line)
    for chunk in chunks:
        scanner.feed(chunk)
    return scanner


def test_a_stream_without_usage_counts_no_tokens() -> None:
    s = scanned(b'data: {"choices":[]}\n\n')
    assert (s.tokens_in, s.tokens_out, s.saw_data) == (0, 0, True)


def test_a_line_held_in_pieces_may_reach_the_limit_but_not_pass_it() -> None:
    s = scanned(b"data: " + b"x" * 54, b"y" * 40, max_line=100)  # 100 bytes held, no newline yet: at the limit
    assert s.error is None
    with pytest.raises(SSELineTooLongError):
        scanned(b"data: " + b"x" * 54, b"y" * 41, max_line=100)
    with pytest.raises(SSELineTooLongError, match=r"longer than 1 MiB"):
        scanned(b"x" * (1 << 20), b"y", max_line=1 << 20)


def test_pieces_are_joined_once_and_the_count_starts_again_after() -> None:
    s = scanned(b'data: {"usage":{"input_', b'tokens":12,"output_tok', b'ens":7}}\n\n', max_line=100)
    assert (s.tokens_in, s.tokens_out) == (12, 7)
    s.feed(b"z" * 100)  # a new line of exactly the limit, held in one piece: the joined line's bytes are gone
    with pytest.raises(SSELineTooLongError):
        s.feed(b"z")


def test_a_line_split_after_a_newline_is_read_whole() -> None:
    s = scanned(b'data: {"choices":[]}\n\ndata: {"usa', b'ge":{"input_tokens":3,"output_tokens":4}}\n\n')
    assert (s.tokens_in, s.tokens_out) == (3, 4)


def test_the_rest_of_a_chunk_after_its_last_newline_may_reach_the_limit() -> None:
    s = scanned(b"data: {}\n\n" + b"x" * 100, max_line=100)
    assert s.saw_data
    with pytest.raises(SSELineTooLongError, match="line longer than 1 MiB"):
        scanned(b"data: {}\n\n" + b"x" * (1 << 20) + b"y", max_line=1 << 20)


def test_crlf_streams_end_their_events_and_their_done() -> None:
    s = scanned(USAGE.replace(b"\n", b"\r\n") + b"data: [DONE]\r\n\r\n")
    assert (s.tokens_in, s.tokens_out, s.done) == (12, 7, True)


def test_an_event_of_many_data_lines_is_held_to_the_limit_and_joined_with_newlines() -> None:
    s = scanned(b'data: {"usage":\ndata: {"input_tokens":5,"output_tokens":6}}\n\n')
    assert (s.tokens_in, s.tokens_out) == (5, 6)  # the two lines are one JSON document
    at_limit = scanned(b"data: {}\n\n" + b"data:" + b"x" * 50 + b"\n" + b"data:" + b"y" * 50 + b"\n", max_line=100)
    assert at_limit.error is None  # 100 bytes of data in the second event: at the limit
    first = scanned(b"data:" + b"x" * 50 + b"\n" + b"data:" + b"y" * 50 + b"\n", max_line=100)
    assert first.error is None  # and in the first
    with pytest.raises(SSELineTooLongError, match="event longer than 1 MiB"):
        scanned(*[b"data:" + b"x" * (1 << 10) + b"\n"] * 1025, max_line=1 << 20)


def test_an_event_field_needs_no_space_and_may_be_any_bytes() -> None:
    s = scanned(b'event:error\ndata: {"message":"overloaded"}\n\n')
    assert s.error == {"message": "overloaded"}  # the event's name says error; its data does not
    odd = scanned(b"event: \xff\xfe\ndata: {}\n\n")
    assert odd.saw_data and odd.error is None


def test_an_in_stream_error_keeps_its_own_status_at_the_edges() -> None:
    for code in (100, 599):
        assert stream_error_status({"error": {"code": code}}) == code
        assert stream_error_status({"error": {"code": str(code)}}) == code
    assert stream_error_status({"error": {"code": 600}}) == 500
    assert stream_error_status({"error": {"code": "99"}}) == 500
    assert stream_error_status(json.loads('{"error": {"type": "rate_limit_error"}}')) == 429
