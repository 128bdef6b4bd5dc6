"""Every captured provider response of tests/corpus/ reads as its source says: outcome, the key's fate in a pool,
the wait and where it came from, whether it feeds the learned limit, and its per-model scope."""

from __future__ import annotations

import re

import pytest

from pooltui.sim import corpus

CASES = corpus.cases()
FIELDS = {"id", "provider", "dialect", "status", "headers", "body", "source", "captured", "meaning", "expect"}
OUTCOMES = {"rate_limited", "quota", "invalid", "forbidden", "transient", "request_error"}
SECRET = re.compile(r"\b(sk-(?!FAKE|corpus)[A-Za-z0-9_-]{12,}|xai-[A-Za-z0-9]{20,}|gsk_[A-Za-z0-9]{20,}"
                    r"|AIza[0-9A-Za-z_-]{30,})")


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_every_case_reads_as_its_source_says(case: dict) -> None:
    assert corpus.misses(case) == []


def test_the_corpus_is_wide_enough_and_well_formed() -> None:
    providers = {c["provider"] for c in CASES}
    assert len(CASES) >= 80 and len(providers) >= 15, (len(CASES), sorted(providers))
    assert len({c["id"] for c in CASES}) == len(CASES)
    for c in CASES:
        assert set(c) >= FIELDS, (c["id"], FIELDS - set(c))
        assert c["expect"]["outcome"] in OUTCOMES and c["expect"]["key"] in {"barred", "parked", "cooled",
                                                                               "untouched"}, c["id"]
        assert c["source"]["kind"] in {"docs", "sdk-test", "peer-classifier", "issue-thread"}, c["id"]
        assert (corpus.CORPUS_DIR / c["provider"] / f"{c['id']}.json").is_file()
        assert not SECRET.search(corpus.raw_body(c).decode() + str(c["headers"])), c["id"]


def test_the_figure_counts_every_case_once() -> None:
    figures = corpus.figures()
    assert sum(total for total, _, _ in figures.values()) == len(CASES)
    assert all(right + len(missed) == total for total, right, missed in figures.values())


def test_the_bench_prints_each_providers_figure_and_each_miss(capsys) -> None:
    from pooltui.bench import main
    from pooltui.bench.corpus import bench_corpus

    main(["corpus"])
    out = capsys.readouterr().out
    for provider, (total, right, _) in corpus.figures().items():
        assert re.search(rf"^{re.escape(provider)}\s+{total}\s+{right}$", out, re.M), provider
    assert re.search(rf"^all\s+{len(CASES)}\s+", out, re.M)
    wrong = dict(CASES[0], expect=dict(CASES[0]["expect"], outcome="forbidden"))  # a case read otherwise
    bench_corpus((wrong,))
    assert f"miss {wrong['id']}: outcome" in capsys.readouterr().out
