"""The strategy lab's verdict: which strategy to use on this traffic and why, in a sentence or two built from
the figures of a comparison (:class:`~pooltui.session.lab.RunResult`).

What is weighed, in this order, each step keeping the strategies that tie with the best on it:

1. callers served (more is better); a tie: within 2% of the requests (at least 1);
2. their p95 latency from arrival, waits included (lower); a tie: within 10% of the best (at least 100 ms);
3. 429s sent upstream (fewer; they can get keys flagged); a tie: within a quarter of the best (at least 3),
   the spread the lab measures between simulated and real time;
4. cost, when the scenario has prices (lower); a tie: within 2%.

The strategies left tie; when every strategy compared is left, none changes the outcome. Evenness (how
alike the primary's keys were used) decides nothing for the callers: it only names which of the tied to use
(the evenest, then the cheapest, then the first compared). When the strategy named still leaves callers
unserved, or their p95 wait (for a slot, a key, a backoff) is over the target, capacity is short: the pool
is too small, whichever strategy, and :mod:`pooltui.session.planner` says how many keys would do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pooltui.core.words import plural
from pooltui.session.lab import RunResult
from pooltui.session.planner import DEFAULT_TARGET_WAIT_S, Plan

SERVED_NOISE = 0.02  # of the requests, at least 1 caller
P95_NOISE, P95_NOISE_MS = 0.10, 100.0
LIMITED_NOISE, LIMITED_NOISE_MIN = 0.25, 3
COST_NOISE = 0.02
EVENNESS_NOISE = 0.05  # Jain's index: this close to the evenest counts as as even


@dataclass
class Recommendation:
    """The strategy to use, the ones that tie with it, why, and (capacity short) how many keys would do."""

    strategy: str
    verdict: str  # "winner": some strategies do worse; "tie": none changes the outcome
    tied: list[str]  # the others as good as ``strategy``
    reason: str  # the sentence(s) from the figures
    capacity_short: bool  # even the best leaves callers unserved or waiting past the target
    target_wait_s: float = DEFAULT_TARGET_WAIT_S
    plan: Plan | None = field(default=None)

    @property
    def plan_strategy(self) -> str:
        """The strategy the planner sizes a pool with: round-robin when it is as good as the one named (a larger
        pool is for spreading load; failover drains a key to its 429 whatever the pool), else the one named if
        it is pooltui's, else round-robin."""
        from pooltui.core.strategies import STRATEGIES

        if self.strategy == "round-robin" or "round-robin" in self.tied or self.strategy not in STRATEGIES:
            return "round-robin"
        return self.strategy

    @property
    def keys_needed(self) -> int | None:
        return None if self.plan is None else self.plan.keys_needed

    def text(self, hint: str = "`--plan`") -> str:
        """The reason, then what the planner found (or, capacity short, that ``hint`` would say; "": nothing)."""
        if self.plan is not None:
            return f"{self.reason} {plan_sentence(self.plan)}"
        if self.capacity_short and hint:
            return f"{self.reason} {hint} says how many keys like these would serve it."
        return self.reason

    def as_dict(self) -> dict[str, object]:
        return {"strategy": self.strategy, "verdict": self.verdict, "tied": self.tied, "reason": self.text(),
                "capacity_short": self.capacity_short, "target_wait_s": self.target_wait_s,
                "keys_needed": self.keys_needed, "plan": None if self.plan is None else self.plan.as_dict()}


@dataclass(frozen=True)
class _Criterion:
    name: str
    value: Callable[[RunResult], float]  # lower is better
    noise: Callable[[float, int], float]  # (best value, requests) -> the difference that still ties


CRITERIA = (
    _Criterion("served", lambda r: -r.succeeded, lambda best, n: max(1.0, SERVED_NOISE * n)),
    _Criterion("p95", lambda r: _or_inf(r.percentile(0.95)), lambda best, n: max(P95_NOISE_MS, P95_NOISE * best)),
    _Criterion("429", lambda r: float(r.limited), lambda best, n: max(LIMITED_NOISE_MIN, LIMITED_NOISE * best)),
    _Criterion("cost", lambda r: _or_inf(r.cost), lambda best, n: COST_NOISE * best),
)


def recommend(results: list[RunResult], target_wait_s: float = DEFAULT_TARGET_WAIT_S) -> Recommendation:
    """The verdict on a comparison (see the module's rules)."""
    if not results:
        raise ValueError("no strategy was compared")
    requests = max(r.requests for r in results)
    group, losses = list(results), []
    for crit in CRITERIA:
        if crit.name == "cost" and any(r.cost is None for r in group):
            continue
        best = min(crit.value(r) for r in group)
        if best == float("inf"):
            continue
        allowed = crit.noise(abs(best), requests)
        kept = [r for r in group if crit.value(r) - best <= allowed]
        dropped = [r for r in group if r not in kept]
        if dropped:
            losses.append((crit.name, dropped))
        group = kept
    evenest = max(r.evenness or 0.0 for r in group)
    pick = min((r for r in group if (r.evenness or 0.0) >= evenest - EVENNESS_NOISE),
               key=lambda r: (r.cost or 0.0, results.index(r)))
    tied = [r.strategy for r in group if r is not pick]
    short = pick.failed > 0 or (pick.wait_percentile(0.95) or 0.0) > target_wait_s * 1000
    if len(results) == 1:
        reason = f"Only {pick.strategy} was compared: nothing to choose between."
        verdict = "tie"
    elif len(group) == len(results):
        reason = _tie_sentence(results, pick, short)
        verdict = "tie"
    else:
        clauses = [_loss_clause(name, dropped, pick, requests) for name, dropped in losses]
        with_it = f" ({_names(tied)} {'ties' if len(tied) == 1 else 'tie'} with it)" if tied else ""
        reason = f"Use {pick.strategy}{with_it}: {'; '.join(clauses)}."
        verdict = "winner"
    if short:
        lead = ("whichever strategy" if verdict == "tie" and len(results) > 1 else
                f"with any of the {len(group)} that tie" if tied else f"even with {pick.strategy}")
        reason += " " + _short_sentence(pick, target_wait_s, lead)
    return Recommendation(pick.strategy, verdict, tied, reason, short, target_wait_s)


