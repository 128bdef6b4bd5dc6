"""The TOML config: providers, their credential pools and key entries. Never a secret.

Read with tomllib, validated into dataclasses, and written by merging the new values into the document
on disk (tomlkit), atomically: the user's comments, order and formatting stay, and so do settings pooltui
does not know.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pooltui.core import validate
from pooltui.core.affinity import check_affinity, default_affinity
from pooltui.core.budget import Budget, Prices
from pooltui.core.cooldown import CooldownPolicy
from pooltui.core.strategies import UnknownStrategyError, normalize_strategy
from pooltui.core.windows import KeyLimits
from pooltui.providers.profiles import PROFILES, ProviderProfile, profile_for
from pooltui.store.atomic import locked, read_regular_text, write_atomic
from pooltui.store.history import MAX_RETENTION_DAYS
from pooltui.store.limits_config import LIMIT_FIELDS, key_limits, limits_table, parse_provider_limits, pop_limits
from pooltui.store.telemetry import TelemetryConfig, parse_telemetry
from pooltui.store.toml_merge import dumps_merged

SECRET_SCHEMES = ("keyring:", "env:", "file:")
_LIMITS = {"request_timeout_s": 120.0, "stream_idle_s": 60.0, "max_body_mb": 64.0}
_BUDGET_FIELDS = ("budget_tokens_day", "budget_tokens_month", "budget_cost_day", "budget_cost_month")
#: the longest a time setting may be (a cooldown, a timeout, a re-verify delay): a week; more is a typo, and a
#: time of 1e300 s stored in the history would hold a key forever
MAX_SETTING_S = 7 * 86400.0
MAX_ALERT_RETRIES = 20


class ConfigError(ValueError):
    """A config problem, stated as ``FILE:LINE: problem``."""

    def __init__(self, path: Path | str, message: str, line: int | None = None) -> None:
        self.path, self.line, self.problem = Path(path), line, message
        where = f"{path}:{line}" if line else f"{path}"
        super().__init__(f"{where}: {message}")


validate_label = validate.label
validate_base_url = validate.base_url


@dataclass(slots=True)
class KeyEntry:
    """A key of a provider: its label, where its secret is (a reference, never the secret), a note."""

    label: str
    secret: str
    note: str = ""
    quota_group: str | None = None
    budget: Budget = field(default_factory=Budget)
    disabled: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    limits: KeyLimits | None = None  # declared: rpm, rpd, tpm, itpm, otpm, max_concurrency (over the provider's)
    cache_group: str | None = None  # keys sharing a prompt cache (one organization); default: the quota group

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.extra, "label": self.label, "secret": self.secret}
        if self.note:
            out["note"] = self.note
        if self.disabled:
            out["disabled"] = True
        if self.quota_group:
            out["quota_group"] = self.quota_group
        if self.cache_group:
            out["cache_group"] = self.cache_group
        for name in _BUDGET_FIELDS:
            value = getattr(self.budget, name.removeprefix("budget_"))
            if value is not None:
                out[name] = value
        if self.limits is not None:
            out.update(self.limits.as_dict())
        return out


@dataclass(slots=True)
class ProviderConfig:
    """A provider: its kind (dialect/profile), endpoint, rotation strategy, pool order and fallbacks."""

    name: str
    kind: str
    base_url: str | None = None
    strategy: str = "round-robin"
    credential_pool: list[str] | None = None
    fallback: list[str] = field(default_factory=list)
    cooldown_s: float = 30.0
    cooldown_max_s: float = 600.0
    capacity_alert: int = 1
    request_timeout_s: float = 120.0  # one request, all attempts: connect and every read
    stream_idle_s: float = 60.0  # the longest silence inside a stream once it flows
    max_body_mb: float = 64.0  # the largest non-streaming answer held before relay
    cooldown_floor_s: float = 1.0  # a key that answered 429 is not picked again sooner
    max_attempts: int = 10  # attempts of one request on this provider (each key at most twice)
    max_inflight_per_key: int | None = None  # soft cap: picks prefer keys with fewer requests and streams open
    learn_limits: bool = True  # learn each key's limit from its 429s where no header states it, pace picks by it
    reverify_s: float = 300.0  # re-verify a parked key this long after it was parked (0: never), doubling ...
    reverify_max_s: float = 3600.0  # ... up to this
    default_model: str | None = None  # the model asked of this provider when the caller's model is not its own
    model_map: dict[str, str] = field(default_factory=dict)  # the caller's model -> this provider's name for it
    #: "prefix" | "session" | "off": keep a conversation on the key that holds its prompt cache; None: the
    #: default for its kind (on where the provider caches per organization: anthropic, openai)
    affinity: str | None = None
    affinity_wait_s: float = 0.0  # how long a request may wait for its conversation's key (0: moves on at once)
    keys: list[KeyEntry] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    limits: KeyLimits | None = None  # declared for every key (``[providers.NAME.limits]``), a key's own win
    model_limits: dict[str, KeyLimits] = field(default_factory=dict)  # ``[providers.NAME.limits.models."M"]``

    def key_limits(self, entry: KeyEntry) -> tuple[KeyLimits | None, tuple[tuple[str, KeyLimits], ...]]:
        """What ``entry`` declares: its own limits over the provider's, each model's over those."""
        return key_limits(entry.limits, self.limits, self.model_limits)

    @property
    def profile(self) -> ProviderProfile:
        return profile_for(self.kind, name=self.name, base_url=self.base_url, default_model=self.default_model,
                           model_map=self.model_map)

    @property
    def affinity_mode(self) -> str:
        """The affinity in force: the configured one, else the default for the provider's kind."""
        return self.affinity if self.affinity is not None else default_affinity(self.kind)

    @property
    def cooldown(self) -> CooldownPolicy:
        return CooldownPolicy(base_s=self.cooldown_s, max_s=max(self.cooldown_s, self.cooldown_max_s),
                              floor_s=self.cooldown_floor_s)

    def key(self, label: str) -> KeyEntry | None:
        return next((k for k in self.keys if k.label == label), None)

    def holder_of(self, secret: str, resolve: Any) -> KeyEntry | None:
        """The key whose secret is ``secret`` (``resolve(ref)`` reads a reference; unreadable ones are skipped)."""
        for entry in self.keys:
            try:
                if resolve(entry.secret) == secret:
                    return entry
            except Exception:
                continue
        return None

    def pool_keys(self) -> list[KeyEntry]:
        """The keys of the credential pool, in pool order."""
        if self.credential_pool is None:
            return list(self.keys)
        by_label = {k.label: k for k in self.keys}
        return [by_label[label] for label in self.credential_pool if label in by_label]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.extra, "kind": self.kind}
        if self.base_url:
            out["base_url"] = self.base_url
        out["strategy"] = self.strategy
        if self.credential_pool is not None:
            out["credential_pool"] = list(self.credential_pool)
        if self.fallback:
            out["fallback"] = list(self.fallback)
        out["cooldown_s"] = self.cooldown_s
        out["cooldown_max_s"] = self.cooldown_max_s
        out["capacity_alert"] = self.capacity_alert
        for name in _LIMITS:
            out[name] = getattr(self, name)
        if self.cooldown_floor_s != 1.0:
            out["cooldown_floor_s"] = self.cooldown_floor_s
        if self.max_attempts != 10:
            out["max_attempts"] = self.max_attempts
        if self.max_inflight_per_key is not None:
            out["max_inflight_per_key"] = self.max_inflight_per_key
        if not self.learn_limits:
            out["learn_limits"] = False
        if (self.reverify_s, self.reverify_max_s) != (300.0, 3600.0):
            out["reverify_s"], out["reverify_max_s"] = self.reverify_s, self.reverify_max_s
        if self.default_model:
            out["default_model"] = self.default_model
        if self.model_map:
            out["model_map"] = dict(self.model_map)
        if self.limits is not None or self.model_limits:
            out["limits"] = limits_table(self.limits, self.model_limits)
        if self.affinity is not None:
            out["affinity"] = self.affinity
        if self.affinity_wait_s:
            out["affinity_wait_s"] = self.affinity_wait_s
        if self.keys:
            out["keys"] = [k.to_dict() for k in self.keys]
        return out


