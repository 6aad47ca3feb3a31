"""Read-side SQL for the auditor: filtered pages, streamed exports, subject timelines, oversight statistics.

Everything here reads committed rows through the store's read-only connection (`SQLiteStore.reader`) and
never writes. The golden rules make the ledger the organisation's record, so these queries have to answer
"what did we share about this child, with whom, and why?" in milliseconds at a million entries.

Why the plans are chosen here instead of left to SQLite: the gateway never runs ANALYZE, and without
statistics SQLite guesses; a wrong guess at a million entries is a walk over multi-kilobyte rows (seconds).
Every filter maps to an index ordered by the ledger index — `ledger_subjects (ref, idx)`, `ledger_by_kind
(kind, idx)`, FTS5 rowids — so "the newest N matches" is one walk down one index that stops after N hits.
With several filters we first count, with a cap, how many entries each would yield and drive from the
smallest; the others are checked per candidate (`+column` stops SQLite from switching index, CROSS JOIN
fixes the join order). Full text is cheap to walk and dear to check, so among broad filters it drives.
The time range is the exception: `ledger_by_time` is ordered by time, which is only roughly the ledger
order (concurrent requests take their timestamps before their turn to append), so it drives only when few
entries match; otherwise it is checked per candidate inside index bounds found from the time index.
Measured at 1M entries by bench/bench_ledger_queries.py; tests/test_audit.py checks that every plan walks
an index and that every choice of plan gives the same answer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from ...ledger import merkle
from ...ledger.entry import KINDS
from ..audit import (
    BROAD_CAP,
    ESTIMATE_CAP,
    FLAG_NOT_SHARED_DESPITE_RISK,
    MAX_INDEX,
    STATS_DIMENSIONS,
    AuditFilter,
    QueryError,
    StoredCheckpoint,
    empty_month,
    fold_months,
    fts_query,
)
from ..models import LedgerRow
from .schema import SHARE_INDEX, STATS_INDEXES
from .tree import TreeReader

T = TypeVar("T")

# The codes a justification may carry (purpose, Article 6/9, Schedule 1 …) are the policies' data: the API layer
# derives the auditor's filter values from the policies loaded (`PolicyRegistry.codes`), so a new edition of the
# rules is one JSON file and nothing here. These queries only compare the stored codes with a checked value.

_ROW = "l.idx, l.time, l.kind, l.entry, l.leaf_hash"


@dataclass(frozen=True)
class _Term:
    """One filter, as a source of candidate indexes (`table AS d WHERE cond`) and as a per-candidate check."""

    name: str
    table: str
    cond: str
    key: str
    args: tuple[Any, ...]
    check: str
    #: The source's index yields candidates in ledger order, so a LIMIT can stop the walk early.
    ordered: bool = True


def _join_term(name: str, table: str, column: str, value: str) -> _Term:
    return _Term(
        name,
        table,
        f"d.{column} = ?",
        "d.idx",
        (value,),
        f"EXISTS (SELECT 1 FROM {table} x WHERE x.{column} = ? AND x.idx = l.idx)",  # noqa: S608 - fixed names
    )


def _column_term(name: str, column: str, value: str) -> _Term:
    return _Term(name, "ledger", f"d.{column} = ?", "d.idx", (value,), f"+l.{column} = ?")


def _terms(f: AuditFilter) -> list[_Term]:
    """In order of how selective each filter usually is: ties in the estimate go to the earlier one."""
    candidates: list[tuple[str | None, Callable[[str], _Term]]] = [
        (f.subject, lambda v: _join_term("subject", "ledger_subjects", "ref", v)),
        (f.recipient, lambda v: _join_term("recipient", "ledger_recipients", "recipient_id", v)),
        (
            f.text,
            lambda v: _Term(
                "q",
                "ledger_fts",
                "d.ledger_fts MATCH ?",
                "d.rowid",
                (v,),
                "EXISTS (SELECT 1 FROM ledger_fts x WHERE x.ledger_fts MATCH ? AND x.rowid = l.idx)",
            ),
        ),
        (f.agreement, lambda v: _join_term("agreement", "ledger_agreements", "agreement_id", v)),
        (f.practitioner, lambda v: _column_term("practitioner", "actor_sub", v)),
        (f.org, lambda v: _join_term("org", "ledger_orgs", "org", v)),
        (f.scope, lambda v: _join_term("scope", "ledger_orgs", "org", v)),
        (f.purpose, lambda v: _column_term("purpose", "purpose_code", v)),
        (f.article_9, lambda v: _column_term("article_9", "article_9", v)),
        (f.dpa_schedule_1, lambda v: _column_term("dpa_schedule_1", "dpa_schedule_1", v)),
        (f.article_6, lambda v: _column_term("article_6", "article_6", v)),
        (f.decision, lambda v: _column_term("decision", "decision", v)),
        (f.kind, lambda v: _column_term("kind", "kind", v)),
    ]
    terms = [make(value) for value, make in candidates if value is not None]
    time = _time_term(f)
    if time is not None:
        terms.append(time)
    return terms


def _time_term(f: AuditFilter) -> _Term | None:
    """The time index is (time, idx): it drives only by sorting, so `+d.idx` keeps the bounds off the PK."""
    conds, checks, args = [], [], []
    if f.time_from is not None:
        conds.append("d.time >= ?")
        checks.append("+l.time >= ?")
        args.append(f.time_from)
    if f.time_to is not None:
        conds.append("d.time < ?")
        checks.append("+l.time < ?")
        args.append(f.time_to)
    if not conds:
        return None
    return _Term("time", "ledger", " AND ".join(conds), "+d.idx", tuple(args), " AND ".join(checks), ordered=False)


async def _fetch(conn: aiosqlite.Connection, sql: str, args: Sequence[Any]) -> list[Any]:
    try:
        async with conn.execute(sql, tuple(args)) as cur:
            return list(await cur.fetchall())
    except sqlite3.OperationalError as exc:
        # Only reachable through FTS5 (quoting makes syntax errors impossible, but the tokenizer has the
        # last word); anything else is a real fault and stays one.
        if "fts5" in str(exc).lower():
            raise QueryError("q", "q could not be used as a full-text search.") from None
        raise


async def _count(
    conn: aiosqlite.Connection, table: str, where: str, args: Sequence[Any], cap: int = ESTIMATE_CAP
) -> int:
    """How many rows match, counting no further than `cap`: bounded work whatever the filter."""
    sql = f"SELECT count(*) FROM (SELECT 1 FROM {table} AS d WHERE {where} LIMIT ?)"  # noqa: S608 - fixed SQL
    rows = await _fetch(conn, sql, (*args, cap))
    return int(rows[0][0])


@dataclass(frozen=True)
class Plan:
    """Which term's index to walk (None: the ledger itself), what to check per candidate, the index range.

    `exact_lo`, when set, is the true lower bound and `lo` only a cheap guess above it (see `_time_bounds`):
    a page that does not fill above the guess continues below it.
    """

    driver: _Term | None
    checks: tuple[_Term, ...]
    lo: int
    hi: int
    exact_lo: int | None = None


async def _time_bounds(
    conn: aiosqlite.Connection, f: AuditFilter, lo: int, hi: int, *, guess: bool
) -> tuple[int, int, int | None]:
    """Narrow [lo, hi) to the ledger indexes a time range can contain, when that saves a long walk.

    Times are only roughly in ledger order, so exact bounds need one scan of the covering time index over the
    range (~0.1 µs an entry). It is skipped when fewer than ESTIMATE_CAP entries lie outside the range on
    both sides: walking past them costs less. With only a start (`from`, nothing much after `to`) and `guess`,
    the scan is replaced by one seek: the first entry in time order at or after `from` gives a lower bound
    that is usually right; a newest-first page that fills above it is exact anyway (everything below is
    older), and only one that does not fill pays for the scan (returned as the third value: the caller
    continues below the guess).
    """
    far_above = f.time_to is not None and await _count(conn, "ledger", "d.time >= ?", (f.time_to,)) >= ESTIMATE_CAP
    far_below = f.time_from is not None and await _count(conn, "ledger", "d.time < ?", (f.time_from,)) >= ESTIMATE_CAP
    if not (far_above or far_below):
        return lo, hi, None
    if guess and not far_above:
        rows = await _fetch(
            conn, "SELECT d.idx FROM ledger AS d WHERE d.time >= ? ORDER BY d.time, d.idx LIMIT 1", (f.time_from,)
        )
        first = int(rows[0][0]) if rows else None
        if first is not None and first <= lo:
            return lo, hi, None
        if first is not None and first < hi:
            return first, hi, lo
        # Nothing at or after `from` below the cursor, as far as the guess can tell: let the scan decide.
    new_lo, new_hi = await _exact_time_bounds(conn, f)
    return max(lo, new_lo), min(hi, new_hi), None


async def _exact_time_bounds(conn: aiosqlite.Connection, f: AuditFilter) -> tuple[int, int]:
    """[lowest, highest + 1) of the indexes with a time in the range: (0, 0) when there are none."""
    term = _time_term(f)
    assert term is not None  # only called with a time range
    rows = await _fetch(conn, f"SELECT min(d.idx), max(d.idx) FROM ledger AS d WHERE {term.cond}", term.args)  # noqa: S608
    if rows[0][0] is None:
        return 0, 0
    return int(rows[0][0]), int(rows[0][1]) + 1


async def _plan(conn: aiosqlite.Connection, f: AuditFilter, lo: int, hi: int, *, sortable: bool = True) -> Plan:
    """Drive from the term with the fewest matches (counted with a cap); see the module docstring.

    A time range drives only when it is narrow (and `sortable`: each page sorts its matches); otherwise it
    is a per-candidate check within index bounds computed once.
    """
    terms = _terms(f)
    if not terms:
        return Plan(None, (), lo, hi)
    if len(terms) == 1 and terms[0].ordered:
        return Plan(terms[0], (), lo, hi)

    def where(t: _Term) -> str:
        return f"{t.cond} AND {t.key} >= ? AND {t.key} < ?"

    counts = [await _count(conn, t.table, where(t), (*t.args, lo, hi)) for t in terms]
    if 0 in counts:  # one filter matches nothing in range, so nothing matches them all
        return Plan(None, (), lo, lo)
    ordered = [i for i, t in enumerate(terms) if t.ordered]
    exact_lo: int | None = None
    if len(ordered) > 1 and min(counts[i] for i in ordered) >= ESTIMATE_CAP:
        for i in ordered:
            counts[i] = await _count(conn, terms[i].table, where(terms[i]), (*terms[i].args, lo, hi), BROAD_CAP)
    time_i = next((i for i, t in enumerate(terms) if not t.ordered), None)
    if (
        time_i is not None
        and sortable
        and counts[time_i] < ESTIMATE_CAP
        and all(counts[time_i] <= counts[i] for i in ordered)
    ):
        best: int | None = time_i
    else:
        best = min(ordered, key=lambda i: (counts[i], i), default=None)
        text_i = next((i for i, t in enumerate(terms) if t.name == "q"), None)
        if text_i is not None and best is not None and counts[best] >= ESTIMATE_CAP:
            # Among broad filters the full-text one drives: walking FTS5 rowids newest first is cheap, while
            # checking a candidate against it costs ~60 µs (a doclist seek), twenty row reads' worth.
            best = text_i
        if time_i is not None and (best is None or counts[best] >= ESTIMATE_CAP):
            # A broad driver could walk far outside the range before finding a match; a selective one
            # visits fewer than ESTIMATE_CAP candidates anyway, which costs less than finding the bounds.
            lo, hi, exact_lo = await _time_bounds(conn, f, lo, hi, guess=sortable)
    driver = None if best is None else terms[best]
    checks = tuple(_text_check(t, counts[best] if best is not None else None) for t in terms if t is not driver)
    return Plan(driver, checks, lo, hi, exact_lo)


#: Below this many candidates, each is checked against the full-text query on its own; above it, the query's
#: matches are collected once (a temporary b-tree, ~0.6 µs a match) and candidates are looked up in that.
TEXT_CHECK_PER_CANDIDATE = 1000


def _text_check(term: _Term, candidates: int | None) -> _Term:
    if term.name != "q" or (candidates is not None and candidates < TEXT_CHECK_PER_CANDIDATE):
        return term
    return replace(term, check="l.idx IN (SELECT rowid FROM ledger_fts WHERE ledger_fts MATCH ?)")


def _page_sql(plan: Plan, limit: int, descending: bool) -> tuple[str, list[Any]]:
    order = "DESC" if descending else "ASC"
    checks = [t.check for t in plan.checks]
    args: list[Any] = []
    for t in plan.checks:
        args += t.args
    d = plan.driver
    if d is None:
        where = " AND ".join(["l.idx >= ?", "l.idx < ?", *checks])
        sql = f"SELECT {_ROW} FROM ledger AS l WHERE {where} ORDER BY l.idx {order} LIMIT ?"  # noqa: S608
        return sql, [plan.lo, plan.hi, *args, limit]
    if not d.ordered and not checks:
        # Only a (narrow) time range: pick the page from the covering time index, then read just those rows.
        sql = (
            f"SELECT {_ROW} FROM (SELECT d.idx FROM ledger AS d WHERE {d.cond} AND {d.key} >= ? AND {d.key} < ?"  # noqa: S608
            f" ORDER BY d.idx {order} LIMIT ?) AS p CROSS JOIN ledger AS l ON l.idx = p.idx ORDER BY l.idx {order}"
        )
        return sql, [*d.args, plan.lo, plan.hi, limit]
    where = " AND ".join([d.cond, f"{d.key} >= ?", f"{d.key} < ?", *checks])
    key = d.key.lstrip("+")
    # Ordering by the driver's own key (not l.idx, though equal) is what lets SQLite walk its index in order.
    sql = (
        f"SELECT {_ROW} FROM {d.table} AS d CROSS JOIN ledger AS l ON l.idx = {key}"  # noqa: S608
        f" WHERE {where} ORDER BY {key} {order} LIMIT ?"
    )
    return sql, [*d.args, plan.lo, plan.hi, *args, limit]


def _row(r: Any) -> LedgerRow:
    return LedgerRow(*r)  # idx, time, kind, entry, leaf_hash: int, str, str, bytes, bytes as SQLite gives them


async def query_page(conn: aiosqlite.Connection, f: AuditFilter, *, before: int | None, limit: int) -> list[LedgerRow]:
    """The newest `limit` matching entries with an index below `before` (the cursor)."""
    plan = await _plan(conn, f, 0, MAX_INDEX if before is None else before)
    rows: list[LedgerRow] = []
    if plan.lo < plan.hi:
        sql, args = _page_sql(plan, limit, descending=True)
        rows = [_row(r) for r in await _fetch(conn, sql, args)]
    if len(rows) < limit and plan.exact_lo is not None:
        # The page did not fill above the guessed bound: continue below it, down to the exact one.
        exact_lo, _ = await _exact_time_bounds(conn, f)
        below = replace(plan, lo=max(plan.exact_lo, exact_lo), hi=plan.lo, exact_lo=None)
        if below.lo < below.hi:
            sql, args = _page_sql(below, limit - len(rows), descending=True)
            rows += [_row(r) for r in await _fetch(conn, sql, args)]
    return rows


async def export_plan(conn: aiosqlite.Connection, f: AuditFilter, *, upto: int) -> Plan:
    """Plan an export of every match with index < `upto` once, before any byte is sent.

    Doing it up front is what lets an unusable `q` still become a clean 400: once a streamed response has
    started there is no way left to report an error. A time range never drives here (each page would
    re-sort it); it bounds the walk instead.
    """
    if f.text is not None:
        await _fetch(conn, "SELECT 1 FROM ledger_fts WHERE ledger_fts MATCH ? LIMIT 1", (f.text,))
    return await _plan(conn, f, 0, upto, sortable=False)


async def export_pages(
    conn: aiosqlite.Connection, plan: Plan, *, page_size: int = 1000
) -> AsyncIterator[list[LedgerRow]]:
    """The planned export, oldest first, in pages: keyset pagination on the index, constant memory."""
    lo = plan.lo
    while lo < plan.hi:
        sql, args = _page_sql(Plan(plan.driver, plan.checks, lo, plan.hi), page_size, descending=False)
        page = [_row(r) for r in await _fetch(conn, sql, args)]
        if not page:
            return
        yield page
        if len(page) < page_size:
            return
        lo = page[-1].index + 1


async def latest_checkpoint(conn: aiosqlite.Connection) -> StoredCheckpoint | None:
    rows = await _fetch(conn, "SELECT size, time, note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1", ())
    return None if not rows else StoredCheckpoint(int(rows[0][0]), rows[0][1], bytes(rows[0][2]))


async def ledger_end(conn: aiosqlite.Connection) -> int:
    """One past the highest committed index: the bound of an export taken before any checkpoint exists."""
    rows = await _fetch(conn, "SELECT coalesce(max(idx) + 1, 0) FROM ledger", ())
    return int(rows[0][0])


async def subject_events(
    conn: aiosqlite.Connection, ref: str, cap: int, *, scope: str | None = None
) -> tuple[list[LedgerRow], bool]:
    """Every entry about one subject, oldest first, at most `cap` of them; True if there were more.

    With `scope`, only entries involving that organisation (see AuditFilter.scope).
    """
    where, args = "d.ref = ?", [ref]
    if scope is not None:
        where += " AND EXISTS (SELECT 1 FROM ledger_orgs o WHERE o.org = ? AND o.idx = d.idx)"
        args.append(scope)
    rows = await _fetch(
        conn,
        f"SELECT {_ROW} FROM ledger_subjects AS d CROSS JOIN ledger AS l ON l.idx = d.idx"  # noqa: S608
        f" WHERE {where} ORDER BY d.idx ASC LIMIT ?",
        (*args, cap + 1),
    )
    return [_row(r) for r in rows[:cap]], len(rows) > cap


# -- inclusion proofs ----------------------------------------------------------------------------------


def _memo(fn: Callable[..., T]) -> Callable[..., T]:
    cache: dict[tuple[Any, ...], T] = {}

    def wrapped(*args: Any) -> T:
        if args not in cache:
            cache[args] = fn(*args)
        return cache[args]

    return wrapped


def verify_inclusions(
    db_path: Path, size: int, root: bytes, entries: Sequence[tuple[int, bytes]]
) -> dict[int, str | None]:
    """Check that each (index, canonical entry bytes) is in the tree of `size` leaves with `root`.

    Returns index -> None when the proof verifies, or why not. Blocking (run it in a thread): it reads
    through its own read-only connection in one snapshot. The leaf is recomputed from the entry bytes and
    the root comes from the signed checkpoint, so neither the stored leaf hash nor the cached subtree
    hashes the proof is built from need to be trusted: any altered one makes the proof fail, never pass.
    Subtree hashes are memoised across entries, since a subject's proofs share most of their upper levels.
    """
    results: dict[int, str | None] = {}
    with TreeReader(db_path) as reader:
        leaf = _memo(reader.leaf_hash)
        subtree = _memo(reader.subtree_hash)
        for index, data in entries:
            if index >= size:
                continue
            try:
                proof = merkle.inclusion_proof(index, size, leaf, subtree)
                merkle.verify_inclusion(merkle.leaf_hash(data), index, size, proof, root)
            except (merkle.ProofError, ValueError) as exc:
                results[index] = str(exc)
            except Exception as exc:  # a missing or unreadable leaf is a failed check, not a 500
                results[index] = f"proof could not be built: {type(exc).__name__}"
            else:
                results[index] = None
    return results


# -- statistics --------------------------------------------------------------------------------------------

#: Indexes for the schema owner to add (the schema lives in sqlite.py, not here): with them `stats` reads
#: dense index pages instead of multi-kilobyte rows (bench/bench_ledger_queries.py measures both ways). The
#: queries below are written so that SQLite picks them up when they exist and stay correct when they don't.
#: Part of the schema: the month index since version 2, the share index since 7 (which replaced step 2's
#: `ledger_by_kind_share`).
RECOMMENDED_INDEXES = (STATS_INDEXES[0], SHARE_INDEX)
_MONTH = "substr(d.time, 1, 7)"


def _period(time_from: str | None, time_to: str | None, scope: str | None = None) -> tuple[str, list[Any]]:
    """The period as conditions on `d.time`, plus the same bounds on the month so a month index can seek.

    With `scope`, also only entries `d` involving that organisation (see AuditFilter.scope).
    """
    conds: list[str] = []
    args: list[Any] = []
    if scope is not None:
        conds.append("EXISTS (SELECT 1 FROM ledger_orgs o WHERE o.org = ? AND o.idx = d.idx)")
        args.append(scope)
    if time_from is not None:
        conds += ["d.time >= ?", f"{_MONTH} >= ?"]
        args += [time_from, time_from[:7]]
    if time_to is not None:
        conds += ["d.time < ?", f"{_MONTH} <= ?"]
        args += [time_to, time_to[:7]]
    return (" AND ".join(conds) or "1"), args


#: Entries are stored as UTF-8 JSON bytes; SQLite's JSON functions need them as text.
_ENTRY_JSON = "CAST(d.entry AS TEXT)"


def _has_flag_sql() -> str:
    return f"EXISTS (SELECT 1 FROM json_each({_ENTRY_JSON}, '$.flags') AS fl WHERE fl.value = ?)"  # noqa: S608


async def flagged_decisions(
    conn: aiosqlite.Connection,
    flag: str,
    *,
    org: str | None,
    time_from: str | None,
    time_to: str | None,
    before: int | None,
    limit: int,
) -> list[LedgerRow]:
    """Decisions (no payload) carrying `flag`, newest first, for the DSL's or auditor's list.

    Driven by `ledger_by_kind` (kind, idx): only decision entries are read, never the far more numerous shares.
    """
    conds = ["d.kind = 'decision'", "d.idx < ?", _has_flag_sql()]
    args: list[Any] = [MAX_INDEX if before is None else before, flag]
    if org is not None:
        conds.append("d.actor_org = ?")
        args.append(org)
    if time_from is not None:
        conds.append("d.time >= ?")
        args.append(time_from)
    if time_to is not None:
        conds.append("d.time < ?")
        args.append(time_to)
    rows = await _fetch(
        conn,
        f"SELECT d.idx, d.time, d.kind, d.entry, d.leaf_hash FROM ledger AS d WHERE {' AND '.join(conds)}"  # noqa: S608
        " ORDER BY d.idx DESC LIMIT ?",
        [*args, limit],
    )
    return [_row(r) for r in rows]


async def own_decisions(conn: aiosqlite.Connection, sub: str, *, before: int | None, limit: int) -> list[LedgerRow]:
    """A practitioner's decisions recorded without a payload (disclosures elsewhere, decisions not to share),
    newest first, through `ledger_by_actor` (actor_sub, idx). The caller checks the issuer in each entry."""
    rows = await _fetch(
        conn,
        "SELECT d.idx, d.time, d.kind, d.entry, d.leaf_hash FROM ledger AS d"
        " WHERE d.actor_sub = ? AND d.idx < ? AND +d.kind = 'decision' ORDER BY d.idx DESC LIMIT ?",
        [sub, MAX_INDEX if before is None else before, limit],
    )
    return [_row(r) for r in rows]


#: An emergency share (issue 14) whose justification has not been completed yet: `d` is the share's entry.
_EMERGENCY_OPEN = (
    "+d.kind = 'share' AND json_extract(CAST(d.entry AS TEXT), '$.emergency.complete_by') IS NOT NULL"
    " AND NOT EXISTS (SELECT 1 FROM ledger AS c WHERE c.kind = 'emergency_completed' AND c.share_id = d.share_id)"
)


async def open_emergencies(conn: aiosqlite.Connection, sub: str, *, limit: int) -> list[LedgerRow]:
    """A practitioner's emergency shares still awaiting their full justification, oldest deadline first, through
    `ledger_by_actor`. The caller checks the issuer in each entry."""
    rows = await _fetch(
        conn,
        "SELECT d.idx, d.time, d.kind, d.entry, d.leaf_hash FROM ledger AS d"  # noqa: S608
        f" WHERE d.actor_sub = ? AND {_EMERGENCY_OPEN} ORDER BY d.idx LIMIT ?",
        [sub, limit],
    )
    return [_row(r) for r in rows]


#: A share held for a second person's approval (issue 14) and not yet approved: `d` is the share's entry.
_AWAITING_APPROVAL = (
    "+d.kind = 'share' AND json_extract(CAST(d.entry AS TEXT), '$.dual_control') IS NOT NULL"
    " AND NOT EXISTS (SELECT 1 FROM ledger AS a WHERE a.kind = 'share_approved' AND a.share_id = d.share_id)"
)


async def awaiting_approval(conn: aiosqlite.Connection, share_id: str) -> bool:
    """Whether a share is held for approval: one seek on `ledger_by_share_kind` (every fetch asks)."""
    rows = await _fetch(
        conn,
        f"SELECT 1 FROM ledger AS d WHERE d.share_id = ? AND {_AWAITING_APPROVAL} LIMIT 1",  # noqa: S608
        [share_id],
    )
    return bool(rows)


async def shares_awaiting_approval(conn: aiosqlite.Connection, org: str, *, limit: int) -> list[LedgerRow]:
    """An organisation's shares held for approval, oldest first (what its approvers have to look at)."""
    rows = await _fetch(
        conn,
        "SELECT d.idx, d.time, d.kind, d.entry, d.leaf_hash FROM ledger AS d"  # noqa: S608
        f" WHERE d.actor_org = ? AND {_AWAITING_APPROVAL} ORDER BY d.idx LIMIT ?",
        [org, limit],
    )
    return [_row(r) for r in rows]


