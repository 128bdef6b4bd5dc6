"""``python -m pooltui.bench corpus``: per provider, the captured cases, those read as their source says, and each
miss (the figure of issue 23)."""

from __future__ import annotations

from pooltui.sim import corpus


def bench_corpus(selection: tuple[dict, ...] | None = None) -> dict[str, tuple[int, int, list[str]]]:
    """Print the figure (of ``selection``, else the whole corpus) and return it: provider -> (cases, read right,
    misses)."""
    figures = corpus.figures(selection)
    if not figures:
        print(f"corpus: no cases found under {corpus.CORPUS_DIR}")
        return figures
    width = max(len(p) for p in figures)
    print(f"corpus: {corpus.CORPUS_DIR}")
    print(f"{'provider':<{width}}  cases  read right")
    for provider, (total, right, missed) in figures.items():
        print(f"{provider:<{width}}  {total:>5}  {right:>10}")
        for miss in missed:
            print(f"{'':<{width}}    miss {miss}")
    total = sum(t for t, _, _ in figures.values())
    right = sum(r for _, r, _ in figures.values())
    print(f"{'all':<{width}}  {total:>5}  {right:>10}  ({len(figures)} providers, {right / total:.0%} read right)")
    return figures
