"""The keys table's budget cell (issue 27 item 4): each declared window's use, the fleet's where shared; the
fullest kept when there is no room for all."""

from __future__ import annotations

from pooltui.tui import format as fmt


def snap(**budgets: tuple[int, int, int | None]) -> dict:
    return {"budgets": {name.replace("_", " "): {"used": u, "limit": lim, "fleet_used": f}
                        for name, (u, lim, f) in budgets.items()}}


def test_each_window_in_use_of_its_limit() -> None:
    assert fmt.budget_cell(snap(rpm=(41, 60, None), tpm=(18_000, 20_000, None))).plain == "rpm 41/60 · tpm 18k/20k"
    assert fmt.budget_cell({"budgets": {}}).plain == "-"


def test_the_fleets_figure_where_the_window_is_shared_and_the_fullest_first_when_narrow() -> None:
    cell = fmt.budget_cell(snap(rpm=(10, 60, 55), tpm=(1_000, 20_000, None)), 12)
    assert cell.plain == "rpm 55/60"
