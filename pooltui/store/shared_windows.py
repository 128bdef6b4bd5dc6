"""Budget windows held across the fleet (issue 27 item 3): a Redis-backed ``Slots`` per (provider, key, what).

**The window in Redis** is a sorted set per (provider, key label, key fingerprint, what): one member per lease
or per settled use, ``"<id>:<units>"`` scored by its time in ms. A sorted set rather than sub-window counters:
the window is exact (a counter per sub-window lets up to one sub-window's worth through at its edges, a burst
the provider answers with 429s at small limits such as 8 per 5 s), a use can be moved to its real send time
(a lease is replaced by what it was used for), and its size is bounded by the leases in one window, which
is small. The atomic step is a Lua script (redis-py ``register_script``: EVALSHA, reloaded on NOSCRIPT):
read the window, drop what left it, grant up to what is free, all in one step, on Redis's own clock
(``TIME``), so no two processes ever take the same slot. A library was not used: none keeps leases and
gives back the unused part. Every entry the script reads is checked like network input: a member that is
not ``id:units``, holds more than the limit or lies in the future is removed (and counted; the process
says so once); a key of the wrong Redis type is deleted. Anyone who can write to Redis can still fill a
window with well-formed entries, but only for one window: nothing planted blocks a key for longer, lets a
burst through, or reaches the process unchecked.

**Each pick stays local.** A process LEASES a small batch (``max(1, limit / (4 * processes))``) ahead of
need, from a background task on the store's event loop; :meth:`SharedSlots.take` only counts down the
lease. A lease ends after ``lease_s`` (a tenth of the window, at most 1 s) or when spent: its entry is then
replaced by what was used, at the time of the last use (the provider counts a request from its send), and
what was not used is free again for everyone. Held slots (in flight) count everywhere from their lease. A
learnt limit's window holds the sends made before it (``_write_unpaced``): the provider still counts them. A
lease not settled yet holds its slots half a window (and a round) longer than a use: its uses may come that late,
and a settling delayed by a loaded loop must not free slots the provider still counts.

**Redis down**: each process paces on its own share (``limit // processes seen``, at least 1) from its
local history, and says so once; less every other process's units beyond its share in the window as this
process last saw it. Each lease's answer (and a look, a lease of nothing, at a window not leased for
``VIEW_S``) tells the others' units by owner with when they leave the window; to that each other process is
counted as having leased its reserve since (a process leases only to top its reserve up). A window spent
unevenly (20, 2 and 2 of 30) is not spent again on shares (the quiet two took 8 more each: 40 in 3 s): a
process with room is within its share and gives up each other's excess, so the fleet's sum stays within the
limit. With an idle fleet (the others held no more than their shares: their reserves) each has its share.
Every unit taken is kept locally for one window, so when Redis comes back
empty (restarted) each process writes back what it took (nothing is lost); what it took on its share is
written to the window when the store answers again, emptied or not (a round past its timeout on a loaded
loop is "down" for a moment, and the others would lease those slots again); for one window after any
reconnect a process also keeps within its share, on the view from before (the others may not have written
theirs back yet: no burst gets through; each looks at the window within ``VIEW_S``, so each rejoins soon).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from bisect import insort
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pooltui.core.windows import LEARNED
from pooltui.store.shared_sends import EVERY_S, MAX_SENDS, PER_ENTRY, RETENTION_S, SharedSends, send_times
from pooltui.store.shared_wire import Rejected, lease_answer, others_in_view

#: take up to ARGV[3] units from the window KEYS[1] (ARGV[1]: window in ms, ARGV[2]: limit, ARGV[4]: the new
#: member's id) unless the marker KEYS[2] no longer holds ARGV[5] (Redis lost the windows: restarted, flushed);
#: a lease not settled yet holds its slots ARGV[6] ms (its uses may come up to half a window after its grant,
#: and the provider counts each from its send), a settled use one window;
#: returns {granted, Redis time in ms, ms until the rest would fit, units now held, refused, lost, units held by
#: settled uses (not by leases: a lease's id starts with "L", and what it is used for is only known once settled)};
#: given this process's tag ARGV[7], also the other processes' units: {owner, steps, units, of those leased, ...}
#: where the units leave the window within ``steps`` steps of ARGV[8] ms (rounded up: never earlier than they do)
TAKE_LUA = """
local key = KEYS[1]
local window, limit, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('GET', KEYS[2]) ~= ARGV[5] then
  return {0, now, 0, 0, 0, 1, 0}
end
local kind = redis.call('TYPE', key).ok
local refused = 0
if kind ~= 'zset' and kind ~= 'none' then
  redis.call('DEL', key)
  refused = 1
