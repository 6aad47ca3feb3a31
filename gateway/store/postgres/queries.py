"""The auditor's read side on PostgreSQL: the same questions and the same answers as `store/queries.py` (SQLite).

PostgreSQL keeps statistics (autovacuum ANALYZEs), so unlike on SQLite the plans are left to its planner: each
filter is one indexed condition (`ledger_subjects (ref, idx)`, `ledger_by_kind (kind, idx)`, the GIN index over
`ledger_fts`), all of them ANDed, newest first with keyset pagination on the ledger index.

Full text: `ledger_fts` holds, per entry, the words of its purpose description as FTS5's unicode61 tokenizer
sees them (letters and digits, `_` a separator, case and diacritics folded) in a `tsvector` built with
`array_to_tsvector` — not PostgreSQL's own parser, which would keep an e-mail address or a hyphenated word as
one token — so that a search matches exactly the entries it matches on SQLite. The query arrives as
`fts_query`'s output (quoted words, optional trailing `*` for a prefix), which becomes a `tsquery` of ANDed
lexemes (`'word'`, `'pre':*`). `ledger_words` holds the same words again as (word, idx) rows, FTS5's doclists:
a search with a whole word takes its pages from there in idx order (`_page`), `ledger_fts` answers the prefixes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from ...ledger import merkle
from ..audit import (
    ESTIMATE_CAP,
    FLAG_NOT_SHARED_DESPITE_RISK,
    MAX_INDEX,
    MAX_TEXT_QUERY,
    STATS_DIMENSIONS,
    AuditFilter,
    QueryError,
    StoredCheckpoint,
    empty_month,
    fold_months,
)
from ..models import LedgerRow
from . import ledger as pg_ledger
from .ledger import WORD as _WORD
from .ledger import fold

Conn = Any  # an asyncpg connection

_ROW = "l.idx, l.time, l.kind, l.entry, l.leaf_hash"
#: The statistics' dimensions and a month's empty figures: the shape of `GET /api/v1/ledger/stats` (as on SQLite).


_QUOTED = re.compile(r'"([^"]*)"(\*?)')
_JSON = "convert_from(d.entry, 'UTF8')::jsonb"
_MONTH = "substr(d.time, 1, 7)"


def tsquery(fts: str) -> str | None:
    """`fts_query`'s output as a tsquery (None: no word, which matches nothing, as on FTS5); every word is letters
    and digits only, so quoting cannot break it."""
    terms = []
    for word, star in _QUOTED.findall(fts):
        for part in _WORD.findall(fold(word)):
            terms.append(f"'{part}'" + (":*" if star else ""))
    return " & ".join(terms) or None


def terms(fts: str) -> tuple[list[str], list[str]]:
    """`fts_query`'s output as (whole words, prefixes): the same lexemes `tsquery` ANDs, split by kind."""
    words: list[str] = []
    prefixes: list[str] = []
    for word, star in _QUOTED.findall(fts):
        for part in _WORD.findall(fold(word)):
            (prefixes if star else words).append(part)
    return words, prefixes


def _quote(text: str) -> str:
    """An SQL string literal (the words are letters and digits; quotes doubled all the same)."""
    return "'" + text.replace("'", "''") + "'"


def _row(r: Any) -> LedgerRow:
    return LedgerRow(*r)  # bigint, text, text, bytea, bytea: int, str, str, bytes, bytes as asyncpg gives them


class _Sql:
    """Conditions with numbered parameters."""

    def __init__(self) -> None:
        self.conds: list[str] = []
        self.args: list[Any] = []

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, cond: str) -> None:
        self.conds.append(cond)

    def where(self) -> str:
        return " AND ".join(self.conds) or "true"


def _join(q: _Sql, table: str, column: str, value: str, band: str = "") -> None:
    q.add(f"l.idx IN (SELECT x.idx FROM {table} x WHERE x.{column} = {q.arg(value)}{band})")  # noqa: S608 - fixed names


#: The filters kept in a side table keyed (value, idx), unique per pair: (AuditFilter field, table, column), the
#: most selective first (the first one present drives the page, see `_page`).
_SIDE: tuple[tuple[str, str, str], ...] = (
    ("subject", "ledger_subjects", "ref"),
    ("recipient", "ledger_recipients", "recipient_id"),
    ("agreement", "ledger_agreements", "agreement_id"),
    ("org", "ledger_orgs", "org"),
    ("scope", "ledger_orgs", "org"),
)


#: The filters on `ledger`'s own columns: (AuditFilter field, column).
_COLUMNS: tuple[tuple[str, str], ...] = (
    ("practitioner", "actor_sub"),
    ("purpose", "purpose_code"),
    ("article_9", "article_9"),
    ("dpa_schedule_1", "dpa_schedule_1"),
    ("article_6", "article_6"),
    ("decision", "decision"),
    ("kind", "kind"),
)
_LEDGER_COLUMNS = tuple(field for field, _ in _COLUMNS)


