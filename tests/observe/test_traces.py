"""OpenTelemetry traces of proxied requests, received by a real OTLP/HTTP receiver: one SERVER span per caller
request continuing the caller's traceparent, one CLIENT span per upstream attempt (a 429 then another key; a
fallback), GenAI attributes, and never a secret or a prompt in anything exported unless content capture is on."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial

import httpx
import openai
import pytest

from pooltui.client.pool_client import PoolClient, Upstream
from pooltui.core.pool import KeySpec, Pool
from pooltui.providers.profiles import profile_for
from pooltui.proxy.observe import Observer
from pooltui.proxy.telemetry import Tracing
from pooltui.sim.wiring import client_for_scenario
from pooltui.store.telemetry import TelemetryConfig
from tests.conftest import keys, make_scenario
from tests.observe.otlp_receiver import OtlpReceiver, Received
from tests.odd_upstream import OddUpstream, head
from tests.test_proxy import ALL_SECRETS, ProxyThread, proxied  # noqa: F401 - the fixture

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
PROMPT = "the password is PINEAPPLE-42, never tell"


def traced(receiver: OtlpReceiver, **config: object) -> Observer:
    return Observer(tracing=Tracing(TelemetryConfig(endpoint=receiver.url, schedule_delay_ms=50, **config)))


def ask(url: str, **headers: str) -> openai.types.chat.ChatCompletion:
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="caller-own-key", max_retries=0)
    return sdk.chat.completions.with_raw_response.create(
        model="gpt-sim-1", messages=[{"role": "user", "content": PROMPT}], max_tokens=5, extra_headers=headers)


def exported_text(receiver: OtlpReceiver, spans: list[Received]) -> list[str]:
    """Every attribute and event value exported, as text, and the raw OTLP bodies."""
    out = [b.decode("latin-1") for b in receiver.raw]
    for s in spans:
        out += [s.name, *map(str, s.attributes.values())]
        out += [str(v) for _, attrs in s.events for v in attrs.values()] + [name for name, _ in s.events]
    return out


def test_a_retry_is_one_trace_continuing_the_callers(proxied) -> None:  # noqa: F811 - the fixture
    _, clients = proxied
    with OtlpReceiver() as receiver, ProxyThread(clients, observer=traced(receiver)) as px:
        raw = ask(px.service.url, traceparent=f"00-{CALLER_TRACE}-{CALLER_SPAN}-01")
        assert raw.headers["x-pooltui-served-by"] == "oai/early"
        completion = raw.parse().choices[0].message.content
        spans = receiver.wait_for(3)
    assert {s.trace_id for s in spans} == {CALLER_TRACE}  # one trace, the caller's
    [server] = [s for s in spans if s.server]
    attempts = sorted((s for s in spans if s.client), key=lambda s: s.attributes["http.response.status_code"])
    assert server.name == "chat gpt-sim-1" and server.parent_id == CALLER_SPAN
    assert server.service == "pooltui"
    a = server.attributes
    assert (a["gen_ai.operation.name"], a["gen_ai.request.model"], a["gen_ai.provider.name"]) == (
        "chat", "gpt-sim-1", "openai")
    assert (a["pooltui.key"], a["pooltui.attempts"], a["http.response.status_code"]) == ("early", 2, 200)
    assert a["gen_ai.usage.output_tokens"] == 5 and a["gen_ai.usage.input_tokens"] > 0
    assert [s.attributes["pooltui.key"] for s in attempts] == ["early", "limited"]
    assert [s.attributes["http.response.status_code"] for s in attempts] == [200, 429]
    assert all(s.parent_id == server.span_id and s.name == "chat gpt-sim-1" for s in attempts)
    served, limited = attempts
    assert served.attributes["server.address"] == "127.0.0.1" and served.attributes["gen_ai.response.model"]
    assert served.attributes["gen_ai.usage.output_tokens"] == 5
    assert limited.attributes["pooltui.attempt.outcome"] == "rate_limited"
    assert "gen_ai.usage.output_tokens" not in limited.attributes
    assert "rotated" in {name for name, _ in server.events}
    assert served.attributes["pooltui.pick.candidates"] >= 1 and limited.attributes["pooltui.attempt.reason"]
    assert completion and len(completion.split()) == 5
    for text in exported_text(receiver, spans):
        assert "PINEAPPLE" not in text and completion not in text
        for secret in ALL_SECRETS:
            assert secret not in text


def test_a_fallback_is_one_trace(serve) -> None:
    scenario = make_scenario({"name": "main", "keys": keys("k", 2)}, {"name": "backup", "keys": keys("b", 1)})
    server = serve(scenario)
    httpx.post(f"{server.url}/_sim/outage/main", params={"status": "529"}).raise_for_status()
    client = client_for_scenario(scenario, server, "round_robin", seed=1)
    with OtlpReceiver() as receiver, ProxyThread({"main": client}, observer=traced(receiver)) as px:
        raw = ask(px.service.url)
        assert raw.headers["x-pooltui-served-by"].startswith("backup/")
        attempts = int(raw.headers["x-pooltui-attempts"])
        spans = receiver.wait_for(1 + attempts)
    assert len({s.trace_id for s in spans}) == 1 and len(spans) == 1 + attempts
    [top] = [s for s in spans if s.server]
    assert top.parent_id == "" and top.attributes["pooltui.fallback"] == "backup"
    providers = [s.attributes["pooltui.provider"] for s in spans if s.client]
    assert "main" in providers and providers.count("backup") == 1
    assert "fallback" in {name for name, _ in top.events}
    for text in exported_text(receiver, spans):
        assert "PINEAPPLE" not in text


def test_content_only_when_asked_and_still_scrubbed(proxied) -> None:  # noqa: F811 - the fixture
    _, clients = proxied
    secret = ALL_SECRETS[-1]
    with OtlpReceiver() as receiver, ProxyThread(clients, observer=traced(receiver, capture_content=True)) as px:
        sdk = openai.OpenAI(base_url=f"{px.service.url}/v1", api_key="caller-own-key", max_retries=0)
        sdk.chat.completions.create(model="gpt-sim-1", max_tokens=5,
                                    messages=[{"role": "user", "content": f"{PROMPT} {secret}"}])
        spans = receiver.wait_for(3)
    [top] = [s for s in spans if s.server]
    assert "PINEAPPLE-42" in top.attributes["gen_ai.input.messages"]
    assert top.attributes["gen_ai.output.messages"]
    for text in exported_text(receiver, spans):
        assert secret not in text


def test_tracing_off_imports_no_opentelemetry() -> None:
    code = ("import sys; from pooltui.proxy.app import PoolProxy; from pooltui.proxy.observe import observer_for; "
            "assert observer_for(None).tracing is None; "
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("environ", "on"), [
    ({}, False), ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}, False),
])
def test_tracing_is_opt_in(environ: dict[str, str], on: bool) -> None:
    from pooltui.proxy.telemetry import wanted

    assert wanted(None, environ) is on
    assert wanted(TelemetryConfig(endpoint="http://127.0.0.1:4318"), {}) is True


class HeaderUpstream:
    """An openai-style upstream on 127.0.0.1 that answers every chat with a completion and keeps the headers
    it was sent."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from tests.odd_upstream import completion

        self.seen: list[dict[str, str]] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                upstream.seen.append({k.lower(): v for k, v in self.headers.items()})
                body = completion()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def client(self) -> PoolClient:
        profile = profile_for("openai", name="up", base_url=f"http://127.0.0.1:{self.server.server_address[1]}/v1")
        return PoolClient(Upstream(profile, Pool("up", [KeySpec("k0", "sk-test-up-0000000000000000000001")])))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("propagate", [False, True])
