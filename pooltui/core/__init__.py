"""Pure domain: keys and health, strategies, pools, classification, headers, events and stats.

Nothing here does I/O or imports the UI; time comes from an injected clock.
"""

from pooltui.core.classify import DIALECTS, Classification, classify
from pooltui.core.clock import Clock, FakeClock, SystemClock
from pooltui.core.cooldown import Backoff, CooldownPolicy
from pooltui.core.events import Event, EventKind, EventLog, StateChange
from pooltui.core.health import DeadlineSource, KeyState, Outcome
from pooltui.core.pool import KeySpec, Pool, PoolKey
from pooltui.core.strategies import STRATEGIES, UnknownStrategyError, normalize_strategy
from pooltui.core.trace import RequestTrace, format_trace

__all__ = [
    "DIALECTS",
    "STRATEGIES",
    "Backoff",
    "Classification",
    "Clock",
    "CooldownPolicy",
    "DeadlineSource",
    "Event",
    "EventKind",
    "EventLog",
    "FakeClock",
    "KeySpec",
    "KeyState",
    "Outcome",
    "Pool",
    "PoolKey",
    "RequestTrace",
    "StateChange",
    "SystemClock",
    "UnknownStrategyError",
    "classify",
    "format_trace",
    "normalize_strategy",
]