@dataclass(slots=True)
class AlertsConfig:
    """``[alerts]``: where alerts go beyond the terminal (a command, a webhook) and how often."""

    command: list[str] | None = None  # run with the alert as JSON on stdin
    webhook: str | None = None  # POSTed the alert as JSON
    min_interval_s: float = 60.0  # the same alert (provider, kind) at most this often
    timeout_s: float = 5.0
    retries: int = 2
    raw: dict[str, Any] = field(default_factory=dict)  # as written, to save back unchanged

    @property
    def enabled(self) -> bool:
        return bool(self.command or self.webhook)


def parse_alerts(raw: Any) -> AlertsConfig:
    """Check an ``[alerts]`` table: a command (a list of arguments, or one string split like a shell does),
    a strict http(s) webhook URL, finite intervals."""
    import shlex

    if not isinstance(raw, dict):
        raise ValueError("'alerts' must be a table")
    data = dict(raw)
    command = data.pop("command", None)
    if isinstance(command, str):
        command = shlex.split(command)
    if command is not None and (not isinstance(command, list) or not command
                                or not all(isinstance(a, str) and a for a in command)):
        raise ValueError("alerts.command must be a command line: a list of arguments or a string")
    webhook = data.pop("webhook", None)
    if webhook is not None:
        try:
            webhook = validate.base_url(webhook, secret_path=True)
        except ValueError as exc:
            raise ValueError(f"alerts.webhook: {exc}") from None
    out = AlertsConfig(command, webhook, raw=dict(raw))
    out.min_interval_s = validate.finite("alerts.min_interval_s", data.pop("min_interval_s", 60.0), 0.0,
                                         maximum=MAX_SETTING_S)
    out.timeout_s = validate.finite("alerts.timeout_s", data.pop("timeout_s", 5.0), 0.0, strict=True,
                                    maximum=MAX_SETTING_S)
    out.retries = validate.whole("alerts.retries", data.pop("retries", 2), 0, MAX_ALERT_RETRIES)
    if data:
        raise ValueError(f"alerts: unknown setting {sorted(data)[0]!r} (known: command, webhook, min_interval_s, "
                         "timeout_s, retries)")
    return out


