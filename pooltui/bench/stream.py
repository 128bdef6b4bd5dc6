"""``python -m pooltui.bench stream``: µs per streamed chunk in the SSE scanner, one event a chunk and several events
read together."""

from __future__ import annotations

import time

from pooltui.core.sse import SSEScanner
from pooltui.sim.shapes import sse_events

TOGETHER = 4  # events a chunk when an upstream's writes are read together


def _scanned(chunks: list[bytes], streams: int, tokens: int) -> float:
    """Seconds for ``streams`` scanners to read ``chunks`` (each stream's usage checked: the work measured is whole)."""
    t0 = time.perf_counter()
    for _ in range(streams):
        scanner = SSEScanner()
        for chunk in chunks:
            scanner.feed(chunk)
    took = time.perf_counter() - t0
    if (scanner.tokens_in, scanner.tokens_out) != (20, tokens):
        raise RuntimeError(f"the scanner read {scanner.tokens_in}/{scanner.tokens_out} tokens, not 20/{tokens}")
    return took


def bench_stream(tokens: int, streams: int) -> dict[str, float]:
    """µs per chunk for the scanner reading an OpenAI stream whose chunks carry ``"usage":null``, and µs per event
    when its events come ``TOGETHER`` a chunk."""
    events = sse_events("openai", "gpt-sim-1", "chatcmpl_bench", 20, tokens)
    per_chunk = _scanned(events, streams, tokens) / (streams * len(events)) * 1e6
    together = [b"".join(events[i:i + TOGETHER]) for i in range(0, len(events), TOGETHER)]
    per_event = _scanned(together, streams, tokens) / (streams * len(events)) * 1e6
    print(f"stream: {streams} OpenAI streams of {len(events)} chunks (usage:null in each, usage at the end)")
    print(f"  {per_chunk:.2f} µs per chunk through the SSE scanner")
    print(f"  {per_event:.2f} µs per event with {TOGETHER} events a chunk (an upstream's writes read together)")
    return {"us_per_chunk": per_chunk, "us_per_event_together": per_event}
