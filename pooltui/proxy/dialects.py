"""The proxy's bridge between a caller's dialect and an upstream's: a fallback of the other dialect (an
anthropic pool with an OpenRouter fallback, the seed's setup) gets the request in its own API shape, and its
answer, stream or error goes back in the caller's. The mappings themselves are pure functions in
``providers/translate.py``; this module picks them, names the upstream's model and says what it did."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pooltui.client.pool_client import RequestRefusedError
from pooltui.providers import translate
from pooltui.providers.profiles import ApiRequest, ProviderProfile

ANTHROPIC, OPENAI = "anthropic", "openai"
OPENAI_DIALECTS = frozenset({"openai", "openrouter", "groq", "mistral", "deepseek", "openai-compatible"})
#: the caller's paths a fallback of the other dialect can serve (a chat, nothing else)
CHAT_PATHS = {ANTHROPIC: "/v1/messages", OPENAI: "/v1/chat/completions"}
#: providers that read Anthropic's ``cache_control`` hints on openai-style content parts
KEEPS_CACHE_CONTROL = frozenset({"openrouter"})


def family_of(dialect: str) -> str | None:
    """The API family a provider dialect speaks (None: neither, e.g. gemini)."""
    if dialect == ANTHROPIC:
        return ANTHROPIC
    return OPENAI if dialect in OPENAI_DIALECTS else None


def translatable(api: str, path: str, method: str) -> bool:
    """Whether a caller's request on ``path`` could go to a provider of the other dialect."""
    return method == "POST" and path == CHAT_PATHS.get(api)


@dataclass(frozen=True, slots=True)
class Bridge:
    """How one caller's request and its answer cross from dialect ``caller`` to ``upstream`` and back."""

    caller: str
    upstream: str
    model: str  # the caller's model, as it asked (answers name it)

    @property
    def label(self) -> str:
        return f"{self.caller}->{self.upstream}"

    def answer(self, status: int, content: bytes) -> bytes:
        """The upstream's whole answer (success or error) in the caller's dialect."""
        try:
            body: Any = json.loads(content) if content else {}
        except ValueError:
            body = None
        if status < 400 and isinstance(body, dict):
            if self.caller == ANTHROPIC:
                out = translate.openai_to_anthropic_response(body, self.model)
            else:
                out = translate.anthropic_to_openai_response(body, self.model)
        else:
            err = body if isinstance(body, dict) else content
            out = (translate.error_to_anthropic(status, err) if self.caller == ANTHROPIC
                   else translate.error_to_openai(status, err))
        return json.dumps(out, separators=(",", ":")).encode()

    def stream(self, include_usage: bool) -> Callable[[], Any]:
        """A factory of the stream translator from the upstream's events to the caller's."""
        if self.caller == ANTHROPIC:
            return lambda: translate.OpenAIToAnthropicStream(self.model)
        return lambda: translate.AnthropicToOpenAIStream(self.model, include_usage=include_usage)


def as_it_came(api: str, profile: ProviderProfile, method: str, target: str, model: object, headers: dict[str, str],
               stream: bool, raw: bytes) -> ApiRequest | None:
    """The caller's body as it came, never parsed, for a provider of its own dialect that knows its model by the same
    name (``model``: the one the body names); None when it must be parsed to go there (translated, model mapped)."""
    asked = model if isinstance(model, str) else None
    if (family_of(profile.dialect) or OPENAI) != api or (
            asked is not None and profile.model_for(asked, same_dialect=True) != asked):
        return None
    return ApiRequest(method, target, None, headers, stream, raw, model=asked)


def upstream_request(api: str, profile: ProviderProfile, method: str, target: str, body: dict[str, Any] | None,
                     headers: dict[str, str], stream: bool, raw: bytes) -> tuple[ApiRequest, Bridge | None]:
    """What goes to ``profile`` for a caller of dialect ``api``: the request as it came (with the model the
    provider's model map names), or translated for a provider of the other dialect. Raises RequestRefusedError
    (a 400 for the caller) naming the field that cannot be said in the provider's dialect."""
    upstream = family_of(profile.dialect) or OPENAI
    asked = body.get("model") if isinstance(body, dict) else None
    asked = asked if isinstance(asked, str) else None
    if upstream == api:
        model = profile.model_for(asked, same_dialect=True)
        if body is None or model == asked or asked is None:
            return ApiRequest(method, target, body, headers, stream, raw), None
        return ApiRequest(method, target, {**body, "model": model}, headers, stream, None,
                          note=f"model {asked} asked of {profile.name} as {model} (its model map)"), None
    if body is None:
        raise RequestRefusedError(f"{profile.name} speaks the {upstream} API: only a JSON chat request can be "
                                  "translated for it")
    model = profile.model_for(asked, same_dialect=False)
    try:
        if upstream == OPENAI:
            out = translate.anthropic_to_openai_request(
                body, model, keep_cache_control=profile.dialect in KEEPS_CACHE_CONTROL)
        else:
            out = translate.openai_to_anthropic_request(body, model)
    except translate.Untranslatable as exc:
        raise RequestRefusedError(f"pooltui: the fallback {profile.name} speaks the {upstream} API and this "
                                  f"request cannot be translated for it: {exc}") from None
    names = {ANTHROPIC: "anthropic Messages", OPENAI: "openai Chat Completions"}
    note = (f"translated {names[api]} -> {names[upstream]} for {profile.name}, model {asked or '-'} -> {model}")
    sent = {"content-type": "application/json", "accept-encoding": "identity"}
    if agent := headers.get("user-agent"):
        sent["user-agent"] = agent
    return (ApiRequest("POST", profile.chat_path, out, sent, stream, None, note=note, translated=True),
            Bridge(api, upstream, asked or model))
