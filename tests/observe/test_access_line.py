"""The access line straight from its values (no LogRecord, no generic formatter when our handler alone gets it):
the same text and JSON bytes as the formatters give from its record, for the values that matter (odd characters,
unicode, a secret in a path or a model name, missing fields, odd numbers), the same scrubbing, and a record
still for a handler or a filter of someone else's."""

from __future__ import annotations

import io
import logging
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from pooltui.core.masking import remember
from pooltui.core.trace import RequestTrace, Step
from pooltui.proxy.logs import (
    ACCESS,
    ACCESS_FIELDS,
    BufferedHandler,
    JsonFormatter,
    LineFormatter,
    TextFormatter,
    direct_handler,
    flush,
)
from pooltui.proxy.observe import Observer, RequestWatch, access_fields, access_values
from tests.observe.log_setup import configured_log
from tests.test_proxy import ALL_SECRETS, ProxyThread, proxied  # noqa: F401 - the fixture

KNOWN = "sk-test-log9known-00000000000000000001"  # a secret the scrubber knows (as a pool's key is)
SHAPED = "sk-ant-test-Xy7Qw2Lm9Pz4Rt6Vb8Nc1Kd3Fg5Hj0"  # one it does not, but key-shaped
BARE = "Zq8fR2mKx7VbN4pL0sT6wY1cJ9hD3gA5-log9"  # a known one with no prefix (Mistral style)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CREATED = 1_796_654_133.120_987  # 2026-12-07T08:35:33.120Z

#: (api, method, path, model, status, latency_ms, queue_wait_ms, provider, key, attempts, fallback, translated,
#: tokens_in, tokens_out, cost, outcome, trace_id), as ``access_values`` gives them
SERVED = ("openai", "POST", "/v1/chat/completions", "gpt-4o-mini", 200, 812.4, 0.0, "openai", "team-b", 2, "", "",
          12, 48, 3e-05, "ok", "4bf92f3577b34da6a3ce929d0e0e4736")
VALUES = [
    SERVED,
    # nothing served: the empty fields left out of the text, zeros kept
    ("anthropic", "POST", "/v1/messages", "", 429, 0.0, 0.0, "", "", 0, "", "", 0, 0, 0.0, "error", ""),
    ("openai", "POST", "/v1/chat/completions", "", 0, 0.1, -0.0, "", "", 0, "", "", 0, 0, 0, "", ""),
    # odd characters in what a caller or a config names
    ("openai", "POST", '/v1/chat/"completions"\\x=1 y\tz\n2\x00\x1b[31m\u2028\x7f', 'm"o\\d\ne\tl\x01',
     200, 1.5, 2.5, "prov ider", "équipe-b", 1, "backup=2", "anthropic->openai", 1, 2, 0.5, "ok", ""),
    # unicode: astral, right-to-left, combining
    ("openai", "POST", "/v1/ch\u00e4t/\u6a21\u578b",
     "\U0001f999-\U0001d518nicode-\u6a21\u578b-\u202eevil\u202c-e\u0301", 200, 3.0, 0.0,
     "\u30d7\u30ed\u30d0\u30a4\u30c0", "\u043a\u043b\u044e\u0447", 1, "", "", 3, 4, 1e-06, "ok", ""),
    # a secret in the path, the model, a label: masked in both
    ("openai", "POST", f"/v1/chat/completions/{KNOWN}", f"{SHAPED}", 404, 9.9, 0.0, "oai", f"lbl-{BARE}", 1,
     "", "", 0, 0, 0.0, "rejected", ""),
    # numbers: large, tiny, negative zero, not finite (json's NaN and Infinity)
    ("openai", "POST", "/v1/chat/completions", "m", 599, 123456789.1, 1e16, "p", "k", 10 ** 6, "", "", 10 ** 12,
     2 ** 63, float("nan"), "error", ""),
    ("openai", "POST", "/v1/chat/completions", "m", 200, float("inf"), 0.0, "p", "k", 1, "", "", 1, 1,
     float("-inf"), "ok", ""),
    ("openai", "POST", "/v1/chat/completions", "m", 200, 1.0, float("nan"), "p", "k", 1, "", "", 1, 1, 0.1, "ok", ""),
]