def _filter(f: AuditFilter, q: _Sql, band: str = "", skip: str | None = None) -> None:
    """`band`: the page's index bounds again inside each sub-select (`AND x.idx >= $n AND x.idx < $m`). Why:
    PostgreSQL does not carry `l.idx`'s bounds across `IN`, so without them every page of a walk or an export
    re-read its sub-select from the first entry (each page of an export slower than the last); with them the
    side table's (key, idx) index seeks straight to the page's range. The same rows: x.idx is l.idx.
    `skip`: the field (`_SIDE`'s first column) whose side table already drives the page (`_page`)."""
    for field, table, column in _SIDE:
        value = getattr(f, field)
        if value is not None and field != skip:
            _join(q, table, column, value, band)
    if f.text is not None and skip != "text":
        # Probes of this entry's words (`ledger_words`' primary key, `ledger_fts`'s for prefixes): the page is
        # driven by a side table here, one entry at a time.
        words, prefixes = terms(f.text)
        if not words and not prefixes:
            q.add("false")
        for word in dict.fromkeys(words):
            q.add(f"EXISTS (SELECT 1 FROM ledger_words w WHERE w.word = {q.arg(word)} AND w.idx = l.idx)")  # noqa: S608
        if prefixes:
            query = q.arg(" & ".join(f"'{p}':*" for p in prefixes))
            q.add(f"EXISTS (SELECT 1 FROM ledger_fts z WHERE z.idx = l.idx AND z.description @@ {query}::tsquery)")  # noqa: S608
    for field, column in _COLUMNS:
        value = getattr(f, field)
        if value is not None:
            q.add(f"l.{column} = {q.arg(value)}")
    # `|| ''` keeps the time index out of the page: `_time_band` has already narrowed the index range to the
    # band the time range covers, where the matches are dense, so walking the primary key newest first finds a
    # page at once; sorting the whole range from the time index (the planner's choice, as it underestimates
    # the range inside the band) costs a row read per entry of the range.
    if f.time_from is not None:
        q.add(f"(l.time || '') >= {q.arg(f.time_from)}")
    if f.time_to is not None:
        q.add(f"(l.time || '') < {q.arg(f.time_to)}")


async def _count(conn: Conn, cond: str, args: Sequence[Any], cap: int = ESTIMATE_CAP) -> int:
    """How many ledger rows match `cond` (on alias `t`), counting no further than `cap`: bounded work."""
    sql = f"SELECT count(*) FROM (SELECT 1 FROM ledger t WHERE {cond} LIMIT {int(cap)}) c"  # noqa: S608
    return int(await conn.fetchval(sql, *args))


async def _time_band(conn: Conn, f: AuditFilter, lo: int, hi: int, *, exact_below: bool) -> tuple[int, int]:
    """Narrow [lo, hi) to the band of ledger indexes a time range can hold, when that saves a long walk.

    Why: times are only roughly in index order, so PostgreSQL's planner, seeing `time` conditions and
    `ORDER BY idx LIMIT n`, walks the primary key from the newest entry expecting matches to be spread evenly,
    and for a range in the past reads every newer entry first (measured: 150 ms at 100k entries, seconds at
    1M). The exact band is one index-only scan of `ledger_by_time_idx` over the range (as SQLite's
    `_exact_time_bounds`), paid only when at least ESTIMATE_CAP entries lie past `to` (a newest-first walk
    would cross them), or before `from` when `exact_below` (an oldest-first export, or a newest-first page
    whose range is small enough that the walk could run past it). Same answers: the band holds every match.
    """
    if f.time_from is None and f.time_to is None:
        return lo, hi
    conds, args = [], []
    if f.time_from is not None:
        args.append(f.time_from)
        conds.append(f"t.time >= ${len(args)}")
    if f.time_to is not None:
        args.append(f.time_to)
        conds.append(f"t.time < ${len(args)}")
    # Both sides counted in one round trip (each a capped index-only scan).
    above, below = await conn.fetchrow(
        f"SELECT (SELECT count(*) FROM (SELECT 1 FROM ledger t WHERE t.time >= $1 LIMIT {ESTIMATE_CAP}) a),"  # noqa: S608
        f" (SELECT count(*) FROM (SELECT 1 FROM ledger t WHERE t.time < $2 LIMIT {ESTIMATE_CAP}) b)",
        f.time_to or "\uffff",
        f.time_from or "",
    )
    far_above, far_below = above >= ESTIMATE_CAP, below >= ESTIMATE_CAP
    if far_below and not exact_below and not far_above:
        # Newest first from the top: only a range that holds few entries could let the walk run past it.
        far_below = await _count(conn, " AND ".join(conds), args) < ESTIMATE_CAP
    if not (far_above or far_below):
        return lo, hi
    # `+ 0`: otherwise PostgreSQL answers min/max by walking the primary key from each end (its MIN/MAX rewrite),
    # checking times row by row: the slow walk this avoids. This way it is one index-only scan of the range.
    row = await conn.fetchrow(
        f"SELECT min(t.idx + 0), max(t.idx + 0) FROM ledger t WHERE {' AND '.join(conds)}",  # noqa: S608
        *args,
    )
    if row[0] is None:
        return lo, lo
    return max(lo, int(row[0])), min(hi, int(row[1]) + 1)


def _literal(fts: str) -> str:
    """`tsquery(fts)` as an SQL string literal, for the statements whose plan must be made for these very words:
    a parameter lets asyncpg's prepared statement fall back to a generic plan (after five runs), whose default
    selectivity for `@@` brings back the row-by-row walk (measured: 8 ms against 2 ms). Safe to inline: the
    tsquery holds letters, digits, quotes, `&` and `:*` only, and its quotes are doubled here."""
    return "'" + (tsquery(fts) or "").replace("'", "''") + "'"


#: A search of prefixes whose rarest prefix is in at most this many (word, entry) pairs is "rare" (`_rare_text`).
RARE_TEXT = 3000
#: `_rare_text`'s recent answers per search's prefixes (monotonic time, rare), kept a minute: an auditor pages
#: through one search, and a word's frequency moves slowly, so the count is paid once per search rather than per
#: page. Only the plan depends on it, never the answer. Bounded: cleared when full.
_RARITY: dict[str, tuple[float, bool]] = {}
_RARITY_SECONDS = 60.0
_RARITY_MAX = 1024


