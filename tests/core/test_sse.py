"""The SSE scanner: usage found without parsing every chunk; `data:` loses exactly one space."""

from __future__ import annotations

import json

from pooltui.core import sse
from pooltui.core.sse import SSEScanner
from pooltui.sim.shapes import sse_events


def test_openai_chunks_with_usage_null_are_not_parsed_one_by_one(monkeypatch) -> None:
    chunks = sse_events("openai", "m", "id1", 7, 12)
    assert sum(b'"usage":null' in c for c in chunks) >= 10  # as OpenAI sends with include_usage
    parsed: list[bytes] = []
    real = json.loads

    class Counting:
        @staticmethod
        def loads(data):
            parsed.append(data)
            return real(data)

    monkeypatch.setattr(sse, "json", Counting)
    scanner = SSEScanner()
    for chunk in chunks:
        scanner.feed(chunk)
    assert (scanner.tokens_in, scanner.tokens_out) == (7, 12) and scanner.done
    assert len(parsed) == 1, f"parsed {len(parsed)} chunks for one usage object"


def test_data_loses_exactly_one_leading_space() -> None:
    seen: list[bytes] = []

    class Recording(SSEScanner):
        def _dispatch(self) -> None:
            seen.append(b"\n".join(self._data))
            super()._dispatch()

    scanner = Recording()
    scanner.feed(b"data:  two\ndata:one\ndata: three\n\n")
    assert seen == [b" two\none\nthree"]
