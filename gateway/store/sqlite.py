"""The embedded store: one SQLite file in WAL mode with `synchronous=FULL` (the ledger must survive power loss).

Writes go through a single writer thread that group-commits: every queued operation runs inside its own
SAVEPOINT of one shared transaction, so a failing operation rolls back alone while the batch pays for one
fsync. That is what lets a 2-core machine append tens of thousands of ledger entries a second instead of
a thousand (measured: aiosqlite pays ~140 µs per awaited call). Ledger indexes are assigned inside the
transaction from the table itself, so another process (the CLI) may append too without gaps or duplicates.
Reads use aiosqlite on separate connections and see only committed data.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiosqlite

from ..ledger import merkle
from ..ledger.entry import format_time as ledger_time
from ..ledger.entry import parse_time as parse_ledger_time
from ..ledger.entry import seal
from ..ledger.guard import CheckpointGuard, LedgerInconsistent, TrustedHead
from ..ledger.mac import entry_mac, entry_mac_ok, start_mac, start_mac_ok
from ..ledger.merkle import CompactRange, ProofError, verify_consistency
from .audit import AuditFilter, StoredCheckpoint
from .files import ESCROW_ID
from .held_schema import HELD_SCHEMA
from .idempotency import IdempotencyHit, IdempotentWrite, StoredResponse
from .models import (
    RECIPIENT_ACTIVE,
    SHARE_ACTIVE,
    SHARE_EXHAUSTED,
    SHARE_EXPIRED,
    SHARE_REVOKED,
    Enrolment,
    FetchOutcome,
    HeldRow,
    LedgerRow,
    Recipient,
    RecipientExists,
    Share,
    ShareRecipient,
    StoreError,
    StoreUnavailable,
)
from .protocol import AgreementRecords, HeldShares

T = TypeVar("T")

SCHEMA_VERSION = 3

#: Indexes for the oversight statistics (`store.queries`): month-grouped decisions, and share events by kind.
STATS_INDEXES = (
    "CREATE INDEX IF NOT EXISTS ledger_decisions_by_month ON ledger (substr(time, 1, 7), decision, purpose_code,"
    " article_6, article_9, dpa_schedule_1, actor_org, time) WHERE decision IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS ledger_by_kind_share ON ledger (kind, share_id)",
)

#: Columns added after the first schema (version 1), so an existing database is upgraded in place at start-up.
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("recipients", "kind", "TEXT NOT NULL DEFAULT 'person' CHECK (kind IN ('person', 'team'))"),
    ("shares", "escrow_sha256", "TEXT"),
    ("shares", "escrow_size", "INTEGER"),
    ("share_recipients", "acknowledged_at", "TEXT"),
    ("share_recipients", "acknowledgement", "TEXT"),
    ("share_recipients", "via_team", "TEXT"),
    ("ledger", "mac", "BLOB"),
    # When the recipient first and last downloaded their envelope: the sender's Sent view (issue 13).
    ("share_recipients", "first_downloaded_at", "TEXT"),
    ("share_recipients", "last_downloaded_at", "TEXT"),
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS recipients (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    org TEXT NOT NULL,
    email TEXT NOT NULL,
    age_recipient TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'person' CHECK (kind IN ('person', 'team'))
);

-- Team membership history: a row per period of membership (until NULL while a member).
CREATE TABLE IF NOT EXISTS team_members (
    team_id TEXT NOT NULL REFERENCES recipients (id),
    member_id TEXT NOT NULL REFERENCES recipients (id),
    since TEXT NOT NULL,
    until TEXT,
    PRIMARY KEY (team_id, member_id, since)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS recipients_by_email ON recipients (email);

-- A recipient's own request to receive with a key generated in their browser; an administrator decides.
CREATE TABLE IF NOT EXISTS enrolments (
    id TEXT PRIMARY KEY,
    recipient_id TEXT NOT NULL,
    name TEXT NOT NULL,
    org TEXT NOT NULL,
    email TEXT NOT NULL,
    age_recipient TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'superseded')),
    requested_at TEXT NOT NULL,
    decided_at TEXT,
    decided_by TEXT
);
CREATE INDEX IF NOT EXISTS enrolments_by_recipient ON enrolments (recipient_id, requested_at);

-- Every key a recipient has had: new shares use the active one; retired ones stay listed so a recipient's
-- older shares (encrypted to them) remain explainable.
CREATE TABLE IF NOT EXISTS recipient_keys (
    recipient_id TEXT NOT NULL REFERENCES recipients (id),
    age_recipient TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'retired')),
    since TEXT NOT NULL,
    until TEXT,
    PRIMARY KEY (recipient_id, age_recipient)
) WITHOUT ROWID;

-- Idempotency-Key answers (gateway/idempotency.py), written in the same transaction as the share or decision.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    principal TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    response TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (principal, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_keys_expiry ON idempotency_keys (expires_at);

CREATE TABLE IF NOT EXISTS shares (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    sender_sub TEXT NOT NULL,
    sender_iss TEXT NOT NULL,
    sender_org TEXT,
    purpose_code TEXT NOT NULL,
    purpose_description TEXT NOT NULL,
    subjects TEXT NOT NULL,
    data_categories TEXT NOT NULL,
    payload_content_type TEXT NOT NULL,
    payload_size INTEGER NOT NULL,
    expires_at TEXT NOT NULL,
    max_downloads INTEGER,
    state TEXT NOT NULL CHECK (state IN ('active', 'revoked', 'expired', 'exhausted')),
    ledger_index INTEGER NOT NULL,
    escrow_sha256 TEXT,
    escrow_size INTEGER
);
CREATE INDEX IF NOT EXISTS shares_by_sender ON shares (sender_sub, created_at);
CREATE INDEX IF NOT EXISTS shares_active_by_expiry ON shares (expires_at) WHERE state = 'active';

CREATE TABLE IF NOT EXISTS share_recipients (
    share_id TEXT NOT NULL REFERENCES shares (id),
    recipient_id TEXT NOT NULL REFERENCES recipients (id),
    recipient_org TEXT NOT NULL,
    envelope_sha256 TEXT NOT NULL,
    envelope_size INTEGER NOT NULL,
    downloads INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL CHECK (state IN ('active', 'revoked', 'expired', 'exhausted')),
    acknowledged_at TEXT,
    acknowledgement TEXT,
    via_team TEXT,
    first_downloaded_at TEXT,
    last_downloaded_at TEXT,
    PRIMARY KEY (share_id, recipient_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS share_recipients_by_recipient ON share_recipients (recipient_id, share_id);

CREATE TABLE IF NOT EXISTS ledger (
    idx INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor_sub TEXT,
    actor_org TEXT,
    decision TEXT,
    share_id TEXT,
    purpose_code TEXT,
    article_6 TEXT,
    article_9 TEXT,
    dpa_schedule_1 TEXT,
    entry BLOB NOT NULL,
    leaf_hash BLOB NOT NULL,
    mac BLOB
);
CREATE INDEX IF NOT EXISTS ledger_by_article_6 ON ledger (article_6, idx) WHERE article_6 IS NOT NULL;
CREATE INDEX IF NOT EXISTS ledger_by_article_9 ON ledger (article_9, idx) WHERE article_9 IS NOT NULL;
CREATE INDEX IF NOT EXISTS ledger_by_schedule_1 ON ledger (dpa_schedule_1, idx) WHERE dpa_schedule_1 IS NOT NULL;
CREATE INDEX IF NOT EXISTS ledger_by_purpose ON ledger (purpose_code, idx);
CREATE INDEX IF NOT EXISTS ledger_by_kind ON ledger (kind, idx);
CREATE INDEX IF NOT EXISTS ledger_by_actor ON ledger (actor_sub, idx);
CREATE INDEX IF NOT EXISTS ledger_by_decision ON ledger (decision, idx);
CREATE INDEX IF NOT EXISTS ledger_by_time ON ledger (time);
CREATE INDEX IF NOT EXISTS ledger_by_share ON ledger (share_id);

CREATE TABLE IF NOT EXISTS ledger_subjects (
    ref TEXT NOT NULL,
    idx INTEGER NOT NULL REFERENCES ledger (idx),
    PRIMARY KEY (ref, idx)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS ledger_recipients (
    recipient_id TEXT NOT NULL,
    idx INTEGER NOT NULL REFERENCES ledger (idx),
    PRIMARY KEY (recipient_id, idx)
) WITHOUT ROWID;

-- Every organisation an entry involves (the actor's and each recipient's), for oversight queries.
CREATE TABLE IF NOT EXISTS ledger_orgs (
    org TEXT NOT NULL,
    idx INTEGER NOT NULL REFERENCES ledger (idx),
    PRIMARY KEY (org, idx)
) WITHOUT ROWID;

-- The partnership's agreements (gateway/agreements.py, store/agreements.py): one row per version, never edited
-- except to record its retirement. Documents live in data/agreements/<document_sha256>.
CREATE TABLE IF NOT EXISTS agreements (
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    title TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('protocol', 'data_exchange', 'other')),
    scope TEXT NOT NULL CHECK (scope IN ('children', 'adults', 'both')),
    signatories TEXT NOT NULL,
    purposes TEXT NOT NULL,
    categories TEXT NOT NULL,
    review_date TEXT NOT NULL,
    document_sha256 TEXT NOT NULL,
    document_size INTEGER NOT NULL,
    document_name TEXT NOT NULL,
    document_type TEXT NOT NULL,
    created_at TEXT NOT NULL,
    retired_at TEXT,
    retired_reason TEXT,
    PRIMARY KEY (id, version)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS agreements_by_document ON agreements (document_sha256);

-- The agreements (id, version) each entry was made under, for the auditor's filter and the statistics.
CREATE TABLE IF NOT EXISTS ledger_agreements (
    agreement_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    idx INTEGER NOT NULL REFERENCES ledger (idx),
    overridden INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (agreement_id, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ledger_agreements_by_idx ON ledger_agreements (idx);

-- Full-text index over purpose descriptions (contentless: the text itself lives only in the entry).
CREATE VIRTUAL TABLE IF NOT EXISTS ledger_fts USING fts5 (description, content='');

-- Merkle tree state (RFC 9162), derived from the entries and kept so start-up never rehashes the ledger.
-- Not trusted on its own: `safeshare ledger verify` recomputes it and checks it against signed checkpoints.
CREATE TABLE IF NOT EXISTS ledger_tree (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    size INTEGER NOT NULL,
    state BLOB NOT NULL
);
-- Hashes of complete subtrees of 256 leaves and more: inclusion/consistency proofs in O(log n) reads.
CREATE TABLE IF NOT EXISTS ledger_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
-- Signed checkpoints (C2SP tlog-checkpoint in a signed note), one per tree size that was checkpointed.
CREATE TABLE IF NOT EXISTS ledger_checkpoints (
    size INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    note BLOB NOT NULL
);

-- The first ledger index whose entry carries a MAC (`ledger.mac`, keyed by keys/ledger-entry.hmac); entries
-- below it were written before MACs existed ("legacy"). Written once, under its own MAC.
CREATE TABLE IF NOT EXISTS ledger_mac_start (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    start INTEGER NOT NULL,
    mac BLOB NOT NULL
);

-- Witness co-signatures on checkpoints: one signature line per (checkpoint size, witness key name).
CREATE TABLE IF NOT EXISTS ledger_cosignatures (
    size INTEGER NOT NULL REFERENCES ledger_checkpoints (size),
    witness TEXT NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (size, witness)
) WITHOUT ROWID;
"""