async def _rare_text(conn: Conn, f: AuditFilter) -> bool:
    """Whether the page should start from the GIN index's matches for `f.text` (no side table to drive it).

    Only a search of prefixes alone gets here (a whole word drives the page from `ledger_words`). Why ask: for
    `ORDER BY idx LIMIT n` PostgreSQL either walks `ledger_fts` newest first testing `@@` row by row, which finds
    a common prefix's page at once but reads tens of thousands of rows for a rare one (measured at 1M entries:
    9-17 ms for a prefix in 0.1% of entries, against SQLite's 0.7 ms), or fetches every match from the GIN index
    and sorts them, about 1 ms for a rare prefix and every match read for a common one.

    How many entries the prefixes match is counted, up to `RARE_TEXT` + 1, from `ledger_words`' (word, idx)
    index: the lexemes from the prefix up to the next prefix (`_prefix_bound`), the rarest prefix of the search
    bounding its matches. Not the planner's estimate: for a prefix (`'negl':*`) it is a flat 1% of the table
    whatever the prefix, so every prefix looked rare and a common one sorted all its matches (measured at
    300,000 entries: 30 ms a page for a prefix of "neglect", against SQLite's 5 ms). The count only chooses the
    plan, never the answer (which always comes from `ledger_fts`), so a collation whose order does not keep a
    prefix's words together costs time at worst. The answer is remembered for a minute (`_RARITY`): an auditor
    pages through one search.
    """
    if f.text is None or any(getattr(f, field) is not None for field, _, _ in _SIDE):
        return False  # a side table drives the page: no question to ask
    words, prefixes = terms(f.text)
    if words or not prefixes:
        return False  # a whole word (`ledger_words`) drives the page, or there is nothing to match
    key = " ".join(sorted(set(prefixes)))
    now = time.monotonic()
    known = _RARITY.get(key)
    if known is not None and now - known[0] < _RARITY_SECONDS:
        return known[1]
    rare = False
    for prefix in sorted(set(prefixes), key=lambda p: (-len(p), p)):  # the longest first: likely the rarest
        count = await conn.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM ledger_words WHERE word >= $1 AND word < $2 LIMIT $3) m",
            prefix,
            _prefix_bound(prefix),
            RARE_TEXT + 1,
        )
        if count <= RARE_TEXT:
            rare = True  # one rare prefix bounds the whole search's matches
            break
    if len(_RARITY) >= _RARITY_MAX:
        _RARITY.clear()
    _RARITY[key] = (now, rare)
    return rare


