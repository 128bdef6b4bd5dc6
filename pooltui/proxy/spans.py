"""The spans of one proxied request, built from its compact record (``Finished``: plain numbers, strings and bytes,
made on the request's path by telemetry.py) and written straight to OTLP bytes (otlp_wire.py). This runs in the
span export process (export_process.py), not in the proxy: the record crosses a pipe as ``marshal`` data.

Known secrets were taken out of every text in the record before it left the proxy (the export process knows none);
here each text from outside still passes ``scrub``, which catches anything key-shaped."""

from __future__ import annotations

import json
import random
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from pooltui.core.masking import scrub
from pooltui.core.usage import usage_of
from pooltui.proxy import otlp_wire

#: the GenAI conventions' provider names, by wire dialect
PROVIDER_NAMES = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini"}
#: the conventions' operation names, by path
OPERATIONS = {"/v1/chat/completions": "chat", "/v1/messages": "chat", "/v1/completions": "text_completion",
              "/v1/embeddings": "embeddings", "/v1/responses": "chat"}

AttrValue = otlp_wire.AttrValue
_F = otlp_wire.Field
OPERATION, REQUEST_MODEL, URL_PATH = _F("gen_ai.operation.name"), _F("gen_ai.request.model"), _F("url.path")
STATUS, PROVIDER, KEY = _F("http.response.status_code"), _F("pooltui.provider"), _F("pooltui.key")
ATTEMPTS, QUEUE_WAIT, FALLBACK = _F("pooltui.attempts"), _F("pooltui.queue_wait_ms"), _F("pooltui.fallback")
TRANSLATION, OUTCOME = _F("pooltui.translation"), _F("pooltui.outcome")
REQUEST_ID = _F("pooltui.request_id", cache=False)  # one per request: never seen again
PROVIDER_NAME, SYSTEM, COST = _F("gen_ai.provider.name"), _F("gen_ai.system"), _F("pooltui.cost")
SERVER_ADDRESS, SERVER_PORT = _F("server.address"), _F("server.port")
INPUT_TOKENS, OUTPUT_TOKENS = _F("gen_ai.usage.input_tokens"), _F("gen_ai.usage.output_tokens")
CACHE_READ, CACHE_WRITE = _F("gen_ai.usage.cache_read.input_tokens"), _F("gen_ai.usage.cache_creation.input_tokens")
# what the answer said: scrubbed (a value is scrubbed once when it repeats)
RESPONSE_MODEL = _F("gen_ai.response.model", clean=scrub)
RESPONSE_ID = _F("gen_ai.response.id", cache=False, clean=scrub)
FINISH_REASONS = _F("gen_ai.response.finish_reasons", clean=scrub)
ATTEMPT_OUTCOME = _F("pooltui.attempt.outcome")
ATTEMPT_REASON = _F("pooltui.attempt.reason", cache=False, clean=scrub)
PICK_CANDIDATES, PICK_EXCLUDED = _F("pooltui.pick.candidates"), _F("pooltui.pick.excluded")
PICK_LEARNED = _F("pooltui.pick.learned", cache=False)

# a step: (ts, kind, provider, key or "", detail); its detail holds only these, as plain values
StepRecord = tuple[float, str, str, str, dict[str, Any]]
# an engine event: (ts, name, provider, key or "", status or 0, reason, action)
EventRecord = tuple[float, str, str, str, int, str, str]


class AnswerFacts(NamedTuple):
    """What the spans say of a provider's answer, read from its body (as the provider wrote it, before any
    translation): its model, id and finish reasons."""

    model: str
    id: str
    finish_reasons: tuple[str, ...]
    usage: tuple[int, int, int, int] | None = None  # input, output, cache read, cache write: when the client
    # counted none (an answer past its parse limit)


def answer_facts(body: object) -> AnswerFacts | None:
    """The facts of a parsed answer of any dialect (openai ``choices[].finish_reason``, anthropic
    ``stop_reason``, gemini ``candidates[].finishReason``, ``modelVersion`` and ``responseId``); None if it is
    not an object."""
    if not isinstance(body, dict):
        return None
    model, answer_id = body.get("model", body.get("modelVersion")), body.get("id", body.get("responseId"))
    reason = body.get("stop_reason")
    if isinstance(reason, str):
        reasons: tuple[str, ...] = (reason,)
    else:
        said = [c.get("finish_reason", c.get("finishReason")) for c in body.get("choices") or body.get("candidates")
                or () if isinstance(c, dict)]
        reasons = tuple(r for r in said if isinstance(r, str)) if said else ()
        reasons = reasons if len(reasons) == len(said) else ()
    return AnswerFacts(model if isinstance(model, str) else "", answer_id if isinstance(answer_id, str) else "",
                       reasons)