#: Defence in depth: these tables are append-only. Whoever owns the file can drop the triggers; the Merkle
#: tree and signed checkpoints are what catch that (`safeshare ledger verify`).
APPEND_ONLY_TABLES = (
    "ledger",
    "ledger_subjects",
    "ledger_cosignatures",
    "ledger_checkpoints",
    "ledger_orgs",
    "ledger_recipients",
    "ledger_mac_start",
    "ledger_agreements",
)

SCHEMA += HELD_SCHEMA

SCHEMA += "".join(
    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table}\n"
    "BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;\n"
    for table in APPEND_ONLY_TABLES
    for op in ("UPDATE", "DELETE")
)

EntryBuilder = Callable[[Share], Mapping[str, Any]]


class LedgerConnection(sqlite3.Connection):
    """A write connection that knows the ledger's entry-MAC key, so every `append_entry` through it is authenticated
    (including those in operations other modules add) without threading the key through each call."""

    ledger_mac_key: bytes | None = None


def _connect(path: Path, ledger_mac_key: bytes | None = None) -> LedgerConnection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0, factory=LedgerConnection)
    conn.ledger_mac_key = ledger_mac_key
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def create_schema(path: Path, ledger_mac_key: bytes | None = None, legacy_upgrade: bool = True) -> None:
    """Create or upgrade the schema; safe to run from several processes (CLI and server).

    With the entry-MAC key, record (once) the first authenticated index: 0 for a new ledger, the current size
    for one written before entry MACs existed (its entries become legacy). `legacy_upgrade=False` (the gateway
    has signed with MACs before, so the record must already exist) leaves a missing record missing, for the
    checkpoint guard to report rather than to paper over.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = _connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            conn.execute("ROLLBACK")
            raise StoreError(f"database schema {version} is newer than this gateway ({SCHEMA_VERSION})")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table, column, ddl in ADDED_COLUMNS:
            if table in tables and column not in {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}")
        for statement in _statements(SCHEMA):
            conn.execute(statement)
        for statement in STATS_INDEXES:
            conn.execute(statement)
        if ledger_mac_key is not None and legacy_upgrade:
            if conn.execute("SELECT 1 FROM ledger_mac_start WHERE id = 0").fetchone() is None:
                start = int(conn.execute("SELECT coalesce(max(idx) + 1, 0) FROM ledger").fetchone()[0])
                conn.execute(
                    "INSERT INTO ledger_mac_start (id, start, mac) VALUES (0, ?, ?)",
                    (start, start_mac(ledger_mac_key, start)),
                )
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    finally:
        conn.close()


def _statements(script: str) -> list[str]:
    """Split on `;` at statement ends, keeping trigger bodies (which contain `;`) whole."""
    out, buf = [], ""
    for line in script.splitlines():
        if line.strip().startswith("--"):
            continue
        buf += line + "\n"
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    return [s for s in out if s]


class _Writer:
    """A dedicated thread that owns the only write connection and group-commits queued operations."""

    def __init__(self, path: Path, max_batch: int = 256, ledger_mac_key: bytes | None = None) -> None:
        self._conn = _connect(path, ledger_mac_key)
        self._queue: queue.SimpleQueue[tuple[Callable[[sqlite3.Connection], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._max_batch = max_batch
        #: False from a batch the database failed (disk full, I/O error, busy) until one commits again:
        #: `/healthz` reports it, so a store that cannot write does not look healthy.
        self.healthy = True
        self._thread = threading.Thread(target=self._run, name="safeshare-sqlite-writer", daemon=True)
        self._thread.start()

    def submit(self, op: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        fut: Future[T] = Future()
        self._queue.put((op, fut))
        return asyncio.wrap_future(fut)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._conn.close()

    def _run(self) -> None:
        conn = self._conn
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._run_batch(conn, batch)
            if stop:
                return

    def _run_batch(
        self, conn: sqlite3.Connection, batch: list[tuple[Callable[[sqlite3.Connection], Any], Future[Any]]]
    ) -> None:
        results: list[tuple[Future[Any], bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self.healthy = False
            for _, fut in batch:
                if fut.set_running_or_notify_cancel():
                    fut.set_exception(StoreUnavailable(f"could not start a transaction: {exc}"))
            return
        for i, (op, fut) in enumerate(batch):
            if not fut.set_running_or_notify_cancel():
                continue  # the caller gave up before its turn: do not change state on its behalf
            rest = batch[i + 1 :]
            try:
                conn.execute("SAVEPOINT op")
            except sqlite3.Error as exc:
                self._abort(conn, results, [(fut, exc)], exc, rest)
                return
            try:
                value = op(conn)
            except BaseException as exc:
                try:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                except sqlite3.Error as rollback_exc:
                    # e.g. the disk filled up: the savepoint cannot be undone alone, so the whole batch is
                    # rolled back and each of its callers told; the writer thread carries on with the next batch.
                    self._abort(conn, results, [(fut, exc)], rollback_exc, rest)
                    return
                results.append((fut, False, exc))
            else:
                try:
                    conn.execute("RELEASE op")
                except sqlite3.Error as exc:
                    self._abort(conn, results, [(fut, exc)], exc, rest)
                    return
                results.append((fut, True, value))
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self.healthy = False
            for fut, _, _ in results:
                fut.set_exception(StoreUnavailable(f"commit failed: {exc}"))
            return
        self.healthy = True
        for fut, ok, value in results:
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

    def _abort(
        self,
        conn: sqlite3.Connection,
        results: list[tuple[Future[Any], bool, Any]],
        failing: list[tuple[Future[Any], BaseException]],
        cause: BaseException,
        rest: list[tuple[Callable[[sqlite3.Connection], Any], Future[Any]]],
    ) -> None:
        """Roll back the whole batch after a failure that cannot be confined to one savepoint.

        Every caller whose operation ran in it is failed (nothing of theirs was committed); queued callers
        that have not run yet were never started and are failed too, so none waits for ever.
        """
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite already rolled the transaction back itself (the usual case after a disk or I/O error)
        self.healthy = False
        for fut, _, _ in results:
            error = StoreUnavailable(f"transaction rolled back: {cause}")
            error.__cause__ = cause
            fut.set_exception(error)
        for fut, exc in failing:
            err = StoreUnavailable(f"transaction rolled back: {cause}")
            err.__cause__ = exc
            fut.set_exception(err)
        for _, fut in rest:
            if fut.set_running_or_notify_cancel():
                fut.set_exception(StoreUnavailable(f"not run: the transaction was rolled back ({cause})"))


#: Complete subtrees at this level and above (256+ leaves) are stored for fast proofs.
NODE_CACHE_MIN_LEVEL = 8


def load_tree(conn: sqlite3.Connection) -> CompactRange:
    row = conn.execute("SELECT size, state FROM ledger_tree WHERE id = 0").fetchone()
    if row is None:
        return CompactRange()
    tree = CompactRange.from_bytes(bytes(row[1]))
    if tree.size != row[0]:
        raise StoreError("ledger tree state is inconsistent; run `safeshare ledger verify`")
    return tree


def append_entry(conn: sqlite3.Connection, entry: Mapping[str, Any]) -> int:
    """Append one ledger entry inside the caller's transaction; returns its gap-free index.

    The Merkle tree state advances in the same transaction, so the tree always covers exactly the
    committed entries (and any process appending through this function keeps it right).
    """
    tree = load_tree(conn)
    idx = conn.execute("SELECT coalesce(max(idx) + 1, 0) FROM ledger").fetchone()[0]
    if idx != tree.size:
        raise StoreError(f"ledger has {idx} entries but its tree covers {tree.size}; run `safeshare ledger verify`")
    data, leaf = seal(entry, idx)
    key = getattr(conn, "ledger_mac_key", None)
    mac = None if key is None else entry_mac(key, idx, leaf)
    actor = entry.get("actor") or {}
    purpose = entry.get("purpose") or {}
    basis = ((entry.get("justification") or {}).get("rules") or {}).get("1_lawful_basis") or {}
    conn.execute(
        "INSERT INTO ledger (idx, time, kind, actor_sub, actor_org, decision, share_id, purpose_code, article_6,"
        " article_9, dpa_schedule_1, entry, leaf_hash, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            idx,
            entry["time"],
            entry["kind"],
            actor.get("sub"),
            actor.get("org"),
            entry.get("decision"),
            entry.get("share_id"),
            purpose.get("code"),
            basis.get("article_6"),
            basis.get("article_9"),
            basis.get("dpa_schedule_1"),
            data,
            leaf,
            mac,
        ),
    )
    refs = sorted(set(entry.get("subjects") or ()))
    conn.executemany("INSERT INTO ledger_subjects (ref, idx) VALUES (?, ?)", [(r, idx) for r in refs])
    recipients = entry.get("recipients") or ()
    rids = sorted({r["id"] for r in recipients} | {r["via"] for r in recipients if r.get("via")})
    conn.executemany("INSERT INTO ledger_recipients (recipient_id, idx) VALUES (?, ?)", [(r, idx) for r in rids])
    orgs = sorted({o for o in [actor.get("org"), *(r.get("org") for r in recipients)] if o})
    conn.executemany("INSERT INTO ledger_orgs (org, idx) VALUES (?, ?)", [(o, idx) for o in orgs])
    overridden = 1 if entry.get("agreement_override") else 0
    conn.executemany(
        "INSERT INTO ledger_agreements (agreement_id, version, idx, overridden) VALUES (?, ?, ?, ?)",
        [(a["id"], a["version"], idx, overridden) for a in entry.get("agreements") or ()],
    )
    if purpose.get("description"):
        conn.execute("INSERT INTO ledger_fts (rowid, description) VALUES (?, ?)", (idx, purpose["description"]))
    nodes = tree.append(leaf)
    conn.executemany(
        "INSERT INTO ledger_nodes (level, idx, hash) VALUES (?, ?, ?)",
        [(n.level, n.index, n.hash) for n in nodes if n.level >= NODE_CACHE_MIN_LEVEL],
    )
    conn.execute(
        "INSERT INTO ledger_tree (id, size, state) VALUES (0, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET size = excluded.size, state = excluded.state",
        (tree.size, tree.to_bytes()),
    )
    return int(idx)


def _stored_leaf(conn: sqlite3.Connection, index: int) -> bytes:
    row = conn.execute("SELECT leaf_hash FROM ledger WHERE idx = ?", (index,)).fetchone()
    if row is None:
        raise LedgerInconsistent(f"entry {index} is missing", index)
    return bytes(row[0])


def _stored_subtree(conn: sqlite3.Connection, start: int, end: int) -> bytes | None:
    """A perfect subtree's hash from `ledger_nodes` (256+ leaves), else from one range read of leaf hashes."""
    level = (end - start).bit_length() - 1
    if level >= NODE_CACHE_MIN_LEVEL:
        row = conn.execute(
            "SELECT hash FROM ledger_nodes WHERE level = ? AND idx = ?", (level, start >> level)
        ).fetchone()
        if row is not None:
            return bytes(row[0])
    leaves = [
        bytes(r[0])
        for r in conn.execute("SELECT leaf_hash FROM ledger WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end))
    ]
    if len(leaves) != end - start:
        raise LedgerInconsistent(f"entries {start}..{end - 1} are incomplete", start)
    return merkle.root(leaves)


def _stored_compact(conn: sqlite3.Connection, size: int) -> CompactRange:
    """The compact range at `size` from stored hashes: one perfect subtree per set bit, largest first."""
    hashes, start = [], 0
    for bit in reversed(range(size.bit_length())):
        if size >> bit & 1:
            end = start + (1 << bit)
            h = _stored_leaf(conn, start) if end - start == 1 else _stored_subtree(conn, start, end)
            assert h is not None
            hashes.append(h)
            start = end
    return CompactRange(size, hashes)


def _stored_consistency(conn: sqlite3.Connection, m: int, n: int, old_root: bytes, new_root: bytes) -> None:
    """RFC 9162: a consistency proof from m to n built from the stored hashes must join the two roots."""
    try:
        proof = merkle.consistency_proof(
            m, n, lambda i: _stored_leaf(conn, i), lambda a, b: _stored_subtree(conn, a, b)
        )
        verify_consistency(m, n, proof, old_root, new_root)
    except ProofError as exc:
        raise LedgerInconsistent(
            f"fork: the stored tree of size {n} is not an append-only extension of the signed size {m} ({exc})"
        ) from None


def mac_start(conn: sqlite3.Connection, key: bytes) -> int:
    """The first index that must carry a MAC; raises LedgerInconsistent if the record is missing or forged."""
    row = conn.execute("SELECT start, mac FROM ledger_mac_start WHERE id = 0").fetchone()
    if row is None:
        raise LedgerInconsistent("the record of the first authenticated entry (ledger_mac_start) is missing")
    start, mac = int(row[0]), bytes(row[1]) if row[1] is not None else None
    if not start_mac_ok(key, start, mac):
        raise LedgerInconsistent("the record of the first authenticated entry (ledger_mac_start) was altered")
    return start


def check_extension(conn: sqlite3.Connection, guard: CheckpointGuard, key: bytes) -> CompactRange | None:
    """Prove the stored tree extends the trusted signed head; return the new compact range to sign, or None.

    Cost: O(log n) stored-hash reads for the old tree (or none when this process signed it) plus one read,
    hash and MAC check per entry since; the whole ledger is never rehashed. Raises LedgerInconsistent.
    """
    tree = load_tree(conn)
    db_latest = conn.execute("SELECT size, note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1").fetchone()
    outside, db = guard.heads(None if db_latest is None else (int(db_latest[0]), bytes(db_latest[1])))
    if outside is not None and db is not None and db.checkpoint.size > outside.checkpoint.size:
        # Signed and committed, but the process died before recording it outside: it must still extend that.
        _stored_consistency(
            conn, outside.checkpoint.size, db.checkpoint.size, outside.checkpoint.root_hash, db.checkpoint.root_hash
        )
    head: TrustedHead | None = db or outside
    start = mac_start(conn, key)
    m = 0 if head is None else head.checkpoint.size
    # Counting every row is the guard's one O(n) step (~0.1 µs a row), so the whole ledger is counted at start-up
    # and then at most once a minute; in between only the rows since the signed head are.
    full = guard.full_count_due()
    since = 0 if full else min(m, tree.size)
    count, top = conn.execute(
        "SELECT count(*), (SELECT coalesce(max(idx) + 1, 0) FROM ledger) FROM ledger WHERE idx >= ?", (since,)
    ).fetchone()
    if count != top - since or top != tree.size:
        raise LedgerInconsistent(
            f"the ledger holds {count} rows from index {since} up to index {top - 1} but its tree state covers"
            f" {tree.size} entries (rows deleted, inserted or renumbered)",
            min(since + count, top, tree.size),
        )
    if tree.size < m:
        raise LedgerInconsistent(
            f"the ledger has {tree.size} entries but the last signed checkpoint covers {m} (truncated or rolled back)",
            tree.size,
        )
    if head is not None and tree.size == m:
        if tree.root() != head.checkpoint.root_hash:
            raise LedgerInconsistent(f"fork: the stored tree's root for size {m} is not the signed one")
        return None
    if tree.size == 0:
        return None
    if head is None:
        compact = CompactRange()
    else:
        compact = guard.trusted_compact(head.checkpoint) or _stored_compact(conn, m)
        if compact.root() != head.checkpoint.root_hash:
            raise LedgerInconsistent(
                f"the stored entries 0..{m - 1} no longer reproduce the checkpoint signed for size {m}"
                " (an entry was edited, removed, inserted or moved)",
                0,
            )
    expected = m
    for idx, data, leaf, mac in conn.execute(
        "SELECT idx, entry, leaf_hash, mac FROM ledger WHERE idx >= ? ORDER BY idx", (m,)
    ):
        data, leaf = bytes(data), bytes(leaf)
        if idx != expected:
            raise LedgerInconsistent(f"entry {expected} is missing", expected)
        if merkle.leaf_hash(data) != leaf:
            raise LedgerInconsistent(f"entry {idx} does not match its recorded leaf hash (edited)", idx)
        if idx >= start and not entry_mac_ok(key, idx, leaf, None if mac is None else bytes(mac)):
            raise LedgerInconsistent(
                f"entry {idx} has no valid MAC: it was not written by this gateway (forged, edited or moved)", idx
            )
        compact.append(leaf)
        expected += 1
    if compact.size != tree.size or compact.root() != tree.root():
        raise LedgerInconsistent(
            f"the stored tree state (size {tree.size}) does not match the entries ({compact.size})", m
        )
    if head is not None:
        _stored_consistency(conn, m, compact.size, head.checkpoint.root_hash, compact.root())
    if full:
        guard.full_count_done()
    return compact


def _share_from_rows(row: sqlite3.Row | aiosqlite.Row, rrows: Sequence[Any]) -> Share:
    return Share(
        id=row["id"],
        created_at=row["created_at"],
        sender_sub=row["sender_sub"],
        sender_iss=row["sender_iss"],
        sender_org=row["sender_org"],
        purpose_code=row["purpose_code"],
        purpose_description=row["purpose_description"],
        subjects=tuple(json.loads(row["subjects"])),
        data_categories=tuple(json.loads(row["data_categories"])),
        payload_content_type=row["payload_content_type"],
        payload_size=row["payload_size"],
        expires_at=row["expires_at"],
        max_downloads=row["max_downloads"],
        state=row["state"],
        ledger_index=row["ledger_index"],
        escrow_sha256=row["escrow_sha256"],
        escrow_size=row["escrow_size"],
        recipients=tuple(
            ShareRecipient(
                recipient_id=r["recipient_id"],
                recipient_org=r["recipient_org"],
                envelope_sha256=r["envelope_sha256"],
                envelope_size=r["envelope_size"],
                downloads=r["downloads"],
                state=r["state"],
                acknowledged_at=r["acknowledged_at"],
                acknowledgement=r["acknowledgement"],
                via_team=r["via_team"],
                first_downloaded_at=r["first_downloaded_at"],
                last_downloaded_at=r["last_downloaded_at"],
            )
            for r in rrows
        ),
    )


def _load_share(conn: sqlite3.Connection, share_id: str) -> Share | None:
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT * FROM shares WHERE id = ?", (share_id,)).fetchone()
        if row is None:
            return None
        rrows = conn.execute(
            "SELECT * FROM share_recipients WHERE share_id = ? ORDER BY recipient_id", (share_id,)
        ).fetchall()
        return _share_from_rows(row, rrows)
    finally:
        conn.row_factory = None


def _enrolment_from_row(row: Any) -> Enrolment:
    return Enrolment(
        id=row["id"],
        recipient_id=row["recipient_id"],
        name=row["name"],
        org=row["org"],
        email=row["email"],
        age_recipient=row["age_recipient"],
        status=row["status"],
        requested_at=row["requested_at"],
        decided_at=row["decided_at"],
    )


def _recipient_from_row(row: Any) -> Recipient:
    return Recipient(
        id=row["id"],
        name=row["name"],
        org=row["org"],
        email=row["email"],
        age_recipient=row["age_recipient"],
        status=row["status"],
        created_at=row["created_at"],
        kind=row["kind"],
    )


class SQLiteStore:
    """The embedded store. Open with `await SQLiteStore.open(path)`; close with `await store.close()`."""

    def __init__(self, path: Path, writer: _Writer, reader: aiosqlite.Connection) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        #: Set by the gateway: checks every new tree against the last signed one before `checkpoint` signs it.
        self.guard: CheckpointGuard | None = None
        self.ledger_mac_key: bytes | None = None

    @property
    def reader(self) -> aiosqlite.Connection:
        """The read-only connection (committed data only), for read-side query modules."""
        return self._reader

    @classmethod
    async def open(cls, path: Path, ledger_mac_key: bytes | None = None, legacy_upgrade: bool = True) -> SQLiteStore:
        await asyncio.to_thread(create_schema, path, ledger_mac_key, legacy_upgrade)
        writer = _Writer(path, ledger_mac_key=ledger_mac_key)
        reader = await aiosqlite.connect(path)
        reader.row_factory = aiosqlite.Row
        await reader.execute("PRAGMA busy_timeout=30000")
        await reader.execute("PRAGMA query_only=ON")
        store = cls(path, writer, reader)
        store.ledger_mac_key = ledger_mac_key
        return store

    async def close(self) -> None:
        await self._reader.close()
        await asyncio.to_thread(self._writer.close)

    @property
    def held(self) -> HeldShares:
        from .held import HeldStore

        return HeldStore(self)

    @property
    def agreements(self) -> AgreementRecords:
        from .agreements import AgreementStore

        return AgreementStore(self)

    async def writable(self) -> bool:
        """False after a batch failed on the database's side until a later one commits (see `_Writer`)."""
        return self._writer.healthy

    # -- recipients -------------------------------------------------------------------------------

    async def add_recipient(self, rec: Recipient, entry: Mapping[str, Any]) -> int:
        def op(conn: sqlite3.Connection) -> int:
            if conn.execute("SELECT 1 FROM recipients WHERE id = ?", (rec.id,)).fetchone():
                raise RecipientExists(rec.id)
            now = entry["time"]
            conn.execute(
                "INSERT INTO recipients (id, name, org, email, age_recipient, status, created_at, updated_at, kind)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (rec.id, rec.name, rec.org, rec.email, rec.age_recipient, rec.status, now, now, rec.kind),
            )
            if rec.kind == "person":
                conn.execute(
                    "INSERT INTO recipient_keys (recipient_id, age_recipient, status, since)"
                    " VALUES (?, ?, 'active', ?)",
                    (rec.id, rec.age_recipient, now),
                )
            return append_entry(conn, entry)

        return await self._writer.submit(op)

    async def set_membership(self, team_id: str, member_id: str, add: bool, entry: Mapping[str, Any]) -> int | None:
        """Add or end a membership, with its ledger entry; None when it is already so (nothing recorded)."""

        def op(conn: sqlite3.Connection) -> int | None:
            current = conn.execute(
                "SELECT since FROM team_members WHERE team_id = ? AND member_id = ? AND until IS NULL",
                (team_id, member_id),
            ).fetchone()
            if add == (current is not None):
                return None
            if add:
                conn.execute(
                    "INSERT INTO team_members (team_id, member_id, since) VALUES (?, ?, ?)",
                    (team_id, member_id, entry["time"]),
                )
            else:
                conn.execute(
                    "UPDATE team_members SET until = ? WHERE team_id = ? AND member_id = ? AND until IS NULL",
                    (entry["time"], team_id, member_id),
                )
            return append_entry(conn, entry)

        return await self._writer.submit(op)

    async def team_members(self, team_ids: Sequence[str]) -> dict[str, list[Recipient]]:
        """Current members of each team (only active people with a key)."""
        if not team_ids:
            return {}
        marks = ",".join("?" * len(team_ids))
        out: dict[str, list[Recipient]] = {t: [] for t in team_ids}
        async with self._reader.execute(
            f"SELECT tm.team_id, r.* FROM team_members tm JOIN recipients r ON r.id = tm.member_id"  # noqa: S608
            f" WHERE tm.team_id IN ({marks}) AND tm.until IS NULL AND r.status = 'active' AND r.kind = 'person'"
            " ORDER BY tm.team_id, r.id",
            tuple(team_ids),
        ) as cur:
            for row in await cur.fetchall():
                out[row["team_id"]].append(_recipient_from_row(row))
        return out

    async def request_enrolment(self, enrolment: Enrolment, entry: Mapping[str, Any]) -> int:
        """Record a pending enrolment; an earlier pending one for the same recipient is superseded."""

        def op(conn: sqlite3.Connection) -> int:
            conn.execute(
                "UPDATE enrolments SET status = 'superseded', decided_at = ?"
                " WHERE recipient_id = ? AND status = 'pending'",
                (enrolment.requested_at, enrolment.recipient_id),
            )
            conn.execute(
                "INSERT INTO enrolments (id, recipient_id, name, org, email, age_recipient, status, requested_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                (
                    enrolment.id,
                    enrolment.recipient_id,
                    enrolment.name,
                    enrolment.org,
                    enrolment.email,
                    enrolment.age_recipient,
                    enrolment.requested_at,
                ),
            )
            return append_entry(conn, entry)

        return await self._writer.submit(op)

    async def decide_enrolment(
        self, recipient_id: str, approve: bool, decided_by: str, make_entry: Callable[[Enrolment], Mapping[str, Any]]
    ) -> tuple[Enrolment, int] | None:
        """Approve (the key becomes the recipient's active key; any previous one is retired) or reject the
        recipient's pending enrolment, with its ledger entry, in one transaction. None if nothing is pending."""

        def op(conn: sqlite3.Connection) -> tuple[Enrolment, int] | None:
            conn.row_factory = sqlite3.Row
            try:
                row = conn.execute(
                    "SELECT * FROM enrolments WHERE recipient_id = ? AND status = 'pending'", (recipient_id,)
                ).fetchone()
            finally:
                conn.row_factory = None
            if row is None:
                return None
            enrolment = _enrolment_from_row(row)
            entry = make_entry(enrolment)
            now = entry["time"]
            conn.execute(
                "UPDATE enrolments SET status = ?, decided_at = ?, decided_by = ? WHERE id = ?",
                ("approved" if approve else "rejected", now, decided_by, enrolment.id),
            )
            if approve:
                current = conn.execute("SELECT age_recipient FROM recipients WHERE id = ?", (recipient_id,)).fetchone()
                if current is None:
                    conn.execute(
                        "INSERT INTO recipients (id, name, org, email, age_recipient, status, created_at, updated_at)"
                        " VALUES (?, ?, ?, ?, ?, 'active', ?, ?)",
                        (
                            recipient_id,
                            enrolment.name,
                            enrolment.org,
                            enrolment.email,
                            enrolment.age_recipient,
                            now,
                            now,
                        ),
                    )
                else:
                    conn.execute(
                        "INSERT OR IGNORE INTO recipient_keys (recipient_id, age_recipient, status, since)"
                        " VALUES (?, ?, 'active', ?)",
                        (recipient_id, current[0], now),
                    )
                    conn.execute(
                        "UPDATE recipient_keys SET status = 'retired', until = ?"
                        " WHERE recipient_id = ? AND status = 'active'",
                        (now, recipient_id),
                    )
                    conn.execute(
                        "UPDATE recipients SET age_recipient = ?, status = 'active', updated_at = ? WHERE id = ?",
                        (enrolment.age_recipient, now, recipient_id),
                    )
                conn.execute(
                    "INSERT INTO recipient_keys (recipient_id, age_recipient, status, since) VALUES (?, ?, 'active', ?)"
                    " ON CONFLICT (recipient_id, age_recipient)"
                    " DO UPDATE SET status = 'active', since = excluded.since, until = NULL",
                    (recipient_id, enrolment.age_recipient, now),
                )
            return enrolment, append_entry(conn, entry)

        return await self._writer.submit(op)

    async def enrolments(self, recipient_id: str | None = None, status: str | None = None) -> list[Enrolment]:
        sql, args = "SELECT * FROM enrolments WHERE 1=1", []
        if recipient_id is not None:
            sql += " AND recipient_id = ?"
            args.append(recipient_id)
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        sql += " ORDER BY requested_at DESC LIMIT 500"
        async with self._reader.execute(sql, args) as cur:
            return [_enrolment_from_row(r) for r in await cur.fetchall()]

    async def recipient_keys(self, recipient_id: str) -> list[tuple[str, str, str, str | None]]:
        """(age_recipient, status, since, until), newest first."""
        async with self._reader.execute(
            "SELECT age_recipient, status, since, until FROM recipient_keys WHERE recipient_id = ? ORDER BY since DESC",
            (recipient_id,),
        ) as cur:
            return [(r[0], r[1], r[2], r[3]) for r in await cur.fetchall()]

    async def set_recipient_status(self, recipient_id: str, status: str, entry: Mapping[str, Any]) -> int | None:
        """Returns the ledger index, or None when there is no such recipient (nothing recorded)."""

        def op(conn: sqlite3.Connection) -> int | None:
            cur = conn.execute(
                "UPDATE recipients SET status = ?, updated_at = ? WHERE id = ?",
                (status, entry["time"], recipient_id),
            )
            if cur.rowcount == 0:
                return None
            return append_entry(conn, entry)

        return await self._writer.submit(op)

    async def person_by_email(self, address: str) -> Recipient | None:
        async with self._reader.execute(
            "SELECT id FROM recipients WHERE email = ? AND status = ? AND kind = 'person' AND age_recipient != ''"
            " ORDER BY id LIMIT 1",
            (address, RECIPIENT_ACTIVE),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return (await self.get_recipients([row[0]])).get(row[0])

    async def get_recipients(self, ids: Sequence[str]) -> dict[str, Recipient]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        async with self._reader.execute(f"SELECT * FROM recipients WHERE id IN ({marks})", tuple(ids)) as cur:  # noqa: S608
            return {row["id"]: _recipient_from_row(row) for row in await cur.fetchall()}

    async def list_recipients(
        self, q: str | None = None, include_disabled: bool = False, limit: int = 100
    ) -> list[Recipient]:
        sql = "SELECT * FROM recipients WHERE 1=1"
        args: list[Any] = []
        if not include_disabled:
            sql += " AND status = ?"
            args.append(RECIPIENT_ACTIVE)
        if q:
            like = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            sql += (
                " AND (lower(id) LIKE ? ESCAPE '\\' OR lower(name) LIKE ? ESCAPE '\\'"
                " OR lower(email) LIKE ? ESCAPE '\\' OR lower(org) LIKE ? ESCAPE '\\')"
            )
            args += [like] * 4
        sql += " ORDER BY id LIMIT ?"
        args.append(limit)
        async with self._reader.execute(sql, args) as cur:
            return [_recipient_from_row(row) for row in await cur.fetchall()]

    # -- shares -----------------------------------------------------------------------------------

    async def create_share(
        self,
        share: Share,
        entry: Mapping[str, Any],
        before_commit: Callable[[], None] | None = None,
        idempotency: IdempotentWrite | None = None,
        held: Sequence[HeldRow] = (),
    ) -> int:
        """Insert the share, its recipients, its held rows and its ledger entry in one transaction.

        `before_commit` runs inside the transaction (in the writer thread) after the rows are written: the
        envelope files are moved into place there, so a failure to place them aborts the whole share.
        """

        def op(conn: sqlite3.Connection) -> int:
            if idempotency is not None:
                _claim_idempotency_key(conn, idempotency, str(entry["time"]))
            idx = append_entry(conn, entry)
            if idempotency is not None:
                _store_idempotent_answer(conn, idempotency, idx, str(entry["time"]))
            conn.execute(
                "INSERT INTO shares (id, created_at, sender_sub, sender_iss, sender_org, purpose_code,"
                " purpose_description, subjects, data_categories, payload_content_type, payload_size,"
                " expires_at, max_downloads, state, ledger_index, escrow_sha256, escrow_size)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    share.id,
                    share.created_at,
                    share.sender_sub,
                    share.sender_iss,
                    share.sender_org,
                    share.purpose_code,
                    share.purpose_description,
                    json.dumps(list(share.subjects)),
                    json.dumps(list(share.data_categories)),
                    share.payload_content_type,
                    share.payload_size,
                    share.expires_at,
                    share.max_downloads,
                    SHARE_ACTIVE,
                    idx,
                    share.escrow_sha256,
                    share.escrow_size,
                ),
            )
            conn.executemany(
                "INSERT INTO share_recipients (share_id, recipient_id, recipient_org, envelope_sha256,"
                " envelope_size, downloads, state, via_team) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
                [
                    (
                        share.id,
                        r.recipient_id,
                        r.recipient_org,
                        r.envelope_sha256,
                        r.envelope_size,
                        SHARE_ACTIVE,
                        r.via_team,
                    )
                    for r in share.recipients
                ],
            )
            if held:  # addresses without a key yet (issue 6), in the same transaction
                from .held import insert_held

                insert_held(conn, held)
            if before_commit is not None:
                before_commit()
            return idx

        return await self._writer.submit(op)

    async def record(self, entry: Mapping[str, Any], idempotency: IdempotentWrite | None = None) -> int:
        """Append an entry that changes no other state (a decision not to share)."""

        def op(conn: sqlite3.Connection) -> int:
            if idempotency is not None:
                _claim_idempotency_key(conn, idempotency, str(entry["time"]))
            idx = append_entry(conn, entry)
            if idempotency is not None:
                _store_idempotent_answer(conn, idempotency, idx, str(entry["time"]))
            return idx

        return await self._writer.submit(op)

    async def idempotent_answer(self, principal: str, key: str, now: str) -> StoredResponse | None:
        """The stored answer for a caller's Idempotency-Key, unless there is none or it has expired."""
        async with self._reader.execute(
            "SELECT fingerprint, status, response FROM idempotency_keys"
            " WHERE principal = ? AND key = ? AND expires_at > ?",
            (principal, key, now),
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else StoredResponse(row[0], int(row[1]), json.loads(row[2]))

    async def get_share(self, share_id: str) -> Share | None:
        async with self._reader.execute("SELECT * FROM shares WHERE id = ?", (share_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        async with self._reader.execute(
            "SELECT * FROM share_recipients WHERE share_id = ? ORDER BY recipient_id", (share_id,)
        ) as cur:
            rrows = list(await cur.fetchall())
        return _share_from_rows(row, rrows)

    async def _shares(self, sql: str, args: Sequence[Any]) -> list[Share]:
        async with self._reader.execute(sql, args) as cur:
            rows = await cur.fetchall()
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        marks = ",".join("?" * len(ids))
        async with self._reader.execute(
            f"SELECT * FROM share_recipients WHERE share_id IN ({marks}) ORDER BY recipient_id",  # noqa: S608
            ids,
        ) as cur:
            by_share: dict[str, list[Any]] = {}
            for r in await cur.fetchall():
                by_share.setdefault(r["share_id"], []).append(r)
        return [_share_from_rows(r, by_share.get(r["id"], [])) for r in rows]

    async def inbox(self, recipient_id: str, before: int | None, limit: int) -> list[Share]:
        """The recipient's shares, newest first; paged by the share's ledger index."""
        sql = "SELECT s.* FROM shares s JOIN share_recipients sr ON sr.share_id = s.id WHERE sr.recipient_id = ?"
        args: list[Any] = [recipient_id]
        if before is not None:
            sql += " AND s.ledger_index < ?"
            args.append(before)
        sql += " ORDER BY s.ledger_index DESC LIMIT ?"
        args.append(limit)
        return await self._shares(sql, args)

    async def sent(self, sender_sub: str, sender_iss: str, before: int | None, limit: int) -> list[Share]:
        sql = "SELECT * FROM shares WHERE sender_sub = ? AND sender_iss = ?"
        args: list[Any] = [sender_sub, sender_iss]
        if before is not None:
            sql += " AND ledger_index < ?"
            args.append(before)
        sql += " ORDER BY ledger_index DESC LIMIT ?"
        args.append(limit)
        return await self._shares(sql, args)

    async def record_fetch(
        self, share_id: str, recipient_id: str, now: str, make_entry: EntryBuilder
    ) -> FetchOutcome | None:
        """Count and record one release of an envelope, atomically with the max_downloads check.

        Returns None if the share does not exist or is not addressed to this recipient.
        """

        def op(conn: sqlite3.Connection) -> FetchOutcome | None:
            share = _load_share(conn, share_id)
            if share is None:
                return None
            mine = share.recipient(recipient_id)
            if mine is None:
                return None
            if mine.state != SHARE_ACTIVE:
                return FetchOutcome(share=share, refused=mine.state)
            if share.expires_at <= now:
                return FetchOutcome(share=share, refused=SHARE_EXPIRED)
            downloads = mine.downloads + 1
            exhausted = share.max_downloads is not None and downloads >= share.max_downloads
            conn.execute(
                "UPDATE share_recipients SET downloads = ?, state = ?, first_downloaded_at = coalesce("
                "first_downloaded_at, ?), last_downloaded_at = ? WHERE share_id = ? AND recipient_id = ?",
                (downloads, SHARE_EXHAUSTED if exhausted else SHARE_ACTIVE, now, now, share_id, recipient_id),
            )
            entry = dict(make_entry(share))
            entry["download"] = downloads
            idx = append_entry(conn, entry)
            if exhausted:
                entry2: dict[str, Any] = {
                    **{k: v for k, v in entry.items() if k not in ("download", "envelope_sha256")},
                    "kind": "expire",
                    "actor": None,
                    "reason": "max_downloads",
                }
                append_entry(conn, entry2)
                _settle_share_state(conn, share_id)
            return FetchOutcome(share=share, ledger_index=idx, exhausted=exhausted)

        return await self._writer.submit(op)

    async def acknowledge(
        self, share_id: str, recipient_id: str, note: str, now: str, make_entry: EntryBuilder
    ) -> tuple[Share, int] | None:
        """Record that a recipient received and actioned a share (once; later calls replace the note)."""

        def op(conn: sqlite3.Connection) -> tuple[Share, int] | None:
            share = _load_share(conn, share_id)
            if share is None or share.recipient(recipient_id) is None:
                return None
            conn.execute(
                "UPDATE share_recipients SET acknowledged_at = ?, acknowledgement = ?"
                " WHERE share_id = ? AND recipient_id = ?",
                (now, note, share_id, recipient_id),
            )
            return share, append_entry(conn, make_entry(share))

        return await self._writer.submit(op)

    async def record_escrow_release(self, share_id: str, make_entry: EntryBuilder) -> Share | None:
        """Record the release of a share's escrow envelope (before it is sent). None if there is none to release."""

        def op(conn: sqlite3.Connection) -> Share | None:
            share = _load_share(conn, share_id)
            if share is None or share.escrow_sha256 is None or share.state not in (SHARE_ACTIVE, SHARE_EXHAUSTED):
                return None
            append_entry(conn, make_entry(share))
            return share

        return await self._writer.submit(op)

    async def revoke(self, share_id: str, make_entry: EntryBuilder) -> tuple[Share, int | None] | None:
        """Revoke every still-active envelope of a share. (share, index) or (share, None) if nothing was active."""

        def op(conn: sqlite3.Connection) -> tuple[Share, int | None] | None:
            share = _load_share(conn, share_id)
            if share is None:
                return None
            if share.state != SHARE_ACTIVE:
                return share, None
            conn.execute(
                "UPDATE share_recipients SET state = ? WHERE share_id = ? AND state = ?",
                (SHARE_REVOKED, share_id, SHARE_ACTIVE),
            )
            conn.execute("UPDATE shares SET state = ? WHERE id = ?", (SHARE_REVOKED, share_id))
            conn.execute(  # envelopes held for addresses without a key (issue 10) end with the share
                "UPDATE held_recipients SET state = 'revoked'"
                " WHERE share_id = ? AND state IN ('held', 'claimed', 'active')",
                (share_id,),
            )
            return share, append_entry(conn, make_entry(share))

        return await self._writer.submit(op)

    async def expire_due(self, now: str, make_entry: EntryBuilder, limit: int = 500) -> list[Share]:
        """Mark shares past their expiry as expired and record one `expire` entry for each."""

        def op(conn: sqlite3.Connection) -> list[Share]:
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM shares WHERE expires_at <= ?"
                    " AND (state = 'active' OR (state = 'exhausted' AND escrow_sha256 IS NOT NULL))"
                    " ORDER BY expires_at LIMIT ?",
                    (now, limit),
                ).fetchall()
            ]
            done = []
            for share_id in ids:
                share = _load_share(conn, share_id)
                assert share is not None
                conn.execute(
                    "UPDATE share_recipients SET state = ? WHERE share_id = ? AND state = ?",
                    (SHARE_EXPIRED, share_id, SHARE_ACTIVE),
                )
                conn.execute("UPDATE shares SET state = ? WHERE id = ?", (SHARE_EXPIRED, share_id))
                append_entry(conn, make_entry(share))
                done.append(share)
            return done

        return await self._writer.submit(op)

    async def live_envelopes(self) -> set[tuple[str, str]]:
        """(share_id, recipient_id) of every envelope that should still exist on disk."""
        async with self._reader.execute(
            "SELECT share_id, recipient_id FROM share_recipients WHERE state = 'active'"
            " UNION ALL SELECT id, ? FROM shares WHERE escrow_sha256 IS NOT NULL AND state IN ('active', 'exhausted')"
            " UNION ALL SELECT share_id, envelope FROM held_recipients WHERE state IN ('held', 'claimed', 'active')",
            (ESCROW_ID,),
        ) as cur:
            return {(r[0], r[1]) for r in await cur.fetchall()}

    # -- ledger -----------------------------------------------------------------------------------

    async def checkpoint(self, sign: Callable[[int, bytes], bytes], now: str) -> tuple[int, bytes] | None:
        """Sign the current tree if it grew since the last checkpoint; (size, note) or None if unchanged.

        Runs through the writer, so the signed root is exactly that of the committed entries.
        """

        guard, key = self.guard, self.ledger_mac_key
        if guard is not None and key is not None:
            return await self._guarded_checkpoint(guard, key, sign, now)

        def op(conn: sqlite3.Connection) -> tuple[int, bytes] | None:
            tree = load_tree(conn)
            last = conn.execute("SELECT coalesce(max(size), 0) FROM ledger_checkpoints").fetchone()[0]
            if tree.size == 0 or tree.size <= last:
                return None
            note = sign(tree.size, tree.root())
            conn.execute("INSERT INTO ledger_checkpoints (size, time, note) VALUES (?, ?, ?)", (tree.size, now, note))
            return tree.size, note

        return await self._writer.submit(op)

    async def _guarded_checkpoint(
        self, guard: CheckpointGuard, key: bytes, sign: Callable[[int, bytes], bytes], now: str
    ) -> tuple[int, bytes] | None:
        """`checkpoint`, but only over a tree proven to extend the last signed one; see gateway/ledger/guard.py.

        The proof runs on its own read snapshot, off the writer thread, so appends are not held up by it; the
        writer then only records the signature over the root the proof computed (itself, from the trusted head
        and the MAC-checked entries since, never taken from the stored tree state).
        """

        def check() -> CompactRange | None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
            try:
                conn.execute("PRAGMA busy_timeout=30000")
                conn.execute("BEGIN")  # one snapshot: entries, tree state and checkpoints agree in time
                return check_extension(conn, guard, key)
            finally:
                conn.close()

        try:
            new = await asyncio.to_thread(check)
        except LedgerInconsistent as exc:
            guard.fail(exc)
            return None
        guard.clear()
        if new is None:
            return None

        def op(conn: sqlite3.Connection) -> tuple[int, bytes] | None:
            last = conn.execute("SELECT coalesce(max(size), 0) FROM ledger_checkpoints").fetchone()[0]
            if new.size <= last:
                return None  # signed meanwhile (a concurrent round): the next round checks from there
            note = sign(new.size, new.root())
            conn.execute("INSERT INTO ledger_checkpoints (size, time, note) VALUES (?, ?, ?)", (new.size, now, note))
            return new.size, note

        result = await self._writer.submit(op)
        if result is None:
            return None
        await asyncio.to_thread(guard.remember, result[1], new)
        return result

    async def latest_checkpoint(self) -> tuple[int, bytes] | None:
        async with self._reader.execute("SELECT size, note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1") as cur:
            row = await cur.fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    async def checkpoint_note(self, size: int) -> bytes | None:
        async with self._reader.execute("SELECT note FROM ledger_checkpoints WHERE size = ?", (size,)) as cur:
            row = await cur.fetchone()
        return None if row is None else bytes(row[0])

    async def add_cosignatures(self, size: int, lines: Mapping[str, str]) -> None:
        """Record witness signature lines for a stored checkpoint (a repeat from the same witness is kept once)."""

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT OR IGNORE INTO ledger_cosignatures (size, witness, line) VALUES (?, ?, ?)",
                [(size, name, line) for name, line in sorted(lines.items())],
            )

        await self._writer.submit(op)

    async def cosignature_lines(self, size: int) -> list[str]:
        async with self._reader.execute(
            "SELECT line FROM ledger_cosignatures WHERE size = ? ORDER BY witness", (size,)
        ) as cur:
            return [r[0] for r in await cur.fetchall()]

    async def latest_cosigned_size(self) -> int | None:
        async with self._reader.execute("SELECT max(size) FROM ledger_cosignatures") as cur:
            row = await cur.fetchone()
        return None if row is None or row[0] is None else int(row[0])

    async def tree_size(self) -> int:
        async with self._reader.execute("SELECT size FROM ledger_tree WHERE id = 0") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def ledger_entry(self, index: int) -> LedgerRow | None:
        async with self._reader.execute(
            "SELECT idx, time, kind, entry, leaf_hash FROM ledger WHERE idx = ?", (index,)
        ) as cur:
            r = await cur.fetchone()
        return None if r is None else LedgerRow(r[0], r[1], r[2], bytes(r[3]), bytes(r[4]))

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return await asyncio.to_thread(self._with_tree_reader, lambda t: t.inclusion_proof(index, size))

    async def consistency_proof(self, first: int, second: int) -> list[bytes]:
        return await asyncio.to_thread(self._with_tree_reader, lambda t: t.consistency_proof(first, second))

    def _with_tree_reader(self, fn: Callable[[TreeReader], T]) -> T:
        with TreeReader(self.path) as reader:
            return fn(reader)

    async def tile(self, level: int, index: int, width: int) -> list[bytes]:
        """C2SP tlog-tiles: the stored hashes of tile `level`/`index` (level 0: leaf hashes; level L: the
        `ledger_nodes` of tree height 8L, written as the log grew); fewer than `width` if not all exist yet."""
        first = index * 256
        if level == 0:
            sql = "SELECT leaf_hash FROM ledger WHERE idx >= ? AND idx < ? ORDER BY idx"
            args: tuple[int, ...] = (first, first + width)
        else:
            sql = "SELECT hash FROM ledger_nodes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx"
            args = (8 * level, first, first + width)
        async with self._reader.execute(sql, args) as cur:
            return [bytes(r[0]) for r in await cur.fetchall()]

    async def entry_bundle(self, index: int, width: int) -> list[bytes]:
        """The canonical entry bytes of leaves [256 * index, 256 * index + width), in order."""
        first = index * 256
        async with self._reader.execute(
            "SELECT entry FROM ledger WHERE idx >= ? AND idx < ? ORDER BY idx", (first, first + width)
        ) as cur:
            return [bytes(r[0]) for r in await cur.fetchall()]

    # -- audit queries (store/queries.py holds the SQL and its plans) -----------------------------------------

    async def query_page(self, f: AuditFilter, *, before: int | None, limit: int) -> list[LedgerRow]:
        from . import queries

        return await queries.query_page(self._reader, f, before=before, limit=limit)

    async def export_pages(self, f: AuditFilter, *, upto: int, page_size: int) -> AsyncIterator[list[LedgerRow]]:
        from . import queries

        plan = await queries.export_plan(self._reader, f, upto=upto)
        return queries.export_pages(self._reader, plan, page_size=page_size)

    async def latest_stored_checkpoint(self) -> StoredCheckpoint | None:
        from . import queries

        return await queries.latest_checkpoint(self._reader)

    async def ledger_end(self) -> int:
        from . import queries

        return await queries.ledger_end(self._reader)

    async def subject_events(self, ref: str, cap: int, *, scope: str | None = None) -> tuple[list[LedgerRow], bool]:
        from . import queries

        return await queries.subject_events(self._reader, ref, cap, scope=scope)

    async def verify_inclusions(
        self, size: int, root: bytes, entries: Sequence[tuple[int, bytes]]
    ) -> dict[int, str | None]:
        from . import queries

        return await asyncio.to_thread(queries.verify_inclusions, self.path, size, root, entries)

    async def flagged_decisions(
        self,
        flag: str,
        *,
        org: str | None,
        time_from: str | None,
        time_to: str | None,
        before: int | None,
        limit: int,
    ) -> list[LedgerRow]:
        from . import queries

        return await queries.flagged_decisions(
            self._reader, flag, org=org, time_from=time_from, time_to=time_to, before=before, limit=limit
        )

    async def own_decisions(self, sub: str, *, before: int | None, limit: int) -> list[LedgerRow]:
        from . import queries

        return await queries.own_decisions(self._reader, sub, before=before, limit=limit)

    async def stats(self, time_from: str | None, time_to: str | None, *, scope: str | None = None) -> dict[str, Any]:
        from . import queries

        return await queries.stats(self._reader, time_from, time_to, scope=scope)


