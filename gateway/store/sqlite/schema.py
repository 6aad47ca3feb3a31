"""The SQLite schema and its upkeep: tables, indexes, append-only triggers, and the connection settings every
write connection uses (WAL, `synchronous=FULL`: the ledger must survive power loss)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ...ledger.mac import start_mac
from ..migrations import CURRENT_SQL, RECORD_SQL, SCHEMA_VERSION_TABLE, Step, latest, pending
from .held_schema import HELD_SCHEMA

if TYPE_CHECKING:
    from .tree import LedgerBatch

#: Indexes for the oversight statistics (`queries.py`): month-grouped decisions, and share events by kind.
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
-- except to record its retirement. Documents: agreement_documents (step 5; they were files in data/agreements/).
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


class LedgerConnection(sqlite3.Connection):
    """A write connection that knows the ledger's entry-MAC key, so every `append_entry` through it is authenticated
    (including those in operations other modules add) without threading the key through each call."""

    ledger_mac_key: bytes | None = None
    #: Work that must be durable before the batch commits (fsyncs of envelope directories), keyed so that a
    #: directory shared by the batch's shares is synced once; run by the writer just before COMMIT.
    before_commit: dict[object, Callable[[], None]]
    #: The running writer batch's ledger state (tree read once, index rows queued); None outside the writer.
    ledger_batch: LedgerBatch | None = None


def _connect(path: Path, ledger_mac_key: bytes | None = None) -> LedgerConnection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0, factory=LedgerConnection)
    conn.ledger_mac_key = ledger_mac_key
    conn.before_commit = {}
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    # Deleted rows are overwritten in the file, not only unlinked: destroying an envelope kept in the database
    # (store/sqlite/envelopes.py) must remove its bytes, as removing its file would.
    conn.execute("PRAGMA secure_delete=ON")
    return conn


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


#: Version 4: the health check's write probe (`SQLiteStore.writable`): a row written and deleted in one
#: transaction, so a database that cannot grow (full disk, read-only) fails it.
V4 = ("CREATE TABLE IF NOT EXISTS store_probe (id INTEGER PRIMARY KEY CHECK (id = 0), pad BLOB NOT NULL)",)


def _add_columns(conn: sqlite3.Connection) -> None:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for table, column, ddl in ADDED_COLUMNS:
        if table in tables and column not in {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}")


def _run(script: str | Sequence[str]) -> Callable[[sqlite3.Connection], None]:
    statements = _statements(script) if isinstance(script, str) else list(script)

    def apply(conn: sqlite3.Connection) -> None:
        for statement in statements:
            conn.execute(statement)

    return apply


def _v3(conn: sqlite3.Connection) -> None:
    _add_columns(conn)
    _run(SCHEMA)(conn)


def _v4(conn: sqlite3.Connection) -> None:
    # Before versioned steps, columns and tables were added at every start without a new version number, so a
    # database marked 3 may lack some (entry MACs, download times): bring it to the whole of 3 first.
    _v3(conn)
    _run(STATS_INDEXES)(conn)
    _run(V4)(conn)


#: Agreement documents in the database (issue 11, several nodes): content-addressed by SHA-256, in chunks of
#: `store.agreements.DOCUMENT_CHUNK` bytes so a document is read and served a piece at a time, and never changed or
#: removed once written (a ledger entry's `document_sha256` must always find the same bytes). They used to be files
#: in `data/agreements/<sha256>`, which a second node did not have; `store.agreements.import_document_files` moves
#: an existing home's files in at its first start on this version.
AGREEMENT_DOCUMENTS = """
CREATE TABLE IF NOT EXISTS agreement_documents (
    sha256 TEXT PRIMARY KEY CHECK (length(sha256) = 64),
    size INTEGER NOT NULL CHECK (size > 0),
    chunks INTEGER NOT NULL CHECK (chunks > 0),
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS agreement_document_chunks (
    sha256 TEXT NOT NULL REFERENCES agreement_documents (sha256),
    seq INTEGER NOT NULL CHECK (seq >= 0),
    data BLOB NOT NULL,
    PRIMARY KEY (sha256, seq)
);
CREATE TRIGGER IF NOT EXISTS agreement_documents_no_update BEFORE UPDATE ON agreement_documents
BEGIN SELECT RAISE(ABORT, 'agreement documents are immutable'); END;
CREATE TRIGGER IF NOT EXISTS agreement_documents_no_delete BEFORE DELETE ON agreement_documents
BEGIN SELECT RAISE(ABORT, 'agreement documents are immutable'); END;
CREATE TRIGGER IF NOT EXISTS agreement_document_chunks_no_update BEFORE UPDATE ON agreement_document_chunks
BEGIN SELECT RAISE(ABORT, 'agreement documents are immutable'); END;
CREATE TRIGGER IF NOT EXISTS agreement_document_chunks_no_delete BEFORE DELETE ON agreement_document_chunks
BEGIN SELECT RAISE(ABORT, 'agreement documents are immutable'); END;
"""
#: Version 6 (issue 13): the sender's and their organisation's names as people read them, kept with each share
#: (from the token's `name` and `org_name` claims or the directory, at the time of sharing) so the recipient's
#: inbox and the sender's Sent view need not show identifiers. NULL for shares made before: they show the IDs.
SENDER_NAME_COLUMNS = (("shares", "sender_name", "TEXT"), ("shares", "sender_org_name", "TEXT"))


def _v6(conn: sqlite3.Connection) -> None:
    present = {r[1] for r in conn.execute("PRAGMA table_info(shares)")}
    for table, column, ddl in SENDER_NAME_COLUMNS:
        if column not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}")


#: Version 7 (issue 15): one index for the ledger's share lookups instead of two. `ledger_by_share (share_id)` and
#: `ledger_by_kind_share (kind, share_id)` were both written for every entry, though decisions and directory changes
#: have no share. Every query by share gives the share (`share_id = ?` or a join on it, with or without a kind),
#: which `(share_id, kind)` seeks either way; the partial `WHERE share_id IS NOT NULL` (implied by each of those
#: conditions) leaves the entries without a share out. Measured (bench/bench_ledger.py's decision entries, batches
#: of 256): WAL pages per batch 141 -> 132. Per entry: two index writes fewer for a decision, one for a share and
#: each of its events. The one plan that changed: the statistics' revocations are walked through `ledger_by_kind`
#: and each revocation's row is read for its share ID (revocations are few), no longer covered by an index.
SHARE_INDEX = "CREATE INDEX IF NOT EXISTS ledger_by_share_kind ON ledger (share_id, kind) WHERE share_id IS NOT NULL"
V7 = (SHARE_INDEX, "DROP INDEX IF EXISTS ledger_by_share", "DROP INDEX IF EXISTS ledger_by_kind_share")

#: Envelopes of at most `envelopes.INLINE_LIMIT` bytes per share, inserted in the share's own transaction
#: (store/sqlite/envelopes.py), named as their files would be (recipient ID, `_escrow`, a held envelope's stem). No
#: foreign key to `shares`: rows are only inserted by the transaction that inserts or re-wraps their share, and a
#: key check would cost the writer a lookup per row.
V8 = (
    "CREATE TABLE IF NOT EXISTS envelope_blobs (share_id TEXT NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL,"
    " PRIMARY KEY (share_id, name))",
)


#: Version 9 (issue 13): an agreement version's standard answers (`gateway/standard_answers.py`), a JSON list of
#: sets, '[]' for versions recorded before (they had none). Written with the version's row, never changed after.
STANDARD_ANSWERS_COLUMN = "standard_answers TEXT NOT NULL DEFAULT '[]'"


def _v9(conn: sqlite3.Connection) -> None:
    if "standard_answers" not in {r[1] for r in conn.execute("PRAGMA table_info(agreements)")}:
        conn.execute(f"ALTER TABLE agreements ADD COLUMN {STANDARD_ANSWERS_COLUMN}")


#: The SQLite schema's history (gateway/store/migrations.py). Steps 1-3 predate the `schema_version` table (their
#: number was kept in `PRAGMA user_version`, which is still written so an older release refuses a newer file);
#: each is idempotent, and a new database runs them all. A change to the schema is a NEW step at the end — never
#: an edit of `SCHEMA` alone, which would reach new databases but not existing ones.
STEPS: tuple[Step[sqlite3.Connection], ...] = (
    Step(1, "tables, indexes and append-only triggers", _run(SCHEMA)),
    Step(2, "indexes for the oversight statistics", _run(STATS_INDEXES)),
    Step(3, "columns and tables added since schema 1 (teams, escrow, acknowledgements, entry MACs, held shares)", _v3),
    Step(4, "schema_version table; store_probe (the health check's write probe); columns added under 3", _v4),
    Step(
        5,
        "agreement documents in the database (agreement_documents, agreement_document_chunks)",
        _run(AGREEMENT_DOCUMENTS),
    ),
    Step(6, "shares: the sender's name and organisation name (issue 13)", _v6),
    Step(7, "ledger: one partial (share_id, kind) index for share lookups instead of two (issue 15)", _run(V7)),
    Step(8, "envelope_blobs: small envelopes in the database, written with their share (issue 15)", _run(V8)),
    Step(9, "agreements: each version's standard answers (issue 13)", _v9),
)
SCHEMA_VERSION = latest(STEPS)


def current_version(conn: sqlite3.Connection) -> int:
    """The database's schema version: the highest step recorded, or (before version 4) `PRAGMA user_version`."""
    legacy = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone() is None:
        return legacy
    return max(legacy, int(conn.execute(CURRENT_SQL).fetchone()[0]))


def create_schema(path: Path, ledger_mac_key: bytes | None = None, legacy_upgrade: bool = True) -> int:
    """Apply the pending migration steps; safe to run from several processes (CLI and server). The version before.

    One `BEGIN IMMEDIATE` transaction holds the write lock from reading the version to the last step, so two
    processes starting together cannot both migrate; a crash leaves the old version or the new one. Refuses
    (`SchemaTooNew`) a database newer than this code.

    With the entry-MAC key, record (once) the first authenticated index: 0 for a new ledger, the current size
    for one written before entry MACs existed (its entries become legacy). `legacy_upgrade=False` (the gateway
    has signed with MACs before, so the record must already exist) leaves a missing record missing, for the
    checkpoint guard to report rather than to paper over.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = _connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            before = current_version(conn)
            steps = pending(STEPS, before, f"the database {path}")
            if steps:
                conn.execute(SCHEMA_VERSION_TABLE)
            for step in steps:
                step.apply(conn)
                conn.execute(RECORD_SQL.format("?", "?", "?"), (step.version, step.description, _now()))
            if ledger_mac_key is not None and legacy_upgrade:
                if conn.execute("SELECT 1 FROM ledger_mac_start WHERE id = 0").fetchone() is None:
                    start = int(conn.execute("SELECT coalesce(max(idx) + 1, 0) FROM ledger").fetchone()[0])
                    conn.execute(
                        "INSERT INTO ledger_mac_start (id, start, mac) VALUES (0, ?, ?)",
                        (start, start_mac(ledger_mac_key, start)),
                    )
            if steps:
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return before
    finally:
        conn.close()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