async def retention_schedule(conn: aiosqlite.Connection, org: str | None, *, limit: int) -> list[tuple[Any, ...]]:
    """Live shares (an organisation's, or all) soonest destruction first: (share ID, created, expires, purpose,
    ledger index, retention class). The envelopes are destroyed at `expires` by the expiry sweep."""
    return await _fetch(
        conn,
        "SELECT s.id, s.created_at, s.expires_at, s.purpose_code, s.ledger_index,"
        " json_extract(CAST(d.entry AS TEXT), '$.retention.class') FROM shares AS s"
        " JOIN ledger AS d ON d.idx = s.ledger_index"
        " WHERE s.state = 'active' AND (? IS NULL OR s.sender_org = ?) ORDER BY s.expires_at LIMIT ?",
        [org, org, limit],
    )


async def retention_facts(conn: aiosqlite.Connection) -> dict[str, Any]:
    """What a retention review records: the previous review, the envelopes destroyed since, what is still live."""
    last = await _fetch(conn, "SELECT max(idx) FROM ledger WHERE kind = 'retention_review'", [])
    since = last[0][0]
    destroyed = await _fetch(
        conn,
        "SELECT count(*) FROM ledger WHERE kind IN ('expire', 'expired_unclaimed') AND idx > ?",
        [-1 if since is None else since],
    )
    live = await _fetch(conn, "SELECT count(*), min(expires_at) FROM shares WHERE state = 'active'", [])
    return {
        "previous_review_index": since,
        "destroyed_since": destroyed[0][0],
        "live_shares": live[0][0],
        "next_destruction_at": live[0][1],
    }