def facts_of(body: object, counted: bool) -> AnswerFacts | None:
    """``answer_facts``, with the answer's own usage when the client ``counted`` none."""
    facts = answer_facts(body)
    if facts is not None and not counted:
        usage = usage_of(body)
        facts = facts._replace(usage=(usage.input, usage.output, usage.cache_read, usage.cache_write))
    return facts


class Finished(NamedTuple):
    """A sampled request as the proxy hands it to the export process (sent as a plain tuple, in this order)."""

    trace_id: int
    parent_id: int  # the caller's span, 0 if none
    parent_remote: bool
    trace_state: str
    started: float  # wall clock, seconds
    ended: float
    path: str
    model: str
    status: int
    outcome: str
    translated: str
    provider: str  # the provider and key label that served ("" if none)
    key: str
    tokens: tuple[int, int, int, int]  # input, output, cache read, cache write (as the client counted them)
    cost: float
    queue_wait_ms: float
    request_id: int  # the engine's number for it, -1 without an engine trace
    steps: tuple[StepRecord, ...]
    events: tuple[EventRecord, ...]
    answer: tuple[Any, ...] | None  # what the whole answer said (AnswerFacts, scrubbed), or None
    asked: bytes | None  # with content capture: the caller's body
    said: bytes | dict[str, Any] | None  # with content capture: the caller's answer (a large one: its summary)