def _record(created: float, values: tuple) -> logging.LogRecord:
    """The access line's record as the observer makes it for a handler of someone else's."""
    fields = dict(zip(ACCESS_FIELDS, values, strict=True))
    record = Observer()._access_record(f"{values[0]} {values[1]} {values[2]} {values[4]}", fields)
    record.created = created
    return record


@pytest.fixture(autouse=True)
def _known_secrets() -> None:
    remember(KNOWN)
    remember(BARE)


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()], ids=["text", "json"])
@pytest.mark.parametrize("values", VALUES, ids=[f"v{i}" for i in range(len(VALUES))])
def test_the_line_from_its_values_is_the_line_from_its_record(formatter: LineFormatter, values: tuple) -> None:
    for created in (CREATED, CREATED + 0.999_9, 1_796_654_134.0, 0.000_4):
        assert formatter.render_access(created, values) == formatter.render(_record(created, values))


@pytest.mark.parametrize("fmt", [TextFormatter, JsonFormatter], ids=["text", "json"])
def test_the_handler_writes_the_same_bytes_scrubbed_from_values_as_from_records(fmt: type[LineFormatter]) -> None:
    """Through the buffered handler: the lines in the same order, scrubbed alike; no secret in either."""
    by_values, by_records = io.StringIO(), io.StringIO()
    fast, slow = BufferedHandler(by_values, fmt(), delay_s=60), BufferedHandler(by_records, fmt(), delay_s=60)
    for i, values in enumerate(VALUES * 3):
        fast.put_access((CREATED + i, values))
        slow.handle(_record(CREATED + i, values))
    fast.close()
    slow.close()
    assert by_values.getvalue() == by_records.getvalue()
    assert len(by_values.getvalue().splitlines()) >= len(VALUES) * 3
    for secret in (KNOWN, SHAPED, BARE):
        assert secret not in by_values.getvalue()
    assert "sk-test-\u2026" in by_values.getvalue() and "sk-ant-\u2026" in by_values.getvalue()


def _watch(trace: RequestTrace | None) -> RequestWatch:
    watch = RequestWatch("openai", "POST", "/v1/chat/completions", time.time(), time.perf_counter(), {})
    watch.trace, watch.outcome, watch.model, watch.status = trace, "ok", "gpt-sim-1", 200
    watch.tokens_in, watch.tokens_out, watch.cost, watch.latency_ms = 12, 5, 0.000_123_456_7, 1.234_5
    return watch


def _trace() -> RequestTrace:
    trace = RequestTrace(1, 0.0, "round_robin", served_by="backup/b0", waited_s=0.012_34)
    trace.entries += [(0.0, "main", "k0", 2, (), 0, None, 0.0, 0), Step(0.1, "attempt", "main", "k0", {}),
                      Step(0.2, "fallback", "backup", None, {}), (0.3, "backup", "b0", 1, (), 0, None, 0.0, 0),
                      Step(0.4, "attempt", "backup", "b0", {})]
    trace.raw = True
    return trace


@pytest.mark.parametrize("trace", [None, _trace()], ids=["unserved", "fallback"])
def test_the_values_are_the_watchs_as_its_properties_say(trace: RequestTrace | None) -> None:
    watch = _watch(trace)
    watch.translated, watch.trace_id = ("anthropic", "ab" * 16) if trace else (None, "")
    provider, key = watch.served
    assert access_fields(watch) == {
        "api": watch.api, "method": watch.method, "path": watch.path, "model": watch.model or "",
        "status": watch.status, "latency_ms": round(watch.latency_ms, 1),
        "queue_wait_ms": round(watch.queue_wait_ms, 1),
        "provider": provider, "key": key, "attempts": watch.attempts, "fallback": watch.fallback,
        "translated": watch.translated or "", "tokens_in": watch.tokens_in, "tokens_out": watch.tokens_out,
        "cost": round(watch.cost, 6), "outcome": watch.outcome, "trace_id": watch.trace_id}
    assert tuple(access_fields(watch).values()) == access_values(watch)
    if trace is not None:
        assert access_values(watch)[6:11] == (12.3, "backup", "b0", 2, "backup")


