"""FleetSession: the monitor attached to a shared Redis store (``pooltui monitor --state redis://...``).

No engine runs here. Every process sharing the pool sends its panels with its heartbeat; this session
merges them (counts summed over processes, states as the freshest process sees them), merges the events
every process writes to the fleet's stream, and sends key actions to all of them through Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from dataclasses import dataclass, field
from typing import Any, Final

from pooltui.core.snapshot import KeySnapshot
from pooltui.core.strategies import STRATEGIES
from pooltui.core.words import plural
from pooltui.providers.verify import VerifyResult
from pooltui.session.attached import RemoteSession
from pooltui.session.protocol import SessionStatus
from pooltui.session.views import PanelView, StateView, event_dict, event_from
from pooltui.store.fleet import FleetLink, redact_url

#: per-key counters that add up over processes
_SUMMED: Final = ("requests", "ok", "rate_limited", "invalid", "forbidden", "quota", "server_errors", "transport",
           "request_errors", "tokens_in", "tokens_out", "cost", "inflight", "rpm")
_RESETTABLE = ("cooling", "exhausted")


def merge_panels(panels: list[PanelView]) -> PanelView:
    """One provider's panel for the fleet: ``panels`` are the processes' own, freshest first."""
    merged = copy.deepcopy(panels[0])
    others = panels[1:]
    by_key = {(k["label"], k["fingerprint"]): k for k in merged["keys"]}
    for panel in others:
        for k in panel["keys"]:
            mine = by_key.get((k["label"], k["fingerprint"]))
            if mine is None:
                continue  # a key the freshest process does not have (yet): its own row would mislead
            for counter in _SUMMED:
                mine[counter] = mine[counter] + k[counter]
            if (k.get("last_used") or 0) > (mine.get("last_used") or 0):
                mine["last_used"] = k["last_used"]
        for line in ("requests", "ok", "limited", "errors"):
            merged["series"][line] = [a + b for a, b in zip(merged["series"][line], panel["series"][line],
                                                            strict=False)]
        for outcome in ("requests", "ok", "errors", "rejected"):
            merged["callers"][outcome] += panel["callers"][outcome]
        merged["rpm"] += panel["rpm"]
        merged["queued"] += panel["queued"]
        _merge_felt(merged, panel)
        merged["fallback_served"] += panel["fallback_served"]
        merged["outage"] = merged["outage"] or panel["outage"]
        merged["incident"] = merged["incident"] or panel["incident"]
        merged["fallback"] = merged["fallback"] or panel["fallback"]
    return merged


def _merge_felt(merged: PanelView, panel: PanelView) -> None:
    """Callers' figures across processes: counts add up; a percentile cannot be merged from percentiles, so the
    fleet shows the worst process's (what the most hurt callers felt)."""
    lat, other = merged.get("latency"), panel.get("latency")
    if lat is not None and other is not None:
        lat["requests"] += other["requests"]
        _worst(lat, other, "p50_ms", "p95_ms")
    wait, theirs = merged.get("wait"), panel.get("wait")
    if wait is not None and theirs is not None:
        wait["waiting"] += theirs["waiting"]
        _worst(wait, theirs, "p50_s", "p95_s", "slowest_s", "longest_now_s")


def _worst(mine: Any, theirs: Any, *names: str) -> None:
    """Each of ``names`` the larger of the two (None where neither has it)."""
    for name in names:
        values = [v for v in (mine[name], theirs[name]) if v is not None]
        mine[name] = max(values) if values else None


