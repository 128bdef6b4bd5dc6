"""Watching Hermes Agent's own pool, no proxy needed: what ``auth.json`` says of each entry, when Hermes
lets it serve again, which entry Hermes will select next, and the actions pooltui can take on it (through
``pooltui.store.hermes_auth``, by Hermes's locking rules). No UI in here."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pooltui.core.hermes_rules import bench_until, parse_timestamp
from pooltui.core.masking import mask, redact, scrub
from pooltui.session.hermes_rewrites import REWRITE_WINDOW_S, Written, hermes_pids, undone, warning, written
from pooltui.store import hermes_auth
from pooltui.store.hermes import (
    KINDS,
    STRATEGIES,
    custom_providers,
    oauth_kind,
    read_config_yaml,
    read_dotenv,
    secret_of,
)


@dataclass(frozen=True, slots=True)
class EntryView:
    """One entry of a Hermes pool as the watch shows it (no secret: its mask or where it comes from)."""

    provider: str
    id: str
    label: str
    shown: str  # the masked key, or its source when Hermes keeps only a fingerprint
    source: str
    priority: int
    status: str  # "ok", "exhausted", "dead"
    until: float | None  # when Hermes lets it serve again
    error_code: int | None
    reason: str
    message: str
    requests: int
    auth_type: str
    expires: float | None = None  # an OAuth entry's token expiry (epoch s); refreshing it stays Hermes's job
    next: bool = False


@dataclass
class HermesWatch:
    """The Hermes home being watched; ``load`` re-reads it when a file changed."""

    home: Path
    read_only: bool = False
    clock: Callable[[], float] = time.time
    data: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    problem: str = ""
    _signature: tuple = ()
    _written: list[Written] = field(default_factory=list)
    _rewrites: list[str] = field(default_factory=list)

    @property
    def auth_path(self) -> Path:
        return self.home / "auth.json"

    def _stat(self) -> tuple[tuple[int, int, int] | None, ...]:
        out: list[tuple[int, int, int] | None] = []
        for name in ("auth.json", "config.yaml"):
            try:
                st = (self.home / name).stat()
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append(None)
        return tuple(out)

    def load(self, force: bool = False) -> bool:
        """Re-read auth.json and config.yaml if either changed; True when something was read."""
        signature = self._stat()
        if signature == self._signature and not force:
            return False
        self._signature = signature
        try:
            raw = json.loads(self.auth_path.read_text(encoding="utf-8"))
            self.data = raw if isinstance(raw, dict) else {}
            self.problem = "" if isinstance(self.data.get("credential_pool"), dict) else \
                f"{self.auth_path}: no credential_pool yet"
        except FileNotFoundError:
            self.data, self.problem = {}, f"{self.auth_path}: no such file (yet)"
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            self.problem = f"{self.auth_path}: unreadable ({type(exc).__name__}); showing what was read before"
        with contextlib.suppress(ValueError):
            self.config = read_config_yaml(self.home)
        self._check_rewrites()
        return True

    def _check_rewrites(self) -> None:
        now = self.clock()
        self._written = [w for w in self._written if now - w.at <= REWRITE_WINDOW_S]
        for w in [w for w in self._written if undone(w, self.data)]:
            self._written.remove(w)
            self._rewrites.append(warning(w, hermes_pids(self.home)))

    def rewrites(self) -> list[str]:
        """The warnings not said yet that a running Hermes rewrote an entry pooltui changed (each once)."""
        out, self._rewrites = self._rewrites, []
        return out

    def _remember(self, action: str, provider: str, entry_id: str) -> None:
        pool = self.data.get("credential_pool") if isinstance(self.data, dict) else None
        entry = next((e for e in (pool or {}).get(provider, []) if isinstance(e, dict) and e.get("id") == entry_id),
                     None)
        if action == "reset" and not (entry or {}).get("last_status") and not (entry or {}).get("last_status_at"):
            return  # nothing was cleared: nothing Hermes could undo
        if entry is not None:
            self._written = [w for w in self._written if w.entry_id != entry_id or w.provider != provider]
            self._written.append(written(action, provider, entry, self.clock()))

    async def watch(self, changed: Callable[[], None], interval_s: float = 0.25) -> None:
        """Call ``changed`` whenever Hermes writes its files: file events (watchfiles) when available, with a
        poll every ``interval_s`` as the fallback (and to catch a folder created later)."""
        if self.home.is_dir():
            with contextlib.suppress(Exception):  # watchfiles missing (ImportError) or its events failing: poll
                from watchfiles import awatch

                async for _ in awatch(self.home, step=50, rust_timeout=int(interval_s * 1000), yield_on_timeout=True):
                    if self.load():
                        changed()
                return
        while True:
            await asyncio.sleep(interval_s)
            if self.load():
                changed()

    # -------------------------------------------------------------------------------------------- views
    def strategy(self, provider: str) -> str:
        """Hermes's strategy for a provider (``fill_first`` unless config.yaml says otherwise)."""
        wanted = self.config.get("credential_pool_strategies")
        value = wanted.get(provider) if isinstance(wanted, dict) else None
        return value if isinstance(value, str) and value in STRATEGIES else "fill_first"

    def pools(self) -> dict[str, list[EntryView]]:
        """Every provider's entries in priority order, with their countdowns and Hermes's next pick."""
        now = self.clock()
        pools = self.data.get("credential_pool")
        out: dict[str, list[EntryView]] = {}
        if not isinstance(pools, dict):
            return out
        for provider, entries in pools.items():
            if not isinstance(entries, list):
                continue
            rows = [e for e in entries if isinstance(e, dict)]
            rows.sort(key=lambda e: e["priority"] if isinstance(e.get("priority"), int) else 1 << 30)
            views = [self._view(str(provider), e, i, now) for i, e in enumerate(rows)]
            out[str(provider)] = self._mark_next(str(provider), views, now)
        return out

    def _view(self, provider: str, e: dict[str, Any], i: int, now: float) -> EntryView:
        token = e.get("access_token")
        source = str(e.get("source") or "manual")
        oauth = oauth_kind(provider, e)
        shown = "oauth" if oauth else mask(token) if isinstance(token, str) and token.strip() else source
        code = e.get("last_error_code") if isinstance(e.get("last_error_code"), int) else None
        last_status = e.get("last_status")
        status = str(last_status) if last_status in ("exhausted", "dead") else "ok"
        until = bench_until(e)
        if status == "exhausted" and (until is None or until <= now):
            status, until = "ok", None  # Hermes clears an expired (or unbenched) status when it next selects
        return EntryView(provider, str(e.get("id") or ""), str(e.get("label") or e.get("id") or f"#{i}"), shown,
                         source, i, status, until, code, scrub(redact(str(e.get("last_error_reason") or ""))),
                         scrub(redact(str(e.get("last_error_message") or "")))[:300],
                         e["request_count"] if isinstance(e.get("request_count"), int) else 0,
                         "oauth" if oauth else str(e.get("auth_type") or "api_key"), expires=expiry_of(e))

    def _mark_next(self, provider: str, views: list[EntryView], now: float) -> list[EntryView]:
        ready = [v for v in views if v.status == "ok"]
        strategy = self.strategy(provider)
        if not ready or strategy == "random":
            return views
        pick = min(ready, key=lambda v: (v.requests, v.priority)) if strategy == "least_used" else ready[0]
        return [EntryView(**{**_fields(v), "next": v is pick}) for v in views]

    # ------------------------------------------------------------------------------------------ actions
    def _writable(self) -> None:
        if self.read_only:
            raise hermes_auth.HermesAuthError("read-only: started with --read-only")

    def reset(self, provider: str, entry_id: str) -> str:
        self._writable()
        self.load(force=True)
        said = hermes_auth.reset(self.home, provider, entry_id)
        self._remember("reset", provider, entry_id)
        return said

    def move(self, provider: str, entry_id: str, delta: int) -> str:
        self._writable()
        return hermes_auth.move(self.home, provider, entry_id, delta)

    def remove(self, provider: str, entry_id: str) -> str:
        self._writable()
        self.load(force=True)
        said = hermes_auth.remove(self.home, provider, entry_id)
        self._remember("remove", provider, entry_id)
        return said

    async def verify(self, provider: str, entry_id: str) -> str:
        """Re-verify an entry with the provider's zero-token call; a stale exhaustion is cleared when the key
        answers valid (the credit was topped up, the limit has passed); a key the provider refuses is marked as
        Hermes marks a 401 (403), so Hermes skips it too."""
        import httpx

        from pooltui.providers.verify import verify_key

        entry = next((e for e in self.data.get("credential_pool", {}).get(provider, [])
                      if isinstance(e, dict) and e.get("id") == entry_id), None)
        if entry is None:
            raise hermes_auth.HermesAuthError(f"no entry {entry_id!r} in {provider}")
        secret = self._secret(provider, entry)
        if not secret:
            raise hermes_auth.HermesAuthError(f"{entry.get('label')}: its key is not readable here "
                                              f"({entry.get('source')})")
        profile = self._profile(provider, entry)
        if profile is None:
            raise hermes_auth.HermesAuthError(f"{provider}: pooltui has no verification call for this provider")
        async with httpx.AsyncClient(timeout=15) as http:
            result = await verify_key(http, profile, str(entry.get("label") or entry_id), secret)
        said = f"{entry.get('label')}: {result.result}" + (f" ({result.detail})" if result.detail else "")
        if result.result == "valid" and entry.get("last_status") in ("exhausted", "dead") and not self.read_only:
            said += "; " + self.reset(provider, entry_id).split(": ", 1)[-1].replace("status cleared",
                                                                                    "its stale status is cleared")
        elif result.result in ("invalid", "forbidden") and not self.read_only:
            status = result.status if result.status in (401, 403) else (401 if result.result == "invalid" else 403)
            self.load(force=True)
            did = hermes_auth.mark(self.home, provider, entry_id, status, None, result.detail)
            said += "; " + did.split(": ", 1)[-1]
            self._remember("mark", provider, entry_id)
        return said

    def _secret(self, provider: str, entry: dict[str, Any]) -> str | None:
        """The entry's key, resolved as the import resolves it; an ``env:`` key not in the Hermes home's
        .env is read from this process's environment."""
        raw_model = self.config.get("model")
        model = raw_model if isinstance(raw_model, dict) else {}
        secret, env_var, _ = secret_of(entry, str(entry.get("source") or "manual"), read_dotenv(self.home),
                                        custom_providers(self.config), model, provider)
        return secret or (os.environ.get(env_var) if env_var else None) or None

    def _profile(self, provider: str, entry: dict[str, Any]):
        from pooltui.providers.profiles import profile_for

        url = entry.get("base_url") if isinstance(entry.get("base_url"), str) else None
        if provider in KINDS:
            return profile_for(KINDS[provider], base_url=url) if url else profile_for(KINDS[provider])
        custom = custom_providers(self.config).get(provider.removeprefix("custom:"))
        if provider.startswith("custom:") and custom and custom.get("base_url"):
            return profile_for("openai-compatible", base_url=custom["base_url"])
        return None


def expiry_of(e: dict[str, Any]) -> float | None:
    """An OAuth entry's token expiry as Hermes keeps it (``expires_at_ms``, else ``expires_at``)."""
    return parse_timestamp(e.get("expires_at_ms")) or parse_timestamp(e.get("expires_at"))


def _fields(v: EntryView) -> dict[str, Any]:
    return {name: getattr(v, name) for name in EntryView.__slots__}

