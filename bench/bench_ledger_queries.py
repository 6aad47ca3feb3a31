#!/usr/bin/env python3
"""Auditor query, export and statistics figures at a million ledger entries: SQLite and PostgreSQL side by side.

Issue 11 asks that the audit queries on PostgreSQL give the same answers as on SQLite "with the same figures as
on SQLite at 1M entries or better". One run of this bench:

1. fills a SQLite ledger with `--entries` (default 1,000,000) realistic, varied entries (shares with whole
   justifications, decisions not to share, fetches, revocations, expiries; 50k subject refs, 2,000
   practitioners in 40 organisations, 600 recipients, three years of timestamps with the small out-of-order
   jitter concurrent requests produce) through the store's own append path (`gateway.store.sqlite.append_entry`
   inside a `LedgerBatch`, exactly as the writer thread appends: one executemany per table per 20,000 entries);
2. fills a PostgreSQL ledger (its own database, made by the store's migrations) with the *same* entries: the first
   `--pg-appended` (default 3,000) through the PostgreSQL store's own `append_entry` (one transaction per 500), the
   rest as a bulk load of the rows the SQLite store made (COPY of `ledger`, `ledger_subjects`, `ledger_recipients`,
   `ledger_orgs`, `ledger_agreements`, `ledger_nodes`; `ledger_fts` built with the same
   `array_to_tsvector(description_words(...))` the store's append uses, and `ledger_words` from the same words; the
   tree state and the checkpoint copied). The bulk load drops the secondary indexes the migrations made and recreates
   them from their own definitions afterwards, with triggers off (`session_replication_role = replica`) during the
   COPY, then runs `VACUUM ANALYZE` (what autovacuum would do to a live ledger). Before measuring, the bench checks
   that the rows the PostgreSQL store's own append made for the first entries are byte-for-byte the rows the bulk
   load derives from SQLite for them, and that every table has the same row count on both, so the bulk load is known
   to produce exactly the store's rows;
3. times the same audit queries through each store's own query module (`gateway.store.sqlite.queries` over
   aiosqlite, `gateway.store.postgres.queries` over asyncpg), with the same values on both: every filter of
   GET /api/v1/ledger and full-text search (a page of 50), a paged walk (20 pages deep with the cursor), the
   subject timeline (`subject_events`), statistics (whole ledger, one quarter), and exports (whole ledger and
   filtered, streamed in pages). Each query is repeated (`--samples` values, or `--reps` for the slow ones)
   and the median is reported, with the ratio PG/SQLite: the machine is shared, so ratios from one run are
   the figures to compare, not the milliseconds.

`--require-parity` exits 1 when, on any query, PostgreSQL's median is more than `--tolerance` (default 1.25)
times SQLite's *and* more than `--floor-ms` (default 2 ms: one loopback round trip and asyncpg's decoding, which
an in-process SQLite does not pay) slower. Not run in CI (the fill takes minutes at 1M).

`--http` also measures GET /api/v1/ledger, the report, stats and export through a real SQLite gateway process
(the figures the bench gave before it compared backends).

Usage: python bench/bench_ledger_queries.py [--entries 1000000] [--home DIR] [--samples 15] [--reps 3]
       [--dsn postgresql://postgres@127.0.0.1:5432/postgres] [--require-parity] [--tolerance 1.25] [--http]
`--home DIR` keeps the built SQLite ledger there and reuses it (and the PostgreSQL database
`safeshare_bench_queries`, if it holds the same number of entries, brought to the code's schema step) on the next
run; `--fresh-pg` fills PostgreSQL again (a migrated database keeps its older entries' compression).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import aiosqlite
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.auth import EmbeddedIssuer  # noqa: E402
from gateway.config import Settings  # noqa: E402
from gateway.home import init_home  # noqa: E402
from gateway.ledger import entry as E  # noqa: E402
from gateway.ledger.checkpoint import Checkpoint, NoteSigner  # noqa: E402
from gateway.store.audit import AuditFilter, fts_query  # noqa: E402
from gateway.store.postgres import ledger as pg_ledger  # noqa: E402
from gateway.store.postgres import queries as pg_queries  # noqa: E402
from gateway.store.postgres.repository import migrate as pg_migrate  # noqa: E402
from gateway.store.sqlite import LedgerConnection, append_entry, create_schema, load_tree, queries  # noqa: E402
from gateway.store.sqlite.tree import LedgerBatch  # noqa: E402

#: The fixtures' text: parsed afresh per entry (json.loads is ~50x faster than copy.deepcopy, the fill's hot spot).
JUSTIFICATION = (ROOT / "tests/fixtures/justifications/justification-share.json").read_text()
NOT_SHARE = (ROOT / "tests/fixtures/justifications/justification-not-share.json").read_text()
DEFAULT_DSN = os.environ.get("SAFESHARE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DATABASE = "safeshare_bench_queries"

PURPOSES = [
    ("referral", 30),
    ("s47_enquiry", 10),
    ("s17_assessment", 10),
    ("strategy_discussion", 8),
    ("cp_conference", 7),
    ("mash_research", 10),
    ("s42_enquiry", 8),
    ("crime_prevention", 7),
    ("emergency", 5),
    ("other", 5),
]
ARTICLE_6 = [("public_task", 60), ("legal_obligation", 25), ("vital_interests", 10), ("legitimate_interests", 5)]
ARTICLE_9 = [
    (None, 40),
    ("substantial_public_interest", 35),
    ("health_social_care", 15),
    ("social_protection", 7),
    ("legal_claims", 3),
]
SCHEDULE_1 = [("p18_safeguarding", 70), ("p6_statutory_purposes", 20), ("p10_preventing_crime", 10)]
WORDS = (
    "referral disclosure injury school bruising neglect concern domestic abuse parent carer sibling health visitor "
    "nursery attendance housing tenancy arrears hospital admission mental wellbeing police attended incident "
    "missing episode exploitation online grooming county lines substance misuse self harm escalation strategy "
    "meeting conference assessment follow review consultation advice request enquiry section forty seven "
    "seventeen safeguarding adult vulnerable financial scam cuckooing carer breakdown placement foster kinship "
    "court order protection plan core group visit welfare check emergency overnight"
).split()
RARE_WORD = "trafficking"  # in ~0.2% of descriptions: a selective full-text search
DAY0 = datetime(2023, 6, 1, tzinfo=UTC)
SPAN = timedelta(days=3 * 365)


def weighted(rng: random.Random, table: list[tuple[Any, int]]) -> Any:
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


def fmt(t: datetime) -> str:
    return E.format_time(t)


class LedgerBuilder:
    """Generates realistic entries: the mix and the shapes the gateway itself records."""

    def __init__(self, n: int, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.n = n
        self.orgs = [f"Org {i:02d} {'Children' if i % 2 else 'Adult'} Services" for i in range(40)]
        self.practitioners = [(f"prac-{i:04d}", self.orgs[i % 40]) for i in range(2000)]
        self.recipients = [(f"rcp-{i:03d}", self.orgs[(i * 7) % 40]) for i in range(600)]
        self.subjects = [f"CASE-{i:06d}" for i in range(50_000)]
        self.recent: deque[tuple[str, int, list[str], list[dict[str, Any]]]] = deque(maxlen=2000)
        self.policy = {"id": "hmg-2018", "version": "1.0.0", "digest": "sha256:" + "ab" * 32}
        self.pending_share: tuple[str, list[str], list[dict[str, Any]]] | None = None

    def append(self, conn: sqlite3.Connection, i: int) -> None:
        """Append entry `i` through the store's `append_entry`; remember shares so later events can refer to them."""
        self.pending_share = None
        idx = append_entry(conn, self.entry(i))
        if self.pending_share is not None:
            sid, refs, rec = self.pending_share
            self.recent.append((sid, idx, refs, rec))

    def time_at(self, i: int) -> str:
        # Mostly increasing, but up to two seconds out of order, as concurrent requests make it.
        t = DAY0 + SPAN * (i / self.n) - timedelta(milliseconds=self.rng.randrange(0, 2000))
        return fmt(t)

    def description(self) -> str:
        rng = self.rng
        words = rng.sample(WORDS, rng.randrange(8, 16))
        if rng.random() < 0.002:
            words.insert(rng.randrange(len(words)), RARE_WORD)
        return " ".join(words).capitalize() + "."

    def justification(self, decision: str) -> dict[str, Any]:
        rng = self.rng
        refs = rng.sample(self.subjects, 1 if rng.random() < 0.8 else 2)
        if decision == "not_share":
            j = json.loads(NOT_SHARE)
            j["purpose"] = {"code": weighted(rng, PURPOSES), "description": self.description()}
            j["subjects"] = [{"ref": r, "role": "adult_at_risk"} for r in refs]
            return j
        j = json.loads(JUSTIFICATION)
        j["purpose"] = {"code": weighted(rng, PURPOSES), "description": self.description()}
        j["subjects"] = [{"ref": r, "role": "child"} for r in refs]
        j["rules"]["5_safety_wellbeing"]["at_risk"] = refs
        basis: dict[str, Any] = {"article_6": weighted(rng, ARTICLE_6)}
        a9 = weighted(rng, ARTICLE_9)
        if a9 is not None:
            basis["article_9"] = a9
            if a9 == "substantial_public_interest":
                basis["dpa_schedule_1"] = weighted(rng, SCHEDULE_1)
        else:
            j["data_categories"] = ["identity", "safeguarding_concern"]
        j["rules"]["1_lawful_basis"] = basis
        return j

    def entry(self, i: int) -> dict[str, Any]:
        rng = self.rng
        t = self.time_at(i)
        roll = rng.random()
        if roll < 0.40 or not self.recent:
            sub, org = rng.choice(self.practitioners)
            recips = rng.sample(self.recipients, 1 if rng.random() < 0.7 else rng.randrange(2, 4))
            share_id = f"sh_{i:024d}"
            rec = [
                {"id": rid, "org": rorg, "envelope_sha256": f"{rng.getrandbits(256):064x}", "envelope_size": 4242}
                for rid, rorg in recips
            ]
            j = self.justification("share")
            e = E.share_entry(
                time=t,
                actor=E.actor(sub, "practitioner", org, "safeshare-embedded"),
                share_id=share_id,
                justification=j,
                policy=self.policy,
                recipients=rec,
                payload={"size": 4096, "content_type": "application/pdf", "hmac_sha256": "cd" * 32},
                expires_at=t,
                max_downloads=None,
            )
            self.pending_share = (share_id, [s["ref"] for s in j["subjects"]], rec)
            return e
        if roll < 0.50:
            sub, org = rng.choice(self.practitioners)
            return E.decision_entry(
                time=t,
                actor=E.actor(sub, "practitioner", org, "safeshare-embedded"),
                justification=self.justification("not_share"),
                policy=self.policy,
            )
        share_id, share_idx, refs, rec = rng.choice(self.recent)
        kind = E.KIND_FETCH if roll < 0.87 else E.KIND_REVOKE if roll < 0.90 else E.KIND_EXPIRE
        r = rng.choice(rec)
        common = {
            "time": t,
            "share_id": share_id,
            "share_index": share_idx,
            "subjects": refs,
        }
        if kind == E.KIND_FETCH:
            return E.share_event_entry(
                kind=kind,
                actor=E.actor(r["id"], "recipient", r["org"], "safeshare-embedded"),
                recipients=[{"id": r["id"], "org": r["org"]}],
                envelope_sha256=r["envelope_sha256"],
                download=1,
                **common,
            )
        if kind == E.KIND_REVOKE:
            sub, org = rng.choice(self.practitioners)
            return E.share_event_entry(
                kind=kind,
                actor=E.actor(sub, "practitioner", org, "safeshare-embedded"),
                recipients=[{"id": x["id"], "org": x["org"]} for x in rec],
                reason="sent to the wrong team",
                **common,
            )
        return E.share_event_entry(
            kind=kind,
            actor=None,
            recipients=[{"id": x["id"], "org": x["org"]} for x in rec],
            reason="expired",
            **common,
        )


