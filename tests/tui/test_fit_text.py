"""The monitor's cell and line text fits its room without changing meaning: counts, costs and latencies in
their column's width at any size, prose cut at a word with …, segments dropped whole."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from rich.text import Text

from pooltui.tui import format as fmt
from pooltui.tui.widgets import KEY_COLUMNS

WIDTH = {key: w for key, _, w in KEY_COLUMNS}
COUNTS = st.integers(min_value=0, max_value=10**13)


@given(COUNTS)
def test_counts_fit_the_narrowest_count_column(n: int) -> None:
    assert len(fmt.number(n)) <= WIDTH["rate_limited"]


def test_counts_keep_their_magnitude() -> None:
    assert [fmt.number(n) for n in (9999, 10_000, 999_499, 1_250_000, 34_000_000, 1_500_000_000)] == \
        ["9999", "10k", "999k", "1.2M", "34M", "1.5G"]


@given(st.floats(min_value=0, max_value=10**9, allow_nan=False))
def test_costs_fit_their_column(value: float) -> None:
    assert len(fmt.cost(value)) <= WIDTH["cost"]


@given(st.floats(min_value=0, max_value=10**9, allow_nan=False))
def test_latencies_fit_their_column(ms: float) -> None:
    assert len(fmt.latency_cell(ms)) <= WIDTH["p50"]


@given(COUNTS, COUNTS)
def test_remaining_fits_its_column(rem: int, extra: int) -> None:
    assert len(fmt.remaining({"requests_remaining": rem, "requests_limit": rem + extra})) <= WIDTH["remaining"]


@given(st.integers(1, 10**6), st.floats(0.1, 86_400), st.floats(0, 1))
def test_learned_limit_fits_its_column_and_keeps_the_limit(limit: int, window: float, sure: float) -> None:
    est = {"limit": limit, "window_s": window, "sure": sure}
    cell = fmt.learned_cell({"learned": est}, WIDTH["learned"]).plain
    assert cell.startswith(fmt.learned(est)) and (len(cell) <= WIDTH["learned"] or cell == fmt.learned(est))


def test_state_keeps_its_countdown_and_drops_the_rest_whole() -> None:
    snap = {"state": "exhausted", "remaining_s": 5000.0, "source": "reset-header", "probing": True,
            "models": {"gpt-4o": 12.0, "gpt-4o-mini": 3.0}}
    cell = fmt.state_cell(snap, WIDTH["state"]).plain
    assert cell == "exhausted 83m reset-header"
    assert fmt.state_cell(snap).plain == "exhausted probing 83m reset-header · gpt-4o 12s · gpt-4o-mini 3.0s"


@given(st.lists(st.sampled_from(["fell", "back", "to", "sim-backup", "(key", "not", "blamed)", "12.5"]),
                min_size=1, max_size=12), st.integers(2, 40))
def test_prose_ends_at_a_word_with_an_ellipsis(words: list[str], width: int) -> None:
    prose = " ".join(words)
    shown = fmt.ellipsize(prose, width).plain
    assert len(shown) <= width
    if shown != prose:
        assert shown.endswith("…")
        kept = shown[:-1]
        # cut at a word: what is kept is whole words (or, for one word longer than the room, its start)
        assert prose.startswith(kept) and (prose[len(kept):len(kept) + 1] in (" ", "")
                                           or prose[len(kept):].lstrip(" ,;:·(│—-") != prose[len(kept):]
                                           or " " not in prose[:len(kept) + 1])


def test_segments_drop_whole_least_important_first() -> None:
    segments = [(0, Text("⚠ OUTAGE main since 14:13:24"), ""), (9, Text("pooltui"), " │ "),
                (1, Text("keys 2/2 usable"), " │ "), (2, Text("ok 100.0% of 70/min"), " │ "),
                (3, Text("callers p95 374 ms"), " │ ")]
    assert fmt.fit_segments(segments, 200).plain == \
        "⚠ OUTAGE main since 14:13:24 │ pooltui │ keys 2/2 usable │ ok 100.0% of 70/min │ callers p95 374 ms"
    assert fmt.fit_segments(segments, 70).plain == \
        "⚠ OUTAGE main since 14:13:24 │ keys 2/2 usable │ ok 100.0% of 70/min"
    assert fmt.fit_segments(segments, 50).plain == "⚠ OUTAGE main since 14:13:24 │ keys 2/2 usable"
    assert fmt.fit_segments(segments, 20).plain == "⚠ OUTAGE main since…"


@given(st.integers(2, 10**9), st.floats(0, 10**6))
def test_a_folded_rows_count_fits_its_column(count: int, span_s: float) -> None:
    summary = f"×{count} in {fmt.duration(span_s, spaced=True)}"
    cell = fmt.count_cell(summary, count, span_s)
    assert len(cell) <= 12 and (cell == summary or cell.startswith(f"×{fmt.number(count)} "))