def test_the_callers_trace_context_goes_upstream_only_when_configured(propagate: bool) -> None:
    upstream = HeaderUpstream()
    try:
        context = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01", "tracestate": "vendor=private",
                   "baggage": "user=alice"}
        with ProxyThread({"up": upstream.client()}, observer=Observer(propagate_upstream=propagate)) as px:
            answer = httpx.post(f"{px.service.url}/v1/chat/completions", headers=context, timeout=30,
                                json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        assert answer.status_code == 200
        [seen] = upstream.seen
        assert {k: seen.get(k) for k in context} == (context if propagate else dict.fromkeys(context))
    finally:
        upstream.close()


@pytest.mark.parametrize(("opt_in", "old_name_too"), [("", True), ("http,gen_ai_latest_experimental", False)])
def test_semconv_stability_opt_in(opt_in: str, old_name_too: bool) -> None:
    tracing = Tracing(TelemetryConfig(endpoint="http://127.0.0.1:9"), environ={"OTEL_SEMCONV_STABILITY_OPT_IN": opt_in})
    try:
        attrs = tracing._provider_attrs("anthropic")
    finally:
        tracing.shutdown()
    assert attrs["gen_ai.provider.name"] == "anthropic"
    assert ("gen_ai.system" in attrs) is old_name_too


def test_a_caller_not_sampled_is_not_traced(proxied) -> None:  # noqa: F811 - the fixture
    _, clients = proxied
    other = "0af7651916cd43dd8448eb211c80319c"
    with OtlpReceiver() as receiver, ProxyThread(clients, observer=traced(receiver)) as px:
        ask(px.service.url, traceparent=f"00-{other}-{CALLER_SPAN}-00")  # the caller's sampler said no
        ask(px.service.url, traceparent=f"00-{CALLER_TRACE}-{CALLER_SPAN}-01")
        spans = receiver.wait_for(2)
        assert px.proxy.observer.tracing is not None and px.proxy.observer.tracing.flush()
    assert {s.trace_id for s in receiver.spans} == {CALLER_TRACE} and spans


async def _large_completion(writer, words: int = 40_000) -> None:
    body = json.dumps({"id": "c-large", "object": "chat.completion", "created": 0, "model": "m-large",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": "word " * words},
                                    "finish_reason": "length"}],
                       "usage": {"prompt_tokens": 9, "completion_tokens": words, "total_tokens": 9 + words}}).encode()
    writer.write(head(content_type="application/json", length=len(body)) + body)


