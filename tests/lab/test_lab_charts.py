"""The lab's charts read well (issue 22, item 3): the SVG's x-axis labels never overlap nor are cut to "…" at
the default size, whatever the run's length; strategies whose lines coincide are said to coincide, under the
SVG chart and under the monitor's chart."""

from __future__ import annotations

import itertools
import re

import pytest
from textual.app import App
from textual.widgets import Static

from pooltui.commands.lab_svg import LABEL_FONT, chart_svg
from pooltui.session.lab import RunResult, run_lab
from pooltui.session.workload import seeded_workload
from pooltui.sim.scenario import load_scenario
from pooltui.tui.lab_screen import LabScreen
from tests.lab.test_lab_screen import known_results

DIGIT_WIDTH = 0.65  # of the font size: DejaVu Sans's digits are 0.636 em wide


def x_labels(svg: str) -> list[list[tuple[float, str]]]:
    """Per chart in the SVG, its x-axis labels: (x, text), left to right."""
    charts = []
    for axis in svg.split('class="axis x')[1:]:
        axis = axis.split('class="series')[0]
        charts.append([(float(x), text) for x, text in re.findall(r'<text x="([\d.]+)" y="[\d.]+"[^>]*>([^<]*)</text>',
                                                                   axis)])
    return charts


def assert_readable(labels: list[tuple[float, str]]) -> None:
    assert len(labels) >= 2
    for (x1, t1), (x2, t2) in itertools.pairwise(labels):
        assert t1.isdigit() and t2.isdigit(), f"a label was cut: {t1!r} {t2!r}"
        half_widths = (len(t1) + len(t2)) / 2 * LABEL_FONT * DIGIT_WIDTH
        assert x2 - x1 >= half_widths + 2, f"labels {t1!r} at {x1:.0f} and {t2!r} at {x2:.0f} overlap"


@pytest.mark.parametrize("seconds", [5, 29, 61, 150, 1000, 86_400])
def test_x_labels_never_overlap_nor_are_cut(seconds: int) -> None:
    run = RunResult("round-robin", ok_per_s=[1] * seconds, limited_per_s=[0] * seconds)
    (labels,) = x_labels(chart_svg([run], "t"))
    assert_readable(labels)
    assert int(labels[0][1]) == 0 and int(labels[-1][1]) < seconds


def coinciding_by_hand(results: list[RunResult]) -> list[list[str]]:
    groups: list[list[RunResult]] = []
    for r in results:
        for g in groups:
            if g[0].ok_per_s == r.ok_per_s and g[0].limited_per_s == r.limited_per_s:
                g.append(r)
                break
        else:
            groups.append([r])
    return [[r.strategy for r in g] for g in groups if len(g) > 1]


def test_the_svg_says_which_lines_coincide_under_the_chart() -> None:
    sc = load_scenario("peak-hour")
    arrivals = seeded_workload(sc, requests=120, rate=sc.traffic.rate, seed=sc.seed)
    results = run_lab(sc, ["round-robin", "failover", "least-used", "hermes-fill-first"], arrivals,
                      concurrency=sc.traffic.concurrency, seed=sc.seed)
    groups = coinciding_by_hand(results)
    assert groups, "peak-hour: some strategies draw the same lines"
    svg = chart_svg(results, "peak-hour")
    for labels in x_labels(svg):
        assert_readable(labels)
    notes = re.findall(r'<text x="8" y="([\d.]+)"[^>]*>([^<]*coincide[^<]*)</text>', svg)
    assert len(notes) == 1
    y, note = notes[0]
    for g in groups:
        assert f"{', '.join(g[:-1])} and {g[-1]} coincide" in note
    assert float(y) > 30 + 170 * len(results)  # under the last chart
    alone = [r for r in results if not any(r.strategy in g for g in groups)]
    assert all(r.strategy not in note for r in alone)
    assert "coincide" not in chart_svg(alone, "t")


class LabApp(App):
    def __init__(self, results: list[RunResult]) -> None:
        super().__init__()
        self.results = results

    def on_mount(self) -> None:
        self.push_screen(LabScreen("peak-hour", [r.strategy for r in self.results], 120, results=self.results))


@pytest.mark.asyncio
async def test_the_monitors_lab_says_which_lines_coincide_and_recommends() -> None:
    rr, hermes = known_results()
    twin = RunResult("least-used", rr.requests, rr.succeeded, rr.failed, latencies_ms=list(rr.latencies_ms),
                     upstream=rr.upstream.copy(), key_requests=dict(rr.key_requests), ok_per_s=list(rr.ok_per_s),
                     limited_per_s=list(rr.limited_per_s))
    app = LabApp([rr, twin, hermes])
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause()
        screen = app.screen
        note = str(screen.query_one("#lab-coincide", Static).render())
        advice = str(screen.query_one("#lab-advice", Static).render())
        assert "round-robin and least-used coincide" in note and "hermes" not in note
        assert advice.startswith("Recommended: Use round-robin (least-used ties with it): hermes-fill-first serves")
        assert "The pool is too small" in advice
