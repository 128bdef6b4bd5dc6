"""``classify``'s cheaper reading of the usual answer (a 2xx read from its headers alone; the headers classify reads
picked once per set of names) against the code it replaced, kept here as the reference: the same
``Classification`` for every captured answer of tests/corpus (as they came, and as 2xx answers with the same
headers), for each dialect's usual 200 (PROVIDERS.md's rate-limit headers, organization headers), and for 600
seeded random header sets (names in any case, repeated, signals among others, odd values), given both as
``httpx.Headers`` (what the client passes) and as a plain dict."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any

import pytest

from pooltui.client.upstream_http import raw_headers
from pooltui.core.accounts import read_org
from pooltui.core.classify import DIALECTS, Classification, _classify, classify
from pooltui.core.health import Outcome
from pooltui.core.masking import scrub
from pooltui.sim import corpus

NOW = 1_790_000_000.0
_ORG_SUFFIXES = (b"-organization", b"-organization-id")


def reference_lower_headers(headers: Mapping[str, str] | Any) -> Mapping[str, str]:
    """``lower_headers`` as it was: every line looked at."""
    try:
        raw = getattr(headers, "raw", None)
        if raw is not None and hasattr(headers, "get_list"):
            out = {}
            for k, v in raw:
                lk = k.lower()
                if b"ratelimit" in lk or lk.startswith(b"retry-after") or lk.endswith(_ORG_SUFFIXES):
                    out[lk.decode("latin-1")] = v.decode("latin-1")
            return out
        return {str(k).lower(): v for k, v in dict(headers).items()}
    except (TypeError, ValueError):
        return {}


def reference_classify(dialect: str, status: Any, headers: Any, body: Any, now: float) -> Classification:
    """``classify`` as it was: every answer through ``_classify``."""
    try:
        lowered = reference_lower_headers(headers)
        result = _classify(dialect, int(status), lowered, body, now)
        result.org = read_org(lowered)
        if result.reason:
            result.reason = scrub(result.reason)
        return result
    except Exception as exc:
        code = status if isinstance(status, int) and not isinstance(status, bool) else 0
        outcome = Outcome.OK if 200 <= code < 300 else Outcome.TRANSIENT
        return Classification(outcome, code, f"unclassifiable response ({type(exc).__name__})")


def _both(lines: list[tuple[str, str]]) -> list[Any]:
    """The same lines as ``httpx.Headers`` (as the client builds them) and, names deduplicated, as a dict."""
    return [raw_headers([(k.encode("latin-1"), v.encode("latin-1")) for k, v in lines]), dict(lines)]


def _same(dialect: str, status: Any, lines: list[tuple[str, str]], body: Any) -> None:
    for headers in _both(lines):
        assert classify(dialect, status, headers, body, NOW) == reference_classify(dialect, status, headers, body,
                                                                                  NOW), (dialect, status, lines)


OPENAI = [("x-ratelimit-limit-requests", "10000"), ("x-ratelimit-limit-tokens", "30000000"),
          ("x-ratelimit-remaining-requests", "9999"), ("x-ratelimit-remaining-tokens", "29999990"),
          ("x-ratelimit-reset-requests", "6ms"), ("x-ratelimit-reset-tokens", "2m59.56s"),
          ("openai-organization", "user-abc"), ("openai-processing-ms", "345"), ("x-request-id", "req_1")]
ANTHROPIC = [(f"anthropic-ratelimit-{what}-{part}", value) for what in ("requests", "tokens", "input-tokens",
                                                                        "output-tokens")
             for part, value in (("limit", "4000"), ("remaining", "3999"), ("reset", "2026-09-21T14:14:20Z"))] \
    + [("anthropic-organization-id", "00000000-0000-0000-0000-000000000000"), ("request-id", "req_1")]
MISTRAL = [("x-ratelimit-limit-req-minute", "60"), ("x-ratelimit-remaining-req-minute", "59"),
           ("x-ratelimit-limit-tokens-minute", "500000"), ("x-ratelimit-remaining-tokens-minute", "499000")]
GROQ = [("x-ratelimit-limit-requests", "14400"), ("x-ratelimit-remaining-requests", "14399"),
        ("x-ratelimit-reset-requests", "6s"), ("x-ratelimit-reset-tokens", "7.66ms"), ("retry-after", "2")]
USUAL = {"openai": OPENAI, "anthropic": ANTHROPIC, "mistral": MISTRAL, "groq": GROQ, "simulator": [
    ("date", "Mon, 07 Dec 2026 07:05:04 GMT"), ("server", "uvicorn"), ("openai-organization", "org-sim-key-bench"),
    ("content-length", "406"), ("content-type", "application/json")], "none": []}


@pytest.mark.parametrize("case", corpus.cases(), ids=[c["id"] for c in corpus.cases()])
def test_every_captured_answer_reads_as_before(case: dict) -> None:
    lines = list(case["headers"].items())
    body = corpus.raw_body(case)
    for status in (case["status"], 200, 201):
        _same(case["dialect"], status, lines, body)


@pytest.mark.parametrize("usual", USUAL, ids=list(USUAL))
def test_each_dialects_usual_200_reads_as_before(usual: str) -> None:
    for dialect in DIALECTS:
        for status in (200, 204, 299, 300, 429, 503, True, "200"):
            _same(dialect, status, USUAL[usual], b'{"id": "x"}')
            _same(dialect, status, [(k.upper(), v) for k, v in USUAL[usual]], None)


def test_seeded_random_headers_read_as_before() -> None:
    rng = random.Random(31)
    names = ["x-ratelimit-remaining-requests", "X-RateLimit-Reset-Tokens", "x-ratelimit-limit-tokens",
             "anthropic-ratelimit-tokens-remaining", "Anthropic-RateLimit-Requests-Reset", "retry-after",
             "Retry-After-Ms", "openai-organization", "anthropic-organization-id", "x-organization", "content-type",
             "date", "x-request-id", "server", "x-ratelimit-remaining-req-minute", "cf-ray", "x-odd\u00e9"]
    values = ["0", "1", "9999", "-3", "12ms", "1m30s", "2026-09-21T14:14:20Z", "1790000060", "1790000060000", "",
              "garbage", " 7 ", "user-\u00e9", "Wed, 21 Oct 2026 07:28:00 GMT", "nan", "1e400"]
    for _ in range(600):
        lines = [(rng.choice(names), rng.choice(values)) for _ in range(rng.randrange(0, 12))]
        if rng.random() < 0.3 and lines:  # a name again, in another case
            name, _ = rng.choice(lines)
            lines.append((name.swapcase(), rng.choice(values)))
        _same(rng.choice(DIALECTS), rng.choice((200, 200, 201, 429, 500)), lines, b"{}")


def reference_parse_body(body: Any) -> Any:
    """``parse_body`` as it was: through ``json.loads``."""
    if body is None or isinstance(body, dict | list):
        return body
    try:
        if isinstance(body, bytes | bytearray | memoryview):
            body = bytes(body).decode("utf-8", "replace")
        text = str(body).strip()
        if not text or text[0] not in "{[" or len(text) > 1_000_000:
            return None
        return json.loads(text)
    except (ValueError, TypeError, RecursionError):
        return None


ODD_BODIES: list[Any] = [
    b'{"a":1}', b'  {"a": 1}  \n', b'{"a":1}\r\n\t ', '{"a":1}\u00a0', b'{"a":1}\xa0', b'{"a":1} {"b":2}',
    b'{"a":1}x', b'{"a":1}\x00', b"[1, 2]", b"[1, 2", b"[1,]", b'{"a":}', b"{", b"[", b"[" * 100_000,
    b"[" * 500 + b"]" * 500, b'{"a": NaN, "b": -Infinity}', b"\xef\xbb\xbf{\"a\": 1}", b'{"a": "\xff"}',
    b'{"a": "\\ud800"}', b'{"a": "tab\there"}', b'"text"', b"123", b"", b"   ", b"null", "[1]", 5,
    bytearray(b'{"a": [1]}'), memoryview(b'{"a": {"b": null}}'), {"a": 1}, [1], None,
    b'{"k": "' + b"x" * 1_000_001 + b'"}', b'{"usage": {"prompt_tokens": 5}}\n\n',
]


def test_the_body_parses_as_json_loads_read_it() -> None:
    """``parse_body``, now json's scanner called straight, gives what ``json.loads`` gave: on every captured
    body, the simulator's answers and odd ones (whitespace of both kinds, data after the value, BOM, NaN,
    bad UTF-8, too deep, too large, not an object)."""
    from pooltui.core.classify import parse_body
    from pooltui.sim import shapes

    bodies = [*ODD_BODIES, *(corpus.raw_body(c) for c in corpus.cases())]
    for dialect in ("openai", "anthropic", "gemini"):
        bodies.append(json.dumps(shapes.completion(dialect, "gpt-sim-1", "req_1", 5, 12)).encode())
    for body in bodies:
        assert repr(parse_body(body)) == repr(reference_parse_body(body)), repr(body)[:80]


def reference_parse_go_duration(value: Any) -> float | None:
    """``parse_go_duration`` as it was (no early answer for a colon)."""
    from pooltui.core.headers import _GO_PART, _GO_UNITS, _sane, parse_seconds

    try:
        text = str(value).strip()
    except Exception:
        return None
    if not text or len(text) > 48:
        return None
    if text[-1] == "s" and text[0].isdigit():
        head = text[:-2] if text.endswith("ms") else text[:-1]
        if head.replace(".", "", 1).isdigit():
            return _sane(float(head) / (1000.0 if text.endswith("ms") else 1.0))
    pos, total = 0, 0.0
    for match in _GO_PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        return parse_seconds(text) if pos == 0 else None
    return _sane(total)


def reference_parse_rfc3339(value: Any, now: float) -> float | None:
    """``parse_rfc3339`` as it was (each text read again)."""
    from datetime import datetime

    from pooltui.core.headers import _sane

    try:
        text = str(value).strip()
        if len(text) > 40:
            return None
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        if when.tzinfo is None:
            return None
        return _sane(max(0.0, when.timestamp() - now))
    except (TypeError, ValueError, OverflowError):
        return None


RESETS: list[Any] = [
    "2026-09-21T14:14:20Z", "2026-09-21T14:14:20z", " 2026-09-21T14:14:20.123456Z ", "2026-09-21T14:14:20+02:00",
    "2026-09-21T14:14:20-07:30", "2026-09-21T14:14:20", "2026-09-21 14:14:20Z", "2026-02-30T00:00:00Z",
    "2026-09-21T25:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-09-21T14:14:20Z" + " " * 30,
    "2026-09-21T14:14:20.1234567890123456789012Z", "12:30", "1:30s", "1m:30s", "6ms", "2m59.56s", "1h", "12", "0",
    "1790000060", "1790000060000", "nan", "", "garbage", "1e400", None, 12, 1.5, b"6ms", "\u0661\u0662s",
]


def test_resets_read_as_before_read_again_or_not() -> None:
    """``parse_reset``'s parts, a timestamp's moment now remembered per text and a colon's text no duration, give
    what they gave on each value, read the first time and again at other moments."""
    from pooltui.core.headers import parse_go_duration, parse_reset, parse_rfc3339

    for now in (NOW, NOW + 61.5, 1_800_000_000.0, NOW):
        for value in RESETS:
            assert repr(parse_go_duration(value)) == repr(reference_parse_go_duration(value)), value
            assert repr(parse_rfc3339(value, now)) == repr(reference_parse_rfc3339(value, now)), (value, now)
            expected = reference_parse_go_duration(value) if value is not None else None
            if expected is None and value is not None:
                expected = reference_parse_rfc3339(value, now)
            if expected is not None:
                assert parse_reset(value, now) == expected, (value, now)
