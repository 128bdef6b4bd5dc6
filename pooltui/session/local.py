"""MonitorSession: what the monitor drives (clients, pools, test traffic, history). No UI in here.

The Textual app renders snapshots of this and calls its commands; the CLI, the tests and the screenshot
script build sessions with :func:`demo_session` or :func:`config_session`. Its parts, each in its module:
``local_state`` (what it holds and shows), ``recording`` (history), ``background`` (tasks behind the engine),
``controls`` (test traffic; key and pool commands).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from pooltui.client.pool_client import PoolClient
from pooltui.core.clock import Clock, SystemClock
from pooltui.core.events import Event
from pooltui.core.pool import Pool
from pooltui.core.snapshot import KeySnapshot
from pooltui.providers.verify import VerifyResult
from pooltui.session.background import BackgroundTasks, Service
from pooltui.session.build import HistoryRecorder
from pooltui.session.controls import PoolControls, TrafficControls
from pooltui.session.local_state import ConfigLink, SessionState
from pooltui.session.protocol import SessionStatus
from pooltui.session.recording import HistoryRecording
from pooltui.session.traffic import TrafficGenerator
from pooltui.session.views import ClientSeries, PanelView

if TYPE_CHECKING:
    from pooltui.session.alerts import AlertSender
    from pooltui.session.live_config import LiveConfig
    from pooltui.session.reverify import Reverifier, ReverifyPolicy
    from pooltui.store.config import Config
    from pooltui.store.history import History
    from pooltui.store.state_store import StateStore

__all__ = ["ConfigLink", "MonitorSession", "config_session", "demo_session"]


class MonitorSession:
    """The engine side of the monitor, in this process: a :class:`~pooltui.session.protocol.Session` with
    :class:`~pooltui.session.protocol.LocalControls` (test traffic, new keys). Composed of its state (clients,
    the provider in view, what the panels show), its history recording, its background tasks and its controls
    (test traffic; key and pool commands)."""

    def __init__(self, clients: dict[str, PoolClient], *, clock: Clock | None = None, title: str = "pooltui",
                 demo: bool = False, traffic_rate: float = 10.0, traffic_concurrency: int = 16,
                 traffic_seed: int | None = None, traffic_models: list[str] | None = None,
                 autostart_traffic: bool = True, unencrypted: str | None = None,
                 capacity_alert: dict[str, int] | None = None, config: ConfigLink | None = None,
                 starter: Callable[[], object] | None = None, stopper: Callable[[], object] | None = None,
                 current: str = "", recorders: list[HistoryRecorder] | None = None,
                 services: list[Service] | None = None, reverifiers: list[Reverifier] | None = None,
                 reverify_policies: dict[str, ReverifyPolicy] | None = None, alerts: AlertSender | None = None,
                 shared: StateStore | None = None, live: LiveConfig | None = None,
                 lab_scenario: str = "peak-hour") -> None:
        self.title = title
        self.demo = demo
        self.autostart_traffic = autostart_traffic
        self.unencrypted = unencrypted  # path of the plaintext secrets file, when it is in use
        self.starter = starter  # sync start (e.g. the simulator), run in a thread
        self.stopper = stopper
        self.lab_scenario = lab_scenario  # what the strategy lab compares on first (the demo's own scenario)
        #: called after providers were added, removed or changed while running (the proxy recomputes its routing)
        self.client_listeners: list[Callable[[], None]] = []
        self.state = SessionState(clients, clock or SystemClock(), current, capacity_alert or {}, config)
        self.recording = HistoryRecording(self.state, recorders or [])
        self.background = BackgroundTasks(self.state, services or [], reverifiers or [], reverify_policies or {},
                                          alerts, shared, live)
        self.test_traffic = TrafficControls(self.state, traffic_rate, traffic_concurrency, traffic_seed,
                                            traffic_models or [])
        self.controls = PoolControls(self.state, self.test_traffic)

    # ------------------------------------------------------------------ state, as its users know it
    @property
    def clients(self) -> dict[str, PoolClient]:
        return self.state.clients

    @property
    def clock(self) -> Clock:
        return self.state.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self.state.clock = clock

    @property
    def current(self) -> str:
        """The provider in view."""
        return self.state.current

    @current.setter
    def current(self, provider: str) -> None:
        self.state.current = provider

    @property
    def listeners(self) -> list[Callable[[Event], None]]:
        """Called with every new engine event."""
        return self.state.listeners

    @listeners.setter
    def listeners(self, listeners: list[Callable[[Event], None]]) -> None:
        self.state.listeners = listeners

    @property
    def config(self) -> ConfigLink | None:
        return self.state.config

    @config.setter
    def config(self, config: ConfigLink | None) -> None:
        self.state.config = config

    @property
    def capacity_alert(self) -> dict[str, int]:
        return self.state.capacity_alert

    @property
    def series(self) -> dict[str, ClientSeries]:
        return self.state.series

    @property
    def log_sinks(self) -> list[Callable[[str], None]]:
        return self.state.log_sinks

    @property
    def retired(self) -> list[PoolClient]:
        return self.state.retired

    @property
    def client(self) -> PoolClient:
        return self.state.client

    @property
    def pool(self) -> Pool | None:
        return self.state.pool

    @property
    def has_pool(self) -> bool:
        return self.state.pool is not None

    @property
    def providers(self) -> list[str]:
        return self.state.providers

    def log(self, line: str) -> None:
        self.state.log(line)

    def view(self, *, timeline: bool = True) -> PanelView:
        return self.state.view(timeline=timeline)

    def key(self, label: str) -> KeySnapshot | None:
        return self.state.key(label)

    def views(self, *, timeline: bool = True) -> dict[str, PanelView]:
        return self.state.views(timeline=timeline)

    def recent_events(self, n: int | None = None) -> list[Event]:
        return self.state.recent_events(n)

    def load_past(self, history: History, minutes: float = 15.0) -> int:
        return self.state.load_past(history, minutes)

    def trace_text(self, request_id: int | None = None) -> tuple[int, str] | None:
        return self.state.trace_text(request_id)

    def status(self) -> SessionStatus:
        traffic = "on" if self.traffic_running else ("off" if self.traffic is not None or self.demo else "none")
        store = getattr(self.shared, "status", "connected")
        return SessionStatus(self.title, demo=self.demo, traffic=traffic, traffic_rate=self.traffic_rate,
                             unencrypted=self.unencrypted,
                             shared_store="" if store in ("connected", "connecting") else store)

    # ------------------------------------------------------------------ history recording
    @property
    def recorders(self) -> list[HistoryRecorder]:
        return self.recording.recorders

    def history_rows(self) -> tuple[list[dict], str]:
        return self.recording.history_rows()

    # ------------------------------------------------------------------ background tasks
    @property
    def services(self) -> list[Service]:
        return self.background.services

    @property
    def reverify_policies(self) -> dict[str, ReverifyPolicy]:
        return self.background.reverify_policies

    @property
    def alerts(self) -> AlertSender | None:
        return self.background.alerts

    @alerts.setter
    def alerts(self, alerts: AlertSender | None) -> None:
        self.background.alerts = alerts

    @property
    def shared(self) -> StateStore | None:
        """Its state store: in memory, or Redis when configured."""
        return self.background.shared

    @shared.setter
    def shared(self, shared: StateStore | None) -> None:
        self.background.shared = shared

    @property
    def live(self) -> LiveConfig | None:
        """Config changes applied while running."""
        return self.background.live

    @live.setter
    def live(self, live: LiveConfig | None) -> None:
        self.background.live = live

    def share(self, client: PoolClient) -> None:
        """Keep ``client`` in the shared store; what the store told this process is not kept in its history."""
        remote = getattr(self.shared, "remote", None)
        if remote is not None:
            for recorder in self.recorders:
                recorder.remote = remote
        self.background.share(client)

    # ------------------------------------------------------------------ providers changed while running
    def add_client(self, name: str, client: PoolClient) -> None:
        """A provider added to the config while running: recorded, re-verified, shared and shown as the others."""
        self.clients[name] = client
        self.state._watch(name, client)
        self.recording.add(client)
        self.background.reverify(client)
        self.share(client)

    def remove_client(self, name: str) -> None:
        """A provider removed from the config: no longer routed to or shown; its requests in flight finish (its
        client is closed when the session stops), its history's last lines are written."""
        client = self.clients.pop(name, None)
        if client is None:
            return
        self.series.pop(name, None)
        self.retired.append(client)
        self.recording.remove(client)
        self.background.forget(client)
        if self.current == name:
            was_running = self.traffic_running
            self.stop_traffic()
            self.current = next(iter(self.clients), "")
            if was_running and self.current:
                self.start_traffic()

    def settings_changed(self, cfg: Config) -> None:
        """After a config change was applied to the clients: per-provider settings the session itself holds
        (capacity alerts, re-verification), recorders and the shared store follow the clients' pools, and the
        listeners (the proxy's routing) are told."""
        from pooltui.session.reverify import ReverifyPolicy

        for p in cfg.providers.values():
            self.capacity_alert[p.name] = p.capacity_alert
            self.reverify_policies[p.name] = ReverifyPolicy.of(p)
        self.recording.track()
        for client in self.clients.values():
            self.share(client)
        for listener in self.client_listeners:
            listener()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self.starter is not None:
            await asyncio.to_thread(self.starter)
        self.start_background()
        self.background.start_services()
        if self.autostart_traffic:
            self.start_traffic()

    def start_background(self) -> None:
        """What runs behind the engine whether a monitor looks or not (the monitor and `pooltui proxy` both):
        history writes, background re-verification of parked keys, alerts, shared key states."""
        self.background.start_store()
        self.recording.start()
        self.background.start_watchers(lambda: self.views(timeline=False))

    async def ready(self, timeout_s: float = 3.0) -> None:
        """Wait (bounded) until the shared state store has connected and read what the fleet learnt, so a
        process that starts serving does not send to a key the others know is revoked or spent."""
        await self.background.ready(timeout_s)

    def stop_background(self) -> None:
        """Stop what :meth:`start_background` started and write the history's last lines."""
        self.background.stop()
        self.recording.close()

    async def stop(self) -> None:
        """Stop everything this session started, quickly: test traffic is dropped, not drained (a quit returns
        to the shell in a fraction of a second); services (the proxy) finish what they serve."""
        await self.test_traffic.end()
        await self.background.stop_services()
        self.stop_background()
        for client in [*self.clients.values(), *self.retired]:
            with contextlib.suppress(Exception):
                await client.aclose()
        if self.stopper is not None:
            await asyncio.to_thread(self.stopper)

    # ------------------------------------------------------------------ test traffic
    @property
    def traffic(self) -> TrafficGenerator | None:
        return self.test_traffic.generator

    @property
    def traffic_rate(self) -> float:
        return self.test_traffic.rate

    @traffic_rate.setter
    def traffic_rate(self, rate: float) -> None:
        self.test_traffic.rate = rate

    @property
    def traffic_concurrency(self) -> int:
        return self.test_traffic.concurrency

    @traffic_concurrency.setter
    def traffic_concurrency(self, concurrency: int) -> None:
        self.test_traffic.concurrency = concurrency

    @property
    def traffic_seed(self) -> int | None:
        return self.test_traffic.seed

    @traffic_seed.setter
    def traffic_seed(self, seed: int | None) -> None:
        self.test_traffic.seed = seed

    @property
    def traffic_running(self) -> bool:
        return self.test_traffic.running

    def start_traffic(self) -> None:
        self.test_traffic.start()

    def stop_traffic(self) -> None:
        self.test_traffic.stop()

    def toggle_traffic(self) -> bool:
        return self.test_traffic.toggle()

    def change_rate(self, factor: float) -> float:
        return self.test_traffic.change_rate(factor)

    def burst(self, n: int = 50) -> None:
        self.test_traffic.burst(n)

    # ------------------------------------------------------------------ keys and pool
    # Each acts on ``provider`` when given (the proxy's, for an attached monitor), else on the provider in view.
    def toggle_key(self, label: str, provider: str | None = None) -> str:
        return self.controls.toggle_key(label, provider)

    def shared_accounts(self, provider: str | None = None) -> list[list[str]]:
        return self.controls.shared_accounts(provider)

    def group_shared(self, provider: str | None = None) -> list[list[str]]:
        return self.controls.group_shared(provider)

    def advice(self, provider: str | None = None) -> str:
        for recorder in self.recording.recorders:
            recorder.flush()
        return self.controls.advice(provider)

    def move(self, label: str, delta: int, provider: str | None = None) -> list[str]:
        return self.controls.move(label, delta, provider)

    def set_strategy(self, strategy: str, provider: str | None = None) -> str:
        return self.controls.set_strategy(strategy, provider)

    def cycle_strategy(self, provider: str | None = None) -> str:
        return self.controls.cycle_strategy(provider)

    def reset_cooldowns(self, label: str | None = None, provider: str | None = None) -> int:
        return self.controls.reset_cooldowns(label, provider)

    def switch_provider(self) -> str:
        return self.controls.switch_provider()

    def show(self, provider: str) -> str:
        """Show ``provider`` (one of :attr:`providers`); test traffic follows to its client."""
        return self.controls.show(provider)

    async def verify(self, labels: list[str] | None = None, provider: str | None = None) -> list[VerifyResult]:
        return await self.controls.verify(labels, provider)

    async def add_key(self, label: str, secret: str) -> VerifyResult:
        return await self.controls.add_key(label, secret)


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

    session.shared = shared = open_state(cfg.state, log=session.log, store=store)
    for client in clients.values():
        session.share(client)
    if history is not None:
        session.load_past(history)
    session.live = live = LiveConfig(cfg.path, store, clients, log=session.log, history=history, session=session,
                                     pools=pools, logs=logs)
    if cfg.state.backend == "redis":  # the fleet sees this process's panels; its config reaches other hosts
        from pooltui.store.shared_state import SharedKeyStates

        if isinstance(shared, SharedKeyStates):
            shared.describe = session.views
            shared.on_config = live.apply_shared
            live.publish = shared.publish_config
    return session, problems