async def advice_entries(
    conn: aiosqlite.Connection, *, org: str | None, sub: str | None, limit: int
) -> list[LedgerRow]:
    """Questions for advice and their answers (issue 14), newest first: an organisation's (its advisers' view), or
    one practitioner's own questions (`sub`, any organisation) with the answers in their organisation."""
    conds = ["d.kind IN ('advice_question', 'advice_answer')"]
    args: list[Any] = []
    if org is not None:
        conds.append("d.actor_org = ?")
        args.append(org)
    if sub is not None:
        conds.append("(d.kind = 'advice_answer' OR d.actor_sub = ?)")
        args.append(sub)
    rows = await _fetch(
        conn,
        f"SELECT d.idx, d.time, d.kind, d.entry, d.leaf_hash FROM ledger AS d WHERE {' AND '.join(conds)}"  # noqa: S608
        " ORDER BY d.idx DESC LIMIT ?",
        [*args, limit],
    )
    return [_row(r) for r in rows]


async def latest_decisions_by_decider(
    conn: aiosqlite.Connection, org: str | None, *, limit: int, after: int = 0
) -> list[LedgerRow]:
    """Each decider's latest `share`/`decision` entry at `after` or later (per actor ID and organisation), newest
    first: one GROUP BY over the ledger's rows from `after` on, then each chosen row by its primary key.

    The rows are read as a range of the primary key (`+actor_sub` keeps SQLite off `ledger_by_actor`, which it
    otherwise walks whole, looking each row up): measured at 300,000 entries, the whole ledger in 0.33 s rather
    than 1.1-3.5 s, and the last thousand entries in 3 ms rather than 45 ms."""
    scoped = " AND actor_org = ?" if org is not None else ""
    rows = await _fetch(
        conn,
        "SELECT d.idx, d.time, d.kind, d.entry, d.leaf_hash FROM ledger AS d WHERE d.idx IN"  # noqa: S608
        " (SELECT max(idx) FROM ledger WHERE idx >= ? AND decision IS NOT NULL AND +actor_sub IS NOT NULL"
        f"{scoped} GROUP BY +actor_sub, actor_org) ORDER BY d.idx DESC LIMIT ?",
        [after, *([org] if org is not None else []), limit],
    )
    return [_row(r) for r in rows]


