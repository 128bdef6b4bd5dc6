"""Event history in SQLite (WAL) in the user data dir: last night's incident, readable next morning.

Holds engine events, per-minute usage (requests, tokens, cost per key and model) and the last known
state of each key. Retention is bounded (default 30 days). No secret is ever written here: reasons are
scrubbed of every known secret before they are stored.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, NamedTuple, ParamSpec, TypeVar

from pooltui.core.budget import Spend, month_start_of, period_starts
from pooltui.core.events import Event, EventKind
from pooltui.core.masking import scrub
from pooltui.store.history_writer import HistoryWriter, Statement, inserts, run_statements
from pooltui.store.paths import private_dir

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, provider TEXT NOT NULL, key TEXT, kind TEXT NOT NULL,
    status INTEGER, reason TEXT, action TEXT, request_id INTEGER);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
CREATE TABLE IF NOT EXISTS usage (
    bucket INTEGER NOT NULL, provider TEXT NOT NULL, key TEXT NOT NULL, model TEXT NOT NULL,
    requests INTEGER NOT NULL, ok INTEGER NOT NULL, tokens_in INTEGER NOT NULL, tokens_out INTEGER NOT NULL,
    cost REAL NOT NULL, PRIMARY KEY (bucket, provider, key, model));
CREATE TABLE IF NOT EXISTS key_status (
    provider TEXT NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL, until REAL, source TEXT, reason TEXT,
    status INTEGER, changed_at REAL, verified_at REAL, verify_result TEXT, PRIMARY KEY (provider, key));
CREATE TABLE IF NOT EXISTS pool_state (provider TEXT PRIMARY KEY, last_pick TEXT, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY, provider TEXT NOT NULL, since REAL NOT NULL, ended REAL NOT NULL,
    limited INTEGER NOT NULL, limited_keys INTEGER NOT NULL, errors INTEGER NOT NULL, failed INTEGER NOT NULL,
    fallback_served INTEGER NOT NULL, summary TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS incidents_since ON incidents(since);
CREATE TABLE IF NOT EXISTS requests (
    ts REAL NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL, tokens_in INTEGER NOT NULL,
    tokens_out INTEGER NOT NULL, outcome TEXT NOT NULL, latency_ms REAL NOT NULL);
CREATE INDEX IF NOT EXISTS requests_ts ON requests(ts);
CREATE TABLE IF NOT EXISTS key_limits (
    provider TEXT NOT NULL, key TEXT NOT NULL, requests_limit INTEGER, tokens_limit INTEGER, seen REAL NOT NULL,
    PRIMARY KEY (provider, key));
CREATE TABLE IF NOT EXISTS key_accounts (
    provider TEXT NOT NULL, key TEXT NOT NULL, org TEXT, shares TEXT, seen REAL NOT NULL, PRIMARY KEY (provider, key));
CREATE TABLE IF NOT EXISTS learned_limits (
    provider TEXT NOT NULL, key TEXT NOT NULL, model TEXT NOT NULL, fingerprint TEXT NOT NULL,
    requests INTEGER NOT NULL, window_s REAL NOT NULL, sure REAL NOT NULL, seen REAL NOT NULL,
    PRIMARY KEY (provider, key, model));
"""
#: the furthest ahead a key may be held (cooling, parked until a quota resets): a month and a day. An ``until``
#: beyond it is written as this bound, and one already stored (by an older version) is released on open
MAX_HOLD_S = 32 * 86400.0
MAX_RETENTION_DAYS = 36500  # a century: more overflows the cutoff of what is pruned
#: events that come in storms: a key's repeats of one of these within FOLD_S seconds are stored as one row
REPEATABLE = frozenset({EventKind.RATE_LIMITED, EventKind.ROTATED, EventKind.EXHAUSTED_POOL, EventKind.SERVER_ERROR,
                        EventKind.TRANSPORT})