end
local hold = math.max(window, tonumber(ARGV[6] or '') or window)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - hold)
local entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
local used, leased, kept = 0, 0, {}
local me, bucket, seen, order = ARGV[7], tonumber(ARGV[8] or '') or window, {}, {}
for i = 1, #entries, 2 do
  local member, score = entries[i], tonumber(entries[i + 1])
  local owner, id, digits = string.match(member, '^([%w%.%-_]+):([%w%.%-_]+):(%d+)$')
  local units = tonumber(digits or '')
  if units == nil or units > limit or score > now + 1000 then
    redis.call('ZREM', key, member)
    refused = refused + 1
  else
    local lease = string.sub(id, 1, 1) == 'L'
    local ends = score + (lease and hold or window)
    if ends <= now then
      redis.call('ZREM', key, member)
    else
      used = used + units
      if lease then leased = leased + units end
      kept[#kept + 1] = {ends, units}
      if me and owner ~= me then
        local step = math.ceil((ends - now) / bucket)
        local at = owner .. ' ' .. step
        if seen[at] == nil and #order >= 1000 then at = '* ' .. step end  -- planted owners by the thousand: one
        if seen[at] == nil then
          seen[at] = {0, 0}
          order[#order + 1] = at
        end
        seen[at][1] = seen[at][1] + units
        if lease then seen[at][2] = seen[at][2] + units end
      end
    end
  end
end
table.sort(kept, function(a, b) return a[1] < b[1] end)
local got = math.max(0, math.min(want, limit - used))
if got > 0 then
  redis.call('ZADD', key, now, ARGV[4] .. ':' .. got)
end
local opens = 0
if got < want then
  local free, need = limit - used - got, want - got
  for i = 1, #kept do
    free = free + kept[i][2]
    if free >= need then
      opens = math.max(0, kept[i][1] - now)
      break
    end
  end
  if free < need then opens = window end
end
redis.call('PEXPIRE', key, hold * 2 + 1000)
if not me then return {got, now, opens, used + got, refused, 0, used - leased} end
local others = {}
for _, at in ipairs(order) do
  local owner, steps = string.match(at, '^(%S+) (%d+)$')
  others[#others + 1] = owner
  others[#others + 1] = tonumber(steps)
  others[#others + 1] = seen[at][1]
  others[#others + 1] = seen[at][2]
end
return {got, now, opens, used + got, refused, 0, used - leased, others}
"""

#: a lease ends: remove its member ARGV[1]; when ARGV[2] is not empty, add that member (what was used) at
#: ARGV[3] ms, never later than Redis's own time; returns Redis time in ms
SETTLE_LUA = """
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('TYPE', key).ok ~= 'zset' then
  if redis.call('EXISTS', key) == 1 then redis.call('DEL', key) end
end
redis.call('ZREM', key, ARGV[1])
if ARGV[2] ~= '' then
  redis.call('ZADD', key, math.min(tonumber(ARGV[3]), now), ARGV[2])
  redis.call('PEXPIRE', key, tonumber(ARGV[4]) * 2 + 1000)
end
return now
"""

MAX_SHOWN = 256  # windows a heartbeat tells the fleet about
LEASE_SHARE = 4  # a lease is at most limit / (LEASE_SHARE * processes): the rest stays free for the others
MAX_LEASE_S = 1.0
ROUND_TIMEOUT_S = 0.5  # a round of leases slower than this: the store is away, each process paces on its share
USABLE_SHARE = 0.5  # a lease is used at most this share of the window after it was asked for (SharedSlots._usable)
MAX_EXTRA = 4096  # units taken outside a lease (Redis away) kept to write back, at most
TICK_S = 0.02  # how often the background looks at leases (and how soon a pick without a lease looks again)
VIEW_S = 0.1  # a window not leased for this long is looked at (a lease of nothing): the others' units, for pacing alone
VIEW_STEPS = 20  # the others' units are told to a twentieth of the window (rounded up: never earlier than they leave)


@dataclass(slots=True)
class _Lease:
    member: str  # its member in the window (id:units)
    units: int  # leased
    used: int  # of those, taken by picks
    at: float  # local time it was asked for (Redis scored it at its own time, a little later)
    last_use: float  # local time of its latest use
    ends: float  # local time it is settled


@dataclass(slots=True)
class _Ask:
    """A lease as asked of the script: its window, units wanted, member, local time sent and the script's args."""
    slots: SharedSlots
    want: int
    member: str
    sent: float
    hold_ms: int
    step_ms: int
    args: list[Any]


class SharedSlots:
    """One shared window (a ``Slots``): ``limit`` units per ``window_s`` across every process on the Redis."""

    def __init__(self, group: SharedWindows, name: str, where: tuple[str, str, str], limit: int,
                 window_s: float) -> None:
        self.group, self.name = group, name
        self.provider, self.label, self.what = where  # the key's provider, its label (or label@model), what
        self.limit, self.window_s = limit, window_s
        self.leases: list[_Lease] = []  # open, oldest first (a reserve is leased before the current one is spent)
        self.left = 0  # units of the open leases not taken yet
        self.want = 0  # units a pick asked for and the lease did not have: lease that many ahead
        self.history: deque[tuple[float, int, str]] = deque()  # (local time, units, member) taken here
        self.opens_at = 0.0  # local time the shared window said the next lease fits
        self.fleet_held = 0  # units the whole fleet holds in the window (as the last lease saw it)
        self.fleet_in_use = 0  # of those, units of uses settled (not leased ahead: the fleet's reserves)
        #: the other processes' units as this process last saw the window, by owner: (local time they leave it,
        #: units, of those leased); what it paces on while alone (see _others_over)
        self.seen: dict[str, list[tuple[float, int, int]]] = {}
        self.seen_at = 0.0  # local time of that view
        self.since = group.clock()  # local time this window was made here (sends before it went around it)

    # ------------------------------------------------------------------ the Slots protocol (local, no I/O)
    def mine(self, now: float) -> int:
        """Units this process holds in the window: taken (its history) and in its open leases."""
        self._forget(now)
        return sum(units for _, units, _ in self.history) + sum(lease.used for lease in self.leases)

    def used(self, now: float) -> int:
        """Units this process holds in the window (its share of the fleet's use)."""
        return self.mine(now)

    def fleet_used(self, now: float) -> int:
        """Units the fleet used in the window, as the last lease saw it (at least this process's own): uses
        settled, not the slots leased ahead (each process keeps a reserve leased while idle; counted, 5 sent
        of an rpm 6 showed 6 in use). A process's uses in a lease still open show once it is settled."""
        return max(self.fleet_in_use, self.mine(now))

    def room(self, now: float) -> int:
        """What the lease has left (a pick asks before it takes: an empty lease has the next one leased)."""
        share = self._share_room(now)
        if not self.group.connected:
            return share if share is not None else 0
        left = self.left
        if left and now >= self.leases[0].at + self.window_s * USABLE_SHARE:  # a lease no longer usable
            left = sum(lease.units - lease.used for lease in self.leases if self._usable(lease, now))
        if left < 1:
            self.want = max(self.want, 1)
            self.group.wake()
        return left if share is None else min(left, share)

    def take(self, now: float, n: int = 1) -> bool:
        """Count ``n`` units down from the lease (a request larger than the whole budget takes all of it)."""
        n = min(n, self.limit)
        share = self._share_room(now)
        if share is not None and share < n:
            return False
        if not self.group.connected:  # Redis down: this process's share, written to the window when it is back
            self._taken_aside(now, n)
            return True
        for lease in self.leases:
            if lease.units - lease.used >= n and self._usable(lease, now):
                lease.used += n
                lease.last_use = now
                self.left -= n
                if self.short(now):  # the next batch is leased now, ahead of the next pick
                    self.want = max(self.want, 1)
                    self.group.wake()
                return True
        self.want = max(self.want, n)
        self.group.wake()
        return False

    def settle(self, now: float, held: int, used: int) -> None:
        extra = used - held
        if extra < 0:  # given back: free again in the lease it came from, while that lease is open
            for lease in reversed(self.leases):
                if lease.used >= -extra and now < lease.ends:
                    lease.used += extra
                    self.left -= extra
                    return
        elif extra > 0 and not self.take(now, extra):  # more than held: counted as taken now (the provider did)
            self._taken_aside(now, extra)
            self.group.wake()

    def _taken_aside(self, now: float, n: int) -> None:
        """``n`` units taken outside a lease: kept here, and written to the window at the next round that
        reaches Redis (a round that failed left the windows there: nothing else would count them)."""
        member, group = self.group.member_id(n), self.group
        self.history.append((now, n, member))
        if len(group.extra) >= MAX_EXTRA:  # Redis away for long: what left its window is not written back
            group.extra = [e for e in group.extra if e[1] > now - e[0].window_s][-MAX_EXTRA // 2:]
        group.extra.append((self, now, member))

    def opens_in(self, now: float, n: int = 1) -> float:
        n = min(n, self.limit)
        if self.room(now) >= n:
            return 0.0
        if self.want < n:  # a pick asks for more than the lease holds (a large prompt's tokens): lease that many
            self.want = n
            self.group.wake()
        share = self._share_room(now)
        if share is not None and share < n:
            return max(TICK_S, self._share_opens(now, n))
        return max(TICK_S, self.opens_at - now)

    def _usable(self, lease: _Lease, now: float) -> bool:
        """Whether picks may still take from ``lease``: past its end too (its slots stay held in Redis until the
        background settles it, a round or so late), but only within the first half of the window from when it
        was asked for. Redis holds an unsettled lease's entry that much longer than a window (see
        ``_lease_hold_ms``), so uses made of it late still count (a lease used on past that, 14 were sent in one
        second against a learnt 6)."""
        return now < lease.at + self.window_s * USABLE_SHARE

    # ------------------------------------------------------------------ pacing alone
    def _share_room(self, now: float) -> int | None:
        """Room within this process's share, while it paces alone (Redis down, or after a reconnect until the
        window holds every process's units again); None otherwise."""
        if self.group.connected and now >= self.group.alone_until:
            return None
        self._forget(now)
        return self._alone_room(now)

    def _alone_room(self, at: float) -> int:
        """This process's share, less its own units in the window at ``at`` and the others' beyond their shares
        (a window spent unevenly before Redis lost it, 20, 2 and 2 of 30: on shares alone the quiet two would
        take 8 more each). The sum over the fleet stays within the limit: a process with room is within its
        share and gives up every other's excess, so the excesses are paid for (README, "Redis down")."""
        return self.group.share(self.limit) - self._mine_at(at) - self._others_over(at)

    def _mine_at(self, at: float) -> int:
        edge = at - self.window_s
        return sum(units for t, units, _ in self.history if t > edge) + \
            sum(lease.used for lease in self.leases if lease.last_use > edge)

    def _others_over(self, at: float) -> int:
        """The other processes' units beyond their shares in the window at ``at``, as last seen (each kept until
        it surely left the window) and what each may have leased since: its reserve, less what it held leased
        then (a process leases only to top its reserve up); the latter until a lease's hold from going alone."""
        share, group = self.group.share(self.limit), self.group
        reserve = self.batch() + 1
        since = at < group.alone_since + group.hold_s(self)
        over = 0
        for parts in self.seen.values():
            units = sum(n for until, n, _ in parts if until > at)
            if since:
                units += max(0, reserve - sum(leased for _, _, leased in parts))
            over += max(0, units - share)
        if since:  # the others not in the view held nothing then
            over += max(0, group.processes() - 1 - len(self.seen)) * max(0, reserve - share)
        return over

    def _share_opens(self, now: float, n: int) -> float:
        """Seconds until the room alone fits ``n``: the first moment units leave the window (this process's
        own, the others' as last seen, the allowance for what they leased since) at which it does."""
        group, edge = self.group, self.window_s
        moments = {t + edge for t, _, _ in self.history} | {lease.last_use + edge for lease in self.leases}
        moments |= {until for parts in self.seen.values() for until, _, _ in parts}
        moments.add(group.alone_since + group.hold_s(self))
        for at in sorted(m for m in moments if m > now):
            if self._alone_room(at) >= n:
                return at - now
        return self.window_s

    def saw(self, now: float, others: dict[str, list[tuple[int, int, int]]], step_s: float) -> None:
        """A lease's answer told the others' units (by owner: steps of ``step_s`` until they leave, units,
        leased): the view this process paces on if it must pace alone."""
        self.seen = {owner: [(now + step * step_s, units, leased) for step, units, leased in parts]
                     for owner, parts in others.items()}
        self.seen_at = now

    def _forget(self, now: float) -> None:
        history, edge = self.history, now - self.window_s
        while history and history[0][0] <= edge:
            history.popleft()

    def batch(self) -> int:
        return max(1, self.limit // (LEASE_SHARE * max(1, self.group.processes())))

    def reserve(self) -> int:
        """Units kept leased while picks ask: a batch, and one more while the fleet's window has room for every
        process's (the next pick then finds one without waiting; near the limit, reserves would starve use)."""
        batch, procs = self.batch(), max(1, self.group.processes())
        return batch + 1 if self.fleet_held + procs * (batch + 1) <= self.limit else batch

    def short(self, now: float) -> int:
        """Units to lease to refill the reserve, once the open leases fell half a batch below it (0 until then):
        a pick that tops up every unit it takes costs a lease round trip per pick (a large budget, a batch of
        833,333: requests/s through the Redis store fell to 0.65x of the in-memory one). A lease that ends
        within two rounds counts as gone: its successor is leased before it ends, so picks find no gap."""
        left = self.left - sum(lease.units - lease.used for lease in self.leases if lease.ends - now < 2 * TICK_S)
        reserve = self.reserve()
        return reserve - left if left < reserve - self.batch() // 2 else 0

    def wanted(self, now: float) -> int:
        """Units the background leases this round: what the reserve lacks, or what a pick asked for (0: none)."""
        short = self.short(now)
        return max(short, self.want) if self.want or short > 0 else 0

    def lease_s(self) -> float:
        return min(MAX_LEASE_S, max(0.05, self.window_s / 10))


class SharedWindows:
    """Every shared window of this process and the background task that leases and settles their slots.

    ``redis`` gives the store's connection (None before it connects); ``processes`` the number of processes
    the fleet's heartbeats show (this one included); ``fingerprint(provider, label)`` the key's fingerprint
    (two configs that reuse a label for different keys never share a window)."""

    def __init__(self, prefix: str, instance: str, redis: Callable[[], Any], processes: Callable[[], int],
                 fingerprint: Callable[[str, str], str], log: Callable[[str], None] = lambda line: None,
                 clock: Callable[[], float] = time.time) -> None:
        self.prefix, self.instance, self._redis, self.processes = prefix, instance, redis, processes
        self.fingerprint, self.log, self.clock = fingerprint, log, clock
        self.slots: dict[str, SharedSlots] = {}
        self.logs: dict[str, SharedSends] = {}  # the fleet's accepted sends per key, for learnt limits
        self._learnt_window: dict[str, str] = {}  # a sends log's name -> the name of its key's learnt window
        #: per learnt window: this process's sends written to it outside a lease (local time, member), latest
        self._unpaced: dict[str, deque[tuple[float, str]]] = {}
        self.connected = True  # until a call says otherwise (the first lease tells)
        self.alone_until = 0.0  # local time until which each process also keeps to its share (after a reconnect)
        self.alone_since = 0.0  # local time this process last found the store away or the windows lost
        self.extra: list[tuple[SharedSlots, float, str]] = []  # used beyond what was held: to write
        self.offset_s = 0.0  # Redis's clock minus ours
        self.refused = 0  # entries of the shared windows refused (planted, malformed)
        self._epoch: str | None = None
        self._seq = itertools.count(1)
        self._tag = uuid.uuid4().hex[:8]
        self._wake: asyncio.Event | None = None
        self._said: set[str] = set()
        self._take: Any = None
        self._settle: Any = None
        self._soon = False  # a round is asked for within a tick of the last (see soon)
        self._last_round = float("-inf")  # local time the latest round started

    # ------------------------------------------------------------------ the WindowFactory
    def __call__(self, provider: str, label: str, what: str, limit: int, window_s: float) -> SharedSlots:
        """The shared window of ``what`` on ``provider``'s key ``label`` (one object per window; a new limit or
        window length replaces the old one's)."""
        span = "" if what == LEARNED else f":{window_s:g}s"  # rpm and rpd both count requests: two windows
        name = f"{self.prefix}:win:{provider}:{label}:{self.fingerprint(provider, label)}:{what}{span}"
        slots = self.slots.get(name)
        if slots is None:
            slots = self.slots[name] = SharedSlots(self, name, (provider, label, what), limit, window_s)
            edge = slots.since - window_s  # what this process sent before, written to the window: its own
            slots.history.extend((at, 1, member) for at, member in self._unpaced.get(name, ()) if at > edge)
        slots.limit, slots.window_s = limit, window_s
        return slots

    def sends(self, provider: str, label: str) -> SharedSends:
        """The fleet's accepted sends of ``provider``'s key ``label`` (or ``label@model``): learnt limits are
        fitted from them (core/learned.py ``SendLogs``; store/shared_sends.py)."""
        fingerprint = self.fingerprint(provider, label)
        name = f"{self.prefix}:sends:{provider}:{label}:{fingerprint}"
        log = self.logs.get(name)
        if log is None:
            log = self.logs[name] = SharedSends(name, self.soon)
            self._learnt_window[name] = f"{self.prefix}:win:{provider}:{label}:{fingerprint}:{LEARNED}"
        return log

    def member_id(self, units: int) -> str:
        return f"{self._tag}:{next(self._seq)}:{units}"

    def share(self, limit: int) -> int:
        """This process's share of ``limit`` while it paces alone."""
        return max(1, limit // max(1, self.processes()))

    def hold_s(self, slots: SharedSlots) -> float:
        """How long a lease holds its slots in the window (see ``_lease_hold_ms``)."""
        return self._lease_hold_ms(slots) / 1000

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def say_once(self, line: str) -> None:
        if line not in self._said:
            self._said.add(line)
            self.log(line)

    def usage(self, now: float) -> list[dict[str, Any]]:
        """Per window: its limit, what this process holds in it, what the fleet held at its last lease."""
        return [{"provider": s.provider, "key": s.label, "what": s.what, "limit": s.limit, "window_s": s.window_s,
                 "mine": s.mine(now), "fleet": s.fleet_used(now)} for s in list(self.slots.values())[:MAX_SHOWN]]

    # ------------------------------------------------------------------ the background task
    async def run(self) -> None:
        """Lease ahead of need, settle what ran out, write back after Redis lost the windows; never ends."""
        self._wake = asyncio.Event()
        me = asyncio.current_task()
        while True:  # asyncio.timeout, not wait_for: no task made for each wait and each round
            if me is not None and me.cancelling():  # a cancel a Redis call swallowed (redis-py #2028) still ends it
                raise asyncio.CancelledError
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._next_round_in(self.clock())):
                    await self._wake.wait()
            if self._soon:  # a fit waits for the fleet's sends: a round a tick after the last, not at once
                self._soon = False
                await asyncio.sleep(max(0.0, self._last_round + TICK_S - self.clock()))
            self._wake.clear()
            self._last_round = self.clock()
            try:  # a Redis call that hangs (redis-py retries with backoff) is a store that is away
                async with asyncio.timeout(ROUND_TIMEOUT_S):
                    await self._round()
            except asyncio.CancelledError:
                raise
            except Rejected as exc:
                self.refused += 1
                self.say_once(f"shared windows: dropped an answer of the store ({exc})")
            except Exception as exc:  # Redis unreachable: each process paces on its share
                self._down(exc)

    def _next_round_in(self, now: float) -> float:
        """Seconds until the background's next round is due (a pick that needs a lease wakes it sooner): a tick
        while anything waits (the store away, a lease asked for, a write owed, a fit waiting for the fleet's
        sends), else the first moment a lease ends or is to be followed, a log is to be synced or a window looked
        at, and at most ``VIEW_S``. A round every tick whatever was due cost an idle proxy 1.5% of a core."""
        if not self.connected or self._epoch is None or self.extra:
            return TICK_S
        due = now + VIEW_S
        for log in self.logs.values():
            if log.urgent:
                return TICK_S
            if log.pending or log.withdrawn or now < log.active_until:
                due = min(due, log.synced_at + EVERY_S)
        for slots in self.slots.values():
            if slots.wanted(now):  # a lease to ask for (until it is granted: each tick, as a pick would look)
                return TICK_S
            due = min(due, slots.seen_at + VIEW_S)
            for lease in slots.leases:  # its successor leased two ticks before it ends (SharedSlots.short)
                due = min(due, lease.ends - 2 * TICK_S, lease.at + slots.window_s * USABLE_SHARE)
        return min(VIEW_S, max(TICK_S, due - now))

    def soon(self) -> None:
        """A fit waits for the fleet's sends (SharedSends.known_until): a round within a tick."""
        if self._wake is not None and not self._soon:
            self._soon = True
            self._wake.set()

    async def _round(self) -> None:
        redis = self._redis()
        if redis is None or not (self.slots or self.logs):
            return  # the store has not started yet, or no key has a window: nothing to lease
        if self._take is None:
            self._take, self._settle = redis.register_script(TAKE_LUA), redis.register_script(SETTLE_LUA)
        if not self.connected or self._epoch is None:
            await self._rejoin(redis)
        now = self.clock()
        # a window not leased lately is looked at all the same (a lease of nothing): what the others hold in it is
        # what this process paces on if the store goes away. The looks go with the sends' logs: one round trip
        due = [slots for slots in list(self.slots.values()) if now - slots.seen_at >= VIEW_S and not slots.wanted(now)]
        if not await self._sync(redis, due):
            await self._rejoin(redis)  # Redis lost the windows: what was taken goes back first
            return
        now = self.clock()
        for slots in list(self.slots.values()):
            # the reserve is kept leased while idle too: a burst after a quiet spell finds its slots here (with
            # the reserve kept only after recent picks, the first picks of a burst found none, rested the key
            # and went elsewhere: k0 served 0-3 of its 6 in the fleet test); one lease round per lease_s.
            # The next lease comes before the ended ones are settled: picks go on from those until it is here
            # (settled first, a busy loop's round left a gap in which every pick was refused)
            wanted = slots.wanted(now)
            if wanted and not await self._lease(slots, wanted):
                await self._rejoin(redis)  # Redis lost the windows: what was taken goes back first
                return
            for lease in list(slots.leases):
                if now >= lease.ends or lease.used == lease.units:  # over, or spent: its use goes to its time
                    await self._end_lease(slots, lease)
        extra, self.extra = self.extra, []
        for slots, at, member in extra:
            if at <= now - slots.window_s:
                continue  # out of its window already
            await self._settle(keys=[slots.name], args=["", member, self._score(at), self._ms(slots)])

    async def _sync(self, redis: Any, due: list[SharedSlots]) -> bool:
        """The sends' logs synced (:meth:`_queue_sends`) and a look at each window of ``due``, in one round trip
        (none when there is nothing to do); False when Redis lost the windows since this process joined."""
        now = self.clock()
        active = [log for log in list(self.logs.values()) if log.due(now)]
        if not active and not due:
            return True
        # what would be due within half its period goes now too: the looks and the syncs fall into step, one round
        # trip per VIEW_S for both, not two rounds out of step (never later than due, at most a little sooner)
        due += [slots for slots in list(self.slots.values())
                if slots not in due and now - slots.seen_at >= VIEW_S / 2 and not slots.wanted(now)]
        active += [log for log in list(self.logs.values()) if log not in active and log.due(now, EVERY_S / 2)]
        from redis.exceptions import NoScriptError  # redis is imported with the store, not with this module

        asks = [self._ask(slots, 0) for slots in due]
        async with redis.pipeline(transaction=False) as pipe:
            out = self._queue_sends(pipe, active, now)
            sent = len(pipe)
            for ask in asks:  # EVALSHA itself: a script in a pipeline costs a SCRIPT EXISTS round trip first
                pipe.evalsha(self._take.sha, 2, ask.slots.name, self.marker, *ask.args)
            answers = await pipe.execute(raise_on_error=False)
        for answer in answers:
            if isinstance(answer, Exception) and not isinstance(answer, NoScriptError):
                raise answer
        if active:
            self._read_sends(active, out, answers[:sent], now)
        looked = answers[sent:]
        if any(isinstance(raw, NoScriptError) for raw in looked):  # Redis forgot the script (restarted): load it
            return await self._look(redis, due)
        return all([self._leased(ask, raw) for ask, raw in zip(asks, looked, strict=True)])

    def _queue_sends(self, pipe: Any, active: list[SharedSends], now: float) -> list[tuple[SharedSends, list[float],
                                                                                          list[float]]]:
        """Append this process's sends (and refusals) of the ``active`` logs to them and read the others' (every
        log sent on lately, in the round's one round trip; none while no key is): queued on ``pipe``."""
        if not active:
            return []
        for log in active:
            log.synced_at, log.urgent = now, False
        out = [(log, log.pending[:PER_ENTRY], log.withdrawn[:PER_ENTRY]) for log in active]
        pipe.time()
        for log, sent, refused in out:  # one entry per log and round (PER_ENTRY times at most: the rest next)
            if sent or refused:
                pipe.xadd(log.name, {"p": self._tag, "t": self._listed(sent), "r": self._listed(refused)},
                          maxlen=MAX_SENDS, approximate=True)
                pipe.pexpire(log.name, int(RETENTION_S * 1000))
                self._write_unpaced(pipe, self._learnt_window[log.name], sent, refused)
        start = self._score(now - RETENTION_S)
        pipe.xread({log.name: log.last_id or f"{start}-0" for log in active}, count=MAX_SENDS)
        return out

    def _read_sends(self, active: list[SharedSends], out: list[tuple[SharedSends, list[float], list[float]]],
                    answers: list[Any], now: float) -> None:
        """The answers of :meth:`_queue_sends`'s commands: the others' sends into their logs."""
        for log, sent, refused in out:
            del log.pending[:len(sent)], log.withdrawn[:len(refused)]
        sec, usec = answers[0]
        redis_ms = int(sec) * 1000 + int(usec) // 1000
        self.offset_s = redis_ms / 1000 - (now + self.clock()) / 2
        by_name = {log.name: log for log in active}
        read = answers[-1] or []
        complete = set(by_name)
        for name, entries in (read.items() if isinstance(read, dict) else read):
            into = by_name.get(name)
            if into is None:
                continue
            if len(entries) >= MAX_SENDS:
                complete.discard(name)  # more to read: not known up to now yet
            for entry_id, fields in entries:
                into.last_id = entry_id
                try:
                    sent_ms, refused_ms = send_times(fields, self._tag, redis_ms)
                except ValueError as exc:
                    self.refused += 1
                    self.say_once(f"shared windows: refused an entry of {into.name} ({exc})")
                    continue
                if into.offset_s is None:  # one offset per log: a refusal finds its send at the same local time
                    into.offset_s = self.offset_s
                for ms in sent_ms:
                    into.heard(ms / 1000 - into.offset_s, now)
                for ms in refused_ms:
                    into.unheard(ms / 1000 - into.offset_s)
        for name in complete:
            by_name[name].read(now)

    def _write_unpaced(self, pipe: Any, name: str, sent: list[float], refused: list[float]) -> None:
        """This process's sends on a key that its learnt window did not pace (none here yet: no limit learnt,
        or not adopted yet) go into that window all the same, as uses: once a limit is learnt the window holds
        what the provider still counts (it started empty, and the fleet's first leases after a 429 drew more
        429s: 3 of the 4 in a fleet-limits run). What was refused (a 429) is taken out again."""
        slots = self.slots.get(name)
        since = slots.since if slots is not None else float("inf")
        written = self._unpaced.setdefault(name, deque(maxlen=MAX_SENDS))
        members: dict[str, int] = {}
        for at in sent:
            if at < since:
                member = self.member_id(1)
                written.append((at, member))
                members[member] = self._score(at)
                if slots is not None:
                    insort(slots.history, (at, 1, member))
        if members:
            pipe.zadd(name, members)
            pipe.zremrangebyrank(name, 0, -(MAX_SENDS + 1))
            pipe.pexpire(name, int(RETENTION_S * 1000))
        if refused and written:
            gone = set(refused)
            if drop := [member for at, member in written if at in gone]:
                pipe.zrem(name, *drop)

    def _listed(self, times: list[float]) -> str:
        return ",".join(str(self._score(at)) for at in times)

    def _ask(self, slots: SharedSlots, want: int) -> _Ask:
        """A lease of up to ``want`` units of ``slots`` (0: a look), as the script is asked for it."""
        member = f"{self._tag}:L{next(self._seq)}"  # "L": a lease (the script tells it from what was used)
        window_ms = self._ms(slots)
        hold_ms, step_ms = self._lease_hold_ms(slots), max(1, window_ms // VIEW_STEPS)
        args = [window_ms, slots.limit, want, member, self._epoch or "", hold_ms, self._tag, step_ms]
        return _Ask(slots, want, member, self.clock(), hold_ms, step_ms, args)

    async def _lease(self, slots: SharedSlots, want: int) -> bool:
        """Lease up to ``want`` units of ``slots``; False when Redis lost the windows since this process joined."""
        ask = self._ask(slots, want)
        return self._leased(ask, await self._take(keys=[slots.name, self.marker], args=ask.args))

    async def _look(self, redis: Any, due: list[SharedSlots]) -> bool:
        """A lease of nothing at each window of ``due``, in one round trip, the script loaded first if Redis lacks
        it (after a restart: :meth:`_sync` calls it by its hash); False when Redis lost the windows."""
        asks = [self._ask(slots, 0) for slots in due]
        async with redis.pipeline(transaction=False) as pipe:
            for ask in asks:
                await self._take(keys=[ask.slots.name, self.marker], args=ask.args, client=pipe)
            raws = await pipe.execute()
        return all([self._leased(ask, raw) for ask, raw in zip(asks, raws, strict=True)])

    def _leased(self, ask: _Ask, raw: Any) -> bool:
        """Take the script's answer to ``ask``; False when Redis lost the windows since this process joined."""
        slots, want, hold_ms, step_ms = ask.slots, ask.want, ask.hold_ms, ask.step_ms
        got, redis_ms, opens_ms, held, refused, lost, in_use = lease_answer(raw, want, slots.limit, hold_ms)
        if lost:
            return False
        others = others_in_view(raw[7], slots.limit, hold_ms // step_ms + 1) if len(raw) > 7 else None
        now = self.clock()
        self.offset_s = redis_ms / 1000 - (ask.sent + now) / 2
        if others is not None and self.connected and now >= self.alone_until:
            # not while alone, nor after a reconnect until every process's units are back: until then the
            # window misses some, and the view from before is what each paces on
            slots.saw(now, others, step_ms / 1000)
        self.connected = True
        slots.fleet_held, slots.fleet_in_use = held, in_use
        if refused:
            self.refused += refused
            self.say_once(f"shared windows: refused {refused} entries of {slots.name} that were not what they "
                          "claim (malformed, over the limit or in the future)")
        if got:
            slots.leases.append(_Lease(f"{ask.member}:{got}", got, 0, ask.sent, now, now + slots.lease_s()))
            slots.left += got
            slots.want = 0
        elif want:
            slots.opens_at = now + opens_ms / 1000
        return True

    async def _end_lease(self, slots: SharedSlots, lease: _Lease) -> None:
        """Replace the lease's entry by what was used, at its last use; the rest is free again."""
        slots.leases.remove(lease)
        slots.left -= lease.units - lease.used
        used = lease.used
        member = self.member_id(used) if used else ""
        if used:
            slots.history.append((lease.last_use, used, member))
        await self._settle(keys=[slots.name], args=[lease.member, member, self._score(lease.last_use),
                                                    self._ms(slots)])

    def _down(self, exc: BaseException) -> None:
        if self.connected:
            self.connected = False
            self.alone_since = self.clock()
            self._drop_leases()
            if not self.slots:  # only the fleet's sends were read: no window paces on a share (the store says why)
                return
            self.say_once(f"shared windows: the store is unreachable ({type(exc).__name__}): each process paces on "
                          f"its own share of each key's limit (limit / {max(1, self.processes())} processes seen)")

    def _drop_leases(self) -> None:
        """The open leases are gone (Redis away or emptied): what was used of them stays counted here."""
        for slots in self.slots.values():
            for lease in slots.leases:
                if lease.used:
                    slots.history.append((lease.last_use, lease.used, self.member_id(lease.used)))
            slots.leases, slots.left = [], 0

    @property
    def marker(self) -> str:
        """The Redis key whose value names the windows' epoch: gone or changed when Redis lost them."""
        return f"{self.prefix}:win:epoch"

    async def _rejoin(self, redis: Any) -> None:
        """(Re)connected: if Redis lost the windows (restarted, flushed), write back what this process took
        within a window; after any interruption keep to the share for one more window (the others may not
        have written theirs back yet)."""
        epoch = await redis.get(self.marker)
        if epoch is None:
            await redis.set(self.marker, uuid.uuid4().hex, nx=True)
            epoch = await redis.get(self.marker)
        lost = self._epoch is not None and epoch != self._epoch
        was_down = not self.connected
        if lost:
            if not was_down:  # emptied while it answered (flushed, or restarted between two rounds)
                self.alone_since = self.clock()
            self._drop_leases()
            await self._reseed(redis)
        self._epoch = epoch if isinstance(epoch, str) else None
        self.connected = True
        if was_down or lost:
            self.alone_until = self.clock() + max((s.window_s for s in self.slots.values()), default=0.0)
            self.say_once("shared windows: the store is back: windows shared again (what each process took "
                          "while it was away is counted)")

    async def _reseed(self, redis: Any) -> None:
        now = self.clock()
        async with redis.pipeline(transaction=False) as pipe:
            for slots in self.slots.values():
                slots._forget(now)
                if slots.history:
                    pipe.zadd(slots.name, {member: float(self._score(t)) for t, _, member in slots.history})
                    pipe.pexpire(slots.name, self._ms(slots) * 2 + 1000)
            await pipe.execute()

    def _score(self, local: float) -> int:
        return int((local + self.offset_s) * 1000)

    @staticmethod
    def _ms(slots: SharedSlots) -> int:
        return max(1, int(slots.window_s * 1000))

    @staticmethod
    def _lease_hold_ms(slots: SharedSlots) -> int:
        """How long a lease not settled yet holds its slots in Redis: a use of it may come up to
        ``USABLE_SHARE`` of the window after it was granted (plus a round's time to reach us), and the provider
        counts that use a whole window from then. Released at once when it is settled."""
        return max(1, int((slots.window_s * (1 + USABLE_SHARE) + ROUND_TIMEOUT_S) * 1000))

    async def give_back(self) -> None:
        """On exit: settle every open lease (what was not used is free for the others at once)."""
        for slots in list(self.slots.values()):
            for lease in list(slots.leases):
                with contextlib.suppress(Exception):
                    await self._end_lease(slots, lease)