def _claim_idempotency_key(conn: sqlite3.Connection, idem: IdempotentWrite, now: str) -> None:
    """Inside the write transaction: if the key is taken (by a request on another node, or one that finished
    since it was looked up), raise IdempotencyHit so that nothing is written; forget a few expired keys."""
    conn.execute(
        "DELETE FROM idempotency_keys WHERE (principal, key) IN"
        " (SELECT principal, key FROM idempotency_keys WHERE expires_at <= ? LIMIT 64)",
        (now,),
    )
    row = conn.execute(
        "SELECT fingerprint, status, response FROM idempotency_keys WHERE principal = ? AND key = ?",
        (idem.principal, idem.key),
    ).fetchone()
    if row is not None:
        raise IdempotencyHit(StoredResponse(row[0], int(row[1]), json.loads(row[2])))


def _store_idempotent_answer(conn: sqlite3.Connection, idem: IdempotentWrite, index: int, now: str) -> None:
    expires = ledger_time(parse_ledger_time(now) + timedelta(seconds=idem.ttl_seconds))
    conn.execute(
        "INSERT INTO idempotency_keys (principal, key, fingerprint, status, response, created_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        idem.row(index, now, expires),
    )


def _settle_share_state(conn: sqlite3.Connection, share_id: str) -> None:
    """A share whose every envelope is used up is itself exhausted."""
    left = conn.execute(
        "SELECT count(*) FROM share_recipients WHERE share_id = ? AND state = 'active'", (share_id,)
    ).fetchone()[0]
    if left == 0:
        conn.execute("UPDATE shares SET state = ? WHERE id = ? AND state = 'active'", (SHARE_EXHAUSTED, share_id))