def build(db: Path, n: int, signer: NoteSigner) -> float:
    """Append through the writer's path (`append_entry` inside a `LedgerBatch`, flushed before each COMMIT) in
    transactions of 20,000 entries, fsync off for the build only.

    Returns the build time in seconds (0 when an existing ledger of the right size was reused).
    """
    create_schema(db)
    conn = sqlite3.connect(db, isolation_level=None, factory=LedgerConnection)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    have = conn.execute("SELECT coalesce(max(idx) + 1, 0) FROM ledger").fetchone()[0]
    if have > n:
        raise SystemExit(f"{db} already holds {have:,} entries, more than --entries {n:,}; use another --home")
    builder = LedgerBuilder(n)
    if n > have > 0:  # resuming: the generator must be where it stopped (a complete ledger needs no replay)
        replay(builder, have)
    start = time.perf_counter()
    batch = 20_000
    for lo in range(have, n, batch):
        conn.execute("BEGIN")
        conn.ledger_batch = LedgerBatch()
        for i in range(lo, min(n, lo + batch)):
            builder.append(conn, i)
        conn.ledger_batch.flush(conn)
        conn.ledger_batch = None
        conn.execute("COMMIT")
        done = min(n, lo + batch)
        rate = (done - have) / (time.perf_counter() - start)
        print(f"\r  built {done:,}/{n:,} entries ({rate:,.0f}/s)", end="", flush=True)
    if n > have:
        print()
    tree = load_tree(conn)
    last = conn.execute("SELECT coalesce(max(size), 0) FROM ledger_checkpoints").fetchone()[0]
    if tree.size > last:
        note = signer.sign(Checkpoint(signer.name, tree.size, tree.root()).body())
        conn.execute(
            "INSERT INTO ledger_checkpoints (size, time, note) VALUES (?, ?, ?)", (tree.size, E.utc_now(), note)
        )
    conn.execute("PRAGMA synchronous=FULL")
    conn.close()
    return time.perf_counter() - start if n > have else 0.0