@dataclass
class FleetSession(RemoteSession):
    """A Session on every process that shares one pool through Redis."""

    prefix: str = "pooltui"
    secret: str | None = field(default=None, repr=False)  # the fleet secret: the monitor's actions are signed
    procs: list[dict[str, Any]] = field(default_factory=list)
    _link: FleetLink | None = None
    _stream_id: str = "$"
    _seq: int = 0

    @property
    def shared(self) -> FleetSession:
        """The fleet screen (F) reads this store too."""
        return self

    @property
    def title(self) -> str:
        n = len(self.procs)
        return f"pooltui · fleet {redact_url(self.url)} · {plural(n, 'process', 'processes')}"

    def status(self) -> SessionStatus:
        problem = self.error or ("" if self.procs else "no process is serving this pool (none seen in 10 s)")
        return SessionStatus(self.title, attached=True, problem=problem)

    async def read(self) -> StateView:
        """The fleet's merged view: each provider's panel over every process, and the new events."""
        assert self._link is not None
        self.procs = await self._link.processes()
        freshest = sorted(self.procs, key=lambda p: -float(p["last_seen"]))
        providers: dict[str, PanelView] = {}
        for name in sorted({n for p in freshest for n in p.get("panels", {})}):
            panels = [p["panels"][name] for p in freshest if name in p.get("panels", {})]
            try:
                providers[name] = merge_panels(panels)
            except (KeyError, TypeError, ValueError, AttributeError):
                continue  # a panel planted in the store that is not one: the other providers still show
        events = []
        for sid, raw in await self._link.events_after(self._stream_id, 200 if self._stream_id == "$" else 500):
            self._stream_id, self._seq = sid, self._seq + 1
            events.append(event_dict(event_from(raw), self._seq))
        if self._stream_id == "$":
            self._stream_id = "0-0" if not events else self._stream_id
        return {"started": 0.0, "providers": providers, "events": events, "traces": {}}

    async def start(self) -> None:
        self._link = FleetLink(self.url, self.prefix, secret=self.secret)
        self._absorb(await self.read())
        self._task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                self._absorb(await self.read())
                self.error = ""
            except Exception as exc:  # Redis away: keep the last view, say it is stale
                self.error = f"stale: Redis unreachable ({type(exc).__name__})"

    async def stop(self) -> None:
        await super().stop()
        if self._link is not None:
            with contextlib.suppress(Exception):
                await self._link.aclose()

    def trace_text(self, request_id: int | None = None) -> tuple[int, str] | None:
        return None  # traces stay in the process that served the request

    def history_rows(self) -> tuple[list[dict], str]:
        rows = [dict(event_dict(e, 0)) for e in self._events]
        return rows, f"the fleet's recent events ({redact_url(self.url)})"

    # ------------------------------------------------------------------ key actions, for every process
    def _keys(self) -> list[KeySnapshot]:
        return list(self.view()["keys"])

    def _key(self, label: str) -> KeySnapshot:
        found = next((k for k in self._keys() if k["label"] == label), None)
        if found is None:
            raise ValueError(f"no key {label!r} in {self.current}")
        return found

    def _fire(self, what: str, send: Any) -> str:
        async def run() -> None:
            try:
                await send
            except Exception as exc:
                self._fail(f"{what} failed: Redis unreachable ({type(exc).__name__})")

        self._pending.add(task := asyncio.create_task(run()))
        task.add_done_callback(self._pending.discard)
        return "sent to the fleet"

    def _set_state(self, label: str, state: str, reason: str) -> str:
        assert self._link is not None
        k = self._key(label)
        return self._fire(f"{state} {label}", self._link.send_state(
            {"provider": self.current, "key": label, "fingerprint": k["fingerprint"], "state": state,
             "until": None, "source": None, "reason": reason, "status": None, "models": {}}))

    def toggle_key(self, label: str) -> str:
        if self._key(label)["state"] == "disabled":
            return self._set_state(label, "ok", "enabled from the fleet monitor")
        return self._set_state(label, "disabled", "disabled from the fleet monitor")

    def reset_cooldowns(self, label: str | None = None) -> str:
        labels = [label] if label is not None else [k["label"] for k in self._keys() if k["state"] in _RESETTABLE]
        for one in labels:
            self._set_state(one, "ok", "reset from the fleet monitor")
        return "sent to the fleet"

    def move(self, label: str, delta: int) -> str:
        assert self._link is not None
        order = [k["label"] for k in self._keys()]
        if label in order:
            i = order.index(label)
            order.insert(max(0, min(len(order) - 1, i + delta)), order.pop(i))
        return self._fire("move", self._link.send_pool(self.current, order=order))

    def set_strategy(self, strategy: str) -> str:
        assert self._link is not None
        return self._fire("strategy", self._link.send_pool(self.current, strategy=strategy))

    def cycle_strategy(self) -> str:
        now = self.view()["strategy"]
        i = STRATEGIES.index(now) if now in STRATEGIES else -1
        return self.set_strategy(STRATEGIES[(i + 1) % len(STRATEGIES)])

    async def verify(self, labels: list[str] | None = None) -> list[VerifyResult]:
        self._fail("verify runs where the keys are: `pooltui keys check` on a host that serves the pool")
        return []

