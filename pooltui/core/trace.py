""""Why this key?": a small per-request record of how the engine chose and what happened."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

from pooltui.core.masking import scrub


@dataclass(frozen=True, slots=True)
class Exclusion:
    """A key that could not be picked, and why."""

    label: str
    state: str
    until: float | None
    source: str | None
    reason: str


class LearnedAt(NamedTuple):
    """The learnt limit a pick was paced by, and the requests in its window then (the pick's included)."""

    limit: int
    window_s: float
    in_window: int

    def __str__(self) -> str:
        return f"{self.limit} per {self.window_s:.1f} s, {self.in_window} in the window"


@dataclass(slots=True)
class Step:
    """One step of a request: pick, attempt, wait, backoff, fallback or error."""

    ts: float
    kind: str
    provider: str
    key: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


#: a key picked, as the pick records it (no dict, no Step: issue 27's pick+report speed), appended to
#: ``RequestTrace.entries`` with ``raw`` set; :attr:`RequestTrace.steps` builds its step when read: (ts, provider,
#: key, candidates, excluded, excluded_total, the learnt limit paced by or None, its window, the requests in it
#: then, the pick's included)
PickRecord = tuple[float, str, str, int, tuple[Exclusion, ...], int, int | None, float, int]


def pick_step(record: PickRecord) -> Step:
    ts, provider, key, candidates, excluded, excluded_total, limit, window_s, in_window = record
    detail: dict[str, Any] = {"candidates": candidates, "excluded": excluded, "excluded_total": excluded_total}
    if limit is not None:
        detail["learned"] = LearnedAt(limit, window_s, in_window)
    return Step(ts, "pick", provider, key, detail)


@dataclass(slots=True)
class RequestTrace:
    """The engine's record of one request."""

    request_id: int
    started: float
    strategy: str
    result: str = "pending"
    served_by: str | None = None
    waited_s: float = 0.0  # time spent waiting for a key (all its waits; queue time as the caller feels it)
    #: its steps as recorded: a pick's kept as its :data:`PickRecord` until :attr:`steps` reads them
    entries: list[Step | PickRecord] = field(default_factory=list, repr=False)
    raw: bool = False  # some entry is still a pick's record

    @property
    def steps(self) -> list[Step]:
        """Its steps in order (each pick's built from its record the first time they are read)."""
        entries = self.entries
        if self.raw:
            self.raw = False
            for i, entry in enumerate(entries):
                if type(entry) is tuple:
                    entries[i] = pick_step(entry)
        return cast("list[Step]", entries)

    def of_kind(self, kind: str) -> list[Step]:
        """Its steps of one kind other than ``"pick"``, in order (no pick's step is built to find them)."""
        return [entry for entry in self.entries if isinstance(entry, Step) and entry.kind == kind]

    def add(self, ts: float, kind: str, provider: str, key: str | None = None, **detail: Any) -> None:
        reason = detail.get("reason")
        if reason:
            detail["reason"] = scrub(reason)
        self.entries.append(Step(ts, kind, provider, key, detail))

    def as_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "started": self.started,
            "strategy": self.strategy,
            "result": self.result,
            "served_by": self.served_by,
            "steps": [
                {"ts": s.ts, "kind": s.kind, "provider": s.provider, "key": s.key, **_plain(s.detail)}
                for s in self.steps
            ],
        }


def _plain(detail: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in detail.items():
        if isinstance(v, LearnedAt):
            out[k] = v._asdict()
        elif isinstance(v, tuple) and v and isinstance(v[0], Exclusion):
            out[k] = [{"label": e.label, "state": e.state, "until": e.until, "reason": e.reason} for e in v]
        else:
            out[k] = v
    return out


def format_trace(trace: RequestTrace) -> str:
    """A human-readable account of one request, as `pooltui traffic --trace` prints it."""
    lines = [f"request #{trace.request_id}  strategy={trace.strategy}  result={trace.result}"]
    t0 = trace.started
    for s in trace.steps:
        at = f"+{(s.ts - t0) * 1000:7.1f}ms"
        d = s.detail
        if s.kind == "pick":
            excl = d.get("excluded", ())
            why = ", ".join(
                f"{e.label} {e.state}" + (f" {max(0.0, e.until - s.ts):.0f}s" if e.until else "")
                + (" at its learned limit" if e.source == "learned" else "")
                + (f" ({e.reason})" if e.state == "held" and e.reason else "") for e in excl
            )
            more = d.get("excluded_total", 0) - len(excl)
            if more > 0:
                why += f", +{more} more"
            chosen = f"{s.key}  from {d.get('candidates')} available" if s.key else "nothing: no key available"
            if d.get("learned"):
                chosen += f" (learned limit {d['learned']})"
            lines.append(f"  {at} pick [{s.provider}] {chosen}" + (f"; excluded: {why}" if why else ""))
        elif s.kind == "attempt":
            lines.append(
                f"  {at} attempt [{s.provider}] {s.key} -> {d.get('status')} {d.get('outcome')}"
                f" in {d.get('latency_ms', 0):.1f}ms {d.get('reason', '')}".rstrip()
            )
        elif s.kind == "wait":
            what = " for" if d.get("learned") else ":"  # a learnt limit's room, not a provider's reset
            lines.append(f"  {at} wait {d.get('seconds', 0):.2f}s [{s.provider}]{what} {d.get('reason', '')}")
        elif s.kind == "backoff":
            lines.append(f"  {at} backoff {d.get('seconds', 0):.2f}s [{s.provider}] after {d.get('reason', '')}")
        elif s.kind in ("skip", "spill") and s.key:
            lines.append(f"  {at} {s.kind} [{s.provider}] {s.key}: {d.get('reason', '')}")
        elif s.kind == "fallback":
            lines.append(f"  {at} fallback {d.get('from')} -> {s.provider}: {d.get('reason', '')}")
        else:
            lines.append(f"  {at} {s.kind} [{s.provider}] {d.get('reason', '')}")
    return "\n".join(lines)
