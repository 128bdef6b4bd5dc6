"""The answer's header lines relayed as bytes (proxy/answer_headers.py) against the text path they replace on the
common answer (``PoolProxy._response_headers``: decoded, filtered, joined, masked, encoded again): for every set of
upstream lines below, with and without a translated body, the caller gets the same lines, in the same order. Run
in sequence, so the plans remembered per set of names are reused across answers with other values."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pooltui.client.upstream_http import raw_headers
from pooltui.core.masking import remember
from pooltui.proxy.answer_headers import relayed
from pooltui.proxy.app import PoolProxy
from pooltui.proxy.dialects import ANTHROPIC, OPENAI, Bridge
from pooltui.proxy.raw import Reply

SECRET = "sk-test-answer-headers-000000000000001"
remember(SECRET)

SIM = [(b"date", b"Mon, 07 Dec 2026 07:05:04 GMT"), (b"server", b"uvicorn"), (b"x-request-id", b"chatcmpl_sim_1"),
       (b"openai-organization", b"org-sim-key-bench"), (b"content-length", b"406"),
       (b"content-type", b"application/json")]
OPENAI_200 = [(b"Date", b"Mon, 07 Dec 2026 07:05:04 GMT"), (b"Content-Type", b"application/json"),
          (b"Transfer-Encoding", b"chunked"), (b"Connection", b"keep-alive"),
          (b"access-control-expose-headers", b"X-Request-ID"), (b"openai-organization", b"user-abc"),
          (b"openai-processing-ms", b"345"), (b"x-ratelimit-limit-requests", b"10000"),
          (b"x-ratelimit-remaining-requests", b"9999"), (b"x-ratelimit-reset-requests", b"6ms"),
          (b"x-request-id", b"req_0123"), (b"set-cookie", b"__cf_bm=a; path=/"), (b"set-cookie", b"_cfuvid=b"),
          (b"X-Content-Type-Options", b"nosniff"), (b"Server", b"cloudflare"), (b"CF-RAY", b"8f01-SJC"),
          (b"alt-svc", b'h3=":443"; ma=86400')]


def _with(base: list[tuple[bytes, bytes]], *extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return [*base, *extra]


CASES = {
    "simulator": SIM,
    "openai": OPENAI_200,
    "openai, other values": [(k, v + b"7" if k.startswith(b"x-ratelimit") else v) for k, v in OPENAI_200],
    "connection names a header": _with(SIM, (b"Connection", b"x-hop, Keep-Alive"), (b"x-hop", b"1")),
    "same names, connection names another": _with(SIM, (b"Connection", b"x-other"), (b"x-hop", b"1")),
    "two connection lines": _with(SIM, (b"connection", b"x-a"), (b"Connection", b"x-hop"), (b"x-hop", b"1"),
                                  (b"x-a", b"2")),
    "a name repeated": _with(SIM, (b"vary", b"origin"), (b"Vary", b"accept")),
    "the upstream's own x-pooltui header": _with(SIM, (b"x-pooltui-served-by", b"someone/else")),
    "the upstream's x-pooltui-translated": _with(SIM, (b"X-Pooltui-Translated", b"fake")),
    "a known secret echoed": _with(SIM, (b"x-echo", f"Bearer {SECRET}".encode())),
    "a key-shaped value": _with(SIM, (b"x-echo", b"sk-ant-test-abcdefghijklmnopqrstuvwxyz")),
    "a value in UTF-8": _with(SIM, (b"x-note", "caf\u00e9 \u2192 ok".encode())),
    "a value in latin-1": _with(SIM, (b"x-note", "caf\u00e9".encode("latin-1"))),
    "no headers": [],
    "only dropped ones": [(b"date", b"x"), (b"content-length", b"0")],
    "one kept": [(b"content-type", b"text/plain")],
    "connection names the content type": _with(SIM, (b"Connection", b"content-type")),
}


async def _chunks() -> AsyncIterator[bytes]:
    yield b""


def _reply(headers: dict[str, str], lines: list[tuple[bytes, bytes]], stream: bool, media: str | None
           ) -> list[tuple[bytes, bytes]]:
    """The lines sent for a whole answer, or for a stream with its media type ``media``; the observer's two headers
    added as it adds them."""
    if stream:
        reply = Reply(200, headers, media_type=media, body_iterator=_chunks(), lines=lines)
    else:
        reply = Reply(200, headers, b"{}", lines=lines)
    reply.headers["x-pooltui-attempts"] = "1"
    reply.headers["x-pooltui-queue-wait-ms"] = "0"
    return reply.raw_headers()


def _text_path(raw: list[tuple[bytes, bytes]], bridge: Bridge | None, stream: bool) -> list[tuple[bytes, bytes]]:
    """What the caller got before: every line through the text path."""
    media = "text/event-stream" if bridge is not None else raw_headers(raw).get("content-type", "text/event-stream")
    return _reply(PoolProxy._response_headers(raw_headers(raw), "bench/k0", bridge), [], stream, media)


def _now(raw: list[tuple[bytes, bytes]], bridge: Bridge | None, stream: bool) -> list[tuple[bytes, bytes]]:
    upstream = raw_headers(raw)
    lines, headers = PoolProxy._reply_headers(upstream, "bench/k0", bridge)
    return _reply(headers, lines, stream, PoolProxy._stream_media(upstream, headers, lines, bridge))


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("translated", [False, True], ids=["as it came", "translated"])
def test_the_caller_gets_the_lines_the_text_path_gave(translated: bool, stream: bool) -> None:
    bridge = Bridge(ANTHROPIC, OPENAI, "gpt-sim-1") if translated else None
    for _ in range(2):  # the second round on the plans the first made
        for case, raw in CASES.items():
            assert _now(raw, bridge, stream) == _text_path(raw, bridge, stream), case


def test_the_common_answers_take_the_bytes_path_and_the_odd_ones_the_text_path() -> None:
    """The differential test above compares both paths only if each is taken: the usual answers are relayed as
    bytes, the ones the text path must join or mask are not."""
    bytes_path = {case for case, raw in CASES.items() if relayed(raw_headers(raw), False) is not None}
    assert {"simulator", "openai", "connection names a header", "a value in UTF-8", "no headers"} <= bytes_path
    assert not {"a name repeated", "the upstream's own x-pooltui header", "a known secret echoed",
                "a key-shaped value"} & bytes_path