def replay(builder: LedgerBuilder, upto: int) -> None:
    """The generator is deterministic: replay it without writing to rebuild its state up to entry `upto`."""
    for i in range(upto):
        builder.entry(i)
        if builder.pending_share is not None:
            sid, refs, rec = builder.pending_share
            builder.recent.append((sid, i, refs, rec))
            builder.pending_share = None


# -- PostgreSQL: the same ledger ----------------------------------------------------------------------------

LEDGER_COLUMNS = (
    "idx",
    "time",
    "kind",
    "actor_sub",
    "actor_org",
    "decision",
    "share_id",
    "purpose_code",
    "article_6",
    "article_9",
    "dpa_schedule_1",
    "entry",
    "leaf_hash",
    "mac",
)
#: table -> columns copied as they are (the same names and values in both schemas); ledger_fts and ledger_nodes
#: are handled on their own.
SIDE_TABLES = {
    "ledger_subjects": ("ref", "idx"),
    "ledger_recipients": ("recipient_id", "idx"),
    "ledger_orgs": ("org", "idx"),
    "ledger_agreements": ("agreement_id", "version", "idx", "overridden"),
}
COUNTED_TABLES = ("ledger", *SIDE_TABLES, "ledger_fts", "ledger_nodes", "ledger_checkpoints")


def with_database(dsn: str, name: str) -> str:
    p = urlsplit(dsn)
    return urlunsplit((p.scheme, p.netloc, "/" + name, p.query, p.fragment))