def _prefix_bound(prefix: str) -> str:
    """The first string after every word that starts with `prefix` (its last character's successor): the end of
    the prefix's range of words."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


#: Ledger-column conditions the planner expects to hold for at least this share of entries are "broad" (see
#: `_broad_columns`): a side table driving the page then reads at most about limit / BROAD_COLUMNS of its entries.
BROAD_COLUMNS = 0.01
#: `_broad_columns`' recent answers (as `_RARITY`: a minute, bounded; only the plan depends on them).
_BREADTH: dict[tuple[tuple[str, str], ...], tuple[float, bool]] = {}


async def _broad_columns(conn: Conn, f: AuditFilter) -> bool:
    """Whether a side-table filter should drive the page although ledger columns are filtered too.

    Why: with both, the planner walks `ledger`'s primary key over the band testing the columns row by row and
    probing the side table (measured at 1M entries, one organisation + decision=not_share + a year: 22,000 rows
    read, 29 ms, with parallel workers), where driving from `ledger_orgs` reads 665 of the organisation's
    entries (3 ms). Driving is right when the columns hold for many entries, wrong when they hold for very few
    (article_9=legal_claims + purpose=emergency + an organisation: 124 ms driven, every one of the
    organisation's 40,000 entries, against 22 ms the planner's way). The planner's own estimate for the columns
    (their statistics, values inlined so the estimate is for them) tells the two apart; remembered a minute.
    """
    columns = tuple((column, value) for field, column in _COLUMNS if (value := getattr(f, field)) is not None)
    if not columns or all(getattr(f, field) is None for field, _, _ in _SIDE):
        return False
    now = time.monotonic()
    known = _BREADTH.get(columns)
    if known is not None and now - known[0] < _RARITY_SECONDS:
        return known[1]
    conds = " AND ".join(f"l.{column} = {_quote(value)}" for column, value in columns)
    plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM ledger l WHERE {conds}")  # noqa: S608
    rows = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]["Plan Rows"]
    total = await conn.fetchval("SELECT greatest(reltuples, 1) FROM pg_class WHERE oid = 'ledger'::regclass")
    if len(_BREADTH) >= _RARITY_MAX:
        _BREADTH.clear()
    _BREADTH[columns] = (now, float(rows) >= BROAD_COLUMNS * float(total))
    return _BREADTH[columns][1]


async def _page(
    conn: Conn,
    f: AuditFilter,
    lo: int,
    hi: int,
    limit: int,
    descending: bool,
    *,
    rare: bool = False,
    broad: bool = False,
) -> list[Any]:
    """One page of matches in [lo, hi), newest or oldest first, as the driver's records (`_ROW`'s columns: an
    export asks for the next page before it turns this one into rows).

    With a side-table filter (subject, recipient, agreement, organisation), the page is driven from that table's
    (value, idx) index in idx order, joined to `ledger` by primary key, as SQLite does. Why: with the filter as
    `l.idx IN (sub-select)` PostgreSQL's planner (underestimating the rows in a time band) merge-joined the
    ledger's primary key range against it, reading ~25 ledger rows per match (measured at 1M entries: an export
    page of one organisation's year 67 ms, against 6 ms driven from `ledger_orgs`). With a rare full-text query
    (`rare`, see `_rare_text`) the page starts from the GIN index's matches instead. Same rows: each side table is
    unique per (value, idx), so the join yields each entry once, and every other condition still applies.
    """
    q = _Sql()
    lo_arg, hi_arg = q.arg(lo), q.arg(hi)
    band = f" AND x.idx >= {lo_arg} AND x.idx < {hi_arg}"
    order = "DESC" if descending else "ASC"
    limit_sql = ""
    # With a ledger column filtered too, only when the columns are broad (`_broad_columns`): for rare ones (say
    # article_9 + purpose + org), the planner's own plan (combining the ledger's column indexes, then the side
    # table) reads fewer entries than a lookup of every one of the organisation's entries (measured: 217 ms
    # driven from `ledger_orgs`, ~100 ms not).
    driver = None
    if broad or all(getattr(f, field) is None for field in _LEDGER_COLUMNS):
        driver = next(((fd, t, c) for fd, t, c in _SIDE if getattr(f, fd) is not None), None)
    skip: str | None
    if driver is not None:
        # Each of the side table's entries in the band, in idx order, is looked up in `ledger` with the other
        # conditions in a LATERAL sub-select (`OFFSET 0` keeps the order: the side table's index range, whatever a
        # generic plan would guess). Why not a plain join: PostgreSQL merge-joined it against `ledger`'s primary
        # key walked down from the newest entry, since the cursor bounded only the side table (measured at 1M
        # entries: page 20 of one organisation read 25,576 ledger rows, 66 ms, where 50 lookups take 0.6 ms).
        field, table, column = driver
        _filter(f, q, band, field)
        source = (
            f"{table} x CROSS JOIN LATERAL (SELECT {_ROW} FROM ledger l WHERE l.idx = x.idx AND {q.where()}"  # noqa: S608
            " OFFSET 0) l"
        )
        q.conds = [f"x.{column} = {q.arg(getattr(f, field))}", f"x.idx >= {lo_arg}", f"x.idx < {hi_arg}"]
        key, skip = "x.idx", "all"
    elif f.text is not None and terms(f.text)[0]:
        # A whole word: the page is a range of `ledger_words`' (word, idx) index in idx order, as a side table's
        # (FTS5's doclist), each match looked up in `ledger` by primary key with the other conditions applied
        # there (the LATERAL sub-select that `OFFSET 0` keeps whole, as for a common word below). Every other
        # whole word is a probe of the same index at that idx, a prefix a probe of `ledger_fts`. The longest
        # word drives (long words are the rarer ones, and the rarer driver reads fewer entries; the answer is the
        # same whichever drives). Whole words alone are bound parameters: the only sensible plan for `word = $1 AND
        # idx in a range ORDER BY idx LIMIT n` is that range of the primary key, whatever the values (checked: the
        # generic plan is this plan), so the statement is prepared once rather than once per page (a round trip
        # per page saved). With a prefix, everything is inlined as for the GIN plans below: a generic plan takes
        # `@@ $n` for nearly nothing and sorted every match of the word instead (measured at 1M entries: 1.3 s
        # against 1 ms for these very words).
        words, prefixes = terms(f.text)
        words = sorted(set(words), key=lambda w: (-len(w), w))
        value: Callable[[str], str]
        if prefixes:
            q = _Sql()
            value, lo_sql, hi_sql = _quote, str(int(lo)), str(int(hi))
        else:
            value, lo_sql, hi_sql = q.arg, lo_arg, hi_arg
        _filter(f, q, "", "text")
        source = (
            f"ledger_words x CROSS JOIN LATERAL (SELECT {_ROW} FROM ledger l WHERE l.idx = x.idx AND {q.where()}"  # noqa: S608
            " OFFSET 0) l"
        )
        q.conds = [f"x.word = {value(words[0])}", f"x.idx >= {lo_sql}", f"x.idx < {hi_sql}"]
        q.conds += [
            f"EXISTS (SELECT 1 FROM ledger_words y WHERE y.word = {value(w)} AND y.idx = x.idx)"  # noqa: S608
            for w in words[1:]
        ]
        if prefixes:
            prefix_query = _quote(" & ".join(f"'{p}':*" for p in prefixes))
            q.conds.append(
                f"EXISTS (SELECT 1 FROM ledger_fts z WHERE z.idx = x.idx AND z.description @@ {prefix_query}::tsquery)"  # noqa: S608
            )
        # The limit inlined (an integer: one statement per page size): with `LIMIT $n` a generic plan assumes a
        # tenth of the word's matches and may prefer sorting them all.
        key, skip, limit_sql = "x.idx", "all", str(int(limit))
    elif rare and f.text is not None:
        # The matches come from the GIN index (a bitmap scan: no LIMIT in the sub-select to tempt a walk), sorted,
        # then joined to `ledger` by primary key in that order until the page is full. `OFFSET 0` keeps the
        # sub-select (and its order) whole; a CTE would not carry its order, so the planner joined every match
        # to `ledger` before sorting (measured: 45 ms for a word in 1,024 entries, against 2 ms this way).
        # The words, bounds and limit are inlined (integers, and `_literal`): with parameters, asyncpg's
        # prepared statement switched to a generic plan after five runs, which guessed a narrow band and walked
        # `ledger_fts` by primary key again (measured: 8-23 ms instead of 1.5 ms).
        source = (
            f"(SELECT x.idx FROM ledger_fts x WHERE x.description @@ {_literal(f.text)}::tsquery"  # noqa: S608
            f" AND x.idx >= {int(lo)} AND x.idx < {int(hi)} ORDER BY x.idx {order} OFFSET 0) m"
            " JOIN ledger l ON l.idx = m.idx"
        )
        key, skip, limit_sql = "m.idx", "text", str(int(limit))
        q, band = _Sql(), ""  # no bound parameters (no side table here: it would have driven the page)
    elif f.text is not None and tsquery(f.text) is not None:
        # A common word: walk `ledger_fts` in idx order (matches are dense) and look each match up in `ledger`
        # (a LATERAL sub-select that `OFFSET 0` keeps from being flattened, so the lookup is by primary key with
        # the other conditions applied there). Why: as `l.idx IN (sub-select)` the planner merge-joined the
        # ledger's primary key range, reading every entry of the range (measured at 1M entries: an export page
        # of kind=share + a common word 27 ms, against 7 ms this way). Words and bounds inlined as above, so a
        # generic plan cannot swap the walk for a bitmap of every match.
        q, band = _Sql(), ""
        _filter(f, q, band, "text")
        source = (
            f"ledger_fts x CROSS JOIN LATERAL (SELECT {_ROW} FROM ledger l WHERE l.idx = x.idx AND {q.where()}"  # noqa: S608
            f" OFFSET 0) l"
        )
        q.conds = [
            f"x.description @@ {_literal(f.text)}::tsquery",
            f"x.idx >= {int(lo)}",
            f"x.idx < {int(hi)}",
        ]
        key, skip, limit_sql = "x.idx", "all", str(int(limit))
    else:
        source, key, skip = "ledger l", "l.idx", None
        q.add(f"l.idx >= {lo_arg}")
        q.add(f"l.idx < {hi_arg}")
    if skip != "all":
        _filter(f, q, band, skip)
    sql = f"SELECT {_ROW} FROM {source} WHERE {q.where()} ORDER BY {key} {order} LIMIT {limit_sql or q.arg(limit)}"  # noqa: S608
    if skip is None and len(q.conds) > 3:
        # Several conditions left to the planner: plan for these values every time. Why: asyncpg's prepared
        # statement is reused across values, and after five runs PostgreSQL may keep a generic plan, which for
        # article_9 + purpose + org walked the ledger (measured at 1M entries: 35 ms for the first five
        # organisations, 700-900 ms for every later one). SET LOCAL: the setting ends with the transaction.
        async with conn.transaction():
            await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
            return list(await conn.fetch(sql, *q.args))
    return list(await conn.fetch(sql, *q.args))


async def query_page(conn: Conn, f: AuditFilter, *, before: int | None, limit: int) -> list[LedgerRow]:
    """The newest `limit` matching entries with an index below `before` (the cursor)."""
    lo, hi = await _time_band(conn, f, 0, MAX_INDEX if before is None else before, exact_below=False)
    if lo >= hi:
        return []
    rare, broad = await _rare_text(conn, f), await _broad_columns(conn, f)
    return [_row(r) for r in await _page(conn, f, lo, hi, limit, descending=True, rare=rare, broad=broad)]


async def check_filter(f: AuditFilter) -> None:
    """Refuse (QueryError) before an export starts streaming, as the SQLite store does: a response already begun
    cannot report it. (Every filter value arrives checked, and a text query cannot fail here.)"""
    if f.text is not None and len(f.text) > 4 * MAX_TEXT_QUERY:
        raise QueryError("q", "q could not be used as a full-text search.")


#: How many pages of one export are asked for at once, each on its own pooled connection (see `export_pages`).
EXPORT_DEPTH = 3


async def export_pages(
    conn_for: Any, f: AuditFilter, *, upto: int, page_size: int = 1000, depth: int = EXPORT_DEPTH
) -> AsyncIterator[list[LedgerRow]]:
    """Every match below `upto`, oldest first, in pages of at most `page_size` (memory: `depth` pages at most);
    `conn_for()` gives a pooled connection per page, so a slow client holds none between pages.

    Why several pages at once: one page at a time (even with the next asked for early) left both sides half idle.
    Measured at 1M entries for a word's shares (62 pages of 2.5 MB): the gateway's process spent ~320 ms of CPU
    reading the pages and PostgreSQL ~3 ms per page finding rows, yet the export took ~520-580 ms of wall time.
    With three pages in flight it takes ~380-430 ms (four: ~370-400 ms; three keeps two exports within the
    pool's ten connections), the same rows in the same order; bench/bench_ledger_queries.py has the figures
    beside SQLite's. Keyset pages cannot be asked for ahead (the next starts after this one's last index), so after
    the first page the rest of the range is cut into windows of index numbers, each about one page's span of
    matches (adjusted to the density each window shows): every window is one page query in [a, b), asked for up
    to `depth` ahead, and a window with more than a page of matches continues from its last index before any
    later window is given out. Pages are yielded strictly in index order."""
    async with conn_for() as conn:
        lo, upto = await _time_band(conn, f, 0, upto, exact_below=True)
        rare, broad = await _rare_text(conn, f), await _broad_columns(conn, f)

    async def fetch(a: int, b: int) -> list[Any]:
        async with conn_for() as conn:
            return await _page(conn, f, a, b, page_size, descending=False, rare=rare, broad=broad)

    # (start, end, its page) in index order; the first window is the whole range until its page shows the density.
    queue: collections.deque[tuple[int, int, asyncio.Future[list[Any]]]] = collections.deque()
    if lo < upto:
        queue.append((lo, upto, asyncio.ensure_future(fetch(lo, upto))))
    following, width = upto, 0  # where the next window starts; its width (0: not known yet)

    def top_up() -> None:
        nonlocal following
        while width and len(queue) < depth and following < upto:
            end = min(upto, following + width)
            queue.append((following, end, asyncio.ensure_future(fetch(following, end))))
            following = end

    try:
        while queue:
            start, end, ahead = queue.popleft()
            records = await ahead
            if len(records) == page_size and (after := int(records[-1][0]) + 1) < end:
                if not width:  # the first page: the rest of the range is cut into windows of its span
                    following = after
                else:  # this window has more: it continues before any later window is given out
                    queue.appendleft((after, end, asyncio.ensure_future(fetch(after, end))))
                width = max(1, after - start)
            elif width:
                width = max(1, (end - start) * page_size // len(records)) if records else width * 2
            top_up()
            await asyncio.sleep(0)  # one turn sends the queries just made, before this page's decoding takes the loop
            if records:
                yield [_row(r) for r in records]
    finally:
        # The caller stopped early (say, the client went away): no page is fetched for nobody.
        for _, _, pending in queue:
            pending.cancel()
        for _, _, pending in queue:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending


async def latest_checkpoint(conn: Conn) -> StoredCheckpoint | None:
    r = await conn.fetchrow("SELECT size, time, note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1")
    return None if r is None else StoredCheckpoint(int(r[0]), r[1], bytes(r[2]))


async def ledger_end(conn: Conn) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(idx) + 1, 0) FROM ledger"))


async def subject_events(conn: Conn, ref: str, cap: int, *, scope: str | None = None) -> tuple[list[LedgerRow], bool]:
    q = _Sql()
    _join(q, "ledger_subjects", "ref", ref)
    if scope is not None:
        _join(q, "ledger_orgs", "org", scope)
    rows = await conn.fetch(
        f"SELECT {_ROW} FROM ledger l WHERE {q.where()} ORDER BY l.idx ASC LIMIT {q.arg(cap + 1)}",  # noqa: S608
        *q.args,
    )
    return [_row(r) for r in rows[:cap]], len(rows) > cap


async def verify_inclusions(
    conn: Conn, size: int, root: bytes, entries: Sequence[tuple[int, bytes]]
) -> dict[int, str | None]:
    """`queries.verify_inclusions` on PostgreSQL (call inside one snapshot): every hash all the proofs need is
    fetched once (a subject's proofs share most of their upper levels), then each proof is built and checked
    against the signed root from the leaf recomputed from the entry's bytes."""
    wanted = [(i, data) for i, data in entries if i < size]
    results: dict[int, str | None] = {}

    def build(leaf: pg_ledger.LeafGetter, sub: pg_ledger.SubtreeGetter) -> dict[int, str | None]:
        out: dict[int, str | None] = {}
        for index, data in wanted:
            try:
                proof = merkle.inclusion_proof(index, size, leaf, sub)
                merkle.verify_inclusion(merkle.leaf_hash(data), index, size, proof, root)
            except (merkle.ProofError, ValueError) as exc:
                out[index] = str(exc)
            except Exception as exc:  # a missing leaf is a failed check, not a 500
                out[index] = f"proof could not be built: {type(exc).__name__}"
            else:
                out[index] = None
        return out

    if wanted:
        results = await pg_ledger.with_hashes(conn, build)
    return results


async def flagged_decisions(
    conn: Conn,
    flag: str,
    *,
    org: str | None,
    time_from: str | None,
    time_to: str | None,
    before: int | None,
    limit: int,
) -> list[LedgerRow]:
    q = _Sql()
    q.add("d.kind = 'decision'")
    q.add(f"d.idx < {q.arg(MAX_INDEX if before is None else before)}")
    q.add(f"(d.facts -> 'flags') ? {q.arg(flag)}")
    if org is not None:
        q.add(f"d.actor_org = {q.arg(org)}")
    if time_from is not None:
        q.add(f"d.time >= {q.arg(time_from)}")
    if time_to is not None:
        q.add(f"d.time < {q.arg(time_to)}")
    rows = await conn.fetch(
        f"SELECT d.idx, d.time, d.kind, d.entry, d.leaf_hash FROM ledger d WHERE {q.where()}"  # noqa: S608
        f" ORDER BY d.idx DESC LIMIT {q.arg(limit)}",
        *q.args,
    )
    return [_row(r) for r in rows]


async def own_decisions(conn: Conn, sub: str, *, before: int | None, limit: int) -> list[LedgerRow]:
    rows = await conn.fetch(
        "SELECT d.idx, d.time, d.kind, d.entry, d.leaf_hash FROM ledger d"
        " WHERE d.actor_sub = $1 AND d.idx < $2 AND d.kind = 'decision' ORDER BY d.idx DESC LIMIT $3",
        sub,
        MAX_INDEX if before is None else before,
        limit,
    )
    return [_row(r) for r in rows]


#: An emergency share (issue 14) whose justification has not been completed yet: `d` is the share's entry.
_EMERGENCY_OPEN = (
    "d.kind = 'share' AND d.facts ->> 'complete_by' IS NOT NULL"
    " AND NOT EXISTS (SELECT 1 FROM ledger c WHERE c.kind = 'emergency_completed' AND c.share_id = d.share_id)"
)
#: A share held for a second person's approval (issue 14) and not yet approved: `d` is the share's entry.
_AWAITING_APPROVAL = (
    f"d.kind = 'share' AND nullif({_JSON} -> 'dual_control', 'null'::jsonb) IS NOT NULL"  # noqa: S608 (constants only)
    " AND NOT EXISTS (SELECT 1 FROM ledger a WHERE a.kind = 'share_approved' AND a.share_id = d.share_id)"
)


async def open_emergencies(conn: Conn, sub: str, *, limit: int) -> list[LedgerRow]:
    rows = await conn.fetch(
        "SELECT d.idx, d.time, d.kind, d.entry, d.leaf_hash FROM ledger d"  # noqa: S608
        f" WHERE d.actor_sub = $1 AND {_EMERGENCY_OPEN} ORDER BY d.idx LIMIT $2",
        sub,
        limit,
    )
    return [_row(r) for r in rows]


async def awaiting_approval(conn: Conn, share_id: str) -> bool:
    row = await conn.fetchrow(
        f"SELECT 1 FROM ledger d WHERE d.share_id = $1 AND {_AWAITING_APPROVAL} LIMIT 1",  # noqa: S608
        share_id,
    )
    return row is not None


async def shares_awaiting_approval(conn: Conn, org: str, *, limit: int) -> list[LedgerRow]:
    rows = await conn.fetch(
        "SELECT d.idx, d.time, d.kind, d.entry, d.leaf_hash FROM ledger d"  # noqa: S608
        f" WHERE d.actor_org = $1 AND {_AWAITING_APPROVAL} ORDER BY d.idx LIMIT $2",
        org,
        limit,
    )
    return [_row(r) for r in rows]


async def retention_schedule(conn: Conn, org: str | None, *, limit: int) -> list[tuple[Any, ...]]:
    rows = await conn.fetch(
        f"SELECT s.id, s.created_at, s.expires_at, s.purpose_code, s.ledger_index, {_JSON} #>> '{{retention,class}}'"  # noqa: S608
        " FROM shares s JOIN ledger d ON d.idx = s.ledger_index"
        " WHERE s.state = 'active' AND ($1::text IS NULL OR s.sender_org = $1) ORDER BY s.expires_at, s.id LIMIT $2",
        org,
        limit,
    )
    return [tuple(r) for r in rows]


async def retention_facts(conn: Conn) -> dict[str, Any]:
    since = await conn.fetchval("SELECT max(idx) FROM ledger WHERE kind = 'retention_review'")
    destroyed = await conn.fetchval(
        "SELECT count(*) FROM ledger WHERE kind IN ('expire', 'expired_unclaimed') AND idx > $1",
        -1 if since is None else since,
    )
    live = await conn.fetchrow("SELECT count(*), min(expires_at) FROM shares WHERE state = 'active'")
    return {
        "previous_review_index": None if since is None else int(since),
        "destroyed_since": int(destroyed),
        "live_shares": int(live[0]),
        "next_destruction_at": live[1],
    }


async def advice_entries(conn: Conn, *, org: str | None, sub: str | None, limit: int) -> list[LedgerRow]:
    q = _Sql()
    q.add("d.kind IN ('advice_question', 'advice_answer')")
    if org is not None:
        q.add(f"d.actor_org = {q.arg(org)}")
    if sub is not None:
        q.add(f"(d.kind = 'advice_answer' OR d.actor_sub = {q.arg(sub)})")
    rows = await conn.fetch(
        "SELECT d.idx, d.time, d.kind, d.entry, d.leaf_hash FROM ledger d"  # noqa: S608
        f" WHERE {' AND '.join(q.conds)} ORDER BY d.idx DESC LIMIT {q.arg(limit)}",
        *q.args,
    )
    return [_row(r) for r in rows]


def _period(q: _Sql, time_from: str | None, time_to: str | None, scope: str | None) -> str:
    conds = []
    if scope is not None:
        org = q.arg(scope)
        conds.append(f"EXISTS (SELECT 1 FROM ledger_orgs o WHERE o.org = {org} AND o.idx = d.idx)")  # noqa: S608
    if time_from is not None:
        conds.append(f"d.time >= {q.arg(time_from)}")
    if time_to is not None:
        conds.append(f"d.time < {q.arg(time_to)}")
    return " AND ".join(conds) or "true"


async def latest_decisions_by_decider(conn: Conn, org: str | None, *, limit: int, after: int = 0) -> list[LedgerRow]:
    """`queries.latest_decisions_by_decider` on PostgreSQL. `after` is written into the statement (an integer):
    planned for its own value, the last few entries are a primary-key range, the whole ledger one scan."""
    q = _Sql()
    q.add(f"idx >= {int(after)}")
    q.add("decision IS NOT NULL AND actor_sub IS NOT NULL")
    if org is not None:
        q.add(f"actor_org = {q.arg(org)}")
    rows = await conn.fetch(
        "SELECT d.idx, d.time, d.kind, d.entry, d.leaf_hash FROM ledger d WHERE d.idx IN"  # noqa: S608
        f" (SELECT max(idx) FROM ledger WHERE {' AND '.join(q.conds)} GROUP BY actor_sub, actor_org)"
        f" ORDER BY d.idx DESC LIMIT {q.arg(limit)}",
        *q.args,
    )
    return [_row(r) for r in rows]


async def stats(
    conn: Conn, time_from: str | None, time_to: str | None, *, scope: str | None = None, now: str | None = None
) -> dict[str, Any]:
    """`queries.stats` on PostgreSQL: the same GROUP BYs, the same folding, the same shape."""
    months: dict[str, dict[str, Any]] = {}

    def month(m: str) -> dict[str, Any]:
        return months.setdefault(m, empty_month(m))

    def add(bucket: dict[str, Any], dim: str, value: str | None, n: int) -> None:
        key = "none" if value is None else value
        bucket[dim][key] = bucket[dim].get(key, 0) + n

    q = _Sql()
    period = _period(q, time_from, time_to, scope)
    rows = await conn.fetch(
        f"SELECT {_MONTH}, d.decision, d.purpose_code, d.article_6, d.article_9, d.dpa_schedule_1, count(*)"  # noqa: S608
        f" FROM ledger d WHERE d.decision IS NOT NULL AND {period}"
        f" GROUP BY {_MONTH}, d.decision, d.purpose_code, d.article_6, d.article_9, d.dpa_schedule_1",
        *q.args,
    )
    for m, decision, purpose, a6, a9, s1, n in rows:
        bucket = month(m)
        bucket["decisions"] += n
        for dim, value in zip(STATS_DIMENSIONS, (decision, purpose, a6, a9, s1), strict=False):
            add(bucket, dim, value, n)
    rows = await conn.fetch(
        f"SELECT {_MONTH}, d.actor_org, count(*) FROM ledger d"  # noqa: S608
        f" WHERE d.decision IS NOT NULL AND {period} GROUP BY {_MONTH}, d.actor_org",
        *q.args,
    )
    for m, org, n in rows:
        add(month(m), "org", org, n)
    # By edition of the rules (issue 14): the policy each decision was checked against.
    rows = await conn.fetch(
        f"SELECT {_MONTH}, d.facts ->> 'policy', count(*) FROM ledger d"  # noqa: S608
        f" WHERE d.decision IS NOT NULL AND {period} GROUP BY 1, 2",
        *q.args,
    )
    for m, policy_id, n in rows:
        add(month(m), "policy", policy_id, n)
    rows = await conn.fetch(
        f"SELECT {_MONTH}, count(DISTINCT d.share_id) FROM ledger r"  # noqa: S608
        " JOIN ledger d ON d.share_id = r.share_id AND d.kind = 'share'"
        f" WHERE r.kind = 'revoke' AND {period} GROUP BY {_MONTH}",
        *q.args,
    )
    for m, n in rows:
        month(m)["shares_later_revoked"] += n
    rows = await conn.fetch(
        f"SELECT {_MONTH}, count(*) FROM ledger d"  # noqa: S608
        f" WHERE d.purpose_code = 'emergency' AND d.kind = 'share' AND {period}"
        " AND NOT EXISTS (SELECT 1 FROM ledger f WHERE f.share_id = d.share_id AND f.kind = 'fetch')"
        f" GROUP BY {_MONTH}",
        *q.args,
    )
    for m, n in rows:
        month(m)["emergency_shares_not_completed"] += n
    # Emergency shares still owing their justification (issue 14), overdue once past the share's own deadline.
    q2 = _Sql()
    due = q2.arg(now or "")
    period2 = _period(q2, time_from, time_to, scope)
    rows = await conn.fetch(
        f"SELECT {_MONTH}, count(*), count(*) FILTER (WHERE d.facts ->> 'complete_by' < {due})"  # noqa: S608
        f" FROM ledger d WHERE {_EMERGENCY_OPEN} AND {period2} GROUP BY {_MONTH}",
        *q2.args,
    )
    for m, n, overdue in rows:
        month(m)["emergency_justifications_open"] += n
        month(m)["emergency_justifications_overdue"] += overdue
    flag = q.arg(FLAG_NOT_SHARED_DESPITE_RISK)
    rows = await conn.fetch(
        f"SELECT {_MONTH}, d.decision, d.facts ->> 'channel',"  # noqa: S608
        f" (d.facts -> 'flags') ? {flag}, count(*) FROM ledger d"
        f" WHERE d.kind = 'decision' AND {period} GROUP BY 1, 2, 3, 4",
        *q.args,
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
    totals["agreements"] = await _agreement_stats(conn, time_from, time_to, scope)
    totals["decisions_not_to_share"] = totals["decision"].get("not_share", 0)
    return {"from": time_from, "to": time_to, "totals": totals, "months": ordered}


async def _agreement_stats(conn: Conn, time_from: str | None, time_to: str | None, scope: str | None) -> dict[str, Any]:
    per: dict[str, dict[str, Any]] = {}
    q = _Sql()
    period = _period(q, time_from, time_to, scope)
    rows = await conn.fetch(
        "SELECT a.agreement_id, a.version, count(*), sum(a.overridden) FROM ledger_agreements a"  # noqa: S608
        f" JOIN ledger d ON d.idx = a.idx WHERE d.kind = 'share' AND {period}"
        " GROUP BY a.agreement_id, a.version",
        *q.args,
    )
    for agreement_id, version, n, overridden in rows:
        item = per.setdefault(agreement_id, {"shares": 0, "overrides": 0, "versions": {}})
        item["shares"] += n
        item["overrides"] += int(overridden or 0)
        item["versions"][str(version)] = n
    row = await conn.fetchrow(
        "SELECT count(*), count(*) FILTER (WHERE (d.facts ->> 'override')::boolean),"  # noqa: S608
        " count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM ledger_agreements a WHERE a.idx = d.idx))"
        f" FROM ledger d WHERE d.kind = 'share' AND {period}",
        *q.args,
    )
    return {
        "per_agreement": dict(sorted(per.items())),
        "overrides": int(row[1]),
        "shares_without_agreement": int(row[2]),
    }
