"""What the same traffic would have paid with rotation that ignores conversations (round-robin, no affinity).

pooltui sees, per answer, how much of the prompt its provider cached (``Usage``: read, written, cacheable) and
which conversation the request belongs to; it never sees the other placement, so it is estimated per request:

- Round-robin over the pool's N keys, with many conversations interleaved, lands a conversation's turn on any
  cache group G (an organization: its keys share one cache) with probability q = |G|/N, independently of where
  its earlier turns went.
- A group holds, of this conversation, the prefix of the last turn that went there (cached up to that turn's
  breakpoint), while it is alive: younger than the cache's lifetime (5 minutes) and, for Anthropic, within the
  20 blocks a breakpoint looks back over (counted here in messages: at least one block each).
- So the turn would read, on average, E = sum over groups of q x sum over k of q (1 - q)^(k-1) x L(t-k): the
  last turn that went to the group was k turns ago with probability q (1 - q)^(k-1), and its prefix L(t-k)
  (at most this turn's) is what can be read. A head every conversation shares (a common system prompt), read
  already on a conversation's first turn, is read on every group: it is the floor of E.
- What E falls short of the actual read R is written instead (Anthropic: at the cache-write price; OpenAI: no
  write premium, so at the input price): the round-robin cost is the actual cost + (R - E) x (write - read price).
  E may exceed R (a turn whose affinity moved), and the estimate is then the lower.

Not modelled: a key cooling or parked (round-robin would skip it too; its share is taken as the rest's), a hit
refreshing a cache's lifetime, prefixes shared between conversations beyond the head seen on a first turn.
Affinity off: no conversation is known, nothing is estimated (the cost is what rotation paid).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence

from pooltui.core.affinity import CACHE_TTL_S, CONVERSATIONS_KEPT
from pooltui.core.budget import ModelPrice
from pooltui.core.usage import Usage

#: a conversation's earlier turns remembered: with 3 equal groups, a turn 10 back carries (2/3)^9 / 3 < 1 % weight
TURNS_KEPT = 10
#: Anthropic: a breakpoint looks back over about 20 content blocks for an earlier cached prefix (prompt-caching
#: docs, "How automatic prefix checking works"); OpenAI caches the longest cached prefix with no such limit
ANTHROPIC_LOOKBACK = 20


class _Turns:
    """One conversation's last turns (time, cached prefix in tokens, messages) and its shared head (tokens)."""

    __slots__ = ("floor", "turns")

    def __init__(self, floor: int) -> None:
        self.floor = floor
        self.turns: deque[tuple[float, int, int]] = deque(maxlen=TURNS_KEPT)


class RoundRobinCost:
    """Per conversation, what its last turns cached; per answer, the cache reads round-robin would have had."""

    def __init__(self, lookback: int | None = ANTHROPIC_LOOKBACK, capacity: int = CONVERSATIONS_KEPT,
                 ttl_s: float = CACHE_TTL_S) -> None:
        self.lookback = lookback
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._seen: OrderedDict[str, _Turns] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def expected_read(self, token: str, shares: Sequence[float], usage: Usage, messages: int, now: float) -> float:
        """The tokens this answer would have read from a cache under round-robin (``shares``: each cache group's
        share of the pool's keys), and the turn remembered for the conversation's next ones."""
        prefix = usage.cacheable
        seen = self._seen.get(token)
        if seen is None:
            seen = self._seen[token] = _Turns(min(usage.cache_read, prefix))
            while len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
            expected = float(usage.cache_read)
        else:
            self._seen.move_to_end(token)
            floor = seen.floor
            reads: list[int] = []  # what each earlier turn's prefix lets this one read beyond the head, newest first
            for at, size, count in reversed(seen.turns):
                if now - at > self.ttl_s or (self.lookback is not None and messages - count > self.lookback):
                    break
                reads.append(max(0, min(size, prefix) - floor))
            expected = float(min(floor, prefix))
            for q in shares:
                stay, weight = 0.0, q
                for read in reads:
                    stay += weight * read
                    weight *= 1.0 - q
                expected += q * stay
        seen.turns.append((now, prefix, messages))
        return expected


def round_robin_extra(price: ModelPrice, usage: Usage, expected_read: float) -> float:
    """USD round-robin would have paid more (less, when negative) than ``usage`` did, reading ``expected_read``
    tokens instead of ``usage.cache_read``: the tokens not read are written (at the price its writes had)."""
    write = price.cache_write_1h if usage.cache_write and usage.cache_write_1h >= usage.cache_write \
        else price.cache_write
    return (usage.cache_read - expected_read) * (write - price.cache_read) / 1_000_000