def sqlite_rows(db: Path, sql: str, args: tuple[Any, ...] = (), chunk: int = 20_000) -> Any:
    """Stream a query's rows in chunks (a 1M-row table never sits in memory whole)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        cur = conn.execute(sql, args)
        while rows := cur.fetchmany(chunk):
            yield rows
    finally:
        conn.close()


async def pg_count(conn: Any) -> int:
    if not await conn.fetchval("SELECT to_regclass('ledger_tree') IS NOT NULL"):
        return -1
    return int(await conn.fetchval("SELECT size FROM ledger_tree WHERE id = 0"))


async def build_pg(dsn: str, db: Path, n: int, appended: int, reuse: bool) -> tuple[str, float]:
    """Fill database `PG_DATABASE` with the same ledger as `db` (see the module docstring); returns its DSN and
    the fill time (0 when reused)."""
    url = with_database(dsn, PG_DATABASE)
    admin = await asyncpg.connect(dsn)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", PG_DATABASE)
        if exists and reuse:
            conn = await asyncpg.connect(url)
            try:
                if await pg_count(conn) == n:
                    t = time.perf_counter()
                    before, after = await pg_migrate(conn)  # a reused database gets this code's new steps
                    if after > before:
                        secs = time.perf_counter() - t
                        print(f"  PostgreSQL: migrated from step {before} to {after} in {secs:.0f} s")
                    await conn.execute("ANALYZE")
                    return url, 0.0
            finally:
                await conn.close()
        await admin.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {PG_DATABASE}")
    finally:
        await admin.close()
    start = time.perf_counter()
    conn = await asyncpg.connect(url)
    try:
        await pg_migrate(conn)
        appended = min(n, appended)
        # 1. The first entries through the PostgreSQL store's own append.
        builder = LedgerBuilder(n)
        for lo in range(0, appended, 500):
            async with conn.transaction():
                for i in range(lo, min(appended, lo + 500)):
                    builder.pending_share = None
                    e = builder.entry(i)
                    idx = await pg_ledger.append_entry(conn, e, None)
                    assert idx == i, (idx, i)
                    if builder.pending_share is not None:
                        sid, refs, rec = builder.pending_share
                        builder.recent.append((sid, idx, refs, rec))
        await check_same_rows(conn, db, appended)
        print(f"  PostgreSQL: {appended:,} entries through its own append_entry: the same rows as SQLite's")
        # 2. The rest as a bulk load of the rows the SQLite store made, indexes rebuilt afterwards.
        indexes = [
            (r[0], r[1])
            for r in await conn.fetch(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i JOIN pg_index x ON x.indexrelid ="
                " (quote_ident(i.schemaname) || '.' || quote_ident(i.indexname))::regclass"
                " WHERE i.schemaname = current_schema() AND i.tablename = ANY($1::text[]) AND NOT x.indisprimary",
                list(COUNTED_TABLES),
            )
        ]
        for name, _ in indexes:
            await conn.execute(f'DROP INDEX "{name}"')
        await conn.execute("SET session_replication_role = replica")
        await copy_rest(conn, db, appended)
        await conn.execute("SET session_replication_role = DEFAULT")
        t = time.perf_counter()
        await conn.execute("SET maintenance_work_mem = '256MB'")
        for _, definition in indexes:
            await conn.execute(definition)
        print(f"  PostgreSQL: {len(indexes)} secondary indexes rebuilt in {time.perf_counter() - t:.0f} s")
        t = time.perf_counter()
        await conn.execute("VACUUM ANALYZE")
        print(f"  PostgreSQL: VACUUM ANALYZE in {time.perf_counter() - t:.0f} s")
        await check_counts(conn, db)
    finally:
        await conn.close()
    return url, time.perf_counter() - start


async def check_same_rows(conn: Any, db: Path, upto: int) -> None:
    """The rows PostgreSQL's own append made for entries below `upto` are exactly those `copy_rest` would derive
    from the SQLite store's rows for them: the bulk load is the store's rows, not an approximation of them."""
    cols = ", ".join(LEDGER_COLUMNS)
    mine = [tuple(r) for r in await conn.fetch(f"SELECT {cols} FROM ledger WHERE idx < $1 ORDER BY idx", upto)]
    theirs = [
        r for rows in sqlite_rows(db, f"SELECT {cols} FROM ledger WHERE idx < ? ORDER BY idx", (upto,)) for r in rows
    ]
    assert mine == theirs, "ledger rows differ between the PostgreSQL append and the SQLite one"
    for table, columns in SIDE_TABLES.items():
        c = ", ".join(columns)
        a = sorted(tuple(r) for r in await conn.fetch(f"SELECT {c} FROM {table} WHERE idx < $1", upto))
        b = sorted(r for rows in sqlite_rows(db, f"SELECT {c} FROM {table} WHERE idx < ?", (upto,)) for r in rows)
        assert a == b, f"{table} rows differ"
    a = sorted(tuple(r) for r in await conn.fetch("SELECT level, idx, hash FROM ledger_nodes"))
    b = sorted(
        r for rows in sqlite_rows(db, "SELECT level, idx, hash FROM ledger_nodes") for r in rows if node_below(r, upto)
    )
    assert a == b, "ledger_nodes differ"
    fts = {int(r[0]): r[1] for r in await conn.fetch("SELECT idx, description::text FROM ledger_fts")}
    theirs_fts = {}
    for rows in sqlite_rows(db, "SELECT idx, entry FROM ledger WHERE idx < ?", (upto,)):
        for idx, words in fts_words(rows):
            theirs_fts[idx] = await conn.fetchval("SELECT array_to_tsvector($1::text[])::text", words)
    assert fts == theirs_fts, "ledger_fts differs"
    words = sorted(tuple(r) for r in await conn.fetch("SELECT word, idx FROM ledger_words"))
    assert words == sorted(
        tuple(r)
        for r in await conn.fetch(
            "SELECT w.word, f.idx FROM ledger_fts f CROSS JOIN LATERAL unnest(tsvector_to_array(f.description))"
            " AS w (word)"
        )
    ), "ledger_words differs from ledger_fts's words"
    tree_pg = await conn.fetchrow("SELECT size, state FROM ledger_tree WHERE id = 0")
    assert int(tree_pg[0]) == upto


def fts_words(rows: list[tuple[Any, ...]]) -> list[tuple[int, list[str]]]:
    """(idx, words) for the entries with a purpose description: what the PostgreSQL append puts in `ledger_fts`
    (SQLite's FTS5 table is contentless, so the description is read back from the entry itself)."""
    out = []
    for idx, data in rows:
        description = (json.loads(data).get("purpose") or {}).get("description")
        if description:
            out.append((int(idx), pg_ledger.description_words(description)))
    return out


def node_below(row: tuple[Any, ...], upto: int) -> bool:
    """A stored subtree node (level, idx) is complete once leaf (idx + 1) * 2^level - 1 is appended."""
    level, idx = int(row[0]), int(row[1])
    return ((idx + 1) << level) - 1 < upto


async def copy_rest(conn: Any, db: Path, lo: int) -> None:
    t = time.perf_counter()
    total = 0
    for rows in sqlite_rows(db, f"SELECT {', '.join(LEDGER_COLUMNS)} FROM ledger WHERE idx >= ? ORDER BY idx", (lo,)):
        await conn.copy_records_to_table("ledger", records=rows, columns=list(LEDGER_COLUMNS))
        total += len(rows)
        print(
            f"\r  PostgreSQL: copied {lo + total:,} ledger rows ({total / (time.perf_counter() - t):,.0f}/s)",
            end="",
            flush=True,
        )
    print()
    for table, columns in SIDE_TABLES.items():
        for rows in sqlite_rows(db, f"SELECT {', '.join(columns)} FROM {table} WHERE idx >= ?", (lo,)):
            await conn.copy_records_to_table(table, records=rows, columns=list(columns))
    for rows in sqlite_rows(db, "SELECT level, idx, hash FROM ledger_nodes"):
        fresh = [r for r in rows if not node_below(r, lo)]
        if fresh:
            await conn.copy_records_to_table("ledger_nodes", records=fresh, columns=["level", "idx", "hash"])
    # Full text: the same words the store's append stores (`description_words`), as the same tsvector.
    await conn.execute("CREATE TEMP TABLE fts_words (idx BIGINT, words TEXT[])")
    for rows in sqlite_rows(db, "SELECT idx, entry FROM ledger WHERE idx >= ?", (lo,)):
        await conn.copy_records_to_table("fts_words", records=fts_words(rows))
    await conn.execute("INSERT INTO ledger_fts (idx, description) SELECT idx, array_to_tsvector(words) FROM fts_words")
    # The same words by (word, idx), as the store's append writes them beside the tsvector (PostgreSQL only).
    await conn.execute(
        "INSERT INTO ledger_words (word, idx) SELECT w.word, f.idx FROM fts_words f CROSS JOIN LATERAL unnest(f.words)"
        " AS w (word)"
    )
    await conn.execute("DROP TABLE fts_words")
    for rows in sqlite_rows(db, "SELECT size, state FROM ledger_tree WHERE id = 0"):
        await conn.execute("UPDATE ledger_tree SET size = $1, state = $2 WHERE id = 0", int(rows[0][0]), rows[0][1])
    for rows in sqlite_rows(db, "SELECT size, time, note FROM ledger_checkpoints"):
        await conn.copy_records_to_table("ledger_checkpoints", records=rows, columns=["size", "time", "note"])
        await conn.execute("UPDATE ledger_checkpoint_head SET size = $1 WHERE id = 0", max(int(r[0]) for r in rows))
    print(f"  PostgreSQL: bulk load in {time.perf_counter() - t:.0f} s")


async def check_counts(conn: Any, db: Path) -> None:
    lite = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        for table in COUNTED_TABLES:
            a = int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
            b = int(lite.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            assert a == b, f"{table}: {a} rows on PostgreSQL, {b} on SQLite"
        words = await conn.fetchval("SELECT count(*) FROM ledger_words")
        assert words == await conn.fetchval("SELECT sum(length(description)) FROM ledger_fts"), "ledger_words"
        a_tree = tuple(await conn.fetchrow("SELECT size, state FROM ledger_tree WHERE id = 0"))
        b_tree = lite.execute("SELECT size, state FROM ledger_tree WHERE id = 0").fetchone()
        assert (int(a_tree[0]), bytes(a_tree[1])) == (int(b_tree[0]), bytes(b_tree[1])), "tree state differs"
    finally:
        lite.close()


# -- comparing the two stores --------------------------------------------------------------------------------


class Backends:
    """The two stores' read sides, called the way the gateway calls them (the same filter objects on both)."""

    def __init__(self, lite: aiosqlite.Connection, pg: Any, pool: Any) -> None:
        self.lite = lite
        self.pg = pg
        self.pool = pool

    @asynccontextmanager
    async def _pg_conn(self) -> AsyncIterator[Any]:
        """A pooled connection per export page, as the store's `_read` gives (an export may ask for the next
        page while the last is still being read)."""
        async with self.pool.acquire() as conn:
            yield conn

    async def page(self, name: str, f: AuditFilter, before: int | None, limit: int = 50) -> list[Any]:
        if name == "sqlite":
            return await queries.query_page(self.lite, f, before=before, limit=limit)
        return await pg_queries.query_page(self.pg, f, before=before, limit=limit)

    async def subject(self, name: str, ref: str) -> Any:
        if name == "sqlite":
            return await queries.subject_events(self.lite, ref, 10_000)
        return await pg_queries.subject_events(self.pg, ref, 10_000)

    async def stats(self, name: str, a: str | None, z: str | None) -> Any:
        if name == "sqlite":
            return await queries.stats(self.lite, a, z)
        return await pg_queries.stats(self.pg, a, z)

    async def export(self, name: str, f: AuditFilter, upto: int) -> tuple[int, int]:
        """Every row of an export, as the export route pulls them (pages of 1,000): (rows, bytes of entries)."""
        rows = size = 0
        if name == "sqlite":
            plan = await queries.export_plan(self.lite, f, upto=upto)
            pages = queries.export_pages(self.lite, plan)
        else:
            await pg_queries.check_filter(f)
            pages = pg_queries.export_pages(self._pg_conn, f, upto=upto)
        async for page in pages:
            rows += len(page)
            size += sum(len(r.entry) for r in page)
        return rows, size


BACKENDS = ("sqlite", "postgres")


class Table:
    """The figures: per query the median over its samples on each backend, and the ratio PG/SQLite."""

    def __init__(self, tolerance: float, floor_ms: float, only: str | None = None) -> None:
        self.rows: list[tuple[str, float, float, str]] = []
        self.only = [o for o in (only or "").split(",") if o]
        self.tolerance = tolerance
        self.floor_ms = floor_ms
        print(f"\n  {'query':<36}{'SQLite ms':>10}{'PG ms':>10}{'PG/SQLite':>10}")

    def add(self, name: str, lite: list[float], pg: list[float], note: str = "") -> None:
        a, b = statistics.median(lite), statistics.median(pg)
        self.rows.append((name, a, b, note))
        flag = "  <-- PG slower" if self.slower(a, b) else ""
        print(f"  {name:<36}{a:10.2f}{b:10.2f}{b / a if a else float('inf'):9.2f}x  {note}{flag}", flush=True)

    def slower(self, a: float, b: float) -> bool:
        return b > a * self.tolerance and b - a > self.floor_ms

    def failures(self) -> list[str]:
        return [name for name, a, b, _ in self.rows if self.slower(a, b)]

    def markdown(self) -> str:
        out = ["| query | SQLite median ms | PG median ms | PG/SQLite |", "|---|---:|---:|---:|"]
        for name, a, b, note in self.rows:
            ratio = b / a if a else float("inf")
            out.append(f"| {name}{' (' + note + ')' if note else ''} | {a:.2f} | {b:.2f} | {ratio:.2f} |")
        return "\n".join(out)


async def both(
    table: Table, name: str, call: Callable[[str, Any], Awaitable[Any]], values: list[Any], note: str = ""
) -> None:
    """Time `call(backend, value)` for every value on each backend (alternating backends value by value, so a
    burst of load from another process hits both alike); one untimed warm-up call each first. The answers are
    compared too: a figure for a different answer would be no figure."""
    if table.only and not any(o in name for o in table.only):
        return
    times: dict[str, list[float]] = {b: [] for b in BACKENDS}
    for b in BACKENDS:
        await call(b, values[0])
    for value in values:
        answers = []
        for b in BACKENDS:
            t = time.perf_counter()
            answers.append(await call(b, value))
            times[b].append((time.perf_counter() - t) * 1000)
        assert answers[0] == answers[1], f"{name}: the backends answered differently for {value!r}"
    table.add(name, times["sqlite"], times["postgres"], note)


def to_audit_filter(params: dict[str, str]) -> tuple[AuditFilter, int | None]:
    tf = params.get("from")
    tt = params.get("to")
    return (
        AuditFilter(
            subject=params.get("subject"),
            practitioner=params.get("practitioner"),
            recipient=params.get("recipient"),
            org=params.get("org"),
            kind=params.get("kind"),
            decision=params.get("decision"),
            purpose=params.get("purpose"),
            article_6=params.get("article_6"),
            article_9=params.get("article_9"),
            dpa_schedule_1=params.get("dpa_schedule_1"),
            text=fts_query(params["q"]) if "q" in params else None,
            time_from=None if tf is None else E.format_time(E.parse_time(tf)),
            time_to=None if tt is None else E.format_time(E.parse_time(tt)),
        ),
        int(params["cursor"]) if "cursor" in params else None,
    )


async def compare(
    db: Path, pg_url: str, b: LedgerBuilder, samples: int, reps: int, table: Table, big_reps: int = 1
) -> None:
    rng = random.Random(11)
    lite = await aiosqlite.connect(db)
    await lite.execute("PRAGMA query_only=ON")
    pg = await asyncpg.connect(pg_url)
    # The store's own pool sizes (PostgresStore.open): an export asks for several pages at once on it.
    pool = await asyncpg.create_pool(pg_url, min_size=2, max_size=10)
    be = Backends(lite, pg, pool)
    n = b.n
    try:
        print(f"\nThe same audit queries on both stores at {n:,} entries (median of {samples} values or {reps} reps):")

        async def point(backend: str, i: int) -> Any:
            if backend == "sqlite":
                async with lite.execute("SELECT entry FROM ledger WHERE idx = ?", (i,)) as cur:
                    return bytes((await cur.fetchone())[0])
            return bytes(await pg.fetchval("SELECT entry FROM ledger WHERE idx = $1", i))

        await both(table, "baseline: PK point lookup", point, [rng.randrange(n) for _ in range(samples * 2)])

        async def page(backend: str, params: dict[str, str]) -> Any:
            f, cursor = to_audit_filter(params)
            return await be.page(backend, f, cursor)

        for name, make in filter_cases(rng, b):
            await both(table, name, page, [make() for _ in range(samples)])

        async def walk(backend: str, params: dict[str, str]) -> Any:
            """20 pages of 50, each from the previous page's cursor, as a client pages through results."""
            f, _ = to_audit_filter(params)
            before, seen = None, []
            for _ in range(20):
                rows = await be.page(backend, f, before)
                seen.append([r.index for r in rows])
                if len(rows) < 50:
                    break
                before = rows[-1].index
            return seen

        await both(table, "paged: kind=fetch, 20 pages", walk, [{"kind": "fetch"}] * reps)
        await both(table, "paged: q word, 20 pages", walk, [{"q": rng.choice(WORDS)} for _ in range(reps)])
        await both(table, "paged: org, 20 pages", walk, [{"org": rng.choice(b.orgs)} for _ in range(reps)])

        subjects = []
        for _ in range(samples):  # subjects that have events: draw an entry, take its subject
            async with lite.execute("SELECT ref FROM ledger_subjects WHERE idx >= ? LIMIT 1", (rng.randrange(n),)) as c:
                row = await c.fetchone()
            subjects.append(row[0] if row else rng.choice(b.subjects))
        await both(table, "subject timeline (subject_events)", be.subject, subjects)

        q_from, q_to = "2024-01-01T00:00:00Z", "2024-04-01T00:00:00Z"
        await both(table, "stats, whole ledger", lambda k, v: be.stats(k, None, None), [None] * big_reps)
        await both(table, "stats, one quarter", lambda k, v: be.stats(k, q_from, q_to), [None] * reps)
        month = month_range(rng)
        await both(table, "stats, one month", lambda k, v: be.stats(k, *month), [None] * reps)

        upto = n
        for label, params in (
            ("export: kind=share + q word", {"kind": "share", "q": "neglect"}),
            (
                "export: one org, one year",
                {"org": b.orgs[3], **dict(zip(("from", "to"), month_range(rng, 12), strict=True))},
            ),
            ("export: whole ledger", {}),
        ):
            f, _ = to_audit_filter(params)
            sizes: list[tuple[int, int]] = []

            async def export(backend: str, _: Any, f: AuditFilter = f, sizes: list[tuple[int, int]] = sizes) -> Any:
                got = await be.export(backend, f, upto)
                sizes.append(got)
                return got

            await both(table, label, export, [None] * (big_reps if not params else reps))
            if sizes:
                print(f"      ({sizes[-1][0]:,} rows, {sizes[-1][1] / 1e6:.0f} MB of entries each)")
    finally:
        await lite.close()
        await pg.close()
        await pool.close()


# -- measuring through HTTP (SQLite gateway, --http) -----------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def line(name: str, db_ms: list[float] | None, http_ms: list[float] | None, note: str = "") -> None:
    def fmt_ms(v: list[float] | None) -> str:
        if not v:
            return f"{'':>19}"
        return f"{statistics.median(v):8.2f} {pct(v, 0.95):8.2f}  "

    print(f"  {name:<34}{fmt_ms(db_ms)}{fmt_ms(http_ms)}{note}")


async def timed(fn: Callable[[], Awaitable[Any]], samples: int) -> list[float]:
    out = []
    for _ in range(samples):
        t = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


async def timed_each(fn: Callable[[dict[str, str]], Awaitable[Any]], values: list[dict[str, str]]) -> list[float]:
    out = []
    for value in values:
        t = time.perf_counter()
        await fn(value)
        out.append((time.perf_counter() - t) * 1000)
    return out


def month_range(rng: random.Random, months: int = 1) -> tuple[str, str]:
    start = DAY0 + timedelta(days=rng.randrange(0, 3 * 365 - 31 * months))
    start = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=31 * months)).replace(day=1)
    return fmt(start), fmt(end)