def plan_sentence(plan: Plan) -> str:
    """What the planner found, as one sentence."""
    goal = (f"with no caller waiting over {plan.target_wait_s:g} s and no 429 upstream "
            f"({plan.strategy}, in simulated time)")
    if plan.why_not:
        return f"No pool size could be tried: {plan.why_not}."
    if plan.keys_needed is None:
        return f"Not even {plural(plan.max_keys, 'key')} like these would serve it {goal}: more keys are not the fix."
    now = f"now {plan.keys_now}"
    return f"{plural(plan.keys_needed, 'key')} like these ({now}) would serve it {goal}."


def _tie_sentence(results: list[RunResult], pick: RunResult, short: bool) -> str:
    served = sorted({r.succeeded for r in results})
    p95 = sorted(p for r in results if (p := r.percentile(0.95)) is not None)
    limited = sorted({r.limited for r in results})
    everyone = "both" if len(results) == 2 else f"all {len(results)}"
    figures = [f"{everyone} serve {_span(served, str)} of {pick.requests}"]
    if p95:
        figures.append(f"p95 {_span([p95[0], p95[-1]], _duration)}")
    figures.append("no 429 upstream" if limited == [0] else f"{_span(limited, str)} 429s upstream")
    uneven = min(r.evenness or 0.0 for r in results) < (pick.evenness or 0.0) - EVENNESS_NOISE
    why = f"{pick.strategy} uses the keys most evenly" if uneven else pick.strategy
    tail = "" if short else f"; any will do ({why})"
    return f"No strategy changes the outcome here: {', '.join(figures)}{tail}."


def _short_sentence(pick: RunResult, target_wait_s: float, lead: str) -> str:
    wait = pick.wait_percentile(0.95)
    parts = []
    if pick.failed:
        parts.append(f"{pick.failed} of {pick.requests} callers go unserved")
    if wait is not None and wait > target_wait_s * 1000:
        parts.append(f"their p95 wait is {_duration(wait)} (target {target_wait_s:g} s)")
    return f"The pool is too small: {lead}, {' and '.join(parts)}; add keys instead."


def _loss_clause(criterion: str, dropped: list[RunResult], best: RunResult, requests: int) -> str:
    """``hermes-fill-first serves 83% fewer (33 vs 192 of 240: 1.88 upstream calls per success vs 1.02)`` and
    the like, against the strategy named: strategies with the same figures named together."""
    figures: dict[str, list[str]] = {}
    for r in dropped:
        figures.setdefault(_loss_figures(criterion, r, best, requests), []).append(r.strategy)
    parts = []
    for text, names in figures.items():
        verb, rest = text.split(" ", 1)
        parts.append(f"{_names(names)} {verb + 's' if len(names) == 1 else verb} {rest}")
    if criterion == "429":
        parts[-1] += ", and 429s can get keys flagged"
    return "; ".join(parts)


def _loss_figures(criterion: str, r: RunResult, best: RunResult, requests: int) -> str:
    """What ``r`` did worse than ``best`` on ``criterion``, as a verb (plural) and its figures."""
    if criterion == "served":
        share = (best.succeeded - r.succeeded) / max(1, best.succeeded) * 100
        text = f"serve {share:.0f}% fewer ({r.succeeded} vs {best.succeeded} of {requests}"
    elif criterion == "p95":
        text = (f"make callers wait longer (p95 {_duration(r.percentile(0.95))} vs "
                f"{_duration(best.percentile(0.95))}")
    elif criterion == "429":
        text = f"send {r.limited} 429s upstream vs {best.limited} ("
    else:
        share = ((r.cost or 0) - (best.cost or 0)) / max(1e-9, best.cost or 0) * 100
        text = f"cost {share:.0f}% more (${r.cost or 0:.4f} vs ${best.cost or 0:.4f}"
    cause = _cause(r, best, criterion)
    if text.endswith("("):
        return f"{text}{cause})" if cause else text[:-2]
    return f"{text}: {cause})" if cause else f"{text})"


def _cause(r: RunResult, best: RunResult, criterion: str) -> str:
    """The figure that tells why ``r`` did worse than ``best``, when one does."""
    if r.fallback < best.fallback:
        return f"{r.fallback} served by the fallback vs {best.fallback}"
    calls, best_calls = _calls(r), _calls(best)
    if criterion != "429" and calls > best_calls * 1.1:
        return f"{calls:.2f} upstream calls per success vs {best_calls:.2f}, {r.limited} 429s vs {best.limited}"
    if (r.evenness or 0) < (best.evenness or 0) - 0.1:
        return f"keys used less evenly, {r.evenness:.2f} vs {best.evenness:.2f}"
    return ""


def _calls(r: RunResult) -> float:
    return r.attempts / r.succeeded if r.succeeded else float("inf")


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _span(values: list, fmt: Callable) -> str:
    lo, hi = fmt(min(values)), fmt(max(values))
    unit = lo.rsplit(" ", 1)[-1] if " " in lo else ""
    if lo == hi:
        return lo
    if unit and hi.endswith(f" {unit}"):  # 11.3-11.6 s
        return f"{lo.rsplit(' ', 1)[0]}-{hi}"
    return f"{lo}-{hi}"


def _duration(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def _or_inf(value: float | None) -> float:
    return float("inf") if value is None else value