@dataclass(slots=True)
class StateConfig:
    """``[state]``: where key states live. "memory" (each process alone, the default) or "redis" (shared)."""

    backend: str = "memory"
    url: str | None = None
    prefix: str = "pooltui"
    raw: dict[str, Any] = field(default_factory=dict)
    #: how long a state shared without its own deadline (disabled, invalid elsewhere) holds on another process
    ttl_s: float = 86400.0
    #: a reference (keyring:, env:, file:) to the fleet secret messages are signed with; never in Redis
    secret: str | None = None
    #: with Redis, budget windows (declared and learnt limits) are held across the fleet; false: each process
    #: paces alone (as before issue 27; for comparison)
    share_windows: bool = True

    def redis_url(self) -> str:
        """The URL of the "redis" backend (``parse_state`` makes sure it has one)."""
        if self.url is None:
            raise ValueError(_REDIS_URL_WANTED)
        return self.url


_REDIS_URL_WANTED = "state.url must be a Redis URL (redis://host:port/db, rediss://..., unix://...)"


def parse_state(raw: Any) -> StateConfig:
    if not isinstance(raw, dict):
        raise ValueError("'state' must be a table")
    data = dict(raw)
    backend = data.pop("backend", "memory")
    if backend not in ("memory", "redis"):
        raise ValueError(f"state.backend must be \"memory\" or \"redis\", not {backend!r}")
    url = data.pop("url", None)
    if backend == "redis" and (not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://"))):
        raise ValueError(_REDIS_URL_WANTED)
    prefix = data.pop("prefix", "pooltui")
    prefix = validate.label(prefix, "state.prefix") if prefix != "pooltui" else prefix
    ttl_s = validate.finite("state.ttl_s", data.pop("ttl_s", 86400.0), 0.0, strict=True)
    if ttl_s > 366 * 86400:
        raise ValueError("state.ttl_s must be at most a year (366 days in seconds)")
    secret = data.pop("secret", None)
    if secret is not None and (not isinstance(secret, str) or not secret.startswith(SECRET_SCHEMES)):
        raise ValueError("state.secret must be a reference to the fleet secret (keyring:..., env:VAR or file:...), "
                         "never the secret itself")
    share_windows = data.pop("share_windows", True)
    if not isinstance(share_windows, bool):
        raise ValueError("state.share_windows must be true or false")
    if data:
        raise ValueError(f"state: unknown setting {sorted(data)[0]!r} (known: backend, url, prefix, ttl_s, secret, "
                         "share_windows)")
    return StateConfig(backend, url, prefix, dict(raw), ttl_s, secret, share_windows)


@dataclass
class Config:
    """Everything in the config file."""

    path: Path
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    prices: Prices = field(default_factory=Prices)
    retention_days: int = 30
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    state: StateConfig = field(default_factory=StateConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    extra: dict[str, Any] = field(default_factory=dict)
    history_extra: dict[str, Any] = field(default_factory=dict)

    def provider(self, name: str) -> ProviderConfig:
        try:
            return self.providers[name]
        except KeyError:
            known = ", ".join(sorted(self.providers)) or "none configured"
            raise KeyError(f"unknown provider {name!r} (configured: {known})") from None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        history = {**self.history_extra, "retention_days": self.retention_days}
        out["history"] = history
        if self.alerts.raw:
            out["alerts"] = dict(self.alerts.raw)
        if self.state.raw:
            out["state"] = dict(self.state.raw)
        if self.telemetry.raw:
            out["telemetry"] = dict(self.telemetry.raw)
        if self.prices.per_model:
            out["prices"] = self.prices.to_dict()
        out["providers"] = {name: p.to_dict() for name, p in self.providers.items()}
        return out

    def validate(self) -> None:
        """Cross-checks: fallbacks exist, pool labels exist, labels unique."""
        for p in self.providers.values():
            labels = [k.label for k in p.keys]
            dup = {label for label in labels if labels.count(label) > 1}
            if dup:
                raise ValueError(f"provider {p.name}: duplicate key label {sorted(dup)[0]!r}")
            for label in p.credential_pool or []:
                if label not in labels:
                    raise ValueError(f"provider {p.name}: credential_pool names unknown key {label!r}")
            for fb in p.fallback:
                if fb == p.name:
                    raise ValueError(f"provider {p.name}: cannot fall back to itself")
                if fb not in self.providers:
                    raise ValueError(f"provider {p.name}: fallback {fb!r} is not a configured provider")


# ---------------------------------------------------------------------------------------------- parsing
def _line_of(text: str, *needles: str) -> int | None:
    """The line of the first needle (regex) found after the previous one; None if not found."""
    pos = 0
    line = None
    for needle in needles:
        m = re.compile(needle, re.M).search(text, pos)
        if not m:
            return line
        pos = m.end()
        line = text.count("\n", 0, m.start()) + 1
    return line


def _table_re(*parts: str) -> str:
    quoted = r"\.".join(rf'(?:{re.escape(p)}|"{re.escape(p)}")' for p in parts)
    return rf"^\s*\[+\s*{quoted}\s*\]+"


def _seconds(raw: dict, name: str, default: float, minimum: float = 0.0, *, strict: bool = False) -> float:
    """A time setting in seconds: finite, at least ``minimum``, at most a week."""
    return validate.finite(name, raw.pop(name, default), minimum, strict=strict, maximum=MAX_SETTING_S)


def _key_entry(provider: str, raw: Any) -> KeyEntry:
    if not isinstance(raw, dict):
        raise ValueError(f"provider {provider}: each key must be a table")
    data = dict(raw)
    label = validate_label(str(data.pop("label", "")))
    secret = data.pop("secret", "")
    if not isinstance(secret, str) or not secret.startswith(SECRET_SCHEMES):
        raise ValueError(
            f"key {provider}/{label}: 'secret' must be a reference (keyring:..., env:VAR or file:...); "
            "pooltui never keeps a secret in the config")
    if secret.startswith("env:"):
        try:
            validate.env_name(secret[4:])
        except ValueError as exc:
            raise ValueError(f"key {provider}/{label}: secret: {exc}") from None
    budget_values = {}
    for name in _BUDGET_FIELDS:
        if name in data:
            value = data.pop(name)
            try:
                validate.finite(name, value, 0.0, strict=True)
            except ValueError as exc:
                raise ValueError(f"key {provider}/{label}: {exc}") from None
            budget_values[name.removeprefix("budget_")] = value
    try:
        limits = pop_limits(data, "")
    except ValueError as exc:
        raise ValueError(f"key {provider}/{label}: {exc}") from None
    note = data.pop("note", "")
    group = data.pop("quota_group", None)
    cache_group = data.pop("cache_group", None)
    disabled = data.pop("disabled", False)
    if not isinstance(disabled, bool):
        raise ValueError(f"key {provider}/{label}: disabled must be true or false")
    if cache_group is not None:
        try:
            cache_group = validate.label(cache_group, "cache_group")
        except ValueError as exc:
            raise ValueError(f"key {provider}/{label}: {exc}") from None
    return KeyEntry(label, secret, str(note), str(group) if group else None, Budget(**budget_values), disabled,
                    data, limits=limits, cache_group=cache_group)


def _provider(name: str, raw: Any) -> ProviderConfig:
    if not isinstance(raw, dict):
        raise ValueError(f"provider {name} must be a table")
    validate.provider_name(name)
    data = dict(raw)
    kind = data.pop("kind", name)
    if kind not in PROFILES:
        raise ValueError(f"provider {name}: unknown kind {kind!r} (known: {', '.join(sorted(PROFILES))})")
    base_url = data.pop("base_url", None)
    if base_url is not None:
        try:
            base_url = validate_base_url(str(base_url))
        except ValueError as exc:
            raise ValueError(f"provider {name}: base_url: {exc}") from None
    try:
        strategy = normalize_strategy(str(data.pop("strategy", "round-robin")))
    except UnknownStrategyError as exc:
        raise ValueError(f"provider {name}: {exc}") from None
    pool = data.pop("credential_pool", None)
    if pool is not None and (not isinstance(pool, list) or not all(isinstance(x, str) for x in pool)):
        raise ValueError(f"provider {name}: credential_pool must be a list of key labels")
    fallback = data.pop("fallback", [])
    if isinstance(fallback, str):
        fallback = [fallback]
    if not isinstance(fallback, list) or not all(isinstance(x, str) for x in fallback):
        raise ValueError(f"provider {name}: fallback must be a list of provider names")
    cooldown = _seconds(data, "cooldown_s", 30.0, 0.1)
    cooldown_max = _seconds(data, "cooldown_max_s", max(600.0, cooldown), cooldown)
    alert = data.pop("capacity_alert", 1)
    try:
        validate.whole("capacity_alert", alert)
    except ValueError as exc:
        raise ValueError(f"provider {name}: {exc}") from None
    limits = {n: (_seconds(data, n, default, 0.0, strict=True) if n.endswith("_s")
                  else validate.finite(n, data.pop(n, default), 0.0, strict=True)) for n, default in _LIMITS.items()}
    floor = _seconds(data, "cooldown_floor_s", 1.0)
    attempts = validate.whole("max_attempts", data.pop("max_attempts", 10), 1, 1000)
    reverify = _seconds(data, "reverify_s", 300.0)
    reverify_max = _seconds(data, "reverify_max_s", 3600.0)
    inflight = data.pop("max_inflight_per_key", None)
    if inflight is not None:
        validate.whole("max_inflight_per_key", inflight, 1)
    learn = validate.flag("learn_limits", data.pop("learn_limits", True))
    affinity = data.pop("affinity", None)
    if affinity is not None:
        try:
            affinity = check_affinity(affinity)
        except ValueError as exc:
            raise ValueError(f"provider {name}: {exc}") from None
    affinity_wait = _seconds(data, "affinity_wait_s", 0.0, 0.0)
    default_model, model_map = _models(name, data.pop("default_model", None), data.pop("model_map", {}))
    declared, model_limits = parse_provider_limits(name, data.pop("limits", None))
    keys = [_key_entry(name, k) for k in data.pop("keys", [])]
    return ProviderConfig(name, kind, base_url, strategy, pool, list(fallback), cooldown, cooldown_max, alert,
                          keys=keys, extra=data, cooldown_floor_s=floor, max_attempts=attempts,
                          max_inflight_per_key=inflight, reverify_s=reverify, reverify_max_s=reverify_max,
                          learn_limits=learn, default_model=default_model, model_map=model_map, affinity=affinity,
                          affinity_wait_s=affinity_wait, limits=declared, model_limits=model_limits, **limits)


def _models(provider: str, default: Any, mapping: Any) -> tuple[str | None, dict[str, str]]:
    """``default_model`` and ``model_map`` (the caller's model -> this provider's), checked."""
    try:
        if default is not None:
            default = validate.model_name(default, "default_model")
        if not isinstance(mapping, dict):
            raise ValueError("model_map must be a table: {\"caller's model\" = \"this provider's model\"}")
        checked = {validate.model_name(k, "model_map entry"): validate.model_name(v, f"model_map[{k!r}]")
                   for k, v in mapping.items()}
    except ValueError as exc:
        raise ValueError(f"provider {provider}: {exc}") from None
    return default, checked


def parse_config(text: str, path: Path) -> Config:
    """Parse and validate config text; raises ConfigError naming the file and the line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError(path, f"invalid TOML: {msg}", int(m.group(1)) if m else None) from None
    cfg = Config(path)
    providers = data.pop("providers", {})
    if not isinstance(providers, dict):
        raise ConfigError(path, "'providers' must be a table", _line_of(text, r"^\s*providers\s*="))
    for name, raw in providers.items():
        try:
            cfg.providers[name] = _provider(name, raw)
        except ValueError as exc:
            field_name = _field_in(str(exc))
            needles = [_table_re("providers", name)]
            if field_name:
                needles.append(rf"^\s*{re.escape(field_name)}\s*=")
            raise ConfigError(path, str(exc), _line_of(text, *needles)) from None
    prices = data.pop("prices", {})
    try:
        cfg.prices = Prices.from_dict(prices)
    except ValueError as exc:
        raise ConfigError(path, str(exc), _line_of(text, _table_re("prices"))) from None
    try:
        cfg.alerts = parse_alerts(data.pop("alerts", {}))
    except ValueError as exc:
        raise ConfigError(path, str(exc), _line_of(text, _table_re("alerts"))) from None
    try:
        cfg.state = parse_state(data.pop("state", {}))
    except ValueError as exc:
        raise ConfigError(path, str(exc), _line_of(text, _table_re("state"))) from None
    try:
        cfg.telemetry = parse_telemetry(data.pop("telemetry", {}))
    except ValueError as exc:
        raise ConfigError(path, str(exc), _line_of(text, _table_re("telemetry"))) from None
    history = data.pop("history", {})
    if not isinstance(history, dict):
        raise ConfigError(path, "'history' must be a table")
    history = dict(history)
    days = history.pop("retention_days", 30)
    try:
        cfg.retention_days = validate.whole("history.retention_days", days, 1, MAX_RETENTION_DAYS)
    except ValueError as exc:
        raise ConfigError(path, str(exc), _line_of(text, _table_re("history"), r"^\s*retention_days\s*=")) from None
    cfg.history_extra = history
    cfg.extra = data
    try:
        cfg.validate()
    except ValueError as exc:
        raise ConfigError(path, str(exc), _line_of(text, r"^\s*(fallback|credential_pool|label)\s*=")) from None
    return cfg


def _field_in(message: str) -> str | None:
    for name in ("kind", "base_url", "strategy", "credential_pool", "fallback", "cooldown_s", "cooldown_max_s",
                 "capacity_alert", "secret", "label", "cooldown_floor_s", "max_attempts", "max_inflight_per_key",
                 "reverify_s", "reverify_max_s", "learn_limits", "default_model", "model_map", "affinity_wait_s",
                 "affinity", "cache_group",
                 *_LIMITS, *_BUDGET_FIELDS, *LIMIT_FIELDS):
        if re.search(rf"(?<![\w]){name}(?![\w])", message) or (name == "label" and "key label" in message):
            return name
    return None


def load_config(path: Path) -> Config:
    """The config at ``path`` (an empty one if the file does not exist yet)."""
    try:
        text = read_regular_text(path)
    except FileNotFoundError:
        return Config(path)
    except UnicodeDecodeError:
        raise ConfigError(path, "not UTF-8 text") from None
    except IsADirectoryError:
        raise ConfigError(path, "is a folder, not a config file") from None
    except NotADirectoryError:
        raise ConfigError(path, f"{next(p for p in path.parents if p.exists())} is a file, not a folder") from None
    except OSError as exc:
        raise ConfigError(path, f"cannot read: {exc.strerror or exc}") from None
    return parse_config(text, path)


def save_config(cfg: Config) -> None:
    """Write atomically; validation first, so an invalid config is never written."""
    cfg.validate()
    try:
        original = read_regular_text(cfg.path)
    except FileNotFoundError:
        original = ""
    text = dumps_merged(original, cfg.to_dict())
    parse_config(text, cfg.path)  # what we write must read back
    write_atomic(cfg.path, text.encode(), 0o600)


class ConfigEditor:
    """Read-modify-write under a lock: ``with ConfigEditor(path) as cfg: ...`` saves on success only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = locked(path)
        self.cfg: Config | None = None

    def __enter__(self) -> Config:
        self._lock.__enter__()
        try:
            self.cfg = load_config(self.path)
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self.cfg

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None and self.cfg is not None:
                save_config(self.cfg)
        finally:
            self._lock.__exit__(exc_type, exc, tb)

