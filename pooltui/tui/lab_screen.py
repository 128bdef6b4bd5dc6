"""The strategy lab in the monitor (command palette: "Strategy lab"): a comparison run in a worker thread in
simulated time (its own fast-forwarded loop: a strategy's run takes a fraction of a second, the monitor's
loop is never blocked), each strategy against its own fresh simulator; the table fills in as strategies finish.
Beside it, the requests each strategy served over time, and for the strategy under the cursor, served and 429s
per second. Under the table, the recommendation (which strategy and why; capacity short: how many keys like
these would serve the traffic, planned in the same worker); under the chart, which lines coincide."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, Static
from textual_plotext import PlotextPlot

from pooltui.session.lab import LAB_STRATEGIES, RunResult, cell_text, coincide_note, coinciding
from pooltui.session.recommend import Recommendation, recommend

COLUMNS = (("strategy", "strategy"), ("succeeded", "ok"), ("failed", "failed"), ("upstream_429", "429 up"),
           ("attempts_per_success", "calls/ok"), ("p50_ms", "p50 ms"), ("p95_ms", "p95 ms"), ("evenness", "even"))


class ServedChart(PlotextPlot):
    """Requests served so far, a line per strategy: who serves more, and how soon."""

    DEFAULT_CSS = "ServedChart { height: 1fr; border: round $primary-darken-2; }"

    def show(self, results: list[RunResult]) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        self.border_title = "served so far"
        for r in results:
            total, line = 0, []
            for n in r.ok_per_s:
                total += n
                line.append(total)
            if line:
                plt.plot(list(range(len(line))), line, label=r.strategy)
        plt.xlabel("seconds from the start")
        self.refresh()


class StrategyChart(PlotextPlot):
    """The strategy under the table's cursor: served and 429s the provider sent, per second."""

    DEFAULT_CSS = "StrategyChart { height: 1fr; border: round $primary-darken-2; }"

    def show(self, result: RunResult | None) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        self.border_title = f"{result.strategy if result else '-'}: served, 429s up, per s"
        if result is not None and result.ok_per_s:
            xs = list(range(len(result.ok_per_s)))
            plt.plot(xs, result.ok_per_s, label="served", color="green")
            plt.plot(xs, result.limited_per_s, label="429 upstream", color="red")  # as long as ok_per_s
            plt.ylim(0, max(1, *result.ok_per_s, *result.limited_per_s))
        plt.xlabel("seconds from the start")
        self.refresh()


class LabScreen(Screen[None]):
    """Compare strategies on a scenario (``r`` runs it again)."""

    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back", id="lab.back"),
                Binding("r", "rerun", "Run again", id="lab.rerun")]
    DEFAULT_CSS = """
    LabScreen #lab-title { width: 100%; background: $primary-background; text-style: bold; }
    LabScreen #lab-status { width: 100%; color: $text-muted; }
    LabScreen #lab-table { width: 3fr; height: 1fr; }
    LabScreen #lab-charts { width: 2fr; }
    LabScreen #lab-advice { width: 100%; height: auto; max-height: 5; padding: 0 1; }
    LabScreen #lab-coincide { width: 100%; height: auto; color: $text-muted; }
    """

    def __init__(self, scenario: str = "peak-hour", strategies: list[str] | None = None, requests: int = 120,
                 results: list[RunResult] | None = None) -> None:
        super().__init__()
        self.scenario_name = scenario
        self.strategies = list(strategies or LAB_STRATEGIES)
        self.n_requests = requests
        self.results: list[RunResult] = list(results or [])
        self.preset = results is not None  # shown as given (a report, a snapshot), not run
        self.running = False
        self.recommendation: Recommendation | None = None

    def compose(self) -> ComposeResult:
        yield Label(f" strategy lab · {self.scenario_name} · {self.n_requests} requests per strategy, each "
                    "against a fresh simulator", id="lab-title")
        yield Label("", id="lab-status")
        with Horizontal():
            yield DataTable(cursor_type="row", id="lab-table")
            with Vertical(id="lab-charts"):
                yield ServedChart(id="lab-served")
                yield Static("", id="lab-coincide")
                yield StrategyChart(id="lab-strategy")
        yield Static("", id="lab-advice")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#lab-table", DataTable).add_columns(*(title for _, title in COLUMNS))
        self._show()
        if not self.preset:
            self.run_lab()

    def _show(self, running: str = "") -> None:
        table = self.query_one("#lab-table", DataTable)
        table.clear()
        for r in self.results:
            row = r.row()
            table.add_row(*(cell_text(name, row[name]) for name, _ in COLUMNS), key=r.strategy)
        self.query_one(ServedChart).show(self.results)
        note = coincide_note(coinciding(self.results, served_only=True))
        self.query_one("#lab-coincide", Static).update(f"{note} (the same served every second)" if note else "")
        self._show_selected()
        done = len(self.results)
        status = (f" running {running} ({done + 1}/{len(self.strategies)})…" if running else
                  f" {done} strategies compared · calls/ok: upstream calls per success · even: 1.00 = keys used "
                  "equally · r runs it again")
        self.query_one("#lab-status", Label).update(status)
        if self.preset and self.results and self.recommendation is None:
            self.recommendation = recommend(self.results)
        advice = self.recommendation
        self.query_one("#lab-advice", Static).update(
            "" if running or advice is None else f"Recommended: {advice.text(hint='')}")

    def _show_selected(self) -> None:
        table = self.query_one("#lab-table", DataTable)
        row = table.cursor_row if 0 <= table.cursor_row < len(self.results) else 0
        self.query_one(StrategyChart).show(self.results[row] if self.results else None)

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._show_selected()

    def action_rerun(self) -> None:
        if not self.preset:
            self.results = []
            self.recommendation = None
            self.run_lab()

    @work(thread=True, exclusive=True, group="lab", exit_on_error=False)
    def run_lab(self) -> None:
        from textual.worker import get_current_worker

        from pooltui.session.lab import simulated_run
        from pooltui.session.workload import seeded_workload
        from pooltui.sim.scenario import load_scenario

        worker = get_current_worker()
        sc = load_scenario(self.scenario_name)
        arrivals = seeded_workload(sc, requests=self.n_requests, rate=sc.traffic.rate, seed=sc.seed)
        self.app.call_from_thread(self._started)
        try:
            for strategy in self.strategies:
                if worker.is_cancelled:
                    return
                self.app.call_from_thread(self._show, strategy)
                result = simulated_run(sc, strategy, arrivals, sc.traffic.concurrency, sc.seed)
                if worker.is_cancelled:
                    return
                self.app.call_from_thread(self.results.append, result)
            advice = self._advise(sc, arrivals, worker)
            if advice is not None:
                self.app.call_from_thread(setattr, self, "recommendation", advice)
        finally:
            if not worker.is_cancelled:
                self.app.call_from_thread(self._finished)

    def _advise(self, sc, arrivals, worker) -> Recommendation | None:
        """The recommendation on the results; capacity short, the planner's answer too (in this worker)."""
        from pooltui.session.planner import plan_keys

        if not self.results:
            return None
        advice = recommend(list(self.results))
        if advice.capacity_short and not worker.is_cancelled:
            self.app.call_from_thread(self.query_one("#lab-status", Label).update,
                                      " planning: how many keys like these would serve this traffic…")
            advice.plan = plan_keys(sc, arrivals, concurrency=sc.traffic.concurrency, seed=sc.seed,
                                    strategy=advice.plan_strategy, target_wait_s=advice.target_wait_s)
        return advice

    def _started(self) -> None:
        self.running = True

    def _finished(self) -> None:
        self.running = False
        self._show()