def filter_cases(rng: random.Random, b: LedgerBuilder) -> list[tuple[str, Callable[[], dict[str, str]]]]:
    """Each case draws fresh values per sample, so the figures are not one lucky (cached) value."""
    kinds = ["share", "decision", "fetch", "revoke", "expire"]
    a9 = ["substantial_public_interest", "health_social_care", "social_protection", "legal_claims"]
    return [
        ("no filter (newest page)", lambda: {}),
        ("subject", lambda: {"subject": rng.choice(b.subjects)}),
        ("practitioner", lambda: {"practitioner": rng.choice(b.practitioners)[0]}),
        ("recipient", lambda: {"recipient": rng.choice(b.recipients)[0]}),
        ("org", lambda: {"org": rng.choice(b.orgs)}),
        ("kind", lambda: {"kind": rng.choice(kinds)}),
        ("decision", lambda: {"decision": rng.choice(["share", "not_share"])}),
        ("purpose", lambda: {"purpose": weighted(rng, PURPOSES)}),
        ("article_6", lambda: {"article_6": weighted(rng, ARTICLE_6)}),
        ("article_9", lambda: {"article_9": rng.choice(a9)}),
        ("dpa_schedule_1", lambda: {"dpa_schedule_1": weighted(rng, SCHEDULE_1)}),
        ("q one common word", lambda: {"q": rng.choice(WORDS)}),
        ("q two words", lambda: {"q": " ".join(rng.sample(WORDS, 2))}),
        ("q rare word", lambda: {"q": RARE_WORD}),
        ("q prefix", lambda: {"q": rng.choice(WORDS)[:4] + "*"}),
        ("date range: one month", lambda: dict(zip(("from", "to"), month_range(rng), strict=True))),
        ("date range: one year", lambda: dict(zip(("from", "to"), month_range(rng, 12), strict=True))),
        ("date range: open-ended, old", lambda: {"from": month_range(rng)[0]}),
        ("subject + kind", lambda: {"subject": rng.choice(b.subjects), "kind": "share"}),
        (
            "org + decision + year",
            lambda: {
                "org": rng.choice(b.orgs),
                "decision": "not_share",
                **dict(zip(("from", "to"), month_range(rng, 12), strict=True)),
            },
        ),
        ("kind + month", lambda: {"kind": "fetch", **dict(zip(("from", "to"), month_range(rng), strict=True))}),
        ("q + purpose", lambda: {"q": rng.choice(WORDS), "purpose": "emergency"}),
        (
            "article_9 + purpose + org",
            lambda: {"article_9": "legal_claims", "purpose": "emergency", "org": rng.choice(b.orgs)},
        ),
        ("kind, deep cursor", lambda: {"kind": "fetch", "cursor": str(rng.randrange(b.n))}),
    ]


