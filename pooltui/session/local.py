"""MonitorSession: what the monitor drives (clients, pools, test traffic, history). No UI in here.

The Textual app renders snapshots of this and calls its commands; the CLI, the tests and the screenshot
script build sessions with :func:`demo_session` or :func:`config_session`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pooltui.client.pool_client import PoolClient, Upstream
from pooltui.core.clock import Clock, SystemClock
from pooltui.core.events import Event, EventKind
from pooltui.core.pool import KeySpec, Pool
from pooltui.core.strategies import STRATEGIES
from pooltui.providers.verify import VerifyResult
from pooltui.session.protocol import SessionStatus
from pooltui.session.traffic import TrafficGenerator
from pooltui.session.views import ClientSeries, PanelView, event_dict, panel, trace_text


@dataclass
class ConfigLink:
    """Where a config-backed session saves key and order changes."""

    path: Path
    store: Any
    history: Any | None = None


@dataclass
class MonitorSession:
    """The engine side of the monitor, in this process: a :class:`~pooltui.session.protocol.Session` with
    :class:`~pooltui.session.protocol.LocalControls` (test traffic, new keys)."""

    clients: dict[str, PoolClient]
    clock: Clock = field(default_factory=SystemClock)
    title: str = "pooltui"
    demo: bool = False
    traffic_rate: float = 10.0
    traffic_concurrency: int = 16
    traffic_seed: int | None = None
    traffic_models: list[str] = field(default_factory=list)
    autostart_traffic: bool = True
    unencrypted: str | None = None  # path of the plaintext secrets file, when it is in use
    capacity_alert: dict[str, int] = field(default_factory=dict)
    config: ConfigLink | None = None
    starter: Callable[[], Any] | None = None  # sync start (e.g. the simulator), run in a thread
    stopper: Callable[[], Any] | None = None
    current: str = ""
    traffic: TrafficGenerator | None = None
    _traffic_task: asyncio.Task | None = None
    _recorder_task: asyncio.Task | None = None
    recorders: list[Any] = field(default_factory=list)
    series: dict[str, ClientSeries] = field(default_factory=dict)
    listeners: list[Callable[[Event], None]] = field(default_factory=list)
    services: list[Any] = field(default_factory=list)  # objects with async run() and stop(), e.g. the proxy
    _service_tasks: list[asyncio.Task] = field(default_factory=list)
    reverifiers: list[Any] = field(default_factory=list)  # background re-verification of parked keys
    _reverify_tasks: list[asyncio.Task] = field(default_factory=list)
    alerts: Any = None  # an AlertSender (pooltui.session.alerts) when [alerts] is configured
    past: dict[str, list[Event]] = field(default_factory=dict)  # client -> its events from the history
    shared: Any = None  # its StateStore (pooltui.store.state_store): in memory, or Redis when configured
    log_sinks: list[Callable[[str], None]] = field(default_factory=list)
    lab_scenario: str = "peak-hour"  # what the strategy lab compares on first (the demo's own scenario)
    _shared_started: asyncio.Task | None = None  # where log lines go besides events
    live: Any = None  # LiveConfig (pooltui.session.live_config): config changes applied while running
    _alert_tasks: list[asyncio.Task] = field(default_factory=list)
    #: called after providers were added, removed or changed while running (the proxy recomputes its routing)
    client_listeners: list[Callable[[], None]] = field(default_factory=list)
    retired: list[PoolClient] = field(default_factory=list)  # removed providers' clients: closed at the end
    reverify_policies: dict[str, Any] = field(default_factory=dict)  # per provider (shared by the reverifiers)
    _shared_kept: dict[int, Any] = field(default_factory=dict)  # what the shared store keeps (by id), kept alive
    _background: bool = False

    def __post_init__(self) -> None:
        if not self.current:
            self.current = next(iter(self.clients))
        for name, client in self.clients.items():
            self._watch(name, client)

    # ------------------------------------------------------------------ wiring
    def _watch(self, name: str, client: PoolClient) -> None:
        self.series[name] = ClientSeries(client, self.clock, self._notify, self._incident_ended)

    def _incident_ended(self, incident) -> None:
        """An incident is over: the history keeps its summary (when this session has a history)."""
        if self.config is not None and self.config.history is not None:
            self.config.history.add_incident(incident)

    def log(self, line: str) -> None:
        """A line for whoever watches this session (an event in the monitor's pane, a headless proxy's
        stderr)."""
        for sink in self.log_sinks:
            sink(line)
        self._notify(Event(self.clock.now(), self.current, None, EventKind.STATE, None, line, "nothing changed"))

    def _notify(self, event: Event) -> None:
        for listener in self.listeners:
            listener(event)

    @property
    def owner(self) -> str:
        """The client that serves the provider in view: itself, or the client it is a fallback of."""
        if self.current in self.clients:
            return self.current
        return next((name for name, c in self.clients.items() if any(up.name == self.current for up in c.fallbacks)),
                    next(iter(self.clients)))

    @property
    def client(self) -> PoolClient:
        return self.clients[self.owner]

    @property
    def upstream(self) -> Upstream:
        """The provider in view: a client's primary, or one of its fallbacks."""
        client = self.client
        return next((up for up in client.upstreams if up.name == self.current), client.primary)

    @property
    def pool(self) -> Pool | None:
        return self.upstream.pool

    @property
    def has_pool(self) -> bool:
        return self.pool is not None

    @property
    def providers(self) -> list[str]:
        """Every provider in view, in the order `p` goes through them: each client's own, then the fallbacks
        that have no client of their own (a demo's fallback, say)."""
        names = list(self.clients)
        for client in self.clients.values():
            names += [up.name for up in client.fallbacks if up.name not in names]
        return names

    def view(self) -> PanelView:
        """What the panels show now (see :func:`pooltui.session.views.panel`)."""
        return panel(self.client, self.series[self.owner], self.clock.now(),
                     self.capacity_alert.get(self.current, 1), self.current)

    def views(self) -> dict[str, PanelView]:
        """Every provider's view (the alert watcher looks at all of them, not only the one in view)."""
        now = self.clock.now()
        return {name: panel(c, self.series[name], now, self.capacity_alert.get(name, 1))
                for name, c in self.clients.items()}

    def status(self) -> SessionStatus:
        traffic = "on" if self.traffic_running else ("off" if self.traffic is not None or self.demo else "none")
        return SessionStatus(self.title, demo=self.demo, traffic=traffic, traffic_rate=self.traffic_rate,
                             unencrypted=self.unencrypted)

    def recent_events(self, n: int | None = None) -> list[Event]:
        """The current provider's events: those of this run, after those the history had before it began."""
        events = self.client.events.recent()
        shared = self.series[self.owner].others
        if shared:  # its fallbacks' pools belong to other clients: their keys' events are in those logs
            fallbacks = {up.name for up in self.client.fallbacks}
            events = sorted(events + [e for log in shared for e in log.recent()
                                      if e.key is not None and e.provider in fallbacks], key=lambda e: e.ts)
        events = self.past.get(self.owner, []) + events
        return events if n is None else events[-n:]

    def load_past(self, history: Any, minutes: float = 15.0) -> int:
        """Open with the recent past: the last ``minutes`` of events and request counts from the history go
        into the events pane, the timeline and the incident tracker (not into the engine). Returns events."""
        from pooltui.session.views import event_from

        since = self.clock.now() - minutes * 60
        events = [event_from(row) for row in history.events(since, None, 5000)]
        usage = history.usage_rows(since)
        for name, client in self.clients.items():
            providers = {up.name for up in client.upstreams}
            series = self.series[name]
            mine = [e for e in events if e.provider in providers]
            self.past[name] = mine
            tracker, on_end = series.tracker, series.tracker.on_end
            tracker.on_end = None  # an incident that ended before this run is not recorded a second time
            for e in mine:
                tracker.event(e)
                if e.key is not None:
                    series.timeline.event(e, series.name_of(e.provider, e.key))
            tracker.settle()
            tracker.on_end = on_end
            for bucket, provider, key, requests in usage:
                if provider in providers and key != "-":
                    series.timeline.request(bucket, series.name_of(provider, key), requests)
        return len(events)

    def trace_text(self, request_id: int | None = None) -> tuple[int, str] | None:
        return trace_text(self.client, request_id)

    def history_rows(self) -> tuple[list[dict], str]:
        """Past events: from the history database when there is one, else this session's ring."""
        if self.config is not None and self.config.history is not None:
            for recorder in self.recorders:
                recorder.flush()
            return self.config.history.events(time.time() - 86400, None, 2000), "history, last 24 h"
        return [dict(event_dict(e, i)) for i, e in enumerate(self.client.events.recent())], "this session"

    def share(self, client: PoolClient) -> None:
        """Keep ``client`` and its pools (those not kept yet: a fallback added later too) in the shared store."""
        if self.shared is None:
            return
        for up in client.upstreams:
            if up.pool is not None and id(up.pool) not in self._shared_kept:
                self._shared_kept[id(up.pool)] = up.pool
                self.shared.attach(up.pool)
        if id(client) not in self._shared_kept:
            self._shared_kept[id(client)] = client
            self.shared.attach_client(client)

    # ------------------------------------------------------------------ providers changed while running
    def add_client(self, name: str, client: PoolClient) -> None:
        """A provider added to the config while running: recorded, re-verified, shared and shown as the others."""
        from pooltui.session.build import HistoryRecorder, owned
        from pooltui.session.reverify import Reverifier

        self.clients[name] = client
        self._watch(name, client)
        if self.config is not None and self.config.history is not None:
            self.recorders.append(HistoryRecorder(self.config.history, client))
        if self.reverifiers or self.reverify_policies:
            reverifier = Reverifier(client, self.reverify_policies, only=frozenset(p.name for p in owned(client)))
            self.reverifiers.append(reverifier)
            if self._background:
                self._reverify_tasks.append(asyncio.create_task(reverifier.run()))
        self.share(client)

    def remove_client(self, name: str) -> None:
        """A provider removed from the config: no longer routed to or shown; its requests in flight finish (its
        client is closed when the session stops), its history's last lines are written."""
        client = self.clients.pop(name, None)
        if client is None:
            return
        self.series.pop(name, None)
        self.retired.append(client)
        for recorder in [r for r in self.recorders if getattr(r, "client", None) is client]:
            recorder.close()
            self.recorders.remove(recorder)
        for i, reverifier in enumerate(list(self.reverifiers)):
            if reverifier.client is client:
                self.reverifiers.remove(reverifier)
                if i < len(self._reverify_tasks):
                    self._reverify_tasks.pop(i).cancel()
        if self.current == name:
            was_running = self.traffic_running
            self.stop_traffic()
            self.current = next(iter(self.clients), "")
            if was_running and self.current:
                self.start_traffic()

    def settings_changed(self, cfg: Any) -> None:
        """After a config change was applied to the clients: per-provider settings the session itself holds
        (capacity alerts, re-verification), recorders and the shared store follow the clients' pools, and the
        listeners (the proxy's routing) are told."""
        from pooltui.session.reverify import ReverifyPolicy

        for p in cfg.providers.values():
            self.capacity_alert[p.name] = p.capacity_alert
            self.reverify_policies[p.name] = ReverifyPolicy.of(p)
        for recorder in self.recorders:
            if hasattr(recorder, "track"):
                recorder.track()
        for client in self.clients.values():
            self.share(client)
        for listener in self.client_listeners:
            listener()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self.starter is not None:
            await asyncio.to_thread(self.starter)
        self.start_background()
        for service in self.services:
            self._service_tasks.append(asyncio.create_task(service.run()))
        if self.autostart_traffic:
            self.start_traffic()

    def start_background(self) -> None:
        """What runs behind the engine whether a monitor looks or not (the monitor and `pooltui proxy` both):
        history writes, background re-verification of parked keys, alerts, shared key states."""
        self._background = True
        if self.shared is not None:
            self._shared_started = asyncio.create_task(self.shared.start())
            self._alert_tasks.append(self._shared_started)
        if self.live is not None:
            self.live.start()
        if self.recorders:
            self._recorder_task = asyncio.create_task(self.flush_history())
        self._reverify_tasks = [asyncio.create_task(r.run()) for r in self.reverifiers]
        if self.alerts is not None:
            from pooltui.session.alerts import AlertWatcher

            watcher = AlertWatcher(self.alerts, self.views, self.clock.now)
            self.listeners.append(watcher.event)
            self._alert_tasks += [asyncio.create_task(self.alerts.run()), asyncio.create_task(watcher.run())]

    async def ready(self, timeout_s: float = 3.0) -> None:
        """Wait (bounded) until the shared state store has connected and read what the fleet learnt, so a
        process that starts serving does not send to a key the others know is revoked or spent."""
        if self._shared_started is not None:
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(self._shared_started), timeout_s)

    def stop_background(self) -> None:
        """Stop what :meth:`start_background` started and write the history's last lines."""
        if self.shared is not None:
            self.shared.close()
        if self.live is not None:
            self.live.close()
        for task in [*self._reverify_tasks, *self._alert_tasks]:
            task.cancel()
        if self._recorder_task is not None:
            self._recorder_task.cancel()
        for recorder in self.recorders:
            recorder.close()

    async def flush_history(self) -> None:
        """Write what the recorders buffered to the history every second, until cancelled; incidents that
        have gone quiet end then too, whether or not a monitor is looking."""
        while True:
            await asyncio.sleep(1.0)
            for recorder in self.recorders:
                recorder.flush()
            for series in self.series.values():
                series.tracker.settle()

    async def stop(self) -> None:
        """Stop everything this session started, quickly: test traffic is dropped, not drained (a quit returns
        to the shell in a fraction of a second); services (the proxy) finish what they serve."""
        self.stop_traffic()
        if self._traffic_task is not None:
            self._traffic_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._traffic_task, 1)
        for service in self.services:
            await service.stop()
        for task in self._service_tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5)
        self.stop_background()
        for client in [*self.clients.values(), *self.retired]:
            with contextlib.suppress(Exception):
                await client.aclose()
        if self.stopper is not None:
            await asyncio.to_thread(self.stopper)

    # ------------------------------------------------------------------ traffic
    @property
    def traffic_running(self) -> bool:
        return self.traffic is not None and self.traffic.running

    def start_traffic(self) -> None:
        if self.traffic_running:
            return
        self.traffic = TrafficGenerator(self.client, rate=self.traffic_rate, concurrency=self.traffic_concurrency,
                                        models=self.traffic_models,
                                        seed=self.traffic_seed)
        self._traffic_task = asyncio.create_task(self.traffic.run(None))

    def stop_traffic(self) -> None:
        if self.traffic is not None:
            self.traffic.stop()

    def toggle_traffic(self) -> bool:
        if self.traffic_running:
            self.stop_traffic()
            return False
        self.start_traffic()
        return True

    def change_rate(self, factor: float) -> float:
        self.traffic_rate = max(0.5, min(5000.0, round(self.traffic_rate * factor, 1)))
        if self.traffic is not None:
            self.traffic.rate = self.traffic_rate
        return self.traffic_rate

    def burst(self, n: int = 50) -> None:
        if self.traffic is not None and self.traffic.running:
            self.traffic.burst(n)

    # ------------------------------------------------------------------ keys and pool
    def _require_pool(self) -> Pool:
        if self.pool is None:
            raise ValueError(f"{self.current} has no keys (a keyless endpoint)")
        return self.pool

    def toggle_key(self, label: str) -> str:
        """Disable an enabled key, enable a disabled one; returns the new state."""
        pool = self._require_pool()
        key = pool.key(label)
        if key.state.value == "disabled":
            pool.enable(label)
            self._save_key(label, disabled=False)
        else:
            pool.disable(label)
            self._save_key(label, disabled=True)
        return key.state.value

    def move(self, label: str, delta: int) -> list[str]:
        pool = self._require_pool()
        pool.move(label, delta)

        def change(p) -> None:
            # the same move applied to the order on disk: keys another process added meanwhile stay in it
            order = list(p.credential_pool) if p.credential_pool is not None else [k.label for k in p.keys]
            if label in order:
                i = order.index(label)
                order.insert(max(0, min(len(order) - 1, i + delta)), order.pop(i))
                p.credential_pool = order

        self._save(change)
        return [k.label for k in pool.keys]

    def set_strategy(self, strategy: str) -> str:
        pool = self._require_pool()
        pool.set_strategy(strategy)
        self._save(lambda p: setattr(p, "strategy", pool.strategy))
        return pool.strategy

    def cycle_strategy(self) -> str:
        pool = self._require_pool()
        i = STRATEGIES.index(pool.strategy)
        return self.set_strategy(STRATEGIES[(i + 1) % len(STRATEGIES)])

    def reset_cooldowns(self, label: str | None = None) -> int:
        """Clear cooldowns and quota parking of every pool of this provider, or of one key of its own pool."""
        if label is not None:
            n = self._require_pool().reset(label)
        else:  # a client's primary in view: its fallbacks' pools too
            ups = self.client.upstreams if self.current == self.owner else [self.upstream]
            n = sum(up.pool.reset() for up in ups if up.pool is not None)
        if self.config is not None and self.config.history is not None:
            self.config.history.clear_key_status(self.current, label, ("cooling", "exhausted"))
        return n

    def switch_provider(self) -> str:
        """The next provider in view; test traffic follows to its client (a fallback's view keeps it)."""
        names = self.providers
        owner, was_running = self.owner, self.traffic_running
        self.current = names[(names.index(self.current) + 1) % len(names)] if self.current in names else names[0]
        if self.owner != owner and was_running:
            self.stop_traffic()
            self.start_traffic()
        return self.current

    async def verify(self, labels: list[str] | None = None) -> list[VerifyResult]:
        """Verify keys (zero tokens) and apply the results to the pool; returns the results."""
        from pooltui.providers.verify import verify_key

        pool = self._require_pool()
        profile = self.upstream.profile
        keys = [pool.key(label) for label in labels] if labels else pool.keys
        results = await asyncio.gather(*(verify_key(self.client.http, profile, k.label, k.secret) for k in keys))
        for r in results:
            if r.classification is not None:
                pool.mark_verified(r.label, r.classification)
            else:
                pool.events.emit(Event(self.clock.now(), pool.name, r.label, EventKind.TRANSPORT, None,
                                       f"verify: {r.detail}", "verify failed"))
            if self.config is not None and self.config.history is not None:
                self.config.history.set_verified(pool.name, r.label, r.result)
        return results

    async def add_key(self, label: str, secret: str) -> VerifyResult:
        """Verify a new key, store its secret, save it to the config and put it in the pool."""
        from pooltui.core import validate
        from pooltui.providers.verify import verify_key
        from pooltui.store.config import validate_label
        from pooltui.store.keys import add_key, forget

        pool = self._require_pool()
        label = validate_label(label)
        secret = validate.secret(secret)
        if label in {k.label for k in pool.keys}:
            raise ValueError(f"{pool.name} already has a key labelled {label!r}")
        same = next((k.label for k in pool.keys if k.secret == secret), None)
        if same is not None:
            raise ValueError(f"that key is already in the pool as {same}")
        result = await verify_key(self.client.http, self.upstream.profile, label, secret)
        if result.result in ("invalid", "forbidden"):
            raise ValueError(f"not added: the key is {result.result} ({result.status}: {result.detail})")
        if self.config is not None:
            store = self.config.store

            added: list[str] = []
            try:  # under the config lock: check, store the secret, add the entry
                self._save(lambda p: add_key(p, store, label, secret=secret, stored=added))
            except Exception:
                forget(store, added)
                raise
        pool.add_key(KeySpec(label, secret))
        if result.classification is not None:
            pool.mark_verified(label, result.classification)
        if self.config is not None and self.config.history is not None:
            self.config.history.set_verified(pool.name, label, result.result)
        return result

    # ------------------------------------------------------------------ config
    def _save(self, change: Callable[[Any], object]) -> None:
        if self.config is None:
            return
        from pooltui.store.config import ConfigEditor

        with ConfigEditor(self.config.path) as cfg:
            change(cfg.provider(self.current))

    def _save_key(self, label: str, *, disabled: bool) -> None:
        def change(p) -> None:
            entry = p.key(label)
            if entry is not None:
                entry.disabled = disabled

        self._save(change)