@pytest.mark.parametrize("words", [40_000, 250_000])  # the second past the 1 MB the client parses
def test_a_large_answer_is_traced_like_a_small_one(words: int) -> None:
    """An answer too large to hold until its spans are built is read at once: the spans say the same, its tokens
    too when the client, past its parse limit, counted none."""
    with OddUpstream(partial(_large_completion, words=words)) as odd, OtlpReceiver() as receiver, \
            ProxyThread({"odd": odd.client()}, observer=traced(receiver)) as px:
        assert len(ask(px.service.url).content) > words * 5
        spans = receiver.wait_for(2)
    [attempt] = [s for s in spans if s.client]
    a = attempt.attributes
    assert (a["gen_ai.response.id"], a["gen_ai.response.model"], a["gen_ai.response.finish_reasons"]) == (
        "c-large", "m-large", ["length"])
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (9, words)
    assert not any("word word" in text for text in exported_text(receiver, spans))


def test_tokens_and_cache_tokens_come_from_what_the_request_counted_a_stream_too(serve) -> None:
    """The spans' usage is what the client counted of the answer (its usage records), not the body read again:
    an anthropic answer's cache writes and reads (input tokens counting them, as the conventions ask), and a
    stream's serving attempt, whose body the spans never see, has its tokens too."""
    import anthropic

    from tests.test_prompt_cache import cached_system

    scenario = make_scenario({"name": "a", "dialect": "anthropic", "keys": keys("s", 1, org="acme")})
    client = client_for_scenario(scenario, serve(scenario), "round_robin", seed=1)
    first_trace, stream_trace = "1" * 32, "2" * 32
    with OtlpReceiver() as receiver, ProxyThread({"a": client}, observer=traced(receiver)) as px:
        sdk = anthropic.Anthropic(base_url=px.service.url, api_key="caller-own-key", max_retries=0)
        first = sdk.messages.create(model="claude-sim-1", max_tokens=4, **cached_system(2000, question="one"),
                                    extra_headers={"traceparent": f"00-{first_trace}-{CALLER_SPAN}-01"})
        with sdk.messages.stream(model="claude-sim-1", max_tokens=4, **cached_system(2000, question="two"),
                                 extra_headers={"traceparent": f"00-{stream_trace}-{CALLER_SPAN}-01"}) as stream:
            final = stream.get_final_message()
        spans = receiver.wait_for(4)
    by_trace = {t: {("server" if s.server else "client"): s.attributes for s in spans if s.trace_id == t}
                for t in (first_trace, stream_trace)}
    written = first.usage.cache_creation_input_tokens
    assert written and final.usage.cache_read_input_tokens == written
    for kind in ("server", "client"):
        a = by_trace[first_trace][kind]
        assert a["gen_ai.usage.cache_creation.input_tokens"] == written
        assert a["gen_ai.usage.input_tokens"] == first.usage.input_tokens + written
        assert a["gen_ai.usage.output_tokens"] == first.usage.output_tokens
        s = by_trace[stream_trace][kind]
        assert s["gen_ai.usage.cache_read.input_tokens"] == written
        assert s["gen_ai.usage.output_tokens"] == final.usage.output_tokens
    served = by_trace[first_trace]["client"]
    assert (served["gen_ai.response.id"], served["gen_ai.response.finish_reasons"]) == (first.id, [first.stop_reason])


