"""Simulator scenarios: providers with keys, limits, quotas, broken keys and outages, read from TOML."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pooltui.core.budget import Prices

SIM_DIALECTS = ("openai", "anthropic")


class ScenarioError(ValueError):
    """A scenario that cannot be loaded."""


@dataclass(slots=True)
class SimKey:
    """A key the simulated provider knows, and how it behaves."""

    label: str
    secret: str
    rpm: int | None = None  # requests allowed per window (window_s); None = unlimited
    daily_quota: int | None = None  # successful requests per UTC day; None = unlimited
    revoke_after: int | None = None  # 401 for good after this many requests
    invalid: bool = False  # 401 from the start
    forbidden: bool = False  # 403 from the start
    quota_group: str | None = None  # keys of one project share one rpm budget
    stream_fault: str | None = None  # "before-data" | "after-data" | "bad-request": an error event in a 200 stream
    echo_secret: bool = False  # a careless upstream: puts the key it was sent in headers, bodies, errors, streams
    answer_bytes: int | None = None  # pad each non-streaming answer to about this size (large-body tests)
    retry_after: float | None = None  # what a 429 of this key says, whatever the window (0: "retry at once")


@dataclass(slots=True)
class Outage:
    """A window (seconds after the server started) in which every request fails with ``status``."""

    start_s: float
    end_s: float
    status: int = 503


@dataclass(slots=True)
class SimProvider:
    """One simulated provider, served under ``/{name}``."""

    name: str
    dialect: str = "openai"
    window_s: float = 60.0
    latency_ms: tuple[float, float] = (0.0, 0.0)
    error_rate: float = 0.0
    quota_status: int = 429
    cycle_s: float = 0.0  # outage windows repeat with this period (0: they happen once)
    success_headers: bool = True  # rate-limit headers on successes (openrouter and gemini send none)
    outage_retry_after: float | None = None  # the Retry-After an outage's 503/529 carries (none by default)
    per_model: bool = False  # rpm windows per (key, model), as OpenAI and Anthropic limit
    keys: list[SimKey] = field(default_factory=list)
    outages: list[Outage] = field(default_factory=list)

    def key_by_secret(self) -> dict[str, SimKey]:
        return {k.secret: k for k in self.keys}


@dataclass(slots=True)
class TrafficDefaults:
    requests: int = 200
    concurrency: int = 8
    rate: float = 0.0  # requests per second; 0 = as fast as concurrency allows
    strategy: str = "round-robin"
    deadline_s: float = 30.0
    models: list[str] = field(default_factory=list)  # requests take these models in turn (empty: the default)


@dataclass(slots=True)
class Scenario:
    """A named set of simulated providers; the first is the primary, the others its fallbacks."""

    name: str
    description: str
    seed: int
    providers: list[SimProvider]
    traffic: TrafficDefaults = field(default_factory=TrafficDefaults)
    prices: Prices = field(default_factory=Prices)  # USD per million tokens per model (cost in the lab)

    @property
    def primary(self) -> SimProvider:
        return self.providers[0]

    @property
    def fallbacks(self) -> list[SimProvider]:
        return self.providers[1:]

    def provider(self, name: str) -> SimProvider:
        for p in self.providers:
            if p.name == name:
                return p
        raise ScenarioError(f"scenario {self.name} has no provider {name!r}")


def _opt_int(raw: dict[str, Any], name: str) -> int | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or value < 0:
        raise ScenarioError(f"{name} must be a non-negative integer, not {value!r}")
    return value


def _positive_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ScenarioError(f"{name} must be a whole number >= 1, not {value!r}")
    return value


def _stream_fault(value: Any) -> str | None:
    if value not in (None, "before-data", "after-data", "bad-request"):
        raise ScenarioError(f"stream_fault must be 'before-data', 'after-data' or 'bad-request', not {value!r}")
    return value


def _key(raw: dict[str, Any]) -> SimKey:
    try:
        return SimKey(
            label=str(raw["label"]),
            secret=str(raw["secret"]),
            rpm=_opt_int(raw, "rpm"),
            daily_quota=_opt_int(raw, "daily_quota"),
            revoke_after=_opt_int(raw, "revoke_after"),
            invalid=bool(raw.get("invalid", False)),
            forbidden=bool(raw.get("forbidden", False)),
            quota_group=raw.get("quota_group"),
            stream_fault=_stream_fault(raw.get("stream_fault")),
            echo_secret=bool(raw.get("echo_secret", False)),
            answer_bytes=_positive_int(raw.get("answer_bytes"), "answer_bytes"),
            retry_after=float(raw["retry_after"]) if raw.get("retry_after") is not None else None,
        )
    except KeyError as exc:
        raise ScenarioError(f"a key needs {exc.args[0]!r}") from None


def _provider(raw: dict[str, Any]) -> SimProvider:
    dialect = raw.get("dialect", "openai")
    if dialect not in SIM_DIALECTS:
        raise ScenarioError(f"simulated dialect must be one of {SIM_DIALECTS}, not {dialect!r}")
    lat = raw.get("latency_ms", [0, 0])
    if isinstance(lat, int | float):
        lat = [lat, lat]
    return SimProvider(
        name=str(raw["name"]),
        dialect=dialect,
        window_s=float(raw.get("window_s", 60.0)),
        latency_ms=(float(lat[0]), float(lat[1])),
        error_rate=float(raw.get("error_rate", 0.0)),
        quota_status=int(raw.get("quota_status", 429)),
        cycle_s=float(raw.get("cycle_s", 0.0)),
        success_headers=bool(raw.get("success_headers", True)),
        outage_retry_after=float(raw["outage_retry_after"]) if raw.get("outage_retry_after") is not None else None,
        per_model=bool(raw.get("per_model", False)),
        keys=[_key(k) for k in raw.get("keys", [])],
        outages=[
            Outage(float(o["start_s"]), float(o["end_s"]), int(o.get("status", 503))) for o in raw.get("outages", [])
        ],
    )


def scenario_from_dict(data: dict[str, Any], name: str = "custom") -> Scenario:
    """Build a scenario from parsed TOML (or a dict written by a test)."""
    try:
        providers = [_provider(p) for p in data.get("providers", [])]
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        if isinstance(exc, ScenarioError):
            raise
        raise ScenarioError(f"scenario {name}: bad provider entry ({exc})") from None
    if not providers:
        raise ScenarioError(f"scenario {name} defines no providers")
    t = data.get("traffic", {})
    traffic = TrafficDefaults(
        requests=int(t.get("requests", 200)),
        concurrency=int(t.get("concurrency", 8)),
        rate=float(t.get("rate", 0.0)),
        strategy=str(t.get("strategy", "round-robin")),
        deadline_s=float(t.get("deadline_s", 30.0)),
        models=[str(m) for m in t.get("models", [])],
    )
    try:
        prices = Prices.from_dict(data.get("prices", {}))
    except ValueError as exc:
        raise ScenarioError(f"scenario {name}: {exc}") from None
    return Scenario(str(data.get("name", name)), str(data.get("description", "")), int(data.get("seed", 1)),
                    providers, traffic, prices)


def builtin_names() -> list[str]:
    files = resources.files("pooltui.sim").joinpath("scenarios")
    return sorted(p.name.removesuffix(".toml") for p in files.iterdir() if p.name.endswith(".toml"))


def load_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a TOML file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.exists():
        text, name = path.read_text(), path.stem
    else:
        res = resources.files("pooltui.sim").joinpath("scenarios", f"{name_or_path}.toml")
        if not res.is_file():
            raise ScenarioError(f"unknown scenario {name_or_path!r}; built in: {', '.join(builtin_names())}")
        text, name = res.read_text(), name_or_path
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"scenario {name}: {exc}") from None
    return scenario_from_dict(data, name)
