"""A key's declared limits at work (issue 27): its windows, what a request holds in them, its token estimate.

:class:`DeclaredWindows` are the windows of one key (or one key and model) built through the pool's
:data:`~pooltui.core.windows.WindowFactory`: requests (``rpm``, ``rpd``) and tokens (``tpm``: input and output,
``itpm``, ``otpm``), and the in-flight cap (``max_concurrency``). A request of a model that has limits of its
own counts against that model's windows; any other model against the key's.

:class:`TokenHold` is what one request holds: its input tokens estimated from the body before it is sent
(:func:`estimate_input`: a quarter of the body's bytes, cheap), corrected per key and model by how the
provider's reported usage compared with the estimate (an exponential average of the ratio), and its output
tokens held at ``max_tokens`` (or :data:`DEFAULT_OUTPUT` when the body sets none). The answer's usage settles
it: the windows then count what was used, not what was guessed. Pure: times are passed in.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

from pooltui.core.snapshot import BudgetUse
from pooltui.core.windows import FleetSlots, KeyLimits, LocalWindows, SlidingWindow, Slots, WindowFactory

RATIO_WEIGHT = 0.2  # each answer's share of the input-token ratio (an exponential average)
RATIO_BOUNDS = (0.05, 20.0)  # a ratio outside these is an odd answer, not the body's shape
_RATIO_LOW, _RATIO_HIGH = RATIO_BOUNDS
DEFAULT_OUTPUT = 256  # output tokens held for a request that sets no max_tokens
#: added to a declared window's opening: the provider counts a request from when it arrived, a little after our
#: pick (the network's delay), so its window opens that much later than ours
MARGIN = 0.01  # of the window
MAX_MARGIN_S = 1.0
_MAX_TOKENS = re.compile(rb'"(?:max_tokens|max_completion_tokens|max_output_tokens)"\s*:\s*(\d{1,9})')


def estimate_input(body: bytes | None) -> int:
    """Input tokens of a request body, roughly: a quarter of its bytes (JSON and all; the ratio corrects it)."""
    return (len(body) + 3) // 4 if body else 0


def output_cap(body: bytes | None) -> int:
    """The output tokens a request may take: its ``max_tokens``, else :data:`DEFAULT_OUTPUT`."""
    if body:
        found = _MAX_TOKENS.search(body)
        if found is not None:
            return int(found.group(1))
    return DEFAULT_OUTPUT


class DeclaredWindows:
    """The declared windows of one key (or one key and model)."""

    __slots__ = ("_all", "_calls", "inputs", "limits", "local", "max_concurrency", "models", "outputs",
                 "requests", "tokens")

    def __init__(self, limits: KeyLimits, provider: str, scope: str, factory: WindowFactory) -> None:
        self.limits = limits
        self.requests: list[tuple[str, Slots]] = []  # (name, window): rpm, rpd
        self.tokens: list[tuple[str, Slots]] = []  # tpm: input and output tokens
        self.inputs: list[tuple[str, Slots]] = []  # itpm
        self.outputs: list[tuple[str, Slots]] = []  # otpm
        self.models: dict[str, DeclaredWindows] | None = None
        lists = {"requests": self.requests, "tokens": self.tokens, "input_tokens": self.inputs,
                 "output_tokens": self.outputs}
        for what, limit, span, name in limits.windows():
            lists[what].append((name, factory(provider, scope, what, limit, span)))
        #: (name, window, what it counts: 0 requests, 1 all tokens, 2 input, 3 output), built once for the pick
        self._all: tuple[tuple[str, Slots, int], ...] = tuple(
            (name, slots, kind) for kind, windows in enumerate((self.requests, self.tokens, self.inputs, self.outputs))
            for name, slots in windows)
        #: (its room, its take, what it counts, its place in _all) per window: what the pick calls, bound once
        self._calls: tuple[tuple[Callable[[float], int], Callable[[float, int], bool], int, int], ...] = tuple(
            (slots.room, slots.take, kind, i) for i, (_, slots, kind) in enumerate(self._all))
        #: the windows when every one is of this process alone (the usual case): the pick takes from them all in
        #: one call (None: some window is shared, or none is declared)
        self.local: LocalWindows | None = None
        if self._all and all(type(slots) is SlidingWindow for _, slots, _ in self._all):
            self.local = LocalWindows(*(tuple(slots for _, slots in ws if isinstance(slots, SlidingWindow))
                                        for ws in (self.requests, self.tokens, self.inputs, self.outputs)))
        self.max_concurrency = limits.max_concurrency

    def for_model(self, model: str | None) -> DeclaredWindows:
        """The windows a request of ``model`` counts against."""
        models = self.models
        if models is not None and model is not None:
            return models.get(model, self)
        return self

    @property
    def counts_tokens(self) -> bool:
        return bool(self.tokens or self.inputs or self.outputs) or any(
            m.counts_tokens for m in (self.models or {}).values())

    def full(self, now: float, tokens_in: int, tokens_out: int) -> tuple[float, str, int] | None:
        """(seconds until it opens, the window's name, its limit) of the window that opens last, if any is full."""
        local = self.local
        if local is not None:
            if not tokens_in and not tokens_out and local.request_fits():
                return None  # (asked for a request alone, as affinity's look at a key's room asks: the run goes on)
            local.close()
        units = (1, tokens_in + tokens_out, tokens_in, tokens_out)
        worst: tuple[float, str, int] | None = None
        for name, slots, kind in self._all:
            n = units[kind]
            if n and slots.room(now) < n and (wait := slots.opens_in(now, n)) > 0:
                wait += min(MAX_MARGIN_S, slots.window_s * MARGIN)
                if worst is None or wait > worst[0]:
                    worst = (wait, name, slots.limit)
        return worst

    def take(self, now: float, tokens_in: int, tokens_out: int) -> tuple[float, str, int] | None:
        """Hold one request and its tokens in every window (each was seen to have room). A window that refuses
        after all (one shared with other processes, which took the room meanwhile) gets nothing and the others
        give back what they took: then (seconds until it opens, its name, its limit), else None."""
        if self.local is not None:
            self.local.close()
        units = (1, tokens_in + tokens_out, tokens_in, tokens_out)
        for _, take, kind, i in self._calls:
            n = units[kind]
            if n and not take(now, n):
                return self._refused(i, now, units)
        return None

    def claim(self, now: float, tokens_in: int, tokens_out: int) -> tuple[float, str, int] | None:
        """What a pick does: :meth:`full`, else :meth:`take` (the same answer), in one pass over the windows when
        every one has room (the usual case)."""
        local = self.local
        if local is not None:
            if local.take(now, tokens_in, tokens_out):
                return None
            return self.full(now, tokens_in, tokens_out) or self.take(now, tokens_in, tokens_out)
        units = (1, tokens_in + tokens_out, tokens_in, tokens_out)
        calls = self._calls
        for room, _, kind, _ in calls:
            n = units[kind]
            if n and room(now) < n:
                return self.full(now, tokens_in, tokens_out) or self.take(now, tokens_in, tokens_out)
        for _, take, kind, i in calls:
            n = units[kind]
            if n and not take(now, n):
                return self._refused(i, now, units)
        return None

    def _refused(self, i: int, now: float, units: tuple[int, int, int, int]) -> tuple[float, str, int]:
        """The window ``i`` refused its units: the windows before it give back theirs; when it opens."""
        for _, other, kind in self._all[:i]:
            if m := units[kind]:
                other.settle(now, m, 0)
        name, slots, kind = self._all[i]
        wait = max(slots.opens_in(now, units[kind]), min(MAX_MARGIN_S, slots.window_s * MARGIN))
        return wait, name, slots.limit

    def give_back_request(self, now: float) -> None:
        """The request was never sent: its slot comes back."""
        if self.local is not None:
            self.local.close()
        for _, slots in self.requests:
            slots.settle(now, 1, 0)

    def settle_tokens(self, now: float, held: tuple[int, int], used: tuple[int, int]) -> None:
        """The answer's usage replaces what was held."""
        (held_in, held_out), (used_in, used_out) = held, used
        local = self.local
        if local is not None:
            if local.settle_tokens(now, held_in - used_in, held_out - used_out):
                return
            local.close()
        for _, slots in self.tokens:
            slots.settle(now, held_in + held_out, used_in + used_out)
        for _, slots in self.inputs:
            slots.settle(now, held_in, used_in)
        for _, slots in self.outputs:
            slots.settle(now, held_out, used_out)

    def in_use(self, now: float) -> dict[str, tuple[int, int]]:
        """Each window's name -> (units counted now, limit)."""
        if self.local is not None:
            self.local.close()
        return {name: (slots.used(now) if isinstance(slots, FleetSlots) else slots.limit - slots.room(now),
                       slots.limit)
                for windows in (self.requests, self.tokens, self.inputs, self.outputs) for name, slots in windows}

    def fleet_in_use(self, now: float) -> dict[str, int]:
        """Each window held across the fleet's name -> units the fleet holds in it (windows of this process
        alone are not named)."""
        return {name: slots.fleet_used(now) for windows in (self.requests, self.tokens, self.inputs, self.outputs)
                for name, slots in windows if isinstance(slots, FleetSlots)}

    def budgets(self, now: float) -> dict[str, BudgetUse]:
        """Each window's use as the key's view shows it, the model's own windows named with their model.
        ``fleet_used`` is the fleet's figure for a window held across processes (None for one of this process)."""
        fleet = self.fleet_in_use(now)
        out: dict[str, BudgetUse] = {name: {"used": used, "limit": limit, "fleet_used": fleet.get(name)}
                                     for name, (used, limit) in self.in_use(now).items()}
        for model, windows in (self.models or {}).items():
            fleet = windows.fleet_in_use(now)
            for name, (used, limit) in windows.in_use(now).items():
                out[f"{name} {model}"] = {"used": used, "limit": limit, "fleet_used": fleet.get(name)}
        return out


_NO_TOKENS = (0, 0)


class TokenHolder(Protocol):
    """The key a hold's tokens are held on (core/pool.py's PoolKey): what its answer settles there."""

    tokens_inflight: int  # tokens (input and output) held by its requests in flight
    token_allow: int | None  # tokens the headers last stated left, less those held since


class TokenHold:
    """The tokens one request holds: filled by the pick, settled by its answer (one attempt at a time)."""

    __slots__ = ("body_in", "held", "model", "on", "out", "ratio_of", "seq")

    def __init__(self, body_in: int, out: int) -> None:
        self.body_in = body_in  # input tokens as estimated from the body, before any correction
        self.out = out  # output tokens held: max_tokens or the default
        self.model: str | None = None
        self.held = (0, 0)  # (input, output) tokens held by the attempt in flight
        self.on: DeclaredWindows | None = None  # the windows they are held in (None: none declared)
        self.ratio_of: dict[str, float] | None = None  # the key's input ratios, per model ("": any)
        self.seq = 0  # the key's count of requests when this one was picked: answers may come out of order

    @classmethod
    def of_body(cls, body: bytes | None) -> TokenHold:
        return cls(estimate_input(body), output_cap(body))

    def settle(self, key: TokenHolder, now: float, used_in: int, used_out: int) -> None:
        """The answer came: what it held becomes what it used (``used_in``, ``used_out``) on ``key`` (its tokens in
        flight, its stated budget) and in the windows held; the key's input ratio for the model moves toward what the
        usage says (an exponential average, bounded); the hold is empty again. One call for the answer's hot path."""
        held = self.held
        held_in, held_out = held
        left = key.tokens_inflight - held_in - held_out
        key.tokens_inflight = left if left > 0 else 0
        if key.token_allow is not None:
            key.token_allow += held_in + held_out - used_in - used_out
        on = self.on
        if on is not None and (used_in != held_in or used_out != held_out):
            local = on.local  # (its run's quick give-back first, without DeclaredWindows.settle_tokens' call)
            if local is not None and (w := local.tokens_only) is not None and used_in <= held_in and \
                    used_out <= held_out and (entries := w._entries) and \
                    (back := held_in - used_in + held_out - used_out) < (first := entries[0])[1] and \
                    (first[0] if len(entries) > 1 or first[0] > local.last else local.last) > now - w.window_s:
                first[1] -= back  # LocalWindows.settle_tokens' usual case (one tpm window), without its call
                w._total -= back
            elif local is None or not local.settle_tokens(now, held_in - used_in, held_out - used_out):
                on.settle_tokens(now, held, (used_in, used_out))
        ratios, body_in = self.ratio_of, self.body_in
        if used_in > 0 and ratios is not None and body_in > 0:  # an answer without usage teaches nothing
            seen = used_in / body_in
            if seen < _RATIO_LOW:
                seen = _RATIO_LOW
            elif seen > _RATIO_HIGH:
                seen = _RATIO_HIGH
            name = self.model or ""
            before = ratios.get(name)
            ratios[name] = seen if before is None else before + RATIO_WEIGHT * (seen - before)
        self.on, self.held, self.ratio_of = None, _NO_TOKENS, None

    def drop(self, key: TokenHolder) -> None:
        """The answer says no usage (a transport error, a cancellation after it was sent): what it held stays counted
        as used in the windows; ``key`` no longer has it in flight; the hold is empty again."""
        held_in, held_out = self.held
        left = key.tokens_inflight - held_in - held_out
        key.tokens_inflight = left if left > 0 else 0
        self.on, self.held, self.ratio_of = None, _NO_TOKENS, None