def demo_session(scenario: str = "peak-hour", strategy: str | None = None, *, rate: float | None = None,
                 seed: int | None = None, in_process: bool = False, autostart: bool = True) -> MonitorSession:
    """A session on the embedded simulator with test traffic: no keys, no network needed."""
    from pooltui.sim.process import SimProcess
    from pooltui.sim.scenario import load_scenario
    from pooltui.sim.server import SimServer
    from pooltui.sim.wiring import client_for_scenario

    sc = load_scenario(scenario)
    sim = SimServer(sc) if in_process else SimProcess(sc, scenario)
    client = client_for_scenario(sc, sim, strategy, seed=seed)
    return MonitorSession(
        {sc.primary.name: client}, title=f"pooltui demo · {sc.name}", demo=True,
        traffic_rate=rate if rate is not None else (sc.traffic.rate or 50.0),
        traffic_concurrency=max(sc.traffic.concurrency, 16), traffic_seed=seed, autostart_traffic=autostart,
        traffic_models=list(sc.traffic.models),
        starter=sim.start, stopper=sim.stop, lab_scenario=scenario,
    )


def config_session(cfg, store, history, provider: str | None = None) -> tuple[MonitorSession, list[str]]:
    """A session on the user's configured providers (each with keys gets its own client)."""
    from pooltui.core.events import EventLog
    from pooltui.session.build import HistoryRecorder, build_client, owned

    names = [p.name for p in cfg.providers.values() if p.keys]
    if provider:
        if provider not in cfg.providers:
            raise KeyError(f"unknown provider {provider!r}")
        names = [provider] + [n for n in names if n != provider]
    if not names:
        raise ValueError("no provider with keys is configured: add one with `pooltui auth add PROVIDER --pool "
                         "LABEL`, or try `pooltui demo`")
    clients: dict[str, PoolClient] = {}
    problems: list[str] = []
    recorders = []
    pools: dict[str, Pool | None] = {}  # one pool per provider, whichever clients use it
    logs = {name: EventLog() for name in names}
    for name in names:
        built = build_client(cfg, name, store, history, pools=pools, logs=logs)
        problems += built.problems
        clients[name] = built.client
        if history is not None:
            recorders.append(HistoryRecorder(history, built.client))
    from pooltui.session.reverify import Reverifier, ReverifyPolicy

    policies = {p.name: ReverifyPolicy.of(p) for p in cfg.providers.values()}
    from pooltui.session.alerts import AlertSender

    session = MonitorSession(
        clients, title="pooltui", demo=False, traffic_rate=2.0, traffic_concurrency=4,
        autostart_traffic=False, unencrypted=str(store.file) if store.unencrypted else None,
        capacity_alert={p.name: p.capacity_alert for p in cfg.providers.values()},
        config=ConfigLink(cfg.path, store, history), recorders=recorders,
        reverifiers=[Reverifier(c, policies, only=frozenset(p.name for p in owned(c))) for c in clients.values()],
        reverify_policies=policies,
    )
    session.traffic_seed = random.randrange(1 << 30)
    session.alerts = AlertSender.from_config(cfg.alerts, log=session.log)
    from pooltui.session.live_config import LiveConfig
    from pooltui.store.state_store import open_state

    session.shared = open_state(cfg.state, log=session.log)
    for client in clients.values():
        session.share(client)
    if history is not None:
        session.load_past(history)
    session.live = LiveConfig(cfg.path, store, clients, log=session.log, history=history, session=session,
                              pools=pools, logs=logs)
    if cfg.state.backend == "redis":  # the fleet sees this process's panels; its config reaches other hosts
        session.shared.describe = session.views
        session.shared.on_config = session.live.apply_shared
        session.live.publish = session.shared.publish_config
    return session, problems
