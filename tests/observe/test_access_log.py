"""The proxy's JSON log: one access line per caller request with its fields (a success, a 429 storm, a
fallback), operational lines with a level, and never a key, even when an upstream echoes it back."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from pooltui.proxy.logs import ACCESS, ACCESS_FIELDS, OPERATIONS, flush
from pooltui.sim.wiring import client_for_scenario
from tests.conftest import keys, make_scenario
from tests.observe.log_setup import configured_log
from tests.odd_upstream import SECRET, OddUpstream
from tests.test_proxy import ProxyThread, proxied  # noqa: F401 - the fixture


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    yield from configured_log("json")


def lines(stream: io.StringIO, logger: str = ACCESS) -> list[dict]:
    flush()  # the lines queued so far (the handler writes them in batches)
    return [line for line in map(json.loads, stream.getvalue().splitlines()) if line["logger"] == logger]


def chat(url: str, **kw: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", timeout=30, json={
        "model": "gpt-sim-1", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], **kw})


def test_a_success_and_its_retry(proxied, json_log) -> None:  # noqa: F811 - the fixture
    _, clients = proxied
    with ProxyThread(clients) as px:
        answer = httpx.post(
            f"{px.service.url}/v1/chat/completions", timeout=30,
            headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
            json={"model": "gpt-sim-1", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
        assert answer.status_code == 200
    [line] = lines(json_log)
    assert set(ACCESS_FIELDS) | {"time", "level", "logger", "message"} == set(line)
    assert (line["api"], line["model"], line["status"], line["provider"], line["key"]) == (
        "openai", "gpt-sim-1", 200, "oai", "early")
    assert line["attempts"] == 2 and line["fallback"] == "" and line["level"] == "info"
    assert line["tokens_out"] == 5 and line["tokens_in"] > 0 and line["outcome"] == "ok"
    assert line["latency_ms"] > 0 and line["queue_wait_ms"] >= 0
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"  # the caller's, tracing off
    # the response tells the caller the same: attempts, queue wait, the serving key's own rate-limit headers
    assert answer.headers["x-pooltui-attempts"] == "2"
    assert int(answer.headers["x-pooltui-queue-wait-ms"]) >= 0


def test_the_serving_keys_rate_limit_headers_reach_the_caller(serve) -> None:
    scenario = make_scenario({"name": "main", "window_s": 60, "keys": [*keys("spent", 1, rpm=0),
                                                                        *keys("k", 1, rpm=40)]})
    server = serve(scenario)
    with ProxyThread({"main": client_for_scenario(scenario, server, "failover", seed=1)}) as px:
        answer = chat(px.service.url)
    assert answer.status_code == 200 and answer.headers["x-pooltui-served-by"] == "main/k0"
    assert answer.headers["x-pooltui-attempts"] == "2"
    assert answer.headers["x-ratelimit-limit-requests"] == "40"  # the serving key's, not the spent one's 0
    assert int(answer.headers["x-ratelimit-remaining-requests"]) < 40


def test_a_429_storm(serve, json_log) -> None:
    scenario = make_scenario({"name": "main", "keys": keys("k", 2, rpm=0)})
    server = serve(scenario)
    client = client_for_scenario(scenario, server, "round_robin", seed=1, deadline_s=0.5)
    with ProxyThread({"main": client}) as px:
        answers = [chat(px.service.url) for _ in range(3)]
    assert {a.status_code for a in answers} == {429}
    access = lines(json_log)
    assert [line["status"] for line in access] == [429] * 3
    assert all((line["outcome"], line["key"], line["provider"]) == ("error", "", "") for line in access), access
    assert access[0]["attempts"] >= 1
    assert answers[0].headers["x-pooltui-attempts"] == str(access[0]["attempts"])
    cooled = [line for line in lines(json_log, OPERATIONS) if line["change"] == "cooled"]
    assert cooled and {line["key"] for line in cooled} == {"k0", "k1"} and cooled[0]["level"] == "info"


def test_a_fallback(serve, json_log) -> None:
    scenario = make_scenario({"name": "main", "keys": keys("k", 2)}, {"name": "backup", "keys": keys("b", 1)})
    server = serve(scenario)
    httpx.post(f"{server.url}/_sim/outage/main", params={"status": "529"}).raise_for_status()
    with ProxyThread({"main": client_for_scenario(scenario, server, "round_robin", seed=1)}) as px:
        assert chat(px.service.url).status_code == 200
    [line] = lines(json_log)
    assert (line["status"], line["provider"], line["fallback"]) == (200, "backup", "backup")
    assert line["attempts"] >= 2


async def _echo_key(writer) -> None:
    body = json.dumps({"error": {"message": f"Incorrect API key provided: {SECRET}", "type": "invalid"}}).encode()
    writer.write(f"HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
                 f"x-echo-key: {SECRET}\r\nconnection: close\r\n\r\n".encode() + body)


def test_a_key_echoed_by_the_upstream_is_in_no_log_line(json_log) -> None:
    with OddUpstream(_echo_key) as odd, ProxyThread({"odd": odd.client()}) as px:
        answer = httpx.post(f"{px.service.url}/v1/chat/completions", timeout=30, json={
            "model": "m", "messages": [{"role": "user", "content": "hi"}]})
        assert SECRET not in answer.text and SECRET not in str(answer.headers)
    assert lines(json_log) and any(line["change"] == "barred" for line in lines(json_log, OPERATIONS))
    text = json_log.getvalue()
    assert SECRET not in text
    assert SECRET[-8:] not in text.replace(SECRET[:7], "")  # not even cut apart


def test_a_stream_is_logged_when_it_ends_with_its_tokens(proxied, json_log) -> None:  # noqa: F811 - the fixture
    _, clients = proxied
    with ProxyThread(clients) as px, httpx.stream("POST", f"{px.service.url}/v1/chat/completions", timeout=30, json={
            "model": "gpt-sim-1", "max_tokens": 5, "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "hi"}]}) as answer:
        assert answer.headers["x-pooltui-attempts"] == "3"  # a 429, a stream broken before data, then served
        body = answer.read()
    assert b"[DONE]" in body
    deadline = time.monotonic() + 30  # the proxy logs once its relay ends, which may come after the caller read it
    while not lines(json_log):
        assert time.monotonic() < deadline, "no access line for the stream"
        time.sleep(0.02)
    [line] = lines(json_log)  # one line, written at the stream's end: only then are its output tokens known
    assert (line["status"], line["attempts"], line["tokens_out"]) == (200, 3, 5)


def test_the_access_record_is_what_any_handler_expects(proxied) -> None:  # noqa: F811 - the fixture
    """The access line's record is made without Logger.info (no caller's frame looked up): a handler of the
    caller's own (pytest's caplog, a syslog handler) still gets a whole record, dated now, from this thread."""
    got: list[logging.LogRecord] = []
    emitted: list[float] = []
    handler = logging.Handler()

    def emit(record: logging.LogRecord) -> None:
        got.append(record)
        emitted.append(time.time())

    handler.emit = emit  # type: ignore[method-assign]
    logger = logging.getLogger(ACCESS)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        _, clients = proxied
        with ProxyThread(clients) as px:
            before = time.time()
            assert chat(px.service.url).status_code == 200
            thread = px.thread.name
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    [record] = got
    assert (record.name, record.levelname, record.levelno) == (ACCESS, "INFO", logging.INFO)
    assert record.getMessage() == "openai POST /v1/chat/completions 200" and record.fields["status"] == 200
    # dated when it is made (once the answer has gone: client/after_answer.py), not when its base was
    assert before <= record.created <= emitted[0] and 0 <= record.msecs < 1000
    assert record.relativeCreated == pytest.approx((record.created - logging._startTime) * 1000, abs=1)
    assert record.thread != threading.get_ident() and record.threadName == thread
    assert logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s").format(record).endswith(
        "INFO pooltui.access openai POST /v1/chat/completions 200")
