"""A success's accounting (its usage read from the body, its key's report, the usage and request listeners, the
access line) is done once the caller's answer is written, not before (client/after_answer.py): the caller waits
for none of it, and all of it is still done, in order, before the proxy serves anything else."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import pytest

from pooltui.client.pool_client import RequestRecord, UsageRecord
from tests.test_proxy import ProxyThread, proxied  # noqa: F401  (the fixture)
from tests.test_proxy_direct import _Reader, _request

SLOW_S = 0.6  # what one listener takes: longer than a whole answer on loopback, even on a loaded machine


def _slow_once(calls: list, slow: threading.Event):
    """A listener that takes SLOW_S on the first success it hears of (the pool's first key answers 429 first)."""
    def listener(record) -> None:
        if not slow.is_set() and getattr(record, "ok", None) != 0 and getattr(record, "outcome", "ok") == "ok":
            slow.set()
            time.sleep(SLOW_S)  # blocks the proxy's event loop, as a slow bookkeeping step would
        calls.append(record)
    return listener


def _timed_answer(port: int, *extra: str, stream: bool = False) -> tuple[float, bytes, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        t0 = time.perf_counter()
        sock.sendall(_request(port, 4, *extra, stream=stream))
        status, _, body = _Reader(sock).response()
        return time.perf_counter() - t0, status, body


def test_the_caller_has_its_answer_before_the_usage_is_accounted(proxied) -> None:  # noqa: F811
    _, clients = proxied
    usage: list[UsageRecord] = []
    ended: list[RequestRecord] = []
    clients["oai"].usage_listeners.append(_slow_once(usage, threading.Event()))
    clients["oai"].request_listeners.append(ended.append)
    with ProxyThread({"oai": clients["oai"]}) as px:
        took, status, body = _timed_answer(px.service.port)
        assert status.endswith(b" 200 OK")
        assert took < SLOW_S * 0.75, f"the answer waited {took:.2f} s for the accounting"
        deadline = time.monotonic() + 5
        while not ended and time.monotonic() < deadline:
            time.sleep(0.01)
    tokens = json.loads(body)["usage"]
    # all of it done, in order: the request's record has the usage the deferred accounting read from the body
    assert [(u.requests, u.ok, u.tokens_in, u.tokens_out) for u in usage][-1:] == \
        [(1, 1, tokens["prompt_tokens"], tokens["completion_tokens"])]
    assert [(r.outcome, r.tokens_in, r.tokens_out) for r in ended] == \
        [("ok", tokens["prompt_tokens"], tokens["completion_tokens"])]


@pytest.mark.parametrize("listeners", ["request_listeners", "usage_listeners"])
def test_a_streams_first_chunk_does_not_wait_for_its_records(proxied, listeners: str) -> None:  # noqa: F811
    _, clients = proxied
    ended: list = []
    getattr(clients["oai"], listeners).append(_slow_once(ended, threading.Event()))
    with ProxyThread({"oai": clients["oai"]}) as px, \
            socket.create_connection((px.service.host, px.service.port), timeout=10) as sock:
        t0 = time.perf_counter()
        sock.sendall(_request(px.service.port, 4, stream=True))
        first = sock.recv(65536)
        took = time.perf_counter() - t0
        assert first.startswith(b"HTTP/1.1 200") and b"data: " in first
        assert took < SLOW_S * 0.75, f"the first chunk waited {took:.2f} s for its {listeners}"
        rest = _Reader(sock)
        rest.buf = first.partition(b"\r\n\r\n")[2]
        rest._chunked()  # the stream ends whole
    if listeners == "request_listeners":
        assert [r.outcome for r in ended] == ["ok"]
    else:  # the stream's opening (one request, no tokens yet), then its tokens at its end
        opened = [(u.requests, u.ok) for u in ended if u.requests]
        assert opened[-1:] == [(1, 1)] and sum(u.tokens_out for u in ended) > 0


def test_a_failing_accounting_step_is_logged_and_the_rest_still_runs(proxied) -> None:  # noqa: F811
    _, clients = proxied
    ended: list[RequestRecord] = []
    logged: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = logged.append  # type: ignore[method-assign]
    ops = logging.getLogger("pooltui.proxy")  # its own handler: another test may have stopped its propagation

    def broken(record: UsageRecord) -> None:
        if record.ok:  # a success's, which is accounted after its answer
            raise RuntimeError("a listener's own bug")

    clients["oai"].usage_listeners.insert(0, broken)
    clients["oai"].request_listeners.append(ended.append)
    ops.addHandler(handler)
    try:
        with ProxyThread({"oai": clients["oai"]}) as px:
            for _ in range(2):
                _, status, _ = _timed_answer(px.service.port)
                assert status.endswith(b" 200 OK")  # the caller never sees it
            deadline = time.monotonic() + 5
            while len(ended) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        ops.removeHandler(handler)
    assert [r.outcome for r in ended] == ["ok", "ok"]  # what came after the failing step still ran
    failed = [r for r in logged if "accounting" in r.getMessage()]
    assert len(failed) == 2 and failed[0].exc_info is not None


def test_the_outcome_listeners_hear_of_it_after_the_answer_which_still_says_its_attempts(proxied) -> None:  # noqa: F811
    _, clients = proxied
    heard: list[tuple[str, str]] = []
    slow = threading.Event()

    def listener(outcome: str, served_by: str, trace) -> None:
        if outcome == "ok" and not slow.is_set():
            slow.set()
            time.sleep(SLOW_S)
        heard.append((outcome, served_by))

    clients["oai"].outcome_listeners.append(listener)
    with ProxyThread({"oai": clients["oai"]}) as px, \
            socket.create_connection((px.service.host, px.service.port), timeout=10) as sock:
        t0 = time.perf_counter()
        sock.sendall(_request(px.service.port, 4))
        status, headers, _ = _Reader(sock).response()
        took = time.perf_counter() - t0
    assert status.endswith(b" 200 OK")
    assert took < SLOW_S * 0.75, f"the answer waited {took:.2f} s for an outcome listener"
    # the pool's first key answers 429 (rpm 0), the second serves: the headers say so without the listeners
    assert headers[b"x-pooltui-attempts"] == b"2" and headers[b"x-pooltui-served-by"] == b"oai/early"
    assert heard == [("ok", "oai")]
