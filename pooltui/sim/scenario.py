"""Simulator scenarios: providers with keys, limits, quotas, broken keys and outages, read from TOML."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pooltui.core.budget import Prices
from pooltui.sim import corpus
from pooltui.sim.scenario_fields import FieldError, Fields, check_number

SIM_DIALECTS = ("openai", "anthropic")
#: bounds of a scenario's fields: what a test or a lab run can use, well short of what hangs or exhausts memory
MAX_REQUESTS = 100_000  # as `compare --requests`
MAX_CONCURRENCY = 4096
MAX_RATE, MIN_RATE = 10_000.0, 0.001  # arrivals per second: 0 (all at once), or from one per 1000 s
MAX_SPAN_S = 31 * 86400.0  # windows, outages, cycles, retry-afters
MAX_LATENCY_MS = 600_000.0
MAX_ANSWER_BYTES = 256 * 2**20
MAX_CONVERSATION_TOKENS = 1_000_000  # a conversation's last turn: about 16 MB of request
MAX_PROMPT_CHARS = 4 * 2**20  # a prompt padded to more is a typo, and every request would carry it


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
    corpus_case: str | None = None  # answer every request with this captured response of tests/corpus/
    tpm: int | None = None  # tokens (input and output) allowed per window (window_s); None = unlimited
    itpm: int | None = None  # input tokens allowed per window, as Anthropic states them
    otpm: int | None = None  # output tokens allowed per window
    org: str | None = None  # its organization (account): keys of one org share a prompt cache and one rpm budget

    @property
    def cache_org(self) -> str:
        """The organization whose prompt cache this key reads and writes (its own unless ``org`` is set)."""
        return self.org or f"key:{self.label}"

    @property
    def budget(self) -> str:
        """The name of the rpm budget it draws on: its quota group's, its organization's, else its own."""
        return self.quota_group or (f"org:{self.org}" if self.org else f"key:{self.label}")

    @property
    def org_id(self) -> str:
        """The organization its answers name (one of its own when the scenario gives none)."""
        return f"org-sim-{self.org or 'key-' + self.label}"


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
    prompt_chars: int = 0  # each prompt padded to about this many characters (large prompts: token limits bind)
    conversations: int = 0  # > 0: a workload of conversations (each turn re-sends the conversation) instead
    turns: int = 15  # each conversation's turns
    think_s: float = 20.0  # seconds between a conversation's turns, on average
    system_tokens: int = 2000  # the system prompt's tokens, and as many again in tool definitions
    turn_tokens: int = 500  # tokens a turn adds (the user's message or tool result, and the answer)


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


_KEY_FIELDS = ("label, secret, rpm, daily_quota, revoke_after, invalid, forbidden, quota_group, stream_fault, "
               "echo_secret, answer_bytes, retry_after, corpus_case, tpm, itpm, otpm, org")
_PROVIDER_FIELDS = ("name, dialect, window_s, latency_ms, error_rate, quota_status, cycle_s, success_headers, "
                    "outage_retry_after, per_model, keys, outages")


def _key(raw: Any, where: str) -> SimKey:
    f = Fields(raw, where)
    label = f.label("label")
    secret = f.text("secret", required=True)
    if len(secret.strip()) < 8:
        raise FieldError(f"{where}.secret", "must be at least 8 characters (any made-up key)")
    key = SimKey(
        label=label, secret=secret.strip(), rpm=f.whole("rpm"), daily_quota=f.whole("daily_quota"),
        revoke_after=f.whole("revoke_after"), invalid=f.flag("invalid"), forbidden=f.flag("forbidden"),
        quota_group=f.text("quota_group", None),
        stream_fault=f.choice("stream_fault", None, (None, "before-data", "after-data", "bad-request")),
        echo_secret=f.flag("echo_secret"), answer_bytes=f.whole("answer_bytes", None, 1, MAX_ANSWER_BYTES),
        retry_after=f.number("retry_after", maximum=MAX_SPAN_S),
        corpus_case=_corpus_case(f.text("corpus_case", None), where),
        tpm=f.whole("tpm", None, 1), itpm=f.whole("itpm", None, 1), otpm=f.whole("otpm", None, 1),
        org=f.text("org", None))
    f.done(_KEY_FIELDS)
    return key


def _corpus_case(case_id: str | None, where: str) -> str | None:
    """A corpus case id that exists (its response is replayed for the key)."""
    if case_id is None:
        return None
    try:
        corpus.case(case_id)
    except KeyError as exc:
        raise FieldError(f"{where}.corpus_case", exc.args[0]) from None
    return case_id


def _latency(value: Any, where: str) -> tuple[float, float]:
    if isinstance(value, list) and len(value) == 2:
        lo, hi = (check_number(f"{where}[{i}]", v, maximum=MAX_LATENCY_MS) for i, v in enumerate(value))
        if lo > hi:
            raise FieldError(where, f"must be [low, high] with low <= high, not {value!r}")
        return lo, hi
    if isinstance(value, int | float) and not isinstance(value, bool):
        n = check_number(where, value, maximum=MAX_LATENCY_MS)
        return n, n
    raise FieldError(where, f"must be milliseconds or [low, high], not {value!r}")


def _outage(raw: Any, where: str) -> Outage:
    f = Fields(raw, where)
    start, end = f.number("start_s", 0.0, maximum=MAX_SPAN_S), f.number("end_s", None, maximum=MAX_SPAN_S)
    if end is None or end <= start:
        raise FieldError(f"{where}.end_s", f"must be a number > start_s ({start:g}), not {end!r}")
    outage = Outage(start, end, f.whole("status", 503, 400, 599))
    f.done("start_s, end_s, status")
    return outage


def _provider(raw: Any, where: str) -> SimProvider:
    f = Fields(raw, where)
    name = f.label("name", "provider name")
    provider = SimProvider(
        name=name, dialect=f.choice("dialect", "openai", SIM_DIALECTS),
        window_s=f.number("window_s", 60.0, above=True, maximum=MAX_SPAN_S), latency_ms=_latency(f.any("latency_ms", 0),
                                                                              f"{where}.latency_ms"),
        error_rate=f.number("error_rate", 0.0, maximum=1.0), quota_status=f.whole("quota_status", 429, 400, 599),
        cycle_s=f.number("cycle_s", 0.0, maximum=MAX_SPAN_S), success_headers=f.flag("success_headers", True),
        outage_retry_after=f.number("outage_retry_after", maximum=MAX_SPAN_S), per_model=f.flag("per_model"),
        keys=[_key(k, w) for k, w in f.tables("keys")], outages=[_outage(o, w) for o, w in f.tables("outages")])
    labels = [k.label for k in provider.keys]
    if len(set(labels)) != len(labels):
        dup = next(x for x in labels if labels.count(x) > 1)
        raise FieldError(f"{where}.keys", f"two keys are labelled {dup!r}")
    f.done(_PROVIDER_FIELDS)
    return provider


def _traffic(raw: Any, where: str) -> TrafficDefaults:
    from pooltui.core.strategies import STRATEGIES, normalize_strategy

    f = Fields(raw, where)
    strategy = f.text("strategy", "round-robin")
    try:
        strategy = normalize_strategy(strategy)
    except ValueError:
        raise FieldError(f"{where}.strategy", f"must be one of {', '.join(STRATEGIES)}, not {strategy!r}") from None
    models = f.any("models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
        raise FieldError(f"{where}.models", f"must be a list of model names, not {models!r}")
    rate = f.number("rate", 0.0, maximum=MAX_RATE)
    if 0 < rate < MIN_RATE:
        raise FieldError(f"{where}.rate", f"must be 0 (all at once) or at least {MIN_RATE:g} per second, not {rate!r}")
    traffic = TrafficDefaults(requests=f.whole("requests", 200, 1, MAX_REQUESTS),
                              concurrency=f.whole("concurrency", 8, 1, MAX_CONCURRENCY), rate=rate, strategy=strategy,
                              deadline_s=f.number("deadline_s", 30.0, above=True, maximum=86400.0),
                              models=list(models), prompt_chars=f.whole("prompt_chars", 0, 0, MAX_PROMPT_CHARS),
                              conversations=f.whole("conversations", 0, 0, MAX_REQUESTS),
                              turns=f.whole("turns", 15, 1, 1000), think_s=f.number("think_s", 20.0, maximum=86400.0),
                              system_tokens=f.whole("system_tokens", 2000, 1, 200_000),
                              turn_tokens=f.whole("turn_tokens", 500, 4, 200_000))
    if traffic.conversations * traffic.turns > MAX_REQUESTS:
        raise FieldError(f"{where}.conversations", f"conversations x turns must be at most {MAX_REQUESTS}")
    if 2 * traffic.system_tokens + traffic.turns * traffic.turn_tokens > MAX_CONVERSATION_TOKENS:
        raise FieldError(f"{where}.turn_tokens", "a conversation's last turn (2 x system_tokens + turns x turn_tokens) "
                                                 f"must be at most {MAX_CONVERSATION_TOKENS} tokens")
    f.done("requests, concurrency, rate, strategy, deadline_s, models, prompt_chars, conversations, turns, think_s, "
           "system_tokens, turn_tokens")
    return traffic


def scenario_from_dict(data: dict[str, Any], name: str = "custom", source: str | None = None) -> Scenario:
    """Build a scenario from parsed TOML (or a dict written by a test); a bad field raises a ScenarioError
    that names it (``providers[0].keys[1].rpm: ...``)."""
    try:
        f = Fields(data, "")
        title, description = f.text("name", name), f.text("description", "")
        seed = f.whole("seed", 1)
        traffic = _traffic(*f.table("traffic"))
        providers = [_provider(p, w) for p, w in f.tables("providers")]
        if not providers:
            raise FieldError("providers", "none defined: add at least one [[providers]] table")
        names = [p.name for p in providers]
        if len(set(names)) != len(names):
            raise FieldError("providers", f"two providers are named {next(n for n in names if names.count(n) > 1)!r}")
        prices_raw, where = f.table("prices")
        try:
            prices = Prices.from_dict(prices_raw)
        except ValueError as exc:
            raise FieldError(where, str(exc)) from None
        f.done("name, description, seed, traffic, providers, prices")
    except FieldError as exc:
        raise ScenarioError(f"scenario {source or name}: {exc}") from None
    return Scenario(title, description, seed, providers, traffic, prices)


def builtin_names() -> list[str]:
    files = resources.files("pooltui.sim").joinpath("scenarios")
    return sorted(p.name.removesuffix(".toml") for p in files.iterdir() if p.name.endswith(".toml"))


def load_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a TOML file by path."""
    path = Path(name_or_path)
    source = None
    if path.suffix == ".toml":
        if not path.is_file():
            raise ScenarioError(f"scenario {path}: no such file")
        try:
            text, name, source = path.read_text(encoding="utf-8"), path.stem, str(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ScenarioError(f"scenario {path}: cannot read ({type(exc).__name__})") from None
    else:
        res = resources.files("pooltui.sim").joinpath("scenarios", f"{name_or_path}.toml")
        if not res.is_file():
            raise ScenarioError(f"unknown scenario {name_or_path!r}; built in: {', '.join(builtin_names())}")
        text, name = res.read_text(), name_or_path
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"scenario {source or name}: not valid TOML ({exc})") from None
    return scenario_from_dict(data, name, source)
