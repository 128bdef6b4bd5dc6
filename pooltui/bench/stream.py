"""``python -m pooltui.bench stream``: µs per streamed chunk in the SSE scanner."""

from __future__ import annotations

import time

from pooltui.core.sse import SSEScanner
from pooltui.sim.shapes import sse_events


def bench_stream(tokens: int, streams: int) -> dict[str, float]:
    """µs per chunk for the scanner reading an OpenAI stream whose chunks carry ``"usage":null``."""
    chunks = sse_events("openai", "gpt-sim-1", "chatcmpl_bench", 20, tokens)
    t0 = time.perf_counter()
    for _ in range(streams):
        scanner = SSEScanner()
        for chunk in chunks:
            scanner.feed(chunk)
    per_chunk = (time.perf_counter() - t0) / (streams * len(chunks)) * 1e6
    print(f"stream: {streams} OpenAI streams of {len(chunks)} chunks (usage:null in each, usage at the end)")
    print(f"  {per_chunk:.2f} µs per chunk through the SSE scanner")
    return {"us_per_chunk": per_chunk}