@pytest.fixture
def text_log() -> Iterator[io.StringIO]:
    yield from configured_log("text")


def test_our_handler_alone_gets_values_anyone_elses_gets_a_record(text_log: io.StringIO) -> None:
    """The values go straight to our handler only while it alone gets the lines; a handler or a filter of
    someone else's gets (or judges) a whole record, and our line is the same either way."""
    access = logging.getLogger(ACCESS)
    ours = direct_handler(access)
    assert isinstance(ours, BufferedHandler)
    observer, watch = Observer(), _watch(_trace())
    observer._done(watch, None)
    got: list[logging.LogRecord] = []
    theirs = logging.Handler()
    theirs.emit = got.append  # type: ignore[method-assign]
    access.addHandler(theirs)
    try:
        assert direct_handler(access) is None
        observer._done(watch, None)
    finally:
        access.removeHandler(theirs)
    [record] = got
    assert record.getMessage() == "openai POST /v1/chat/completions 200" and record.fields == access_fields(watch)
    flush()
    first, second = text_log.getvalue().splitlines()
    assert first[24:] == second[24:] and "provider=backup key=b0 attempts=2 fallback=backup" in first
    # a filter on the logger or on our handler judges a record: it can still turn the line away
    for where in (access, ours):
        where.addFilter(lambda record: record.levelno > logging.INFO)
        assert direct_handler(access) is None
        observer._done(watch, None)
        where.filters.clear()
    ours.setLevel(logging.WARNING)
    assert direct_handler(access) is None
    observer._done(watch, None)
    ours.setLevel(logging.NOTSET)
    access.propagate = True  # a parent's handlers would get it too
    try:
        assert direct_handler(access) is None
    finally:
        access.propagate = False
    flush()
    assert len(text_log.getvalue().splitlines()) == 2


def test_through_the_proxy_the_text_line_is_the_records(proxied, text_log: io.StringIO) -> None:  # noqa: F811
    """A real request, its line straight from values; the same request again with a handler of someone else's
    attached (so a record is made): the same line but for the time and the latencies; a pool's key named as the
    model is masked in both. (A first request takes the pool's 429 first: the two compared are served alike.)"""
    _, clients = proxied
    got: list[logging.LogRecord] = []
    theirs = logging.Handler()
    theirs.emit = got.append  # type: ignore[method-assign]
    model = f"{ALL_SECRETS[3]}-\u6a21\u578b \"x\""
    with ProxyThread(clients) as px:
        for n, attach in enumerate((False, False, True), 1):
            if attach:
                logging.getLogger(ACCESS).addHandler(theirs)
            try:
                answer = httpx.post(f"{px.service.url}/v1/chat/completions", timeout=30, headers={
                    "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}, json={
                    "model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
                assert answer.status_code == 200
                deadline = time.monotonic() + 30  # the line is made once the answer has gone (after_answer.py)
                while len(_lines(text_log)) < n:
                    assert time.monotonic() < deadline, "no access line"
                    time.sleep(0.01)
            finally:
                logging.getLogger(ACCESS).removeHandler(theirs)
    lines = _lines(text_log)[1:]
    assert len(lines) == 2 and len(got) == 1
    same = [re.sub(r"^\S+|(latency_ms|queue_wait_ms)=\S+", "", line) for line in lines]
    assert same[0] == same[1]
    assert "model=sk-test-\u2026" in lines[0] and ALL_SECRETS[3] not in text_log.getvalue()
    assert " tokens_out=5 " in lines[0] and lines[0].endswith(f" outcome=ok trace_id={TRACE}")


def _lines(stream: io.StringIO) -> list[str]:
    flush()
    return [line for line in stream.getvalue().splitlines() if "POST /v1/chat/completions" in line]