@pytest.mark.parametrize(("body", "facts"), [
    ({"id": "chatcmpl-1", "model": "gpt-4o-mini-2024-07-18", "choices": [
        {"index": 0, "finish_reason": "stop"}, {"index": 1, "finish_reason": "length"}]},
     ("gpt-4o-mini-2024-07-18", "chatcmpl-1", ("stop", "length"))),
    ({"id": "msg_01", "type": "message", "model": "claude-sonnet-4-5", "stop_reason": "end_turn"},
     ("claude-sonnet-4-5", "msg_01", ("end_turn",))),
    ({"candidates": [{"finishReason": "STOP"}], "modelVersion": "gemini-2.0-flash", "responseId": "r-1"},
     ("gemini-2.0-flash", "r-1", ("STOP",))),
    ({"id": 7, "choices": [{"finish_reason": None}]}, ("", "", ())),  # not strings: left out
    ([1, 2], None),
])
def test_the_answer_facts_of_each_dialect(body: object, facts: tuple | None) -> None:
    from pooltui.proxy.spans import AnswerFacts, answer_facts

    assert answer_facts(body) == (AnswerFacts(*facts) if facts is not None else None)


PLAIN_SECRET = "team-vault-token-5f1c9e2a7b3d4c6e"  # not key-shaped: only the list of known secrets finds it
KEY_SHAPED = "sk-test-echoed-by-the-upstream-0000"  # no key of the pool's, but shaped like one (an obvious fake)


def _echoing(field: str, secret: str):  # an OddUpstream script
    """An answer whose ``field`` (its id, model or finish reason) carries ``secret``."""
    said = {"id": "chatcmpl-1", "model": "m", "finish_reason": "stop"}
    said[field] = f"{said[field]}-{secret}"

    async def answer(writer) -> None:
        body = json.dumps({"id": said["id"], "object": "chat.completion", "model": said["model"],
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                        "finish_reason": said["finish_reason"]}],
                           "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}).encode()
        writer.write(head(content_type="application/json", length=len(body)) + body)

    return answer


@pytest.mark.parametrize("secret", [PLAIN_SECRET, KEY_SHAPED])
@pytest.mark.parametrize(("field", "attribute"), [
    ("id", "gen_ai.response.id"), ("model", "gen_ai.response.model"),
    ("finish_reason", "gen_ai.response.finish_reasons")])
def test_no_secret_in_the_answers_facts_reaches_a_span(field: str, attribute: str, secret: str) -> None:
    """The export process knows no secret: an answer that echoes one (a known secret, or anything key-shaped) in its
    id, model or finish reasons has it taken out in the proxy, in the one pass over the three, before the request's
    record leaves; the attribute is still there, masked."""
    with OddUpstream(_echoing(field, secret)) as odd, OtlpReceiver() as receiver:
        profile = profile_for("openai", name="odd", base_url=f"http://127.0.0.1:{odd.port}/v1")
        client = PoolClient(Upstream(profile, Pool("odd", [KeySpec("k0", PLAIN_SECRET)])), deadline_s=20)
        with ProxyThread({"odd": client}, observer=traced(receiver)) as px:
            ask(px.service.url)
            spans = receiver.wait_for(2)
    [attempt] = [s for s in spans if s.client]
    said = attempt.attributes[attribute]
    assert str(said).startswith(("['stop-", "chatcmpl-1-", "m-"))
    for text in exported_text(receiver, spans):
        assert secret not in text


