"""Hermes Agent's credential pool as pooltui reads it: where its home is (profiles, ``HERMES_HOME``, the
active profile), its ``auth.json`` entries with their states, its ``config.yaml`` (strategies, custom
providers, the model's key) and its ``.env``.

Nothing here writes to Hermes's files. Mapping rules, from the installed hermes-agent 0.19:

- provider ids: ``openai-api`` -> openai, ``custom:<name>`` -> an openai-compatible provider with the base
  URL and key of ``custom_providers`` in config.yaml, the others that have a pooltui profile by name;
- secrets: ``access_token`` for manual entries; ``env:VAR`` from ``$HERMES_HOME/.env``, then the process
  environment; ``config:NAME`` from that custom provider's ``api_key``; ``model_config`` from ``model.api_key``;
- states: ``dead`` -> invalid; ``exhausted`` -> cooling (a 429) or parked (others) until the reset Hermes
  honours: its ``last_error_reset_at``, else ``last_status_at`` + 1 h (429 and others) or 5 min (401), a
  sole key too (``pooltui.core.hermes_rules``);
- strategies: ``credential_pool_strategies`` (default ``fill_first``) -> failover, round-robin, random,
  least-used.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pooltui.core import validate
from pooltui.core.hermes_rules import bench_until, parse_timestamp
from pooltui.store.atomic import read_regular, read_regular_text

#: Hermes provider id -> pooltui provider kind (those pooltui has a profile for)
KINDS = {"openai-api": "openai", "openai": "openai", "anthropic": "anthropic", "openrouter": "openrouter",
         "gemini": "gemini", "deepseek": "deepseek", "groq": "groq", "mistral": "mistral"}
STRATEGIES = {"fill_first": "failover", "round_robin": "round-robin", "random": "random", "least_used": "least-used"}
_SLUG = re.compile(r"[^A-Za-z0-9_.@+-]+")


def default_home() -> Path:
    """Hermes's platform default home (``~/.hermes``; ``%LOCALAPPDATA%\\hermes`` on Windows)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA", "").strip()
        return (Path(base) if base else Path.home() / "AppData" / "Local") / "hermes"
    return Path.home() / ".hermes"


_PROFILE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def hermes_root() -> Path:
    """Where Hermes keeps its profiles and ``active_profile``, as ``hermes_constants.get_default_hermes_root``
    finds it: the default home, unless ``HERMES_HOME`` points outside it (Docker, servers): then
    ``HERMES_HOME`` itself, or its grandparent when it is ``<root>/profiles/<name>``."""
    native = default_home()
    env = os.environ.get("HERMES_HOME", "").strip()
    if not env:
        return native
    path = Path(env).expanduser()
    try:
        path.resolve().relative_to(native.resolve())
        return native
    except ValueError:
        pass
    return path.parent.parent if path.parent.name == "profiles" else path


def profile_name(value: str) -> str:
    """A Hermes profile id as Hermes normalizes it (lower case; ``Default`` is ``default``)."""
    name = value.strip().lower() if isinstance(value, str) else ""
    if not _PROFILE.fullmatch(name):
        raise ValueError(f"bad Hermes profile name {value!r}: use 1-64 lower-case letters, digits, '-' or '_'")
    return name


def hermes_home(profile: str | None = None) -> Path:
    """The Hermes home Hermes itself would use (``hermes_cli/main.py`` ``_apply_profile_override``):
    ``--profile NAME`` (``<root>/profiles/NAME``; ``default``: the root), else ``HERMES_HOME`` when it is a
    profile folder, else the active profile named in ``<root>/active_profile``, else ``HERMES_HOME``, else
    the default home. ``<root>`` is :func:`hermes_root`."""
    root = hermes_root()
    if profile:
        name = profile_name(profile)
        home = root if name == "default" else root / "profiles" / name
        if not home.is_dir():
            raise ValueError(f"{home}: no such file or folder: Hermes has no profile {name!r} there "
                             f"(hermes profile create {name})")
        return home
    env = os.environ.get("HERMES_HOME", "").strip()
    if env and Path(env).expanduser().parent.name == "profiles":
        return Path(env).expanduser()
    try:
        active = read_regular_text(root / "active_profile").strip().lower()
    except (OSError, UnicodeDecodeError):
        active = ""
    if active and active != "default" and _PROFILE.fullmatch(active):
        return root / "profiles" / active
    return Path(env).expanduser() if env else root


