"""The spans of one proxied request, built from its compact record (``Finished``: plain numbers, strings and bytes,
made on the request's path by telemetry.py) and written straight to OTLP bytes (otlp_wire.py). This runs in the
span export process (export_process.py), not in the proxy: the record crosses a pipe as ``marshal`` data.

Known secrets were taken out of every text in the record before it left the proxy (the export process knows none);
here each text from outside still passes ``scrub``, which catches anything key-shaped, but the answer's facts: the
proxy scrubbed those whole (known secrets and anything key-shaped) in one pass."""

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
# what the answer said: scrubbed whole in the proxy (telemetry._answer_record: known secrets and anything
# key-shaped), in one pass for the three, so not again here
RESPONSE_MODEL = _F("gen_ai.response.model")
RESPONSE_ID = _F("gen_ai.response.id", cache=False)
FINISH_REASONS = _F("gen_ai.response.finish_reasons")
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
        # encoded attributes kept by their values: an attempt's (_attempt_block), a request's three blocks
        # (_request_fields)
        self._attempts: dict[tuple[Any, ...], bytes] = {}
        self._opening: dict[tuple[Any, ...], bytes] = {}
        self._serving: dict[tuple[Any, ...], bytes] = {}
        self._closing: dict[tuple[Any, ...], bytes] = {}

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
        (trace_id, parent_id, parent_remote, trace_state, started, ended, path, model, status, outcome, _, provider,
         _, tokens_counted, _, _, _, steps, engine_events, answer, asked, said) = done  # a plain tuple will do
        head = otlp_wire.trace_head(trace_id, trace_state)
        _, name, named = self.named(path, model)
        server_id = _new_span_id()
        served_ok = status < 400
        if isinstance(said, bytes):
            said = json_object(said)
        spans: list[bytes] = []
        events: list[tuple[float, str, dict[str, AttrValue]]] = []
        served_at, attempts, fell_back_to = -1, 0, []
        for i, step in enumerate(steps):
            if step[1] == "attempt":
                served_at, attempts = i, attempts + 1
            elif step[1] == "fallback":
                fell_back_to.append(step[2])
        tokens = _token_fields(tokens_counted, answer)
        answered, served = _answer_fields(tokens, answer)
        pick: StepRecord | None = None
        for i, step in enumerate(steps):
            ts, kind, step_provider, step_key, d = step
            if kind == "pick":
                pick = step
                if step_key:
                    continue  # a key was picked: its attempt's span says why (pooltui.pick.*)
            if kind != "attempt":
                events.append((ts, kind, _step_attrs(step)))
                continue
            attempt_status = d.get("status")
            attempt_outcome = str(d.get("outcome") or "")
            reason = d.get("reason") if attempt_outcome != "ok" else None
            attrs = self._attempt_block(named, step_provider, step_key, attempt_outcome, attempt_status,
                                        pick[4] if pick is not None and pick[3] == step_key else None,
                                        str(reason) if reason else "")
            if i == served_at and served_ok:
                attrs += served
            failed = not isinstance(attempt_status, int) or attempt_status >= 400
            spans.append(otlp_wire.span_bytes(
                head, _new_span_id(), server_id, name, otlp_wire.SPAN_KIND_CLIENT,
                int((ts - float(d.get("latency_ms") or 0.0) / 1000) * 1e9), int(ts * 1e9), attrs,
                error=attempt_outcome if failed else None))
            pick = None
        for ts, what, event_provider, event_key, event_status, reason, action in engine_events:
            events.append((ts, what, _drop_empty({
                "pooltui.provider": event_provider, "pooltui.key": event_key,
                "pooltui.status": event_status or None, "pooltui.reason": scrub(reason),
                "pooltui.action": scrub(action)})))
        if len(events) > 1:
            events.sort(key=lambda e: e[0])
        fields = self._request_fields(done, named, answered if served_at >= 0 and served_ok else tokens, attempts,
                                      provider if provider in fell_back_to else "")
        if said is not None:
            fields += otlp_wire.attributes(b"\x4a", _content(asked, said))
        failed = status >= 500 or outcome == "error"
        spans.append(otlp_wire.span_bytes(
            head, server_id, parent_id.to_bytes(8, "big") if parent_id else b"", name,
            otlp_wire.SPAN_KIND_SERVER, int(started * 1e9), int(ended * 1e9), fields,
            otlp_wire.events([(int(ts * 1e9), what, a) for ts, what, a in events]) if events else b"",
            f"http {status}" if failed else None, parent_remote))
        return spans

    def _attempt_block(self, named: bytes, provider: str, key: str, outcome: str, status: object,
                       pick: dict[str, Any] | None, reason: str) -> bytes:
        """An attempt span's attributes but the answer's, encoded: the operation and model (``named``), the
        provider's block, the key, the outcome, ``reason`` (when it failed), the status and why this key (its
        ``pick``'s detail, when the pick just before chose it). Kept by all of them but the reason (the same few
        recur: one look-up per attempt)."""
        if reason:
            return self._attempt_attrs(named, provider, key, outcome, status, pick, reason)
        shape = (named, provider, key, outcome, status, None if pick is None else (
            pick.get("candidates") or 0, tuple(pick.get("excluded") or ()), pick.get("learned")))
        return self._attempts.get(shape) or _kept(
            self._attempts, shape, self._attempt_attrs(named, provider, key, outcome, status, pick, ""))

    def _attempt_attrs(self, named: bytes, provider: str, key: str, outcome: str, status: object,
                       pick: dict[str, Any] | None, reason: str) -> bytes:
        attrs = [named, self.upstream_blocks(provider)[0], KEY.of_str(key) if key else b"",
                 ATTEMPT_OUTCOME.of_str(outcome) if outcome else b""]
        if reason:
            attrs.append(ATTEMPT_REASON.of_str(reason))
        if isinstance(status, int):
            attrs.append(STATUS.of_int(status))
        if pick is not None:
            attrs.append(_pick_fields(pick))
        return b"".join(attrs)

    def _request_fields(self, done: Finished, named: bytes, answer: bytes, attempts: int, fallback: str) -> bytes:
        """The server span's attributes, encoded (``answer``: the answer's, already; ``fallback``: the fallback
        provider that served, or ""): what recurs from request to request in three blocks kept by their values
        (``_kept``), around the request's own (its queue wait, number, answer and cost)."""
        (_, _, _, _, _, _, path, _, status, outcome, translated, provider, key, _, cost, queue_wait_ms, request_id,
         steps, *_) = done
        opening, serving, closing = self._opening, self._serving, self._closing
        shape: tuple[Any, ...] = (named, path, status, attempts)
        head = opening.get(shape) or _kept(opening, shape, named + URL_PATH.of_str(path) + STATUS.of_int(status)
                                           + ATTEMPTS.of_int(attempts))
        traced = request_id >= 0  # an engine trace: its fallback, its first provider's name
        upstream = steps[0][2] if traced and steps else None
        shape = (provider, key, fallback if traced else "", upstream)
        served = serving.get(shape) or _kept(serving, shape, b"".join((
            PROVIDER.of_str(provider) if provider else b"", KEY.of_str(key) if key else b"",
            FALLBACK.of_str(fallback) if traced and fallback else b"",
            self.upstream_blocks(upstream)[1] if upstream is not None else b"")))
        shape = (translated, outcome)
        tail = closing.get(shape) or _kept(closing, shape, (TRANSLATION.of_str(translated) if translated else b"")
                                           + (OUTCOME.of_str(outcome) if outcome else b""))
        return b"".join((head, QUEUE_WAIT.of_float(round(queue_wait_ms, 1)), served,
                         REQUEST_ID.of_int(request_id) if traced else b"",  # as the inspector and `traffic --trace`
                         tail, answer, COST.of_float(round(cost, 6)) if cost else b""))

    def use_profiles(self, profiles: dict[str, tuple[str, str]]) -> None:
        """The upstreams' dialects and base URLs, as each batch brings them: the blocks kept are made again when
        one changed."""
        if any(self.profiles.get(name) != profile for name, profile in profiles.items()):
            self.profiles.update(profiles)
            for kept in (self._attempts, self._opening, self._serving, self._closing):
                kept.clear()

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