def to_filter(params: dict[str, str]) -> tuple[queries.AuditFilter, int | None]:
    tf = params.get("from")
    tt = params.get("to")
    return (
        queries.AuditFilter(
            subject=params.get("subject"),
            practitioner=params.get("practitioner"),
            recipient=params.get("recipient"),
            org=params.get("org"),
            kind=params.get("kind"),
            decision=params.get("decision"),
            purpose=params.get("purpose"),
            article_6=params.get("article_6"),
            article_9=params.get("article_9"),
            dpa_schedule_1=params.get("dpa_schedule_1"),
            text=queries.fts_query(params["q"]) if "q" in params else None,
            time_from=None if tf is None else E.format_time(E.parse_time(tf)),
            time_to=None if tt is None else E.format_time(E.parse_time(tt)),
        ),
        int(params["cursor"]) if "cursor" in params else None,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int, field: str) -> float:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith(field + ":"):
            return int(row.split()[1]) / 1024
    return float("nan")


def reset_peak_rss(pid: int) -> bool:
    """Linux: writing 5 to clear_refs resets VmHWM, so the next peak is the export's alone."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


async def wait_healthy(session: aiohttp.ClientSession, base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("gateway exited during start-up")
        try:
            async with session.get(base + "/healthz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("gateway never became healthy")


async def measure(settings: Settings, token: str, b: LedgerBuilder, samples: int) -> None:
    db = settings.db_path
    rng = random.Random(11)
    conn = await aiosqlite.connect(db)
    conn.row_factory = aiosqlite.Row
    await conn.execute("PRAGMA query_only=ON")
    n = b.n

    print("\nBaselines (same file, same connection):")
    print(f"  {'':<34}{'median ms':>9}{'p95 ms':>9}")

    async def point() -> None:
        async with conn.execute("SELECT entry FROM ledger WHERE idx = ?", (rng.randrange(n),)) as cur:
            await cur.fetchone()

    async def count() -> None:
        async with conn.execute("SELECT count(*) FROM ledger") as cur:
            await cur.fetchone()

    line("PK point lookup (idx = ?)", await timed(point, samples * 3), None)
    line("SELECT count(*) FROM ledger", await timed(count, 5), None)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "--home", str(settings.home), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with aiohttp.ClientSession() as session:
            await wait_healthy(session, base, proc)

            async def healthz() -> None:
                async with session.get(base + "/healthz") as r:
                    await r.read()

            line("HTTP GET /healthz", None, await timed(healthz, samples * 3))
            async with session.get(base + "/api/v1/ledger", headers=headers) as r:  # warm the server's reader
                assert r.status == 200, await r.text()

            print(f"\nGET /api/v1/ledger at {n:,} entries, limit=50 (median / p95 over {samples} varied values):")
            print(f"  {'filter':<34}{'db median':>9}{'p95':>9}  {'http median':>11}{'p95':>7}")
            worst = 0.0
            for name, make in filter_cases(rng, b):

                async def db_query(params: dict[str, str]) -> None:
                    f, cursor = to_filter(params)
                    await queries.query_page(conn, f, before=cursor, limit=50)

                async def http_query(params: dict[str, str]) -> None:
                    async with session.get(base + "/api/v1/ledger", params=params, headers=headers) as r:
                        assert r.status == 200, await r.text()
                        await r.read()

                # Untimed warm-up with other values (a running server's caches), then fresh values for each path.
                for params in [make() for _ in range(samples // 3)]:
                    await db_query(params)
                    await http_query(params)
                db_ms = await timed_each(db_query, [make() for _ in range(samples)])
                http_ms = await timed_each(http_query, [make() for _ in range(samples)])
                worst = max(worst, pct(http_ms, 0.95))
                line(name, db_ms, http_ms, "  <-- over 100 ms" if pct(http_ms, 0.95) > 100 else "")
            print(f"  worst p95 over all filters (HTTP): {worst:.1f} ms")

            print("\nGET /api/v1/ledger/report?format=json (every event of one subject + inclusion proofs):")
            subjects = []
            for _ in range(samples):  # subjects that have events: draw an entry, take its subject
                async with conn.execute(
                    "SELECT ref FROM ledger_subjects WHERE idx >= ? LIMIT 1", (rng.randrange(n),)
                ) as cur:
                    row = await cur.fetchone()
                subjects.append(row[0] if row else rng.choice(b.subjects))
            sizes: list[int] = []
            it3 = iter(subjects)

            async def report(it3: Any = it3) -> None:
                params = {"subject": next(it3), "format": "json"}
                async with session.get(base + "/api/v1/ledger/report", params=params, headers=headers) as r:
                    body = await r.json()
                    assert all(e["inclusion_verified"] for e in body["events"]), "a proof failed"
                    sizes.append(body["count"])

            line(
                "subject report (JSON, proofs)",
                None,
                await timed(report, samples),
                f"~{statistics.mean(sizes):.0f} events each",
            )

            print("\nGET /api/v1/ledger/stats:")
            q_from, q_to = "2024-01-01T00:00:00Z", "2024-04-01T00:00:00Z"

            async def stats_db(a: str | None, z: str | None) -> None:
                await queries.stats(
                    conn,
                    None if a is None else E.format_time(E.parse_time(a)),
                    None if z is None else E.format_time(E.parse_time(z)),
                )

            async def stats_http(params: dict[str, str]) -> None:
                async with session.get(base + "/api/v1/ledger/stats", params=params, headers=headers) as r:
                    assert r.status == 200
                    await r.read()

            reps = 3
            line(
                "stats, whole ledger (3 years)",
                await timed(lambda: stats_db(None, None), reps),
                await timed(lambda: stats_http({}), reps),
            )
            line(
                "stats, one quarter",
                await timed(lambda: stats_db(q_from, q_to), reps),
                await timed(lambda: stats_http({"from": q_from, "to": q_to}), reps),
            )

            print("\nExport through HTTP (whole ledger, streamed; server process RSS):")
            for fmt_name in ("jsonl", "csv"):
                rss_before = rss_mib(proc.pid, "VmRSS")
                reset = reset_peak_rss(proc.pid)
                t = time.perf_counter()
                nbytes, rows = 0, -1  # minus the checkpoint line (jsonl) or the header (csv; no newlines in cells)
                async with session.get(base + "/api/v1/ledger", params={"format": fmt_name}, headers=headers) as r:
                    assert r.status == 200, await r.text()
                    async for chunk in r.content.iter_chunked(1 << 20):
                        nbytes += len(chunk)
                        rows += chunk.count(b"\n")
                dt = time.perf_counter() - t
                peak = rss_mib(proc.pid, "VmHWM")
                print(
                    f"  {fmt_name:<6} {rows:>10,} rows  {nbytes / 1e6:8.1f} MB  {dt:6.1f} s  {rows / dt:>9,.0f} rows/s"
                    f"  {nbytes / 1e6 / dt:6.1f} MB/s  server RSS {rss_before:.0f} MiB before, peak "
                    f"{peak:.0f} MiB{'' if reset else ' (peak since start: clear_refs unavailable)'}"
                )
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    await conn.close()


def main() -> None:
    global PG_DATABASE  # one run, one database
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--home", type=Path, help="keep the built ledgers and reuse them next time")
    ap.add_argument("--samples", type=int, default=15, help="values per filter (median reported)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of the slow queries (stats, walks, exports)")
    ap.add_argument("--big-reps", type=int, default=1, help="repetitions of whole-ledger stats and export")
    ap.add_argument("--dsn", default=DEFAULT_DSN, help="a PostgreSQL server (the bench makes its own database)")
    ap.add_argument("--pg-appended", type=int, default=3000, help="entries appended through the PG store itself")
    ap.add_argument("--require-parity", action="store_true", help="exit 1 if PG is slower beyond the tolerance")
    ap.add_argument("--tolerance", type=float, default=1.25, help="PG/SQLite median ratio allowed")
    ap.add_argument("--floor-ms", type=float, default=2.0, help="differences below this are parity whatever the ratio")
    ap.add_argument("--pg-database", default=PG_DATABASE, help="the database the bench makes (and drops)")
    ap.add_argument("--only", help="comma-separated substrings: time only the queries whose names contain one")
    ap.add_argument("--http", action="store_true", help="also measure through a SQLite gateway process (HTTP)")
    ap.add_argument("--keep-pg", action="store_true", help="keep the PostgreSQL database (kept with --home anyway)")
    ap.add_argument(
        "--fresh-pg",
        action="store_true",
        help="fill the PostgreSQL database again even if --home has one (a fill made by this code's migrations:"
        " e.g. entries compressed as the latest step compresses them, which a migrated database's old rows are not)",
    )
    args = ap.parse_args()
    PG_DATABASE = args.pg_database
    tmp = None
    reuse = args.home is not None
    if args.home is None:
        tmp = tempfile.TemporaryDirectory(prefix="safeshare-bench-")
        args.home = Path(tmp.name)
    settings = Settings(home=args.home.resolve())
    keys = init_home(settings)
    print(f"Ledger of {args.entries:,} entries in {settings.db_path} and PostgreSQL database {PG_DATABASE}")
    secs = build(settings.db_path, args.entries, NoteSigner(settings.log_origin, keys.ledger_key))
    if secs:
        print(f"  SQLite build: {secs:.0f} s ({args.entries / secs:,.0f} entries/s through the writer's append path)")
    print(f"  SQLite file: {settings.db_path.stat().st_size / 1e9:.2f} GB (in the OS page cache once read)")
    pg_url, pg_secs = asyncio.run(
        build_pg(args.dsn, settings.db_path, args.entries, args.pg_appended, reuse and not args.fresh_pg)
    )
    if pg_secs:
        print(f"  PostgreSQL fill: {pg_secs:.0f} s")
    table = Table(args.tolerance, args.floor_ms, args.only)
    try:
        asyncio.run(
            compare(
                settings.db_path, pg_url, LedgerBuilder(args.entries), args.samples, args.reps, table, args.big_reps
            )
        )
        print("\n" + table.markdown())
        if args.http:
            issuer = EmbeddedIssuer(keys.token_key, settings.issuer, settings.audience)
            token = issuer.issue("bench-auditor", ["auditor"], ttl=3600)
            asyncio.run(measure(settings, token, LedgerBuilder(args.entries), args.samples))
    finally:
        if not (reuse or args.keep_pg):
            asyncio.run(drop_pg(args.dsn))
        if tmp is not None:
            tmp.cleanup()
    failures = table.failures()
    if failures:
        print(
            f"\nPostgreSQL slower than SQLite beyond x{args.tolerance} and {args.floor_ms} ms on: {', '.join(failures)}"
        )
        if args.require_parity:
            raise SystemExit(1)
    else:
        print(f"\nParity: PostgreSQL within x{args.tolerance} (or {args.floor_ms} ms) of SQLite on every query.")


async def drop_pg(dsn: str) -> None:
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
    finally:
        await admin.close()


if __name__ == "__main__":
    main()
