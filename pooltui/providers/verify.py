"""Zero-token verification of keys with each provider's cheapest call, concurrently."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from pooltui.core.classify import Classification, classify, parse_body
from pooltui.core.health import Outcome
from pooltui.core.masking import fingerprint, mask, remember, scrub
from pooltui.providers.profiles import ProviderProfile

RESULTS = ("valid", "invalid", "forbidden", "quota", "rate_limited", "unreachable", "error")
_BY_OUTCOME = {
    Outcome.OK: "valid",
    Outcome.INVALID: "invalid",
    Outcome.FORBIDDEN: "forbidden",
    Outcome.QUOTA: "quota",
    Outcome.RATE_LIMITED: "rate_limited",
    Outcome.TRANSIENT: "unreachable",
    Outcome.REQUEST_ERROR: "error",
}


@dataclass(slots=True)
class VerifyResult:
    """What verifying one key found. No secret in it: only its mask and fingerprint."""

    provider: str
    label: str
    masked: str
    fingerprint: str
    result: str
    status: int | None
    latency_ms: float
    detail: str = ""
    credits: str | None = None
    classification: Classification | None = None
    org: str | None = None  # the fingerprint of the organization the answer named (core/accounts.py)

    def as_dict(self) -> dict:
        return {"provider": self.provider, "label": self.label, "masked": self.masked,
                "fingerprint": self.fingerprint, "result": self.result, "status": self.status,
                "latency_ms": round(self.latency_ms, 1), "detail": self.detail, "credits": self.credits,
                "org": self.org}

    @classmethod
    def from_dict(cls, d: dict) -> VerifyResult:
        """The result as :meth:`as_dict` wrote it (e.g. answered by a proxy); the classification stays there."""
        return cls(str(d.get("provider") or ""), str(d.get("label") or ""), str(d.get("masked") or ""),
                   str(d.get("fingerprint") or ""), str(d.get("result") or "error"), d.get("status"),
                   float(d.get("latency_ms") or 0.0), str(d.get("detail") or ""), d.get("credits"),
                   org=d.get("org") if isinstance(d.get("org"), str) else None)


async def _call(http: httpx.AsyncClient, profile: ProviderProfile, secret: str, method: str, path: str,
                json_body=None) -> httpx.Response:
    headers = profile.auth_headers(secret)
    return await http.request(method, profile.url(path), headers=headers, json=json_body)


def _credits(profile: ProviderProfile, body) -> tuple[str | None, bool]:
    """(credits text, spent?) from openrouter's /key or deepseek's /user/balance."""
    if not isinstance(body, dict):
        return None, False
    if profile.dialect == "openrouter":
        raw_data = body.get("data")
        data = raw_data if isinstance(raw_data, dict) else {}
        remaining, limit = data.get("limit_remaining"), data.get("limit")
        if isinstance(remaining, int | float):
            text = f"{remaining:g} of {limit:g} left" if isinstance(limit, int | float) else f"{remaining:g} left"
            return text, remaining <= 0
        return ("no limit" if "limit" in data else None), False
    if profile.dialect == "deepseek":
        infos = body.get("balance_infos")
        balance: str | None = None
        if isinstance(infos, list) and infos and isinstance(infos[0], dict):
            balance = f"{infos[0].get('total_balance')} {infos[0].get('currency', '')}".strip()
        return balance, body.get("is_available") is False
    return None, False


async def verify_key(http: httpx.AsyncClient, profile: ProviderProfile, label: str, secret: str) -> VerifyResult:
    """Verify one key. Spends no tokens; never raises."""
    started = time.perf_counter()
    remember(secret)  # whatever the provider answers, the key does not come back out in clear
    base = VerifyResult(profile.name, label, mask(secret), fingerprint(secret), "error", None, 0.0)
    try:
        req = profile.verify_request()
        resp = await _call(http, profile, secret, req.method, req.path)
        result = classify(profile.dialect, resp.status_code, resp.headers, resp.content, time.time())
        credits, spent = _credits(profile, parse_body(resp.content)) if resp.status_code == 200 else (None, False)
        if result.outcome is Outcome.OK and profile.dialect == "anthropic":
            # a key with no credit still lists models; count_tokens shows the billing block (0 tokens spent)
            probe = {"model": profile.default_model, "messages": [{"role": "user", "content": "ping"}]}
            resp2 = await _call(http, profile, secret, "POST", "/v1/messages/count_tokens", probe)
            second = classify(profile.dialect, resp2.status_code, resp2.headers, resp2.content, time.time())
            if second.outcome in (Outcome.QUOTA, Outcome.RATE_LIMITED, Outcome.INVALID, Outcome.FORBIDDEN):
                result, resp = second, resp2
        if spent and result.outcome is Outcome.OK:
            result = Classification(Outcome.QUOTA, resp.status_code, "no credit left", limits=result.limits)
        base.classification = result
        base.org = result.org
        base.result = _BY_OUTCOME[result.outcome]
        base.status = resp.status_code
        base.detail = scrub(result.reason) if result.outcome is not Outcome.OK else ""
        if result.outcome is Outcome.RATE_LIMITED and result.retry_after_s is not None:
            base.detail = f"retry in {result.retry_after_s:.0f} s; {base.detail}".rstrip("; ")
        base.credits = credits
    except (httpx.HTTPError, OSError) as exc:
        base.result, base.detail = "unreachable", f"{type(exc).__name__}: {scrub(str(exc))}"[:160]
    except Exception as exc:
        base.result, base.detail = "error", f"{type(exc).__name__}"
    base.latency_ms = (time.perf_counter() - started) * 1000
    return base


async def verify_all(items: Iterable[tuple[ProviderProfile, str, str]], concurrency: int = 8,
                     timeout_s: float = 15.0) -> list[VerifyResult]:
    """Verify (profile, label, secret) triples concurrently; results in input order."""
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=timeout_s) as http:
        async def one(profile: ProviderProfile, label: str, secret: str) -> VerifyResult:
            async with sem:
                return await verify_key(http, profile, label, secret)

        return list(await asyncio.gather(*(one(p, label, s) for p, label, s in items)))