def _kept(kept: dict[tuple[Any, ...], bytes], shape: tuple[Any, ...], block: bytes) -> bytes:
    """``block`` kept for ``shape`` (the oldest all dropped when ``CACHED_MAX`` are kept)."""
    if len(kept) >= otlp_wire.CACHED_MAX:
        kept.clear()
    kept[shape] = block
    return block


def _new_span_id() -> bytes:
    """8 random bytes, as the SDK's RandomIdGenerator: never the invalid 0."""
    return (random.getrandbits(64) or 1).to_bytes(8, "big")


def _answer_fields(tokens: bytes, facts: tuple[Any, ...] | None) -> tuple[bytes, bytes]:
    """The request's (its ``tokens`` fields, the response's model) and the attempt's that served (its id and
    finish reasons too), encoded once for both spans."""
    if facts is None:
        return tokens, tokens
    model, answer_id, reasons, _ = facts  # AnswerFacts, as a plain tuple
    out = tokens + RESPONSE_MODEL.of_str(model) if model else tokens
    served = out + RESPONSE_ID.of_str(answer_id) if answer_id else out
    return out, served + FINISH_REASONS.of_strs(tuple(reasons)) if reasons else served


def _token_fields(counted: tuple[int, int, int, int], facts: tuple[Any, ...] | None) -> bytes:
    """Tokens the request's usage records ``counted`` (input includes cache reads and writes, as the conventions
    ask), and the cache's when there were any."""
    tokens_in, tokens_out, read, written = counted
    said = facts[3] if facts is not None else None  # AnswerFacts.usage
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