def test_the_export_process_outlives_a_ctrl_c_and_sends_everything_at_shutdown(proxied) -> None:  # noqa: F811
    """The export process ignores a Ctrl-C (it runs in a session of its own, and ignores one sent to it), and
    sends what it was given when the proxy shuts it down (its input closed), then ends."""
    import signal

    _, clients = proxied
    with OtlpReceiver() as receiver:
        observer = Observer(tracing=Tracing(TelemetryConfig(endpoint=receiver.url, schedule_delay_ms=600_000)))
        tracing = observer.tracing
        assert tracing is not None
        with ProxyThread(clients, observer=observer) as px:
            ask(px.service.url)
            assert tracing.flush()  # the process is up (it answered)
            os.kill(tracing.export_pid, signal.SIGINT)
            ask(px.service.url)
        tracing.shutdown()  # long before the batch's 10 minutes
        with receiver.changed:
            assert receiver.changed.wait_for(lambda: sum(s.server for s in receiver.spans) == 2, 10)
    assert len({s.trace_id for s in receiver.spans}) == 2
    assert tracing._export.proc.returncode == 0


@contextlib.contextmanager
def operations_errors() -> Iterator[list[logging.LogRecord]]:
    """The proxy's operational errors logged meanwhile."""
    from pooltui.proxy.logs import OPERATIONS

    got: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = got.append  # type: ignore[method-assign]
    logging.getLogger(OPERATIONS).addHandler(handler)
    try:
        yield got
    finally:
        logging.getLogger(OPERATIONS).removeHandler(handler)


DIED = "the span export process ended (exit code -9): spans are no longer sent"


@pytest.mark.parametrize("flushed", ["at once", "once dead"])
def test_an_export_process_that_dies_is_said_once_and_flush_says_so(flushed: str) -> None:
    """Regression (flaky at load 6 to 9, 5 of 12 runs): the reader thread woke the flush before it said the death,
    then read ``_closing``, which the shutdown right after the flush had set meanwhile: nothing said. It is said
    before a flush hears of it, whether the flush's frame went in before the process died or met its broken pipe
    ("once dead"), and whoever sets ``_closing`` first, an exit code close() did not cause is said."""
    import signal

    with operations_errors() as got:
        tracing = Tracing(TelemetryConfig(endpoint="http://127.0.0.1:9"))
        try:
            assert tracing.flush(30)  # the process is up (it answered); a loaded machine takes seconds to start it
            os.kill(tracing.export_pid, signal.SIGKILL)
            if flushed == "once dead":  # ended, its pipe closed (not reaped here: its exit code is the reader's)
                with contextlib.suppress(ChildProcessError):  # the reader reaped it first: ended all the same
                    os.waitid(os.P_PID, tracing.export_pid, os.WEXITED | os.WNOWAIT)
            assert not tracing.flush(5)
            said = [r.getMessage() for r in got]  # by the time the flush says so
        finally:
            tracing.shutdown()
    assert said == [DIED]
    assert [r.getMessage() for r in got] == [DIED]  # once


def test_an_export_process_killed_just_before_a_shutdown_is_said_once() -> None:
    """Regression: a death the shutdown raced (close() marked the end as its own before the reader saw it) went
    unsaid; its exit code says it was not close()'s doing."""
    import signal

    with operations_errors() as got:
        tracing = Tracing(TelemetryConfig(endpoint="http://127.0.0.1:9"))
        try:
            assert tracing.flush(30)
            os.kill(tracing.export_pid, signal.SIGKILL)
        finally:
            tracing.shutdown()
    assert [r.getMessage() for r in got] == [DIED]
    assert tracing._export.proc.returncode == -signal.SIGKILL
