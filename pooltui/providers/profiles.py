"""Provider profiles: base URL, auth scheme, the cheap verify call, and how a chat request looks."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from pooltui.core.classify import DIALECTS


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One HTTP request to a provider, relative to its base URL (auth is added per key)."""

    method: str
    path: str
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    stream: bool = False
    content: bytes | None = None
    note: str = ""  # what was done to the caller's request on its way (a translation, a model mapped): traced
    translated: bool = False  # the caller's dialect was translated into this provider's
    model: str | None = None  # the model its body names, when the body goes as it came, unparsed (``json`` None)


@dataclass(frozen=True, slots=True)
class ProviderProfile:
    """How to talk to one provider."""

    name: str
    dialect: str
    base_url: str
    auth: str = "bearer"  # bearer | x-api-key | x-goog-api-key | none
    extra_headers: tuple[tuple[str, str], ...] = ()
    verify_path: str = "/models"
    chat_path: str = "/chat/completions"
    models_path: str = "/models"
    default_model: str = "gpt-4o-mini"
    keyless: bool = False
    #: the caller's model -> this provider's name for it (a fallback of another vendor names models its own way)
    model_map: tuple[tuple[str, str], ...] = ()

    def model_for(self, asked: str | None, same_dialect: bool) -> str:
        """The model this provider is asked for: the model map's entry for ``asked``, else ``asked`` itself when
        the caller speaks this provider's dialect, else this provider's default model."""
        for name, mapped in self.model_map:
            if name == asked:
                return mapped
        return asked if asked and same_dialect else self.default_model

    def auth_headers(self, secret: str | None) -> dict[str, str]:
        """Headers that carry ``secret`` in this provider's scheme, plus its fixed headers."""
        headers = dict(self.extra_headers)
        if secret and not self.keyless:
            if self.auth == "bearer":
                headers["authorization"] = f"Bearer {secret}"
            elif self.auth == "x-api-key":
                headers["x-api-key"] = secret
            elif self.auth == "x-goog-api-key":
                headers["x-goog-api-key"] = secret
        return headers

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def with_base_url(self, base_url: str) -> ProviderProfile:
        return replace(self, base_url=base_url)

    def chat(self, prompt: str, *, model: str | None = None, max_tokens: int = 64, stream: bool = False) -> ApiRequest:
        """A minimal chat request in this provider's API shape."""
        model = model or self.default_model
        if self.dialect == "anthropic":
            body: dict[str, Any] = {
                "model": model,
                "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": prompt}],
            }
        elif self.dialect == "gemini":
            body = {"contents": [{"parts": [{"text": prompt}]}]}
            action = "streamGenerateContent?alt=sse" if stream else "generateContent"
            return ApiRequest("POST", f"/models/{model}:{action}", body, stream=stream)
        else:
            body = {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": prompt}]}
            if stream:
                body["stream_options"] = {"include_usage": True}
        if stream:
            body["stream"] = True
        return ApiRequest("POST", self.chat_path, body, stream=stream)

    def verify_request(self) -> ApiRequest:
        """The cheapest call that proves a key works (spends no tokens)."""
        return ApiRequest("GET", self.verify_path)


_ANTHROPIC_HEADERS = (("anthropic-version", "2023-06-01"),)

PROFILES: dict[str, ProviderProfile] = {
    "anthropic": ProviderProfile(
        "anthropic", "anthropic", "https://api.anthropic.com", "x-api-key", _ANTHROPIC_HEADERS,
        verify_path="/v1/models", chat_path="/v1/messages", models_path="/v1/models",
        default_model="claude-sonnet-4-5",
    ),
    "anthropic-compatible": ProviderProfile(  # Anthropic's Messages API with a Bearer key (MiniMax, Azure)
        "anthropic-compatible", "anthropic", "https://api.minimax.io/anthropic", "bearer", _ANTHROPIC_HEADERS,
        verify_path="/v1/models", chat_path="/v1/messages", models_path="/v1/models",
        default_model="claude-sonnet-4-5",
    ),
    "openai": ProviderProfile("openai", "openai", "https://api.openai.com/v1"),
    "openrouter": ProviderProfile(
        "openrouter", "openrouter", "https://openrouter.ai/api/v1", verify_path="/key",
        default_model="anthropic/claude-sonnet-4.5",
    ),
    "gemini": ProviderProfile(
        "gemini", "gemini", "https://generativelanguage.googleapis.com/v1beta", "x-goog-api-key",
        default_model="gemini-2.5-flash",
    ),
    "groq": ProviderProfile("groq", "groq", "https://api.groq.com/openai/v1", default_model="llama-3.3-70b-versatile"),
    "mistral": ProviderProfile("mistral", "mistral", "https://api.mistral.ai/v1", default_model="mistral-small-latest"),
    "deepseek": ProviderProfile(
        "deepseek", "deepseek", "https://api.deepseek.com", verify_path="/user/balance", default_model="deepseek-chat"
    ),
    "openai-compatible": ProviderProfile("openai-compatible", "openai-compatible", "http://127.0.0.1:8000/v1"),
    "local": ProviderProfile("local", "openai-compatible", "http://127.0.0.1:11434/v1", auth="none", keyless=True),
}

assert all(p.dialect in DIALECTS for p in PROFILES.values())


class UnknownProviderError(ValueError):
    """A provider kind nobody knows."""


def profile_for(kind: str, *, name: str | None = None, base_url: str | None = None,
                default_model: str | None = None, model_map: dict[str, str] | None = None) -> ProviderProfile:
    """The profile for a provider kind (dialect), optionally renamed, pointed elsewhere, with its models named."""
    try:
        prof = PROFILES[kind]
    except KeyError:
        raise UnknownProviderError(
            f"unknown provider kind {kind!r}; known: {', '.join(sorted(PROFILES))}"
        ) from None
    if name:
        prof = replace(prof, name=name)
    if base_url:
        prof = prof.with_base_url(base_url)
    if default_model:
        prof = replace(prof, default_model=default_model)
    if model_map:
        prof = replace(prof, model_map=tuple(model_map.items()))
    return prof