def read_dotenv(home: Path) -> dict[str, str]:
    """``$HERMES_HOME/.env`` as KEY=VALUE pairs (``export``, quotes and comments handled; {} when absent)."""
    try:
        text = read_regular(home / ".env").decode("utf-8-sig", errors="replace")
    except OSError:
        return {}
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        if value[:1] in "\"'" and value.endswith(value[:1]) and len(value) >= 2:
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            out[key] = value
    return out


def _reason(exc: Exception) -> str:
    """What an OSError says (``a FIFO, not a regular file``), else the error's name."""
    return (exc.strerror if isinstance(exc, OSError) else None) or type(exc).__name__


def read_config_yaml(home: Path) -> dict[str, Any]:
    """``$HERMES_HOME/config.yaml`` ({} when absent); ValueError with the file when it is not YAML."""
    import yaml

    path = home / "config.yaml"
    try:
        text = read_regular_text(path)
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read ({_reason(exc)})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{path}{where}: not YAML") from None
    return data if isinstance(data, dict) else {}


def custom_providers(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``custom_providers`` (a list) and the newer ``providers`` table, by Hermes's pool name (lower case,
    spaces as '-'), each with ``base_url`` and ``api_key`` or ``key_env`` when given."""
    out: dict[str, dict[str, Any]] = {}
    entries = config.get("custom_providers")
    listed = list(entries) if isinstance(entries, list) else []
    table = config.get("providers")
    if isinstance(table, dict):
        listed += [{"name": name, **entry} for name, entry in table.items() if isinstance(entry, dict)]
    for entry in listed:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        e = {_camel.get(k, k): v for k, v in entry.items()}
        url = next((e[k] for k in ("base_url", "url", "api") if isinstance(e.get(k), str) and e[k].strip()), None)
        key_env = e.get("key_env") or e.get("api_key_env")
        name = e["name"].strip().lower().replace(" ", "-")
        out.setdefault(name, {"base_url": url.strip() if url else None,
                              "api_key": e["api_key"].strip() if isinstance(e.get("api_key"), str) else None,
                              "key_env": key_env if isinstance(key_env, str) else None})
    return out


_camel = {"apiKey": "api_key", "baseUrl": "base_url", "keyEnv": "key_env", "apiKeyEnv": "key_env"}


@dataclass(frozen=True, slots=True)
class HermesKey:
    """One api-key entry of a Hermes pool, mapped to pooltui."""

    hermes_provider: str  # as Hermes names it: "openai-api", "custom:together"
    provider: str  # the pooltui provider it goes to
    kind: str  # its pooltui profile
    base_url: str | None
    label: str  # a pooltui label: Hermes's own when pooltui allows it, else a stable slug of it
    original_label: str
    priority: int
    secret: str | None  # resolved; None when only an environment variable of this process holds it
    env_var: str | None
    source: str
    status: str | None  # "ok", "exhausted", "dead" (Hermes's words)
    status_at: float | None
    error_code: int | None
    error_reason: str | None
    reset_at: float | None
    request_count: int
    hermes_id: str | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    provider: str
    label: str
    why: str


@dataclass(slots=True)
class HermesPool:
    """What ``auth.json`` (and ``config.yaml``) say, ready for import or display."""

    home: Path
    keys: list[HermesKey] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    strategies: dict[str, str] = field(default_factory=dict)  # pooltui provider -> pooltui strategy


def as_seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return None
        else:
            return None
    value = float(value)
    if value > 1e12:  # epoch milliseconds
        value /= 1000.0
    return value if value == value and abs(value) != float("inf") else None


def slug(label: str, taken: set[str]) -> str:
    """A pooltui label for a Hermes label: itself when allowed, else a stable slug, made unique."""
    try:
        base = validate.label(label)
    except ValueError:
        base = _SLUG.sub("-", label.strip()).strip("-._@+")[:56] or "key"
        if not base[0].isalnum():
            base = "k" + base
    out, n = base, 2
    while out in taken:
        out, n = f"{base[:60]}-{n}", n + 1
    return out


def until_of(key: HermesKey) -> float | None:
    """When Hermes lets an exhausted entry serve again (None: not exhausted, or not benched), by
    :func:`pooltui.core.hermes_rules.bench_until`: no shorter rule for a sole key."""
    return bench_until({"last_status": key.status, "last_status_at": key.status_at,
                        "last_error_code": key.error_code, "last_error_reset_at": key.reset_at})


def read_pool(home: Path, path: Path | None = None) -> HermesPool:
    """Read the Hermes pool of ``home`` (``path``: an auth.json elsewhere). ValueError names the file."""
    path = path or home / "auth.json"
    try:
        data = json.loads(read_regular_text(path))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read ({_reason(exc)})") from None
    except ValueError as exc:
        raise ValueError(f"{path}: not JSON ({exc.args[0].split(':')[0]})") from None
    pools = data.get("credential_pool") if isinstance(data, dict) else None
    if not isinstance(pools, dict):
        raise ValueError(f"{path}: no credential_pool section")
    config = read_config_yaml(home)
    dotenv = read_dotenv(home)
    customs = custom_providers(config)
    raw_model = config.get("model")
    model = raw_model if isinstance(raw_model, dict) else {}
    wanted = config.get("credential_pool_strategies")
    wanted = wanted if isinstance(wanted, dict) else {}
    out = HermesPool(home)
    for hermes_provider, entries in pools.items():
        if not isinstance(entries, list):
            continue
        target = _target(str(hermes_provider), customs, entries)
        if isinstance(target, str):  # why it cannot be mapped
            for e in entries:
                if isinstance(e, dict):
                    why = not_pooled_why(str(hermes_provider), e) if oauth_kind(str(hermes_provider), e) else target
                    out.skipped.append(Skipped(str(hermes_provider), str(e.get("label") or e.get("id") or "?"), why))
            continue
        provider, kind, base_url = target
        strategy = wanted.get(hermes_provider)
        out.strategies[provider] = STRATEGIES.get(strategy if isinstance(strategy, str) else "", "failover")
        ordered = sorted((e for e in entries if isinstance(e, dict)),
                         key=lambda e: e["priority"] if isinstance(e.get("priority"), int) else 1 << 30)
        taken: set[str] = set()
        for i, e in enumerate(ordered):
            original = str(e.get("label") or e.get("id") or f"key{i + 1}")
            if oauth_kind(str(hermes_provider), e):
                out.skipped.append(Skipped(str(hermes_provider), original, not_pooled_why(str(hermes_provider), e)))
                continue
            source = str(e.get("source") or "manual")
            secret, env_var, problem = secret_of(e, source, dotenv, customs, model, str(hermes_provider))
            if problem:
                out.skipped.append(Skipped(str(hermes_provider), original, problem))
                continue
            label = slug(original, taken)
            taken.add(label)
            code = e.get("last_error_code")
            out.keys.append(HermesKey(
                str(hermes_provider), provider, kind, _url(e.get("base_url")) or base_url, label, original, i,
                secret, env_var, source,
                e.get("last_status") if isinstance(e.get("last_status"), str) else None,
                as_seconds(e.get("last_status_at")),
                code if isinstance(code, int) and not isinstance(code, bool) else None,
                e.get("last_error_reason") if isinstance(e.get("last_error_reason"), str) else None,
                parse_timestamp(e.get("last_error_reset_at")),
                e["request_count"] if isinstance(e.get("request_count"), int) and e["request_count"] >= 0 else 0,
                e.get("id") if isinstance(e.get("id"), str) else None))
    return out


def _url(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return validate.base_url(value)
    except ValueError:
        return None


def _target(hermes_provider: str, customs: dict[str, dict[str, Any]],
            entries: list) -> tuple[str, str, str | None] | str:
    """(pooltui provider, kind, base URL) for a Hermes provider id, or why it cannot be mapped. A provider
    pooltui has no profile for goes by the ``base_url`` its entries carry (:func:`kind_for_url`)."""
    if hermes_provider in KINDS:
        kind = KINDS[hermes_provider]
        return kind, kind, None
    if hermes_provider.startswith("custom:"):
        name = hermes_provider[7:]
        custom = customs.get(name)
        if custom is None:
            return f"no custom provider {name!r} in config.yaml (its base URL is needed)"
        url = _url(custom.get("base_url"))
        if url is None:
            return f"custom provider {name!r} has no usable base_url in config.yaml"
        return slug(f"custom-{name}", set()), "openai-compatible", url
    urls = [u for e in entries if isinstance(e, dict) and (u := _url(e.get("base_url")))]
    if not urls:
        return f"no pooltui profile for the Hermes provider {hermes_provider!r} and no base_url in its entries"
    return slug(hermes_provider, set()), kind_for_url(urls[0]), urls[0]


#: Anthropic-compatible endpoints Hermes sends ``Authorization: Bearer`` to (agent/anthropic_adapter.py
#: ``_requires_bearer_auth``); other ``.../anthropic`` endpoints get ``x-api-key``
_BEARER_ANTHROPIC = ("https://api.minimax.io/anthropic", "https://api.minimaxi.com/anthropic")


def kind_for_url(url: str) -> str:
    """The pooltui kind for an API-key provider Hermes reaches at ``url``, with Hermes's auth scheme: an
    ``.../anthropic`` endpoint speaks Anthropic's Messages API (Bearer for MiniMax and Azure, as Hermes sends,
    else x-api-key); anything else is OpenAI-compatible with a Bearer key (the openai SDK Hermes uses)."""
    low = url.rstrip("/").lower()
    if low.endswith("/anthropic"):
        host = low.split("://", 1)[-1].split("/", 1)[0]
        bearer = low.startswith(_BEARER_ANTHROPIC) or "azure.com" in low or host.endswith("palantirfoundry.com")
        return "anthropic-compatible" if bearer else "anthropic"
    return "openai-compatible"


def oauth_kind(hermes_provider: str, e: dict[str, Any]) -> bool:
    """An OAuth credential, as Hermes 0.19 types it: ``auth_type`` oauth, or an ``sk-ant-oat`` token of
    anthropic (``agent/credential_pool.py`` ``_normalize_pool_auth_type``)."""
    token = e.get("access_token")
    if hermes_provider == "anthropic" and isinstance(token, str) and token.startswith("sk-ant-oat"):
        return True
    return str(e.get("auth_type") or "api_key") != "api_key"


def not_pooled_why(hermes_provider: str, e: dict[str, Any]) -> str:
    """Why pooltui does not pool an OAuth entry (said by the import, shown by the watch)."""
    source = str(e.get("source") or "manual")
    what = "a subscription login" if "device_code" in source or source in ("claude_code", "hermes_pkce") \
        else "an OAuth token"
    return (f"{what} ({hermes_provider}, {source}): pooltui pools API keys; Hermes refreshes this token, "
            "so it stays Hermes's")


def secret_of(entry: dict, source: str, dotenv: dict[str, str], customs: dict, model: dict,
               hermes_provider: str) -> tuple[str | None, str | None, str | None]:
    """(secret, env var, problem) of an entry, resolved the way Hermes resolves it."""
    token = entry.get("access_token")
    env_var = None
    if isinstance(token, str) and token.strip():
        secret: str | None = token.strip()
    elif source.startswith("env:"):
        env_var = source[4:]
        try:
            validate.env_name(env_var)
        except ValueError as exc:
            return None, None, str(exc)
        secret = dotenv.get(env_var) or None  # $HERMES_HOME/.env first, as Hermes does; else a reference
    elif source.startswith("config:"):
        custom = customs.get(hermes_provider.removeprefix("custom:")) or customs.get(source[7:].lower())
        secret = (custom or {}).get("api_key")
        env_name = (custom or {}).get("key_env")
        if not secret and env_name:
            secret = dotenv.get(env_name) or os.environ.get(env_name) or None
        if not secret:
            return None, None, f"{source}: no api_key for it in config.yaml"
    elif source == "model_config":
        value = next((model.get(k) for k in ("api_key", "api") if isinstance(model.get(k), str)), None)
        secret = value.strip() if value and value.strip() else None
        if not secret:
            return None, None, "model_config: no model.api_key in config.yaml"
    else:
        return None, None, "no api key in the entry"
    if secret is not None:
        try:
            validate.secret(secret)
        except ValueError as exc:
            return None, None, str(exc)
    return secret, env_var, None