class TreeReader:
    """Synchronous read access to leaf and subtree hashes for building proofs (run it off the event loop).

    Complete subtrees of 256+ leaves come from `ledger_nodes`; smaller ones are hashed from one range read
    of leaf hashes, so a proof at a million entries costs a few dozen indexed reads.
    """

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout=30000")

    def __enter__(self) -> TreeReader:
        self._conn.execute("BEGIN")  # one snapshot for the whole proof
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.rollback()
        self._conn.close()

    def size(self) -> int:
        row = self._conn.execute("SELECT size FROM ledger_tree WHERE id = 0").fetchone()
        return int(row[0]) if row else 0

    def leaf_hash(self, index: int) -> bytes:
        row = self._conn.execute("SELECT leaf_hash FROM ledger WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise StoreError(f"ledger entry {index} is missing")
        return bytes(row[0])

    def subtree_hash(self, start: int, end: int) -> bytes | None:
        level = (end - start).bit_length() - 1
        if level >= NODE_CACHE_MIN_LEVEL:
            row = self._conn.execute(
                "SELECT hash FROM ledger_nodes WHERE level = ? AND idx = ?", (level, start >> level)
            ).fetchone()
            if row is not None:
                return bytes(row[0])
        leaves = [
            bytes(r[0])
            for r in self._conn.execute(
                "SELECT leaf_hash FROM ledger WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end)
            )
        ]
        if len(leaves) != end - start:
            raise StoreError(f"ledger entries {start}..{end - 1} are incomplete")
        return merkle.root(leaves)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return merkle.inclusion_proof(index, size, self.leaf_hash, self.subtree_hash)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        return merkle.consistency_proof(first, second, self.leaf_hash, self.subtree_hash)


# -- the backend's entry points, called by `gateway.store` (open_store, migrate, ledger_snapshot) ---------------


def _path(url: str) -> Path:
    from . import sqlite_path

    path = sqlite_path(url)
    if path is None:
        raise StoreError(f"not an SQLite database: {url}")
    return path


async def open_url(url: str, *, ledger_mac_key: bytes | None = None, legacy_upgrade: bool = True) -> SQLiteStore:
    return await SQLiteStore.open(_path(url), ledger_mac_key=ledger_mac_key, legacy_upgrade=legacy_upgrade)


def migrate_url(url: str, *, ledger_mac_key: bytes | None = None, legacy_upgrade: bool = True) -> tuple[int, int]:
    path = _path(url)
    before = schema_version(path)
    create_schema(path, ledger_mac_key, legacy_upgrade)
    return before, SCHEMA_VERSION


def schema_version(path: Path) -> int:
    """The schema version of the database at `path` (0: no database, or an empty one)."""
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


class _Snapshot:
    """`protocol.LedgerSnapshot` over one read-only SQLite transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.checkpoints = [(int(r[0]), bytes(r[1])) for r in conn.execute("SELECT size, note FROM ledger_checkpoints")]
        has_start = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'ledger_mac_start'").fetchone()
        start = conn.execute("SELECT start, mac FROM ledger_mac_start WHERE id = 0").fetchone() if has_start else None
        self.mac_start = None if start is None else (int(start[0]), bytes(start[1]))
        self.total = int(conn.execute("SELECT count(*) FROM ledger").fetchone()[0])
        state = conn.execute("SELECT state FROM ledger_tree WHERE id = 0").fetchone()
        self.tree = CompactRange.from_bytes(bytes(state[0])) if state else CompactRange()
        self._has_mac = "mac" in {r[1] for r in conn.execute("PRAGMA table_info(ledger)")}

    def rows(self) -> Iterator[tuple[int, bytes, bytes, bytes | None]]:
        sql = (
            "SELECT idx, entry, leaf_hash, mac FROM ledger ORDER BY idx"
            if self._has_mac
            else "SELECT idx, entry, leaf_hash, NULL FROM ledger ORDER BY idx"
        )
        for r in self._conn.execute(sql):
            yield int(r[0]), bytes(r[1]), bytes(r[2]), None if r[3] is None else bytes(r[3])


@contextmanager
def ledger_snapshot(url: str) -> Iterator[_Snapshot]:
    """A read-only snapshot (one transaction: entries, checkpoints and tree state agree in time)."""
    path = _path(url)
    if not path.exists():
        raise StoreError(f"no ledger at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        conn.execute("BEGIN")
        yield _Snapshot(conn)
    finally:
        conn.close()


if TYPE_CHECKING:  # mypy checks here that SQLite keeps the whole contract
    from .protocol import LedgerSnapshot, Store

    _store: type[Store] = SQLiteStore
    _snapshot: type[LedgerSnapshot] = _Snapshot