async def stats(
    conn: aiosqlite.Connection,
    time_from: str | None,
    time_to: str | None,
    *,
    scope: str | None = None,
    now: str | None = None,
) -> dict[str, Any]:
    """Counts per month for oversight boards, each a GROUP BY in SQLite (Python only folds a few thousand rows).

    Decisions are the entries that carry a justification (`share` and `decision` kinds), counted in the month
    of their own timestamp; "none" stands for an absent code (e.g. no Article 9 basis). "Shares later revoked"
    and "emergency shares not completed" (no envelope ever fetched) are counted in the month of the share.
    Grouping the codes together in one pass and the organisation in another keeps the first pass in index
    order when `ledger_decisions_by_month` exists: no sort, and one row per distinct combination.
    """
    period, args = _period(time_from, time_to, scope)
    months: dict[str, dict[str, Any]] = {}

    def month(m: str) -> dict[str, Any]:
        return months.setdefault(m, empty_month(m))

    def add(bucket: dict[str, Any], dim: str, value: str | None, n: int) -> None:
        key = "none" if value is None else value
        bucket[dim][key] = bucket[dim].get(key, 0) + n

    rows = await _fetch(
        conn,
        f"SELECT {_MONTH}, d.decision, d.purpose_code, d.article_6, d.article_9, d.dpa_schedule_1, count(*)"  # noqa: S608
        f" FROM ledger AS d WHERE d.decision IS NOT NULL AND {period}"
        f" GROUP BY {_MONTH}, d.decision, d.purpose_code, d.article_6, d.article_9, d.dpa_schedule_1",
        args,
    )
    for m, decision, purpose, a6, a9, s1, n in rows:
        bucket = month(m)
        bucket["decisions"] += n
        for dim, value in zip(STATS_DIMENSIONS, (decision, purpose, a6, a9, s1), strict=False):
            add(bucket, dim, value, n)

    rows = await _fetch(
        conn,
        f"SELECT {_MONTH}, d.actor_org, count(*) FROM ledger AS d"  # noqa: S608
        f" WHERE d.decision IS NOT NULL AND {period} GROUP BY {_MONTH}, d.actor_org",
        args,
    )
    for m, org, n in rows:
        add(month(m), "org", org, n)

    # By edition of the rules (issue 14): the policy each decision was checked against, so an oversight board
    # reads 2018 and 2024 decisions side by side (the API adds the rule map between their rules).
    rows = await _fetch(
        conn,
        f"SELECT {_MONTH}, json_extract(CAST(d.entry AS TEXT), '$.policy.id'), count(*) FROM ledger AS d"  # noqa: S608
        f" WHERE d.decision IS NOT NULL AND {period} GROUP BY 1, 2",
        args,
    )
    for m, policy_id, n in rows:
        add(month(m), "policy", policy_id, n)

    # Driven by the (few) revocations, each joined to its share (with `ledger_by_share_kind` both steps are
    # index seeks and only the share's row is read); a share is revoked at most once, but DISTINCT keeps the
    # count right even if a later version records more than one revoke per share.
    rows = await _fetch(
        conn,
        f"SELECT {_MONTH}, count(DISTINCT d.share_id) FROM ledger AS r"  # noqa: S608
        " CROSS JOIN ledger AS d ON d.share_id = r.share_id AND d.kind = 'share'"
        f" WHERE r.kind = 'revoke' AND {period} GROUP BY {_MONTH}",
        args,
    )
    for m, n in rows:
        month(m)["shares_later_revoked"] += n

    rows = await _fetch(
        conn,
        f"SELECT {_MONTH}, count(*) FROM ledger AS d"  # noqa: S608
        f" WHERE d.purpose_code = 'emergency' AND +d.kind = 'share' AND {period}"
        " AND NOT EXISTS (SELECT 1 FROM ledger AS f WHERE f.share_id = d.share_id AND f.kind = 'fetch')"
        f" GROUP BY {_MONTH}",
        args,
    )
    for m, n in rows:
        month(m)["emergency_shares_not_completed"] += n

    # Emergency shares still owing their justification (issue 14), counted in the month of the share; overdue
    # once past the deadline recorded in the share's own entry.
    rows = await _fetch(
        conn,
        f"SELECT {_MONTH}, count(*),"  # noqa: S608
        " coalesce(sum(json_extract(CAST(d.entry AS TEXT), '$.emergency.complete_by') < ?), 0)"
        f" FROM ledger AS d WHERE {_EMERGENCY_OPEN} AND {period} GROUP BY {_MONTH}",
        [now or "", *args],
    )
    for m, n, overdue in rows:
        month(m)["emergency_justifications_open"] += n
        month(m)["emergency_justifications_overdue"] += overdue

    # Decisions recorded without a payload (through `ledger_by_kind`, never the shares): disclosures made
    # elsewhere by channel, and decisions not to share despite risk. Shares through SafeShare are then the
    # share decisions that are not disclosures elsewhere (a `decision` entry with decision `share` used to be
    # counted as a SafeShare share).
    rows = await _fetch(
        conn,
        f"SELECT {_MONTH}, d.decision, json_extract({_ENTRY_JSON}, '$.disclosure.channel'),"  # noqa: S608
        f" {_has_flag_sql()}, count(*) FROM ledger AS d WHERE d.kind = 'decision' AND {period}"
        f" GROUP BY 1, 2, 3, 4",
        [FLAG_NOT_SHARED_DESPITE_RISK, *args],
    )
    for m, decision, channel, flagged, n in rows:
        bucket = month(m)
        if decision == "share":
            bucket["disclosures_elsewhere"] += n
            add(bucket, "disclosures_by_channel", channel, n)
        if decision == "not_share" and flagged:
            bucket["not_shared_despite_risk"] += n
    for bucket in months.values():
        bucket["shares"] = bucket["decision"].get("share", 0) - bucket["disclosures_elsewhere"]
        bucket["decisions_not_to_share"] = bucket["decision"].get("not_share", 0)

    ordered, totals = fold_months(months)
    totals["agreements"] = await agreement_stats(conn, period, args)
    totals["decisions_not_to_share"] = totals["decision"].get("not_share", 0)
    return {"from": time_from, "to": time_to, "totals": totals, "months": ordered}