class SpanBuilder:
    """Spans of finished requests, written as OTLP protobuf (otlp_wire.py) from their records: attributes from
    what the request's path recorded, the encoded attributes that repeat kept."""

    def __init__(self, latest: bool) -> None:
        self.latest = latest
        self.profiles: dict[str, tuple[str, str]] = {}  # (dialect, base URL) by provider name
        self._names: dict[tuple[str, str], tuple[str, str, bytes]] = {}  # by (path, model): see named
        self._upstreams: dict[str, tuple[str, bytes, bytes]] = {}  # by provider: see upstream_blocks

    def named(self, path: str, model: str) -> tuple[str, str, bytes]:
        """(operation, span name, its encoded operation and model attributes) of a path and model."""
        known = self._names.get((path, model))
        if known is None:
            if len(self._names) >= otlp_wire.CACHED_MAX:
                self._names.clear()
            operation = OPERATIONS.get(path, path.rsplit("/", 1)[-1] or "request")
            known = self._names[(path, model)] = (
                operation, f"{operation} {model}".strip(),
                OPERATION.of_str(operation) + (REQUEST_MODEL.of_str(model) if model else b""))
        return known

    def spans_of(self, done: Finished) -> list[bytes]:
        """The request's SERVER span and a CLIENT span per upstream attempt, with the request's steps and engine
        events as the server span's events: each an encoded ``Span``."""
        head = otlp_wire.trace_head(done.trace_id, done.trace_state)
        _, name, named = self.named(done.path, done.model)
        server_id = _new_span_id()
        served_ok = done.status < 400
        facts = AnswerFacts(*done.answer) if done.answer is not None else None
        said = json_object(done.said) if isinstance(done.said, bytes) else done.said
        spans: list[bytes] = []
        events: list[tuple[float, str, dict[str, AttrValue]]] = []
        steps = done.steps
        served_at, attempts, fell_back_to = -1, 0, []
        for i, step in enumerate(steps):
            if step[1] == "attempt":
                served_at, attempts = i, attempts + 1
            elif step[1] == "fallback":
                fell_back_to.append(step[2])
        tokens = _token_fields(done, facts)
        answered, served = _answer_fields(tokens, facts)
        pick: StepRecord | None = None
        for i, step in enumerate(steps):
            ts, kind, provider, key, d = step
            if kind == "pick":
                pick = step
                if key:
                    continue  # a key was picked: its attempt's span says why (pooltui.pick.*)
            if kind != "attempt":
                events.append((ts, kind, _step_attrs(step)))
                continue
            status = d.get("status")
            outcome = str(d.get("outcome") or "")
            attrs = [named, self.upstream_blocks(provider)[0], KEY.of_str(key) if key else b"",
                     ATTEMPT_OUTCOME.of_str(outcome) if outcome else b""]
            if outcome != "ok" and d.get("reason"):
                attrs.append(ATTEMPT_REASON.of_str(str(d["reason"])))
            if isinstance(status, int):
                attrs.append(STATUS.of_int(status))
            if pick is not None and pick[3] == key:
                attrs.append(_pick_fields(pick[4]))
            if i == served_at and served_ok:
                attrs.append(served)
            failed = not isinstance(status, int) or status >= 400
            spans.append(otlp_wire.span_bytes(
                head, _new_span_id(), server_id, name, otlp_wire.SPAN_KIND_CLIENT,
                int((ts - float(d.get("latency_ms") or 0.0) / 1000) * 1e9), int(ts * 1e9), b"".join(attrs),
                error=outcome if failed else None))
            pick = None
        for ts, what, provider, key, status, reason, action in done.events:
            events.append((ts, what, _drop_empty({
                "pooltui.provider": provider, "pooltui.key": key, "pooltui.status": status or None,
                "pooltui.reason": scrub(reason), "pooltui.action": scrub(action)})))
        events.sort(key=lambda e: e[0])
        fields = self._request_fields(done, named, answered if served_at >= 0 and served_ok else tokens, attempts,
                                      done.provider if done.provider in fell_back_to else "")
        if said is not None:
            fields += otlp_wire.attributes(b"\x4a", _content(done.asked, said))
        failed = done.status >= 500 or done.outcome == "error"
        spans.append(otlp_wire.span_bytes(
            head, server_id, done.parent_id.to_bytes(8, "big") if done.parent_id else b"", name,
            otlp_wire.SPAN_KIND_SERVER, int(done.started * 1e9), int(done.ended * 1e9), fields,
            otlp_wire.events([(int(ts * 1e9), what, a) for ts, what, a in events]) if events else b"",
            f"http {done.status}" if failed else None, done.parent_remote))
        return spans

    def _request_fields(self, done: Finished, named: bytes, answer: bytes, attempts: int, fallback: str) -> bytes:
        """The server span's attributes, encoded (``answer``: the answer's, already; ``fallback``: the fallback
        provider that served, or "")."""
        attrs = [named, URL_PATH.of_str(done.path), STATUS.of_int(done.status),
                 ATTEMPTS.of_int(attempts), QUEUE_WAIT.of_float(round(done.queue_wait_ms, 1))]
        if done.provider:
            attrs.append(PROVIDER.of_str(done.provider))
        if done.key:
            attrs.append(KEY.of_str(done.key))
        if done.request_id >= 0:
            if fallback:
                attrs.append(FALLBACK.of_str(fallback))
            if done.steps:
                attrs.append(self.upstream_blocks(done.steps[0][2])[1])
            attrs.append(REQUEST_ID.of_int(done.request_id))  # as the inspector and `traffic --trace` show it
        if done.translated:
            attrs.append(TRANSLATION.of_str(done.translated))
        if done.outcome:
            attrs.append(OUTCOME.of_str(done.outcome))
        attrs.append(answer)
        if done.cost:
            attrs.append(COST.of_float(round(done.cost, 6)))
        return b"".join(attrs)

    def upstream_blocks(self, provider: str) -> tuple[bytes, bytes]:
        """A provider's attributes encoded once (again if its base URL changed): an attempt's (pooltui.provider,
        gen_ai.provider.name, server.address and port) and a request's (gen_ai.provider.name)."""
        profile = self.profiles.get(provider)
        url = profile[1] if profile is not None else ""
        known = self._upstreams.get(provider)
        if known is None or known[0] != url:
            dialect = b""
            if profile is not None:
                dialect = b"".join(PROVIDER_NAME.of_str(v) if k == "gen_ai.provider.name" else SYSTEM.of_str(v)
                                   for k, v in self.provider_attrs(profile[0]).items())
            attempt = (PROVIDER.of_str(provider) if provider else b"") + dialect
            if profile is not None:
                parsed = urlsplit(profile[1])
                if parsed.hostname:
                    attempt += SERVER_ADDRESS.of_str(parsed.hostname)
                if parsed.port:
                    attempt += SERVER_PORT.of_int(parsed.port)
            known = self._upstreams[provider] = (url, attempt, dialect)
        return known[1], known[2]

    def provider_attrs(self, dialect: str) -> dict[str, str]:
        name = PROVIDER_NAMES.get(dialect, dialect)
        return {"gen_ai.provider.name": name} if self.latest else {"gen_ai.provider.name": name,
                                                                   "gen_ai.system": name}


