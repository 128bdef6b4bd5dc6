"""PoolClient: send one request through a credential pool.

Per attempt: pick a key, send with httpx (aiohttp transport), classify, and report to the key that served
*that attempt*. Rate limit, quota and invalid keys rotate at once without spending the retry budget;
when no key is free the request waits for the earliest reset if that fits its deadline; provider-transient
errors back off with jitter; then the fallback providers are tried in order; then a clear pool error.
A stream stays on one key and may move only before its first data event.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple, cast

import aiohttp
import httpx

from pooltui.client.after_answer import AFTER_ANSWER
from pooltui.client.http1 import AttemptDeadline, Http1Answer, Http1Sender
from pooltui.client.idle import IdleLimit
from pooltui.client.upstream_http import AiohttpSender, Answer, HttpxSender, Sender, default_http
from pooltui.core.affinity import SESSION_HEADER, conversation_of
from pooltui.core.breaker import OutageBreaker
from pooltui.core.budget import Prices
from pooltui.core.classify import Classification, classify, parse_body
from pooltui.core.clock import Clock, SystemClock
from pooltui.core.cooldown import Backoff
from pooltui.core.declared import TokenHold
from pooltui.core.errors import no_keys
from pooltui.core.events import Event, EventKind, EventLog, StateChange
from pooltui.core.health import ROTATE_NOW, Outcome
from pooltui.core.masking import scrub
from pooltui.core.pool import Pool, PoolKey
from pooltui.core.round_robin_cost import ANTHROPIC_LOOKBACK, RoundRobinCost, round_robin_extra
from pooltui.core.sse import SSELineTooLongError, SSEScanner, stream_error_status
from pooltui.core.trace import RequestTrace
from pooltui.core.usage import Usage, usage_of
from pooltui.providers.profiles import ApiRequest, ProviderProfile

RequestBuilder = Callable[[ProviderProfile], ApiRequest]


@dataclass(slots=True)
class Upstream:
    """A provider with its pool (``pool`` is None for a keyless local endpoint)."""

    profile: ProviderProfile
    pool: Pool | None
    breaker: OutageBreaker | None = None

    @property
    def name(self) -> str:
        return self.profile.name


class UsageRecord(NamedTuple):
    """One attempt's (or a stream tail's) contribution to usage and spend. Immutable, one shared by every usage
    listener (a named tuple: made in a fifth of a frozen dataclass's time, once per attempt)."""

    ts: float
    provider: str
    key: str
    model: str
    requests: int
    ok: int
    tokens_in: int
    tokens_out: int
    cost: float
    cache_read: int = 0  # prompt-cache tokens read, written, and the cacheable input (tokens_in includes them)
    cache_write: int = 0
    cacheable: int = 0
    cost_no_cache: float = 0.0  # what the same tokens would have cost with no cache use
    #: what round-robin without affinity would have paid more (USD; core/round_robin_cost.py)
    round_robin_extra: float = 0.0


class RequestRecord(NamedTuple):
    """One caller's request as a whole (what ``pooltui replay`` rebuilds a workload from): when it arrived,
    the provider asked, its model, its tokens, how it ended and how long it took. No prompt, no key. Immutable,
    one shared by every request listener (a named tuple, as :class:`UsageRecord`)."""

    ts: float
    provider: str
    model: str
    tokens_in: int
    tokens_out: int
    outcome: str  # "ok", "error" (the pool failed it or a 5xx was relayed), "rejected" (the caller's own 4xx)
    latency_s: float


#: why a provider could not serve a request, in the order a caller's status prefers them: a wait helps
#: ("rate_limited": keys cooling or paced, a reset is coming), the provider itself fails ("overloaded": 5xx,
#: 529, transport errors, an outage the breaker suspects), no key will serve ("unusable": invalid, forbidden,
#: out of quota with no reset, disabled, or no keys at all)
CAUSES = ("rate_limited", "overloaded", "unusable")


class RequestRefusedError(Exception):
    """The request cannot be sent to a provider as it is (e.g. a field a fallback's dialect cannot say): the
    caller's to fix, answered with ``status``; no key is spent."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(scrub(message))
        self.status = status


class PoolUnavailableError(Exception):
    """No key of any configured provider could serve the request. The message states the pools."""

    def __init__(self, message: str, retry_after_s: float | None = None, should_retry: bool = True,
                 last_status: int | None = None, kind: str = "exhausted", cause: str | None = None) -> None:
        super().__init__(scrub(message))
        self.retry_after_s = retry_after_s
        self.should_retry = should_retry
        self.last_status = last_status
        #: "exhausted" (no key could serve), "deadline" (the request's time ran out), "too_large" (answer over cap),
        #: "unusable" (no provider it may go to has a key: nothing was sent, waiting will not help)
        self.kind = kind
        #: with kind "exhausted": one of CAUSES (what the caller's status says)
        self.cause = cause or ("unusable" if not should_retry else "rate_limited")


@dataclass(slots=True)
class PoolResponse:
    """A provider's answer, with which provider and key served it."""

    status: int
    headers: httpx.Headers
    content: bytes
    provider: str
    key: str | None
    trace: RequestTrace
    fallback: bool = False
    _json: Any = field(default=None, repr=False)
    usage: Usage = field(default_factory=Usage)  # a success's tokens (cache fields included), read when settled

    def json(self) -> Any:
        if self._json is None:
            self._json = json.loads(self.content)
        return self._json


DEFAULT_DEADLINE_S = 120.0  # connect + every read of one non-streaming request, all attempts together
DEFAULT_STREAM_IDLE_S = 60.0  # the longest gap between two chunks of a stream once it flows
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024  # a non-streaming answer held before relay
_NO_LIMIT = nullcontext()  # an attempt on our own sender: its answer keeps the deadline (Http1Sender.open)


def outcome_of(status: int) -> str:
    """A served request's outcome as its listeners hear it, by the status its caller gets."""
    return "ok" if status < 400 else "error" if status >= 500 else "rejected"


class _TooLarge(Exception):
    """The answer is larger than the client holds."""


async def read_capped(resp: Answer, cap: int) -> bytes:
    """The decoded body, refusing (``_TooLarge``) past ``cap`` bytes: declared or actually sent."""
    ours = resp if isinstance(resp, Http1Answer) else None
    if ours is not None:  # its declared length was read with its head (no lookup in its headers)
        declared = ours.declared
    else:
        text = resp.headers.get("content-length", "")
        declared = int(text) if text.isdigit() else None
    if declared is not None and declared > cap:
        raise _TooLarge(f"the answer declares {declared / 2**20:.1f} MiB (limit {cap / 2**20:g} MiB)")
    whole = ours.whole() if ours is not None else None  # already all here: no generator, no copy
    if whole is not None:
        if len(whole) > cap:
            raise _TooLarge(f"the answer is larger than {cap / 2**20:g} MiB")
        return whole
    buf = bytearray()  # one growing buffer (a large one is mmapped and goes back whole), not many small chunks
    async for chunk in resp.aiter_bytes():
        if len(buf) + len(chunk) > cap:
            raise _TooLarge(f"the answer is larger than {cap / 2**20:g} MiB")
        buf += chunk
    return bytes(buf)


def default_http_client(max_connections: int = 256, timeout_s: float = 60.0) -> httpx.AsyncClient:
    """httpx on the aiohttp transport: several times the default transport's throughput under concurrency."""
    return default_http(max_connections, timeout_s)[0]


def _is_event_stream(resp: Answer) -> bool:
    """Whether a 200 answer to a stream request is a stream: an upstream that ignores ``stream: true`` answers
    with JSON, which is relayed as the plain answer it is (read whole, judged once, never "an empty stream")."""
    return resp.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json"


def _model_of(req: ApiRequest) -> str | None:
    """The model a request names (None when its body names none)."""
    model = req.json.get("model") if isinstance(req.json, dict) else req.model
    return model if isinstance(model, str) and model else None


def _cause_of(outcome: Outcome) -> str:
    """The caller-facing cause (one of CAUSES) of a provider abandoned after ``outcome``."""
    if outcome is Outcome.RATE_LIMITED:
        return "rate_limited"
    if outcome in (Outcome.INVALID, Outcome.FORBIDDEN, Outcome.QUOTA):
        return "unusable"
    return "overloaded"


def _json_headers(headers: httpx.Headers) -> httpx.Headers:
    """The upstream's headers for an error body we re-frame as JSON."""
    out = httpx.Headers({k: v for k, v in headers.items() if k.lower() != "content-type"})
    out["content-type"] = "application/json"
    return out


@dataclass(slots=True)
class _Wire:
    """What every attempt of one request sends to one provider (the key's auth headers are added per attempt)."""

    method: str
    url: str
    content: bytes | None
    headers: dict[str, str]
    model: str | None  # providers limit per (key, model)
    hold: TokenHold | None = None  # its estimated tokens, when the pool holds token budgets (core/declared.py)
    conversation: str | None = None  # its conversation's token, with affinity on (see core/affinity.py)
    messages: int = 0  # its messages, with a conversation (how far back a cached turn lies: core/round_robin_cost.py)


@dataclass(slots=True)
class _Answer:
    """What one attempt got back, classified. For a 200 stream: the scanner and what was read up to its first
    event (the rest is relayed from there)."""

    resp: Answer
    result: Classification
    body: bytes
    latency: float
    scanner: SSEScanner | None = None
    prelude: tuple[list[bytes], AsyncIterator[bytes]] | None = None
    #: how long after the attempt's start the request was written (our own sender's connect on a new connection;
    #: 0 from the others): a learnt limit counts it from then
    written: float = 0.0


class _Abandon(Exception):
    """Stop trying this upstream; go to the next one (``status``: the last HTTP status it answered).

    ``kind`` "deadline" or "too_large" ends the request: no other upstream would do better.
    """

    def __init__(self, message: str, status: int | None = None, kind: str = "exhausted",
                 cause: str = "overloaded", retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.cause = cause  # one of CAUSES
        self.retry_after_s = retry_after_s  # when this provider said (or its breaker knows) it may serve again


class PoolClient:
    """Sends requests through a primary pool and its fallback providers."""

    def __init__(
        self,
        primary: Upstream,
        fallbacks: list[Upstream] | None = None,
        *,
        http: httpx.AsyncClient | None = None,
        sender: Sender | None = None,
        own_http: bool | None = None,
        backoff: Backoff | None = None,
        deadline_s: float = DEFAULT_DEADLINE_S,
        max_attempts: int = 10,
        stream_idle_s: float = DEFAULT_STREAM_IDLE_S,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        traces_kept: int = 256,
        events: EventLog | None = None,
        prices: Prices | None = None,
        latency_clock: Callable[[], float] | None = None,
    ) -> None:
        self.primary = primary
        self.fallbacks = list(fallbacks or [])
        self.clock = clock or SystemClock()
        #: what an attempt's latency is measured with (seconds, any origin): perf_counter in real time; the
        #: loop's clock on a fast-forwarded loop (the lab's simulated time), where perf_counter sees ~0
        self.latency_clock: Callable[[], float] = latency_clock or time.perf_counter
        for up in self.upstreams:
            if up.breaker is None:
                up.breaker = OutageBreaker(self.clock)
        self._own_senders: list[AiohttpSender | Http1Sender] = []  # closed with the client
        if http is None:
            default_sender: Sender
            self.http, session = default_http()  # the aiohttp session serves verification and the model listing
            default_sender = Http1Sender() if sender is None else session  # attempts: our HTTP/1.1 client
            self._own_senders = [session, default_sender] if sender is None else []
        else:
            self.http, default_sender = http, HttpxSender(http)
        #: what sends each attempt upstream (``http`` serves the rest: verification, the model listing)
        self.sender: Sender = sender or default_sender
        timeout = self.http.timeout
        self._timeout_s = max([t for t in (timeout.read, timeout.connect, timeout.write, timeout.pool) if t] or [0.0])
        self._own_http = http is None if own_http is None else own_http
        self.backoff = backoff or Backoff()
        self.deadline_s = deadline_s
        self.stream_idle_s = stream_idle_s
        self.max_attempts = max_attempts
        self.max_body_bytes = max_body_bytes
        self.rng = rng or random.Random()
        self.events = events if events is not None else (primary.pool.events if primary.pool else EventLog())
        self.traces: deque[RequestTrace] = deque(maxlen=traces_kept)
        self._ids = itertools.count(1)
        self.prices = prices
        #: per provider: what round-robin without affinity would have read (core/round_robin_cost.py)
        self._round_robin: dict[str, RoundRobinCost] = {}
        #: called per attempt with a UsageRecord (history, attribution); streams report tokens at their end
        self.usage_listeners: list[Callable[[UsageRecord], None]] = []
        #: called once per caller request with its outcome ("ok", "error": the pool failed it or a 5xx was
        #: relayed, "rejected": the caller's own 4xx), the provider that served it ("" when none did) and its
        #: trace (when it arrived, how long it waited for a key)
        self.outcome_listeners: list[Callable[[str, str, RequestTrace], None]] = []
        #: awaited before a counted answer goes back to its caller (a shared store's spend write: counted
        #: spend is stored before the caller sees the answer, so a process killed after it loses none)
        self.settle_barriers: list[Callable[[], Awaitable[None]]] = []
        #: called once per caller request, when it ends, with its RequestRecord (the history keeps them)
        self.request_listeners: list[Callable[[RequestRecord], None]] = []
        self.fallback_used = 0
        self.waiting = 0  # requests currently queued for a cooldown to end
        self._waits: dict[int, float] = {}  # per request waiting now: this wait's start less its earlier waits
        #: per (profile, secret): its auth headers (see _auth_headers)
        self._auth: dict[tuple[int, str | None], tuple[ProviderProfile, dict[str, str]]] = {}

    def longest_wait(self, now: float) -> float:
        """How long the request waiting longest now has waited for a key, all its waits together (0: none)."""
        return max(0.0, max((now - since for since in self._waits.values()), default=0.0))

    @property
    def upstreams(self) -> list[Upstream]:
        return [self.primary, *self.fallbacks]

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()
        for own in self._own_senders:
            await own.aclose()

    async def __aenter__(self) -> PoolClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ public API
    def chat_builder(self, prompt: str, *, max_tokens: int = 16, stream: bool = False,
                     model: str | None = None) -> RequestBuilder:
        return lambda profile: profile.chat(prompt, model=model, max_tokens=max_tokens, stream=stream)

    async def chat(self, prompt: str, *, max_tokens: int = 16, model: str | None = None,
                   deadline_s: float | None = None) -> PoolResponse:
        """A small chat completion in whichever dialect each provider speaks."""
        return await self.send(self.chat_builder(prompt, max_tokens=max_tokens, model=model), deadline_s=deadline_s)

    def send(self, build: RequestBuilder | ApiRequest, *, deadline_s: float | None = None,
             upstreams: list[Upstream] | None = None) -> Awaitable[PoolResponse]:
        """Send one non-streaming request; the response body is read whole before it is judged. (The request's own
        coroutine, not one awaiting it: no frame of this method stays on the request's path.)"""
        return self._run(build, deadline_s, upstreams, streaming=False)

    def open_stream(self, build: RequestBuilder | ApiRequest, *, deadline_s: float | None = None,
                    upstreams: list[Upstream] | None = None) -> Awaitable[PoolStream | PoolResponse]:
        """Open a stream, held until its first real data event; after that it stays on its key.

        A request error (400, 404, ...) comes back as a plain PoolResponse: there is no stream to relay. (The
        request's own coroutine, as ``send`` gives it: no frame of this method is resumed at each wake.)
        """
        return self._run(build, deadline_s, upstreams, streaming=True)

    # ------------------------------------------------------------------ machinery
    def _new_trace(self) -> RequestTrace:
        pool = self.primary.pool
        trace = RequestTrace(next(self._ids), self.clock.now(), pool.strategy if pool else "none")
        self.traces.append(trace)
        return trace

    async def _run(self, build, deadline_s, upstreams, streaming: bool):
        trace = self._new_trace()
        now = self.clock.now()
        deadline = now + (self.deadline_s if deadline_s is None else deadline_s)
        ups = upstreams if upstreams is not None else self.upstreams
        notes: list[str] = []
        causes: list[tuple[str, float | None]] = []  # per provider abandoned: why, and when it may serve again
        keyless: list[str] = []  # upstreams passed over for having no keys (nothing is sent without credentials)
        last_status: int | None = None
        asked: str | None = None  # the model of the first request built (a failed request's record names it)
        built = False
        for n, up in enumerate(ups):
            holds_probe = False
            if up.breaker is not None and n < len(ups) - 1:
                if not up.breaker.allow():
                    wait = max(0.0, (up.breaker.open_until or 0) - self.clock.now())
                    notes.append(f"{up.name}: outage suspected, skipped for {wait:.1f} s more")
                    trace.add(self.clock.now(), "skip", up.name, reason=notes[-1])
                    causes.append(("overloaded", wait))
                    continue
                holds_probe = up.breaker.probing  # allowed while open: this request is the trial
                if holds_probe:
                    trace.add(self.clock.now(), "probe", up.name, reason="outage suspected: this request probes")
            try:
                req = self._request_for(up, build, trace, n, ups, notes, last_status)
                wire = self._wire(up, req)
                if not built:
                    asked, built = wire.model, True
                result = await self._try_upstream(up, wire, trace, deadline, streaming, fallback=n > 0,
                                                  last=n == len(ups) - 1)
            except _Abandon as why:
                notes.append(f"{up.name}: {why}")
                causes.append((why.cause, why.retry_after_s))
                if why.kind == "unusable":
                    keyless.append(str(why))
                    continue
                last_status = why.status if why.status is not None else last_status
                if why.kind != "exhausted" or self.clock.now() >= deadline:
                    kind = why.kind if why.kind != "exhausted" else "deadline"
                    break
                continue
            finally:
                if holds_probe and up.breaker.probing:
                    up.breaker.release_probe()  # a trial always ends settled, whatever ended it
            self._provider_answered(up, result.status, trace)
            trace.result = "ok" if result.status < 400 else f"http {result.status}"
            trace.served_by = f"{up.name}/{result.key}"
            if self.outcome_listeners or self.request_listeners:
                outcome = outcome_of(result.status)
                after = AFTER_ANSWER.get()
                if after is None:
                    self._ended(trace, up.name, ups[0].name, wire.model, outcome, result)
                else:  # after the success's accounting (its usage), once the answer is written
                    after.append(partial(self._ended, trace, up.name, ups[0].name, wire.model, outcome, result,
                                         self.clock.now()))
            return result
        else:
            kind = "unusable" if keyless and len(keyless) == len(notes) else "exhausted"
        message = "; ".join(keyless if kind == "unusable" else notes) or "no upstream configured"
        cause, retry = self._cause(causes, ups)
        should_retry = kind not in ("too_large", "unusable") and (kind == "deadline" or cause != "unusable")
        trace.result = "pool unavailable"
        trace.add(self.clock.now(), "error", ups[0].name, reason=message)
        self.events.emit(Event(self.clock.now(), ups[0].name, None, EventKind.EXHAUSTED_POOL, last_status, message,
                               "request failed", trace.request_id))
        if self.outcome_listeners:
            self._outcome("error", "", trace)
        if self.request_listeners:
            self._request_ended(trace, ups[0].name, asked, "error", None)
        raise PoolUnavailableError(message, retry, should_retry, last_status, kind, cause)

    def _request_for(self, up: Upstream, build, trace: RequestTrace, n: int, ups: list[Upstream], notes: list[str],
                     last_status: int | None) -> ApiRequest:
        """The request as ``up`` takes it (built for its dialect; a fallback says so in the trace and an event);
        a request it cannot take is refused here, before any key is spent."""
        try:
            req = build(up.profile) if callable(build) else build
        except RequestRefusedError as exc:
            trace.result = f"http {exc.status}"
            trace.add(self.clock.now(), "error", up.name, reason=str(exc))
            if self.outcome_listeners:
                self._outcome("rejected", "", trace)
            raise
        translated = req.translated
        if n:
            self.fallback_used += 1
            why = notes[-1] if notes else ""
            trace.add(self.clock.now(), "fallback", up.name, reason=why, **{"from": ups[n - 1].name})
            action = f"fell back to {up.name}" + (" (chat translated to its API)" if translated else "")
            self.events.emit(Event(self.clock.now(), ups[0].name, None, EventKind.FALLBACK, last_status, why, action,
                                   trace.request_id))
        if req.note:
            trace.add(self.clock.now(), "translate" if translated else "model", up.name, reason=req.note)
        return req

    def _cause(self, causes: list[tuple[str, float | None]], ups: list[Upstream]) -> tuple[str, float | None]:
        """What the caller's status says of a request no provider served, and when to try again: a wait that
        helps (keys cooling: the earliest reset) before a provider failing (its breaker's or its own word)
        before no usable key at all."""
        found = {c for c, _ in causes} or {"unusable"}
        cause = next(c for c in CAUSES if c in found)
        if cause == "rate_limited":
            return cause, self._earliest_reset(ups)
        hints = [w for c, w in causes if c == cause and w is not None]
        return cause, (min(hints) if hints else None)

    def _ended(self, trace: RequestTrace, served_by: str, provider: str, model: str | None, outcome: str,
               result: PoolResponse | PoolStream, ended: float | None = None) -> None:
        """A served request's outcome and record to the listeners."""
        for listener in self.outcome_listeners:
            listener(outcome, served_by, trace)
        if self.request_listeners:
            self._request_ended(trace, provider, model, outcome, result, ended)

    def _request_ended(self, trace: RequestTrace, provider: str, model: str | None, outcome: str,
                       result: PoolResponse | PoolStream | None, ended: float | None = None) -> None:
        tin = tout = 0
        if isinstance(result, PoolResponse) and outcome == "ok":
            tin, tout = result.usage.input, result.usage.output
        record = RequestRecord(trace.started, provider, model or "-", tin, tout, outcome,
                               (self.clock.now() if ended is None else ended) - trace.started)
        for listener in self.request_listeners:
            listener(record)

    def _outcome(self, outcome: str, served_by: str, trace: RequestTrace) -> None:
        for listener in self.outcome_listeners:
            listener(outcome, served_by, trace)

    def _provider_answered(self, up: Upstream, status: int, trace: RequestTrace) -> None:
        """The provider answered: its outage breaker closes (an event says so when it was open)."""
        if up.breaker is not None and up.breaker.success():
            self.events.emit(Event(self.clock.now(), up.name, None, EventKind.STATE, status,
                                   f"provider answered {status}", "outage over: back to this provider",
                                   trace.request_id, StateChange.OUTAGE_CLOSED))

    def _earliest_reset(self, ups: list[Upstream]) -> float | None:
        waits = [w for up in ups if up.pool is not None and (w := up.pool.next_ready_in()) is not None]
        return min(waits) if waits else None

    async def _acquire(self, up: Upstream, trace: RequestTrace, deadline: float, failed: PoolKey | None,
                       model: str | None, hold: TokenHold | None = None, conversation: str | None = None) -> PoolKey:
        """A key of ``up``'s pool for the next attempt: waits for the earliest reset while it fits the deadline."""
        pool, clock = up.pool, self.clock
        assert pool is not None
        while True:
            key = pool.pick(trace, failed, model, hold, conversation)
            if key is not None:
                return key
            wait = pool.next_ready_in(model)
            now = clock.now()
            if wait is None or now + wait + pool.answer_time_s() > deadline:  # no answer could come in time
                # a coming reset that does not fit this request's deadline still tells the caller to wait
                raise _Abandon(pool.summary() if len(pool) else "no keys", None, "exhausted",
                               "unusable" if wait is None else "rate_limited")
            reason, learned = pool.wait_reason(model)
            # spread the queued requests over a little time so they don't stampede a provider's reset (a learnt
            # opening admits only what fits: the rest wait again, no storm)
            wait += self.rng.uniform(0.001, 0.01) if learned else self.rng.uniform(0.001, 0.05 + min(wait, 10.0) * 0.1)
            wait = min(wait, max(0.0, deadline - now))
            trace.add(now, "wait", up.name, seconds=wait, reason=reason, learned=learned)
            self.waiting += 1
            self._waits[trace.request_id] = now - trace.waited_s  # as if all its waits so far were one, ending now
            try:
                await asyncio.sleep(wait)
            finally:
                self.waiting -= 1
                del self._waits[trace.request_id]
                trace.waited_s += clock.now() - now

    def _wire(self, up: Upstream, req: ApiRequest) -> _Wire:
        """What every attempt of ``req`` on this provider sends, prepared once (its conversation recognised
        once, when the provider's pool keeps conversations on their keys)."""
        profile = up.profile
        content = req.content if req.content is not None else (
            json.dumps(req.json, separators=(",", ":")).encode() if req.json is not None else None)
        headers = dict(req.headers)
        if content is not None and req.content is None:
            headers.setdefault("content-type", "application/json")
        session = headers.pop(SESSION_HEADER, None)  # ours: never sent upstream
        mode = up.pool.affinity if up.pool is not None else "off"
        conversation, messages = None, 0
        if mode != "off":
            said = {SESSION_HEADER: session} if session is not None else {}
            found = conversation_of(req.json, said, profile.dialect, mode, size=len(content) if content else 0)
            if found is not None:
                conversation = found.token
                listed = req.json.get("messages") if isinstance(req.json, dict) else None
                messages = len(listed) if isinstance(listed, list) else 0
        return _Wire(req.method, profile.url(req.path), content, headers, _model_of(req), conversation=conversation,
                     messages=messages)

    async def _try_upstream(self, up: Upstream, wire: _Wire, trace: RequestTrace, deadline: float,
                            streaming: bool, fallback: bool, last: bool = True):
        """Serve the request (``wire``) from ``up``: acquire a key, make one attempt, settle its outcome; rotate at once
        after a 429, 401, 403 or quota answer, back off after a transient failure, until the attempt cap."""
        pool = up.pool
        if pool is not None and not len(pool):  # a keyed provider with no keys: never a request without credentials
            trace.add(self.clock.now(), "skip", up.name, reason=no_keys(up.name))
            raise _Abandon(no_keys(up.name), None, "unusable", "unusable")
        if pool is not None and pool.counts_tokens:
            wire.hold = TokenHold.of_body(wire.content)
        if wire.conversation is not None and pool is not None and pool.affinity_store is not None \
                and not pool.knows_conversation(wire.conversation):  # placed by another process of the fleet?
            label = await pool.affinity_store.fetch(wire.conversation)
            if label is not None:
                pool.adopt_conversation(wire.conversation, label)
        transient = attempts = 0
        # each key at most twice on this upstream, and never more than the hard cap: no retry storm
        cap = min(self.max_attempts, 2 * len(pool)) if pool is not None and len(pool) else self.max_attempts
        last_status: int | None = None
        last_outcome = Outcome.TRANSIENT
        rotated_from: tuple[str, int] | None = None
        failed: PoolKey | None = None  # the key of the last transient failure: retry elsewhere if possible
        while True:
            key: PoolKey | None = None
            if pool is not None:
                key = await self._acquire(up, trace, deadline, failed, wire.model, wire.hold, wire.conversation)
                if rotated_from is not None and key.label != rotated_from[0]:
                    label, status = rotated_from
                    self.events.emit(Event(self.clock.now(), up.name, key.label, EventKind.ROTATED, status,
                                           f"{label} answered {status}", f"rotated {label} -> {key.label}",
                                           trace.request_id))
                rotated_from = None
            if attempts >= cap:
                if key is not None and pool is not None:
                    pool.release(key, wire.model, 0.0, wire.hold)
                why = (f"attempt cap: {attempts} attempts on {up.name} (each key at most twice, "
                       f"at most {self.max_attempts})")
                trace.add(self.clock.now(), "cap", up.name, reason=why)
                raise _Abandon(why, last_status, "exhausted", _cause_of(last_outcome))
            attempts += 1
            answer = await self._attempt(up, wire, key, trace, deadline, streaming)
            if isinstance(answer, str):  # a transport failure, already reported
                failed, last_outcome = key, Outcome.TRANSIENT
                transient += 1
                await self._backoff_or_abandon(up, trace, deadline, transient, answer, None, last)
                continue
            served = await self._settle(up, wire, key, answer, trace, streaming, fallback)
            if served is not None:
                return served
            result = answer.result
            last_status, last_outcome = result.status, result.outcome
            if result.outcome in ROTATE_NOW:
                if pool is None or key is None:
                    raise _Abandon(f"{result.outcome.value} ({last_status})", last_status, "exhausted",
                                   _cause_of(result.outcome), result.retry_after_s)
                rotated_from = (key.label, last_status)
                continue  # next key at once: rotation spends no retry budget
            failed = key
            transient += 1
            await self._backoff_or_abandon(up, trace, deadline, transient,
                                           f"{last_status} {result.reason}".strip(), result, last)

    async def _attempt(self, up: Upstream, wire: _Wire, key: PoolKey | None, trace: RequestTrace,
                       deadline: float, streaming: bool) -> _Answer | str:
        """One upstream call on ``key``: its classified answer, or the reason of a transport failure (already
        reported to the pool). Past the deadline or for an oversized answer it releases the key and abandons."""
        pool, profile, clock, elapsed = up.pool, up.profile, self.clock, self.latency_clock
        headers = {**self._auth_headers(profile, key.secret if key else None), **wire.headers}
        started = elapsed()
        remaining = deadline - clock.now()
        if remaining <= 0:
            if key is not None and pool is not None:
                pool.release(key, wire.model, 0.0, wire.hold)
            raise _Abandon("deadline reached", None, "deadline")
        body = b""
        written = 0.0
        sender = self.sender
        timeout_s = max(0.5, remaining) if remaining < self._timeout_s else None
        # connect and every read of this attempt end by its deadline (no trickle outlives it): our own sender's
        # answer keeps it on its read timer (lifted once a stream is handed on), the others in an asyncio.timeout
        ours = sender if isinstance(sender, Http1Sender) else None
        own = ours is not None
        limit = _NO_LIMIT if own else asyncio.timeout(remaining)
        try:
            async with limit:
                resp: Answer
                if ours is not None:
                    mine = await ours.open(wire.method, wire.url, wire.content, headers, timeout_s, remaining)
                    resp, written = mine, mine.written_s
                else:
                    resp = await sender.open(wire.method, wire.url, wire.content, headers, timeout_s)
                try:
                    if streaming and resp.status_code == 200 and _is_event_stream(resp):
                        first = await self._await_first_event(resp, profile.dialect, clock.now())
                        if own:
                            cast(Http1Answer, resp).lift_deadline()  # the stream goes on as long as it flows
                    else:
                        body = await read_capped(resp, self.max_body_bytes)
                        first = None
                except BaseException:
                    await resp.aclose()
                    raise
        except (httpx.HTTPError, aiohttp.ClientError) as exc:  # aiohttp's own: a malformed answer, its timeouts
            return self._transport_failed(up, wire, key, trace, exc, elapsed() - started)
        except TimeoutError as exc:
            if not (isinstance(exc, AttemptDeadline) if own else cast(asyncio.Timeout, limit).expired()):
                raise
            if key is not None and pool is not None:
                pool.release(key, wire.model, elapsed() - started, wire.hold)
            why = f"deadline reached: no complete answer {elapsed() - started:.1f} s into this attempt"
            trace.add(clock.now(), "attempt", up.name, key.label if key else None, status=None,
                      outcome="deadline", latency_ms=(elapsed() - started) * 1000, reason=why)
            raise _Abandon(why, None, "deadline") from None
        except _TooLarge as exc:
            if key is not None and pool is not None:
                pool.release(key, wire.model, elapsed() - started, wire.hold)
            trace.add(clock.now(), "attempt", up.name, key.label if key else None, status=resp.status_code,
                      outcome="too_large", latency_ms=(elapsed() - started) * 1000, reason=str(exc))
            raise _Abandon(str(exc), resp.status_code, "too_large") from None
        except OSError as exc:
            return self._transport_failed(up, wire, key, trace, exc, elapsed() - started)
        except asyncio.CancelledError:
            if key is not None and pool is not None:
                pool.release(key, wire.model, elapsed() - started, wire.hold)
            raise
        latency = elapsed() - started
        if first is None:
            return _Answer(resp, classify(profile.dialect, resp.status_code, resp.headers, body, clock.now()),
                           body, latency, None, None, written)
        result, scanner, prelude = first
        return _Answer(resp, result, body, latency, scanner, prelude, written)

    def _auth_headers(self, profile: ProviderProfile, secret: str | None) -> dict[str, str]:
        """``profile``'s auth and fixed headers for ``secret``, made once per key (a template each attempt copies)."""
        made = self._auth.get((id(profile), secret))
        if made is None or made[0] is not profile:  # a profile replaced by a config change is made afresh
            if len(self._auth) > 4096:
                self._auth.clear()
            made = self._auth[(id(profile), secret)] = (profile, profile.auth_headers(secret))
        return made[1]

    def _transport_failed(self, up: Upstream, wire: _Wire, key: PoolKey | None, trace: RequestTrace,
                          exc: BaseException, latency: float) -> str:
        """An attempt that got no answer (refused, reset, a malformed answer, a connect or read timeout): reported
        to its key and traced; returns the reason."""
        reason = scrub(f"{type(exc).__name__}: {exc}")[:160] or type(exc).__name__
        if key is not None and up.pool is not None:
            up.pool.report_transport(key, reason, latency, trace.request_id, wire.model, wire.hold)
        trace.add(self.clock.now(), "attempt", up.name, key.label if key else None, status=None,
                  outcome="transport", latency_ms=latency * 1000, reason=reason)
        return reason

    async def _settle(self, up: Upstream, wire: _Wire, key: PoolKey | None, answer: _Answer,
                      trace: RequestTrace, streaming: bool, fallback: bool) -> PoolResponse | PoolStream | None:
        """Report one attempt's answer (pool, usage, trace, outage breaker). Returns what the caller gets when
        the answer is final (a success or the caller's own error), None when another attempt should follow."""
        pool, clock, resp, result = up.pool, self.clock, answer.resp, answer.result
        oc = result.outcome
        streaming = streaming and answer.scanner is not None  # a stream request answered as a plain one
        if oc is Outcome.OK and not streaming:  # a success: what its caller gets, and its accounting
            served = PoolResponse(resp.status_code, resp.headers, answer.body, up.name, key.label if key else None,
                                  trace, fallback)
            after = AFTER_ANSWER.get() if not self.settle_barriers else None
            if after is not None:  # the caller's answer first, its accounting once it is written
                after.append(partial(self._account, up, wire, key, answer, trace, served))
            else:
                self._account(up, wire, key, answer, trace, served)
                if self.usage_listeners:
                    for barrier in self.settle_barriers:
                        await barrier()
            self._attempt_traced(up, key, answer, trace)
            return served
        # no usage to read: a stream's opening (its tokens come at its end) or an answer that is no success
        if key is not None and pool is not None:
            pool.report(key, result, answer.latency, 0, 0, trace.request_id, None, wire.model, wire.hold,
                        answer.written)
            if wire.hold is not None and wire.hold.ratio_of is not None and not streaming:
                pool.add_usage(key, 0, 0, None, wire.hold)  # an answer without usage: what it held stays counted
        if self.usage_listeners:
            after = AFTER_ANSWER.get() if streaming and oc is Outcome.OK and not self.settle_barriers else None
            if after is None:
                self._record(up.name, key, wire.model, oc is Outcome.OK, Usage(), None, 1)
            else:  # a stream's opening, counted once its first chunk has gone
                after.append(partial(self._record, up.name, key, wire.model, True, Usage(), None, 1))
            for barrier in self.settle_barriers:
                await barrier()
        label = key.label if key else None
        self._attempt_traced(up, key, answer, trace)
        if (oc is Outcome.RATE_LIMITED and pool is not None and result.retry_after_s is not None
                and result.retry_after_s < pool.cooldown.floor_s):
            trace.add(clock.now(), "floor", up.name, label,
                      reason=f"provider said retry after {result.retry_after_s:g} s; "
                             f"held {pool.cooldown.floor_s:g} s (floor)")
        if oc is not Outcome.OK and oc is not Outcome.REQUEST_ERROR:
            await resp.aclose()
            return None
        if not streaming:  # the caller's own error
            return PoolResponse(resp.status_code, resp.headers, answer.body, up.name, label, trace, fallback)
        if oc is Outcome.OK:
            if key is not None and pool is not None:
                pool.stream_opened(key)
            assert answer.scanner is not None and answer.prelude is not None  # a stream's first event was read
            return PoolStream(self, up, key, resp, answer.scanner, answer.prelude, trace, fallback, wire.model,
                              wire.hold, (wire.conversation, wire.messages) if wire.conversation else None)
        await resp.aclose()
        if answer.scanner is not None:  # a request error sent as the stream's first event
            return PoolResponse(result.status, _json_headers(resp.headers), json.dumps(answer.scanner.error).encode(),
                                up.name, label, trace, fallback, answer.scanner.error)
        return PoolResponse(resp.status_code, resp.headers, answer.body, up.name, label, trace, fallback)

    def _attempt_traced(self, up: Upstream, key: PoolKey | None, answer: _Answer, trace: RequestTrace) -> None:
        """An attempt's answer in the request's trace; any real answer ends a suspected outage."""
        status, result = answer.resp.status_code, answer.result
        trace.add(self.clock.now(), "attempt", up.name, key.label if key else None, status=status,
                  outcome=result.outcome.value, latency_ms=answer.latency * 1000, reason=result.reason)
        if result.outcome is not Outcome.TRANSIENT and up.breaker is not None and up.breaker.probing:
            self._provider_answered(up, status, trace)

    def _account(self, up: Upstream, wire: _Wire, key: PoolKey | None, answer: _Answer, trace: RequestTrace,
                 served: PoolResponse) -> None:
        """A success's accounting: its usage read from the body, its key's report, the usage listeners; once its
        answer is written when the proxy asks for that (client/after_answer.py), else at once (``_settle``)."""
        pool = up.pool
        parsed = parse_body(answer.body)
        usage = served.usage = usage_of(parsed)
        served._json = parsed
        # (with no conversation and nothing cacheable, _cache_settled has nothing to account: not called)
        extra = self._cache_settled(up, key, wire.conversation, wire.messages, wire.model, usage) \
            if wire.conversation is not None or usage.cacheable else 0.0
        prices = self.prices  # (no per-model prices: no cost, without _cost's call)
        priced = prices is not None and prices.per_model and (usage.input or usage.output)
        cost = self._cost(wire.model, usage) if priced else None
        if key is not None and pool is not None:
            pool.report(key, answer.result, answer.latency, usage.input, usage.output, trace.request_id, cost,
                        wire.model, wire.hold, answer.written)
            if wire.hold is not None and wire.hold.ratio_of is not None:
                pool.add_usage(key, 0, 0, None, wire.hold)
        if self.usage_listeners:
            self._record(up.name, key, wire.model, True, usage, cost, 1, extra)

    def _cost(self, model: str | None, usage: Usage) -> float | None:
        if self.prices is None or not self.prices.per_model:
            return None
        return self.prices.cost_of(model, usage)

    def _cache_settled(self, up: Upstream, key: PoolKey | None, conversation: str | None, messages: int,
                       model: str | None, usage: Usage) -> float:
        """Account one answer's prompt-cache use to its key and conversation; returns what round-robin without
        affinity would have paid more for it, in USD (see core/round_robin_cost.py; 0 with no conversation)."""
        pool = up.pool
        if pool is None or key is None:
            return 0.0
        extra = 0.0
        if conversation is not None:
            pool.conversation_prefix(conversation, usage.cache_read + usage.cache_write)
            price = self.prices.price(model) if self.prices is not None else None
            if usage.cacheable:
                estimate = self._round_robin.get(up.name)
                if estimate is None:
                    estimate = self._round_robin[up.name] = RoundRobinCost(
                        ANTHROPIC_LOOKBACK if up.profile.dialect == "anthropic" else None)
                expected = estimate.expected_read(conversation, pool.cache_shares, usage, messages, self.clock.now())
                extra = round_robin_extra(price, usage, expected) if price is not None else 0.0
        if usage.cacheable:
            pool.add_cache(key, usage.cache_read, usage.cache_write, usage.cacheable, extra)
        return extra

    def _record(self, provider: str, key: PoolKey | None, model: str | None, ok: bool, usage: Usage,
                cost: float | None, requests: int, rr_extra: float = 0.0) -> None:
        prices = self.prices
        no_cache = prices.cost(model, usage.input, usage.output) if prices is not None and prices.per_model else None
        record = UsageRecord(self.clock.now(), provider, key.label if key else "-", model or "-", requests,
                             int(ok), usage.input, usage.output, cost or 0.0, usage.cache_read, usage.cache_write,
                             usage.cacheable, no_cache or 0.0, rr_extra)
        for listener in self.usage_listeners:
            listener(record)

    async def _backoff_or_abandon(self, up: Upstream, trace: RequestTrace, deadline: float, transient: int,
                                  reason: str, result: Classification | None, last: bool = True) -> None:
        breaker = up.breaker
        if breaker is not None and breaker.failure():
            self.events.emit(Event(self.clock.now(), up.name, None, EventKind.STATE, None,
                                   f"{breaker.threshold} transient failures in {breaker.window_s:g} s",
                                   f"outage suspected: fallbacks first for {breaker.open_s:g} s", trace.request_id,
                                   StateChange.OUTAGE_OPENED))
        status = result.status if result is not None else None
        said = result.retry_after_s if result is not None else None
        hint = said  # when the provider may serve again: its own word, or when its suspected outage is re-probed
        if breaker is not None and breaker.is_open:
            open_for = max(0.0, (breaker.open_until or 0) - self.clock.now())
            hint = open_for if hint is None else max(hint, open_for)
        if breaker is not None and breaker.is_open and not last:
            raise _Abandon(f"failing: {reason} (outage suspected, transient)", status, "exhausted", "overloaded", hint)
        if transient > self.backoff.max_retries:
            raise _Abandon(f"failing: {reason} ({transient} attempts, transient)", status, "exhausted", "overloaded",
                           hint)
        delay = self.backoff.delay(transient, self.rng)
        if said is not None:
            delay = max(delay, said)  # the provider's word, never an early retry
        if self.clock.now() + delay > deadline:
            why = (f"retry-after {said:g} s does not fit the deadline" if said is not None and said >= delay
                   else "deadline reached")
            trace.add(self.clock.now(), "skip", up.name, reason=f"{reason}: {why}")
            raise _Abandon(f"failing: {reason} ({why}, transient)", status, "exhausted", "overloaded", hint)
        trace.add(self.clock.now(), "backoff", up.name, seconds=delay, reason=reason)
        await asyncio.sleep(delay)

    async def _await_first_event(self, resp: Answer, dialect: str, now: float):
        """Read a 200 stream until its first real data event (or an error event, or its end)."""
        cap = self.max_body_bytes  # what is held before relay: the prelude, and one line at any time
        scanner = SSEScanner(cap)
        prelude: list[bytes] = []
        held = 0
        it = resp.aiter_raw()
        async for chunk in it:
            held += len(chunk)
            if held > cap:
                raise _TooLarge(f"the stream sent more than {cap / 2**20:g} MiB before its first event")
            prelude.append(chunk)
            scanner.feed(chunk, until_data=True)  # what came after the first event is read once it has gone on
            if scanner.error is not None and not scanner.saw_data:
                status = stream_error_status(scanner.error)
                return classify(dialect, status, {}, scanner.error, now), scanner, (prelude, it)
            if scanner.saw_data:
                return classify(dialect, 200, resp.headers, None, now), scanner, (prelude, it)
            if scanner.done:
                break
        return Classification(Outcome.TRANSIENT, 200, "stream ended before any data"), scanner, (prelude, it)


class PoolStream:
    """A committed stream: it stays on the key that served its first data event."""

    def __init__(self, client: PoolClient, up: Upstream, key: PoolKey | None, resp: Answer,
                 scanner: SSEScanner, prelude: tuple[list[bytes], AsyncIterator[bytes]], trace: RequestTrace,
                 fallback: bool, model: str | None, hold: TokenHold | None = None,
                 conversation: tuple[str, int] | None = None) -> None:
        self._model = model  # what its usage is priced and recorded under
        self._conversation = conversation  # (its token, its messages), with affinity on
        self._hold = hold  # the tokens it holds in the key's budgets, settled from its usage at the end
        self._client, self._up, self._key, self._resp = client, up, key, resp
        self._scanner = scanner
        self._prelude, self._rest = prelude
        self.trace = trace
        self.fallback = fallback
        self.status = resp.status_code
        self.headers = resp.headers
        self.provider = up.name
        self.key = key.label if key else None
        self.interrupted: str | None = None
        self._closed = False
        self._after = AFTER_ANSWER.get()  # its request's list, if its accounting waits for the answer

    async def __aiter__(self) -> AsyncIterator[bytes]:
        scanner = self._scanner
        idle = self._client.stream_idle_s
        rest = aiter(self._rest)
        limit: IdleLimit | None = None
        try:
            prelude = self._prelude
            while prelude:  # (taken as they go: ``at_end`` knows when the last has)
                yield prelude.pop(0)
            scanner.catch_up()  # the prelude's events after the first: read now that the first has gone on
            if self.at_end:  # all of it came with its first event: its end read at once, with no timer
                await anext(rest, None)
                return
            # a stream may last; a silence may not (one timer for the stream, not one a chunk; made once the first
            # chunk has gone on)
            limit = IdleLimit(idle)
            while True:
                try:
                    chunk = await limit.next(rest)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    self.interrupted = f"no data for {idle:g} s after the first event"
                    raise
                try:
                    scanner.feed(chunk)
                except SSELineTooLongError as exc:
                    self.interrupted = str(exc)
                    raise
                yield chunk
        except (httpx.HTTPError, OSError, aiohttp.ClientError) as exc:
            self.interrupted = self.interrupted or f"{type(exc).__name__} after first event"
            raise
        finally:
            if limit is not None:
                limit.close()
            await self.aclose()

    @property
    def at_end(self) -> bool:
        """Whether the chunk just given was the stream's last: its upstream's answer is complete and all of it has
        been given (the caller's end can go with that chunk). False when the answer cannot tell."""
        return not self._prelude and getattr(self._resp, "ended", False) is True

    @property
    def tokens(self) -> tuple[int, int]:
        scanner = self._scanner
        scanner.catch_up()
        return scanner.tokens_in, scanner.tokens_out

    @property
    def usage(self) -> Usage:
        """What the stream's events reported so far, cache fields included."""
        self._scanner.catch_up()
        return self._scanner.usage

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._resp.aclose()
        client = self._client
        after = AFTER_ANSWER.get() if not client.settle_barriers else None
        if after is None or after is not self._after:  # (closed in another request's context, say by the garbage
            self._settle_end()                         # collector's finaliser: that request's list is not its own)
        else:  # the caller's end first, the stream's accounting once it is written (client/after_answer.py)
            after.append(self._settle_end)

    def _settle_end(self) -> None:
        """The closed stream's accounting: its usage read from its last events, priced, recorded; its key's
        stream closed and its usage added; a stream cut mid-way an event."""
        pool, key = self._up.pool, self._key
        usage = self.usage  # the prelude's later events read too, when the stream closed before relaying them
        tin, tout = usage.input, usage.output
        cost = self._client._cost(self._model, usage) if (tin or tout) else None
        conversation, messages = self._conversation or (None, 0)
        extra = self._client._cache_settled(self._up, key, conversation, messages, self._model, usage)
        if self._client.usage_listeners and (tin or tout):
            self._client._record(self._up.name, key, self._model, False, usage, cost, 0, extra)
        if pool is not None and key is not None:
            pool.stream_closed(key)
            pool.add_usage(key, tin, tout, cost, self._hold)
            if self.interrupted or (self._scanner.error is not None and self._scanner.saw_data):
                pool.events.emit(Event(pool.clock.now(), pool.name, key.label, EventKind.TRANSPORT, None,
                                       self.interrupted or "error event mid-stream", "passed to caller in-band",
                                       self.trace.request_id))