async def agreement_stats(conn: aiosqlite.Connection, period: str, args: Sequence[Any]) -> dict[str, Any]:
    """Shares per partnership agreement (and per version), overrides, and shares made under no agreement."""
    per: dict[str, dict[str, Any]] = {}
    rows = await _fetch(
        conn,
        "SELECT a.agreement_id, a.version, count(*), sum(a.overridden) FROM ledger_agreements AS a"  # noqa: S608
        f" CROSS JOIN ledger AS d ON d.idx = a.idx WHERE d.kind = 'share' AND {period}"
        " GROUP BY a.agreement_id, a.version",
        args,
    )
    for agreement_id, version, n, overridden in rows:
        item = per.setdefault(agreement_id, {"shares": 0, "overrides": 0, "versions": {}})
        item["shares"] += n
        item["overrides"] += overridden or 0
        item["versions"][str(version)] = n
    rows = await _fetch(
        conn,
        "SELECT count(*), coalesce(sum(json_extract(CAST(d.entry AS TEXT), '$.agreement_override') IS NOT NULL), 0),"  # noqa: S608
        " coalesce(sum(NOT EXISTS (SELECT 1 FROM ledger_agreements AS a WHERE a.idx = d.idx)), 0)"
        f" FROM ledger AS d WHERE d.kind = 'share' AND {period}",
        args,
    )
    _, overrides, without = rows[0]
    return {"per_agreement": dict(sorted(per.items())), "overrides": overrides, "shares_without_agreement": without}


__all__ = [
    "KINDS",
    "RECOMMENDED_INDEXES",
    "FLAG_NOT_SHARED_DESPITE_RISK",
    "AuditFilter",
    "QueryError",
    "StoredCheckpoint",
    "Plan",
    "export_pages",
    "export_plan",
    "flagged_decisions",
    "fts_query",
    "latest_checkpoint",
    "ledger_end",
    "open_emergencies",
    "advice_entries",
    "latest_decisions_by_decider",
    "retention_facts",
    "retention_schedule",
    "awaiting_approval",
    "shares_awaiting_approval",
    "own_decisions",
    "query_page",
    "stats",
    "subject_events",
    "verify_inclusions",
]
