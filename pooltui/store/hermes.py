"""Read a Hermes Agent ``auth.json`` credential pool (labels, order, api-key secrets)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from pooltui.core import validate


@dataclass(frozen=True, slots=True)
class HermesKey:
    provider: str
    label: str
    priority: int
    secret: str | None  # the api key, or None when it is only an env reference
    env_var: str | None
    base_url: str | None
    last_status: str | None


@dataclass(frozen=True, slots=True)
class Skipped:
    provider: str
    label: str
    why: str


def _problem(token: str | None, env_var: str | None) -> str | None:
    """Why an entry cannot be imported as it is (a malformed key or env reference), or None."""
    try:
        if token is not None:
            validate.secret(token)
        elif env_var is not None:
            validate.env_name(env_var)
    except ValueError as exc:
        return str(exc)
    return None


def default_path() -> Path:
    return Path(os.environ.get("HERMES_HOME", "~/.hermes")).expanduser() / "auth.json"


def read_auth_json(path: Path) -> tuple[list[HermesKey], list[Skipped]]:
    """The api-key entries of every provider's credential pool, in priority order, and what was skipped."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read ({type(exc).__name__})") from None
    except ValueError as exc:
        raise ValueError(f"{path}: not JSON ({exc.args[0].split(':')[0]})") from None
    pools = data.get("credential_pool") if isinstance(data, dict) else None
    if not isinstance(pools, dict):
        raise ValueError(f"{path}: no credential_pool section")
    keys: list[HermesKey] = []
    skipped: list[Skipped] = []
    for provider, entries in pools.items():
        if not isinstance(entries, list):
            continue
        ordered = sorted((e for e in entries if isinstance(e, dict)),
                         key=lambda e: e.get("priority", 0) if isinstance(e.get("priority"), int) else 0)
        for i, entry in enumerate(ordered):
            label = str(entry.get("label") or entry.get("id") or f"key{i + 1}")
            auth_type = str(entry.get("auth_type") or "api_key")
            token = entry.get("access_token")
            source = str(entry.get("source") or "")
            if auth_type != "api_key":
                skipped.append(Skipped(provider, label, f"{auth_type} credential (only api keys are pooled)"))
                continue
            env_var = source[4:] if source.startswith("env:") else None
            if not (isinstance(token, str) and token.strip()) and not env_var:
                skipped.append(Skipped(provider, label, "no api key in the entry"))
                continue
            problem = _problem(token if isinstance(token, str) and token.strip() else None, env_var)
            if problem:
                skipped.append(Skipped(provider, label, problem))
                continue
            keys.append(HermesKey(provider, label, int(entry.get("priority") or 0) if str(
                entry.get("priority", 0)).lstrip("-").isdigit() else i,
                token.strip() if isinstance(token, str) and token.strip() else None, env_var,
                entry.get("base_url") if isinstance(entry.get("base_url"), str) else None,
                entry.get("last_status") if isinstance(entry.get("last_status"), str) else None))
    return keys, skipped