def _new_span_id() -> bytes:
    """8 random bytes, as the SDK's RandomIdGenerator: never the invalid 0."""
    return (random.getrandbits(64) or 1).to_bytes(8, "big")


def _answer_fields(tokens: bytes, facts: AnswerFacts | None) -> tuple[bytes, bytes]:
    """The request's (its ``tokens`` fields, the response's model) and the attempt's that served (its id and
    finish reasons too), encoded once for both spans."""
    if facts is None:
        return tokens, tokens
    out = tokens + RESPONSE_MODEL.of_str(facts.model) if facts.model else tokens
    served = out + RESPONSE_ID.of_str(facts.id) if facts.id else out
    return out, served + FINISH_REASONS.of_strs(tuple(facts.finish_reasons)) if facts.finish_reasons else served


def _token_fields(done: Finished, facts: AnswerFacts | None) -> bytes:
    """Tokens the request's usage records counted (input includes cache reads and writes, as the conventions
    ask), and the cache's when there were any."""
    tokens_in, tokens_out, read, written = done.tokens
    said = facts.usage if facts is not None else None
    if said is not None and not (tokens_in or tokens_out):  # an answer the client did not read: its own word
        tokens_in, tokens_out, read, written = said
    out = b""
    if tokens_in or tokens_out:
        out = INPUT_TOKENS.of_int(tokens_in) + OUTPUT_TOKENS.of_int(tokens_out)
    if read:
        out += CACHE_READ.of_int(read)
    if written:
        out += CACHE_WRITE.of_int(written)
    return out


def _pick_fields(d: dict[str, Any]) -> bytes:
    """Why this key, encoded: the candidates, the keys passed over and why, a learnt limit's pacing."""
    out = PICK_CANDIDATES.of_int(d.get("candidates") or 0)
    if d.get("excluded"):
        out += PICK_EXCLUDED.of_any([scrub(e) for e in d["excluded"]])
    if d.get("learned"):
        out += PICK_LEARNED.of_str(str(d["learned"]))
    return out


def _step_attrs(step: StepRecord) -> dict[str, AttrValue]:
    _, kind, provider, key, d = step
    attrs: dict[str, Any] = {"pooltui.provider": provider, "pooltui.key": key,
                             "pooltui.reason": scrub(str(d.get("reason") or ""))}
    if isinstance(d.get("seconds"), float | int):
        attrs["pooltui.seconds"] = round(float(d["seconds"]), 3)
    if d.get("from"):
        attrs["pooltui.from"] = str(d["from"])
    if kind == "pick":
        attrs["pooltui.pick.candidates"] = d.get("candidates") or 0
        if d.get("excluded"):
            attrs["pooltui.pick.excluded"] = [scrub(e) for e in d["excluded"]]
        if d.get("learned"):
            attrs["pooltui.pick.learned"] = str(d["learned"])
    return _drop_empty(attrs)


def _drop_empty(attrs: dict[str, Any]) -> dict[str, AttrValue]:
    return {k: v for k, v in attrs.items() if v is not None and v != "" and v != []}


def _content(asked_body: bytes | None, answer: dict[str, Any] | None) -> dict[str, AttrValue]:
    """Prompt and completion text (opt-in), scrubbed of anything key-shaped (known secrets already gone)."""
    out: dict[str, AttrValue] = {}
    asked = json_object(asked_body) if asked_body else None
    if asked is not None:
        messages = [m for m in asked.get("messages") or [] if isinstance(m, dict)]
        if asked.get("system"):
            out["gen_ai.system_instructions"] = scrub(json.dumps(asked["system"]))
        out["gen_ai.input.messages"] = scrub(json.dumps(messages))
    if answer is not None:
        if isinstance(answer.get("choices"), list):  # openai
            shown: Any = [c.get("message") for c in answer["choices"] if isinstance(c, dict)]
        else:  # anthropic
            shown = [{"role": "assistant", "content": answer.get("content")}]
        out["gen_ai.output.messages"] = scrub(json.dumps(shown))
    return out


def summary(answer: dict[str, Any] | None) -> dict[str, Any] | None:
    """What content capture shows of a large answer (its choices or content)."""
    if answer is None:
        return None
    return {k: answer[k] for k in ("choices", "content") if k in answer}


def json_object(body: bytes | None) -> dict[str, Any] | None:
    """``body`` parsed, if it is a JSON object (None for anything else)."""
    if body is None:
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None