FOLD_S = 10.0
# columns added after the first release: (table, column, type); added when a database lacks them
_MIGRATIONS = (("key_status", "requests", "INTEGER"), ("key_status", "fingerprint", "TEXT"),
               ("events", "change", "TEXT"),
               ("events", "repeats", "INTEGER"),  # events: how many like it the row stands for (NULL: 1)
               # usage: prompt-cache tokens read, written, the cacheable input, and the cost with no cache use
               *(("usage", name, "INTEGER NOT NULL DEFAULT 0") for name in ("cache_read", "cache_write", "cacheable")),
               ("usage", "cost_no_cache", "REAL NOT NULL DEFAULT 0"),
               # usage: what round-robin without affinity would have paid more (core/round_robin_cost.py)
               ("usage", "round_robin_extra", "REAL NOT NULL DEFAULT 0"))


def bounded_until(until: float | None, now: float | None = None) -> float | None:
    """``until`` no further than :data:`MAX_HOLD_S` ahead (None stays None; NaN is no time at all)."""
    if until is None or until != until:
        return None
    return min(float(until), (now or time.time()) + MAX_HOLD_S)


def fold_repeats(events: Iterable[Event]) -> list[tuple[Event, int]]:
    """Each event with how many it stands for: the repeatable kinds of one key (and status) within the same
    :data:`FOLD_S` window are folded into the first of them, and so are a key's identical state changes
    ("cooling over", "back in rotation" after each 429); any other event stands for itself."""
    out: list[tuple[Event, int]] = []
    first: dict[tuple[str, str | None, str, int | None, str, int], int] = {}
    for e in events:
        if e.kind in REPEATABLE or e.kind is EventKind.STATE:
            what = f"{e.reason}\n{e.action}" if e.kind is EventKind.STATE else ""
            where = (e.provider, e.key, str(e.kind), e.status, what, int(e.ts // FOLD_S))
            if where in first:
                i = first[where]
                out[i] = (out[i][0], out[i][1] + 1)
                continue
            first[where] = len(out)
        out.append((e, 1))
    return out


P = ParamSpec("P")
R = TypeVar("R")


def settled(read: Callable[Concatenate[History, P], R]) -> Callable[Concatenate[History, P], R]:
    """A read that first waits for the writes asked for before it (with the history writing behind)."""
    @functools.wraps(read)
    def after_writes(self: History, *args: P.args, **kwargs: P.kwargs) -> R:
        if self.writer is not None:
            self.writer.settle()
        return read(self, *args, **kwargs)
    return after_writes


class HistoryError(Exception):
    """The history database cannot be used (the message names the file and what to do)."""


@dataclass(slots=True)
class KeyStatus:
    provider: str
    key: str
    state: str
    until: float | None
    source: str | None
    reason: str
    status: int | None
    changed_at: float | None
    verified_at: float | None
    verify_result: str | None
    fingerprint: str | None = None  # of the secret the state was learnt with (a new secret starts afresh)


class LearnedRow(NamedTuple):
    """A limit learnt from 429s: ``requests`` per ``window_s`` for one key (and ``model``, "" for the key)."""

    key: str
    model: str
    fingerprint: str
    requests: int
    window_s: float
    sure: float


class AccountRow(NamedTuple):
    """What tells a key's account: the fingerprint of the organization its answers named (core/accounts.py),
    and the labels of the keys found to share its account (itself included), comma-separated."""

    org: str | None
    shares: str | None


def _to_wal(db: sqlite3.Connection, timeout_s: float = 10.0) -> None:
    """Switch ``db`` to WAL. SQLite answers "database is locked" at once, without waiting out the connection's
    timeout, when processes open one new history together and another is switching it: try again until then."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


class History:
    """The SQLite history database."""

    def __init__(self, path: Path, retention_days: int = 30) -> None:
        private_dir(path.parent)
        self.path = path
        self.retention_days = max(1, min(retention_days, MAX_RETENTION_DAYS))
        self.db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        #: with ``write_behind``: the thread that does the writes, off the caller's thread (the event loop's)
        self.writer: HistoryWriter | None = None
        self._gathered: list[Statement] | None = None  # inside ``gathered``: the writes held until its end
        try:
            _to_wal(self.db)
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            self._migrate()
            self.release_impossible_holds()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise HistoryError(f"{path} is not a readable history database ({exc}); it is left as it is: "
                               "`pooltui doctor --repair-history` moves it aside and starts a new one") from None
        try:
            path.chmod(0o600)
        except OSError:
            pass
        self.prune()

    def _columns(self, table: str) -> set[str]:
        return {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}

    def _migrate(self) -> None:
        """Add the columns later versions keep, under the write lock: processes opening one new history at once
        (a fleet's proxies starting together) each saw a column missing, and the second to add it failed."""
        if all(column in self._columns(table) for table, column, _ in _MIGRATIONS):
            return
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")  # one at a time; the next finds what is done and skips it
            for table, column, kind in _MIGRATIONS:
                if column not in self._columns(table):
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    @settled
    def release_impossible_holds(self, now: float | None = None) -> int:
        """Put back to ok the keys held further ahead than :data:`MAX_HOLD_S` (or until a time that is not a
        number): no setting or provider can ask that, so the row is a poisoned one; returns how many."""
        with self.db:
            return self.db.execute(
                "UPDATE key_status SET state = 'ok', until = NULL, source = NULL, reason = '' WHERE until IS NOT NULL"
                " AND (typeof(until) NOT IN ('real', 'integer') OR until > ?)",
                ((now or time.time()) + MAX_HOLD_S,)).rowcount

    def write_behind(self) -> None:
        """From now on the writes go to a thread of their own (one connection, in order, what waits at once in one
        transaction): the caller (the event loop) does not wait for the disk. Reads wait for what was asked before
        them; ``settle`` waits for every write asked so far, ``close`` writes what is left."""
        if self.writer is None or not self.writer.alive:
            self.writer = HistoryWriter(self._connect_writer)

    def _connect_writer(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def settle(self) -> None:
        """Every write asked for so far is in the database when this returns."""
        if self.writer is not None:
            self.writer.settle()

    @contextlib.contextmanager
    def gathered(self) -> Iterator[None]:
        """The writes made inside go to the writer thread as one (a flush's writes wake it once, not per table)."""
        if self.writer is None or self._gathered is not None:
            yield
            return
        held: list[Statement] = []
        self._gathered = held
        try:
            yield
        finally:
            self._gathered = None
            if held:
                self.writer.submit(held)

    def _write(self, *statements: Statement) -> None:
        """``statements`` in one transaction: now, or by the writer thread when the history writes behind."""
        if self._gathered is not None:
            self._gathered.extend(statements)
            return
        if self.writer is not None:
            self.writer.submit(list(statements))
            return
        self.db.execute("BEGIN")
        try:
            run_statements(self.db, statements)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.db.close()

    def save_rotation(self, provider: str, last: str | None, requests: dict[str, int]) -> None:
        """The pool's rotation: the last key picked and each key's request count (kept with the key states)."""
        now = time.time()
        self._write(("INSERT INTO pool_state VALUES (?,?,?) ON CONFLICT(provider) DO UPDATE SET"
                     " last_pick = excluded.last_pick, updated = excluded.updated", (provider, last, now), False),
                    ("INSERT INTO key_status (provider, key, state, changed_at, requests) VALUES (?,?,'ok',?,?)"
                     " ON CONFLICT(provider, key) DO UPDATE SET requests = excluded.requests",
                     [(provider, label, now, n) for label, n in requests.items()], True))

    def add_requests(self, provider: str, requests: dict[str, int]) -> None:
        """Requests keys served elsewhere (an import), added to their lifetime counts (least-used sees them)."""
        now = time.time()
        self._write(("INSERT INTO key_status (provider, key, state, changed_at, requests) VALUES (?,?,'ok',?,?)"
                     " ON CONFLICT(provider, key) DO UPDATE SET requests = COALESCE(requests, 0) + excluded.requests",
                     [(provider, label, now, n) for label, n in requests.items()], True))

    @settled
    def rotation(self, provider: str) -> tuple[str | None, dict[str, int]]:
        row = self.db.execute("SELECT last_pick FROM pool_state WHERE provider = ?", (provider,)).fetchone()
        counts = {k: n for k, n in self.db.execute(
            "SELECT key, requests FROM key_status WHERE provider = ? AND requests IS NOT NULL", (provider,))}
        return (row[0] if row else None), counts

    @settled
    def prune(self, now: float | None = None) -> int:
        """Delete what is older than the retention period; returns rows removed."""
        cutoff = (now or time.time()) - self.retention_days * 86400
        with self.db:
            a = self.db.execute("DELETE FROM events WHERE ts < ?", (cutoff,)).rowcount
            b = self.db.execute("DELETE FROM usage WHERE bucket < ?", (int(cutoff),)).rowcount
            c = self.db.execute("DELETE FROM incidents WHERE ended < ?", (cutoff,)).rowcount
            d = self.db.execute("DELETE FROM requests WHERE ts < ?", (cutoff,)).rowcount
            e = self.db.execute("DELETE FROM learned_limits WHERE seen < ?", (cutoff,)).rowcount
        return a + b + c + d + e

    # -------------------------------------------------------------- writing
    def add_events(self, events: Iterable[Event]) -> None:
        """Store events; repeats (a key's 429s, rotations, errors within :data:`FOLD_S`) are one row each, the
        first, that says how many it stands for: a 429 storm grows the history by its span, not its size."""
        rows = [(e.ts, e.provider, e.key, str(e.kind), e.status, scrub(e.reason), scrub(e.action), e.request_id,
                 e.change.value if e.change else None, n if n > 1 else None) for e, n in fold_repeats(events)]
        if rows:
            self._write(*inserts("INSERT INTO events (ts, provider, key, kind, status, reason, action, request_id,"
                                 " change, repeats) VALUES ", 10, rows))

    def add_incident(self, inc: dict[str, Any]) -> None:
        """An incident that ended (see ``pooltui.session.incident``): its counts and its one-line summary."""
        self._write(("INSERT INTO incidents (provider, since, ended, limited, limited_keys, errors, failed,"
                     " fallback_served, summary) VALUES (?,?,?,?,?,?,?,?,?)",
                     (inc["provider"], inc["since"], inc["ended"] or inc["last"], inc["limited"],
                      len(inc["limited_keys"]), inc["errors"], inc["failed"], inc["fallback_served"],
                      scrub(inc["summary"])), False))

    @settled
    def incidents(self, since: float, provider: str | None = None) -> list[dict[str, Any]]:
        """Incidents that ended after ``since``, oldest first."""
        sql = ("SELECT provider, since, ended, limited, limited_keys, errors, failed, fallback_served, summary"
               " FROM incidents WHERE ended >= ?")
        args: list[Any] = [since]
        if provider:
            sql += " AND provider = ?"
            args.append(provider)
        cols = ("provider", "since", "ended", "limited", "limited_keys", "errors", "failed", "fallback_served",
                "summary")
        return [dict(zip(cols, r, strict=True)) for r in self.db.execute(sql + " ORDER BY since", args)]

    def add_request_records(self, records: Iterable[Any]) -> None:
        """Callers' requests as a whole (``RequestRecord``: time, provider, model, tokens, outcome, latency;
        never a prompt or a key): what ``pooltui replay`` rebuilds a workload from."""
        rows = [(r.ts, r.provider, r.model, r.tokens_in, r.tokens_out, r.outcome, r.latency_s * 1000)
                for r in records]  # (a row of expressions, ``?*1000``, costs SQLite more: it compares them all)
        if rows:
            self._write(*inserts("INSERT INTO requests VALUES ", 7, rows))

    @settled
    def request_records(self, since: float, provider: str | None = None) -> list[dict[str, Any]]:
        """Recorded callers' requests since ``since``, oldest first."""
        sql = "SELECT ts, provider, model, tokens_in, tokens_out, outcome, latency_ms FROM requests WHERE ts >= ?"
        args: list[Any] = [since]
        if provider:
            sql, args = sql + " AND provider = ?", [*args, provider]
        names = ("ts", "provider", "model", "tokens_in", "tokens_out", "outcome", "latency_ms")
        return [dict(zip(names, row, strict=True)) for row in self.db.execute(sql + " ORDER BY ts", args)]

    def set_key_limits(self, provider: str, rows: Iterable[tuple[str, int | None, int | None]]) -> None:
        """The limits a provider's headers last stated for its keys: (key, requests, tokens) per window."""
        now = time.time()
        self._write(("INSERT INTO key_limits VALUES (?,?,?,?,?) ON CONFLICT(provider, key) DO UPDATE SET"
                     " requests_limit = excluded.requests_limit, tokens_limit = excluded.tokens_limit,"
                     " seen = excluded.seen", [(provider, key, req, tok, now) for key, req, tok in rows], True))

    @settled
    def key_limits(self, provider: str) -> dict[str, tuple[int | None, int | None]]:
        return {k: (r, t) for k, r, t in self.db.execute(
            "SELECT key, requests_limit, tokens_limit FROM key_limits WHERE provider = ?", (provider,))}

    def set_accounts(self, provider: str, rows: Iterable[tuple[str, str | None, str | None]]) -> None:
        """(key, org fingerprint, shares) per key; a None leaves what was stored."""
        self._write(self._accounts_statement(provider, rows))

    @staticmethod
    def _accounts_statement(provider: str, rows: Iterable[tuple[str, str | None, str | None]]) -> Statement:
        now = time.time()
        return ("INSERT INTO key_accounts VALUES (?,?,?,?,?) ON CONFLICT(provider, key) DO UPDATE SET"
                " org = COALESCE(excluded.org, org), shares = COALESCE(excluded.shares, shares), seen = excluded.seen",
                [(provider, key, org, shares, now) for key, org, shares in rows], True)

    @settled
    def accounts(self, provider: str | None = None) -> dict[tuple[str, str], AccountRow]:
        """Each key's :class:`AccountRow` (of ``provider``, or all)."""
        rows = self.db.execute("SELECT provider, key, org, shares FROM key_accounts WHERE ? IS NULL OR provider = ?",
                               (provider, provider))
        return {(p, k): AccountRow(org, shares) for p, k, org, shares in rows}

    def set_learned_limits(self, provider: str, rows: Iterable[LearnedRow]) -> None:
        """Limits learnt from 429s (no header stated them), per key and model ("" for the key as a whole), with
        the fingerprint of the secret they were learnt on."""
        now = time.time()
        self._write(("INSERT INTO learned_limits VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(provider, key, model) DO UPDATE"
                     " SET fingerprint = excluded.fingerprint, requests = excluded.requests,"
                     " window_s = excluded.window_s, sure = excluded.sure, seen = excluded.seen",
                     [(provider, r.key, r.model, r.fingerprint, r.requests, r.window_s, r.sure, now) for r in rows],
                     True))

    @settled
    def learned_limits(self, provider: str, since: float = 0.0) -> list[LearnedRow]:
        """The limits learnt for ``provider``'s keys, seen since ``since``."""
        return [LearnedRow(*row) for row in self.db.execute(
            "SELECT key, model, fingerprint, requests, window_s, sure FROM learned_limits WHERE provider = ?"
            " AND seen >= ? ORDER BY key, model", (provider, since))]

    def add_usage(self, rows: Iterable[tuple]) -> None:
        """Rows of (minute bucket, provider, key, model, requests, ok, tokens_in, tokens_out, cost), optionally
        followed by (cache_read, cache_write, cacheable, cost_no_cache, round_robin_extra)."""
        full = [(*r, *(0, 0, 0, 0.0, 0.0)[len(r) - 9:]) if len(r) < 14 else tuple(r) for r in rows]
        if full:
            self._write((
                    "INSERT INTO usage (bucket, provider, key, model, requests, ok, tokens_in, tokens_out, cost,"
                    " cache_read, cache_write, cacheable, cost_no_cache, round_robin_extra)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                    " ON CONFLICT(bucket, provider, key, model) DO UPDATE"
                    " SET requests = requests + excluded.requests, ok = ok + excluded.ok,"
                    " tokens_in = tokens_in + excluded.tokens_in, tokens_out = tokens_out + excluded.tokens_out,"
                    " cost = cost + excluded.cost, cache_read = cache_read + excluded.cache_read,"
                    " cache_write = cache_write + excluded.cache_write, cacheable = cacheable + excluded.cacheable,"
                    " cost_no_cache = cost_no_cache + excluded.cost_no_cache,"
                    " round_robin_extra = round_robin_extra + excluded.round_robin_extra", full, True))

    def set_key_status(self, provider: str, key: str, state: str, until: float | None = None,
                       source: str | None = None, reason: str = "", status: int | None = None,
                       changed_at: float | None = None, fingerprint: str | None = None) -> None:
        self._write((
            "INSERT INTO key_status (provider, key, state, until, source, reason, status, changed_at, fingerprint)"
            " VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(provider, key) DO UPDATE SET state = excluded.state,"
            " until = excluded.until, source = excluded.source, reason = excluded.reason,"
            " status = excluded.status, changed_at = excluded.changed_at,"
            " fingerprint = COALESCE(excluded.fingerprint, fingerprint)",
            (provider, key, state, bounded_until(until), source, scrub(reason), status, changed_at or time.time(),
             fingerprint), False))

    def set_verified(self, provider: str, key: str, result: str, when: float | None = None,
                     org: str | None = None) -> None:
        """A verification's result (and the fingerprint of the organization its answer named, if any)."""
        when = when or time.time()
        accounts = [self._accounts_statement(provider, [(key, org, None)])] if org is not None else []
        self._write(*accounts, (
            "INSERT INTO key_status (provider, key, state, verified_at, verify_result, changed_at)"
            " VALUES (?,?,?,?,?,?) ON CONFLICT(provider, key) DO UPDATE SET verified_at = excluded.verified_at,"
            " verify_result = excluded.verify_result", (provider, key, "ok", when, result, when), False))

    @settled
    def clear_key_status(self, provider: str, key: str | None = None, states: tuple[str, ...] = ()) -> int:
        """Put keys back to ok (those in ``states``, or any state); returns how many changed."""
        sql = "UPDATE key_status SET state = 'ok', until = NULL, source = NULL, reason = '' WHERE provider = ?"
        args: list[Any] = [provider]
        if key is not None:
            sql += " AND key = ?"
            args.append(key)
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args.extend(states)
        else:
            sql += " AND state != 'ok'"
        with self.db:
            return self.db.execute(sql, args).rowcount

    def forget_key(self, provider: str, key: str) -> None:
        self._write(("DELETE FROM key_status WHERE provider = ? AND key = ?", (provider, key), False),
                    ("DELETE FROM key_accounts WHERE provider = ? AND key = ?", (provider, key), False))

    # -------------------------------------------------------------- reading
    @settled
    def key_statuses(self, provider: str | None = None) -> dict[tuple[str, str], KeyStatus]:
        sql = ("SELECT provider, key, state, until, source, reason, status, changed_at, verified_at, verify_result,"
               " fingerprint FROM key_status")
        rows = self.db.execute(sql + (" WHERE provider = ?" if provider else ""),
                               (provider,) if provider else ()).fetchall()
        return {(r[0], r[1]): KeyStatus(*r) for r in rows}

    @settled
    def events(self, since: float, provider: str | None = None, limit: int = 1000, *,
               folded: bool = False) -> list[dict[str, Any]]:
        """The last ``limit`` events since ``since``, oldest first. A stored row that stands for several
        events (see :func:`fold_repeats`) comes back as that many events, or with ``folded`` as itself with its
        ``repeats``."""
        sql = ("SELECT ts, provider, key, kind, status, reason, action, request_id, change, COALESCE(repeats, 1)"
               " FROM events WHERE ts >= ?")
        args: list[Any] = [since]
        if provider:
            sql += " AND provider = ?"
            args.append(provider)
        sql += " ORDER BY ts DESC, id DESC LIMIT ?"
        args.append(limit)
        cols = ("ts", "provider", "key", "kind", "status", "reason", "action", "request_id", "change")
        out: list[dict[str, Any]] = []
        for *row, repeats in self.db.execute(sql, args):
            event = dict(zip(cols, row, strict=True))
            if folded:
                out.append({**event, "repeats": repeats})
            else:
                out.extend(dict(event) for _ in range(min(repeats, limit - len(out))))
            if len(out) >= limit:
                break
        return out[::-1]

    @settled
    def knows_provider(self, provider: str) -> bool:
        """True when any event, usage or request of ``provider`` is kept (a provider removed from the config
        keeps its past)."""
        return any(self.db.execute(f"SELECT 1 FROM {table} WHERE provider = ? LIMIT 1", (provider,)).fetchone()
                   for table in ("events", "usage", "requests"))

    @settled
    def usage_rows(self, since: float) -> list[tuple[int, str, str, int]]:
        """(minute bucket, provider, key, requests) since ``since``, oldest first."""
        return self.db.execute("SELECT bucket, provider, key, SUM(requests) FROM usage WHERE bucket >= ?"
                               " GROUP BY bucket, provider, key ORDER BY bucket", (int(since),)).fetchall()

    @settled
    def ok_per_minute(self, since: float, provider: str) -> dict[int, int]:
        """Successful upstream calls of ``provider`` per minute bucket since ``since``."""
        return {int(b): int(ok or 0) for b, ok in self.db.execute(
            "SELECT bucket, SUM(ok) FROM usage WHERE bucket >= ? AND provider = ? GROUP BY bucket",
            (int(since), provider))}

    @settled
    def usage(self, since: float, by: str = "key", provider: str | None = None) -> list[dict[str, Any]]:
        """Requests, tokens, cost and prompt-cache figures grouped by key, provider or day (UTC)."""
        group = {"key": "provider, key", "provider": "provider", "day": "date(bucket, 'unixepoch')",
                 "model": "model"}[by]
        sql = (f"SELECT {group}, SUM(requests), SUM(ok), SUM(tokens_in), SUM(tokens_out), SUM(cost),"
               " SUM(cache_read), SUM(cache_write), SUM(cacheable), SUM(cost_no_cache), SUM(round_robin_extra)"
               " FROM usage WHERE bucket >= ?")
        args: list[Any] = [int(since)]
        if provider:
            sql += " AND provider = ?"
            args.append(provider)
        sql += f" GROUP BY {group} ORDER BY {group}"
        cols = {"key": ("provider", "key"), "provider": ("provider",), "day": ("day",), "model": ("model",)}[by]
        out = []
        for r in self.db.execute(sql, args).fetchall():
            row = dict(zip(cols, r[: len(cols)], strict=True))
            req, ok, tin, tout, cost, read, write, cacheable, no_cache, rr_extra = r[len(cols):]
            row.update(requests=req, ok=ok, tokens_in=tin, tokens_out=tout, cost=round(cost or 0.0, 6),
                       cache_read=read or 0, cache_write=write or 0, cacheable=cacheable or 0,
                       cost_no_cache=round(no_cache or 0.0, 6),
                       cost_round_robin=round((cost or 0.0) + (rr_extra or 0.0), 6))
            out.append(row)
        return out

    @settled
    def caller_requests(self, since: float, by: str = "provider", provider: str | None = None
                        ) -> dict[str, tuple[int, int]]:
        """Callers' requests, each counted once however many upstream calls it took, and how many of them were
        served, per provider (the one asked), day (UTC) or model (the caller's): ``{group: (requests, served)}``.
        ``usage`` counts upstream calls instead."""
        group = {"provider": "provider", "day": "date(ts, 'unixepoch')", "model": "model"}[by]
        sql = f"SELECT {group}, COUNT(*), SUM(outcome = 'ok') FROM requests WHERE ts >= ?"
        args: list[Any] = [since]
        if provider:
            sql, args = sql + " AND provider = ?", [*args, provider]
        return {g: (n, ok or 0) for g, n, ok in self.db.execute(sql + f" GROUP BY {group}", args)}

    @settled
    def spend(self, provider: str, key: str, now: float | None = None) -> Spend:
        """What a key spent this UTC day and month (seeds budgets after a restart)."""
        now = now or time.time()
        day, month, next_day, _ = period_starts(now)
        day_start, month_start = next_day - 86400, month_start_of(now)
        spend = Spend()
        spend.day, spend.month = day, month
        for start, tokens_attr, cost_attr in ((day_start, "tokens_day", "cost_day"),
                                              (month_start, "tokens_month", "cost_month")):
            tokens, cost = self.db.execute(
                "SELECT COALESCE(SUM(tokens_in + tokens_out), 0), COALESCE(SUM(cost), 0) FROM usage"
                " WHERE provider = ? AND key = ? AND bucket >= ?", (provider, key, int(start))).fetchone()
            setattr(spend, tokens_attr, int(tokens))
            setattr(spend, cost_attr, float(cost))
        return spend
