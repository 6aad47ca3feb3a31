"""The PostgreSQL schema: the same tables as the SQLite store, in PostgreSQL's own types, and its migrations.

Times stay ISO-8601 text (`ledger.entry.format_time`), exactly as on SQLite, so that ordering, comparisons and
exported answers are byte-for-byte the same on both backends. Blobs are `bytea`.

Differences that exist because several gateway nodes share the database:
- `ledger_tree` (one row) is the ledger's *coordinator row*: an append locks it (`SELECT … FOR UPDATE`), reads
  the tree state, inserts the entry at index `size` and writes the new state back, so indexes are unique and
  contiguous whichever node appends (the design of Trillian Tessera's MySQL coordinator table).
- `ledger_checkpoint_head` (one row) is the checkpoint signer's compare-and-swap: a node signs only while
  holding it and only a size larger than the one recorded there, so two nodes can never sign two different
  roots for one size (and `ledger_checkpoints.size` is unique besides).
- Envelopes live in the database in chunks (`envelope_chunks`), written before the share's transaction and
  made visible by the `envelopes` row that transaction inserts: a share is all there or not there.
- Append-only tables are guarded by triggers (no UPDATE, DELETE or TRUNCATE); `APP_ROLE_SQL` is the
  application role that has no UPDATE/DELETE on them in the first place. A superuser can still drop the
  triggers: the Merkle tree, the entry MACs and the signed checkpoints are what catch that
  (`safeshare ledger verify`).
"""

from __future__ import annotations

from typing import Any, Final

from ..migrations import Step, latest

#: Tables that only ever grow as step 1 made them (the same list as the SQLite store's); step 1's triggers are made
#: from this list, so it never changes (later append-only tables are added by their own steps, below).
_V1_APPEND_ONLY_TABLES: Final = (
    "ledger",
    "ledger_subjects",
    "ledger_cosignatures",
    "ledger_checkpoints",
    "ledger_orgs",
    "ledger_recipients",
    "ledger_mac_start",
    "ledger_agreements",
    "ledger_fts",
)

_V1 = """
CREATE TABLE recipients (
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
CREATE INDEX recipients_by_email ON recipients (email);

CREATE TABLE team_members (
    team_id TEXT NOT NULL REFERENCES recipients (id),
    member_id TEXT NOT NULL REFERENCES recipients (id),
    since TEXT NOT NULL,
    until TEXT,
    PRIMARY KEY (team_id, member_id, since)
);

CREATE TABLE enrolments (
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
CREATE INDEX enrolments_by_recipient ON enrolments (recipient_id, requested_at);

CREATE TABLE recipient_keys (
    recipient_id TEXT NOT NULL REFERENCES recipients (id),
    age_recipient TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'retired')),
    since TEXT NOT NULL,
    until TEXT,
    PRIMARY KEY (recipient_id, age_recipient)
);

CREATE TABLE idempotency_keys (
    principal TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    response TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

CREATE TABLE shares (
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
    payload_size BIGINT NOT NULL,
    expires_at TEXT NOT NULL,
    max_downloads INTEGER,
    state TEXT NOT NULL CHECK (state IN ('active', 'revoked', 'expired', 'exhausted')),
    ledger_index BIGINT NOT NULL,
    escrow_sha256 TEXT,
    escrow_size BIGINT
);
CREATE INDEX shares_by_sender ON shares (sender_sub, created_at);
CREATE INDEX shares_by_sender_index ON shares (sender_sub, sender_iss, ledger_index);
CREATE INDEX shares_active_by_expiry ON shares (expires_at) WHERE state = 'active';

CREATE TABLE share_recipients (
    share_id TEXT NOT NULL REFERENCES shares (id),
    recipient_id TEXT NOT NULL REFERENCES recipients (id),
    recipient_org TEXT NOT NULL,
    envelope_sha256 TEXT NOT NULL,
    envelope_size BIGINT NOT NULL,
    downloads INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL CHECK (state IN ('active', 'revoked', 'expired', 'exhausted')),
    acknowledged_at TEXT,
    acknowledgement TEXT,
    via_team TEXT,
    first_downloaded_at TEXT,
    last_downloaded_at TEXT,
    PRIMARY KEY (share_id, recipient_id)
);
CREATE INDEX share_recipients_by_recipient ON share_recipients (recipient_id, share_id);

CREATE TABLE held_recipients (
    share_id TEXT NOT NULL REFERENCES shares (id),
    address TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('held', 'passphrase')),
    envelope TEXT NOT NULL,
    envelope_sha256 TEXT NOT NULL,
    envelope_size BIGINT NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('held', 'claimed', 'rewrapped', 'active', 'exhausted', 'expired', 'revoked')),
    recipient_id TEXT NOT NULL,
    downloads INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (share_id, address)
);
CREATE INDEX held_by_recipient ON held_recipients (recipient_id, state);

CREATE TABLE claim_codes (
    id BIGSERIAL PRIMARY KEY,
    share_id TEXT NOT NULL,
    address TEXT NOT NULL,
    code_mac BYTEA NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL CHECK (state IN ('live', 'used', 'locked', 'superseded'))
);
CREATE INDEX claim_codes_by_claim ON claim_codes (share_id, address, id);

CREATE TABLE ledger (
    idx BIGINT PRIMARY KEY CHECK (idx >= 0),
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
    entry BYTEA NOT NULL,
    leaf_hash BYTEA NOT NULL,
    mac BYTEA
);
CREATE INDEX ledger_by_article_6 ON ledger (article_6, idx) WHERE article_6 IS NOT NULL;
CREATE INDEX ledger_by_article_9 ON ledger (article_9, idx) WHERE article_9 IS NOT NULL;
CREATE INDEX ledger_by_schedule_1 ON ledger (dpa_schedule_1, idx) WHERE dpa_schedule_1 IS NOT NULL;
CREATE INDEX ledger_by_purpose ON ledger (purpose_code, idx);
CREATE INDEX ledger_by_kind ON ledger (kind, idx);
CREATE INDEX ledger_by_actor ON ledger (actor_sub, idx);
CREATE INDEX ledger_by_decision ON ledger (decision, idx);
CREATE INDEX ledger_by_time ON ledger (time);
CREATE INDEX ledger_by_share ON ledger (share_id);
CREATE INDEX ledger_by_kind_share ON ledger (kind, share_id);
CREATE INDEX ledger_decisions_by_month ON ledger (substr(time, 1, 7), decision, purpose_code, article_6, article_9,
    dpa_schedule_1, actor_org, time) WHERE decision IS NOT NULL;

CREATE TABLE ledger_subjects (
    ref TEXT NOT NULL,
    idx BIGINT NOT NULL REFERENCES ledger (idx),
    PRIMARY KEY (ref, idx)
);
CREATE TABLE ledger_recipients (
    recipient_id TEXT NOT NULL,
    idx BIGINT NOT NULL REFERENCES ledger (idx),
    PRIMARY KEY (recipient_id, idx)
);
CREATE TABLE ledger_orgs (
    org TEXT NOT NULL,
    idx BIGINT NOT NULL REFERENCES ledger (idx),
    PRIMARY KEY (org, idx)
);

CREATE TABLE agreements (
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
    document_size BIGINT NOT NULL,
    document_name TEXT NOT NULL,
    document_type TEXT NOT NULL,
    created_at TEXT NOT NULL,
    retired_at TEXT,
    retired_reason TEXT,
    PRIMARY KEY (id, version)
);
CREATE INDEX agreements_by_document ON agreements (document_sha256);

CREATE TABLE ledger_agreements (
    agreement_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    idx BIGINT NOT NULL REFERENCES ledger (idx),
    overridden INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (agreement_id, idx)
);
CREATE INDEX ledger_agreements_by_idx ON ledger_agreements (idx);

-- Full text over purpose descriptions: only the tsvector (the text itself lives in the entry), GIN-indexed.
CREATE TABLE ledger_fts (
    idx BIGINT PRIMARY KEY REFERENCES ledger (idx),
    description TSVECTOR NOT NULL
);
CREATE INDEX ledger_fts_gin ON ledger_fts USING GIN (description);

-- The coordinator row: the Merkle tree state (RFC 9162 compact range) of exactly the committed entries.
CREATE TABLE ledger_tree (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    size BIGINT NOT NULL,
    state BYTEA NOT NULL
);
-- The empty tree's state: CompactRange().to_bytes().
INSERT INTO ledger_tree (id, size, state) VALUES (0, 0, '\\x53534352010000000000000000');

CREATE TABLE ledger_nodes (
    level INTEGER NOT NULL,
    idx BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TABLE ledger_checkpoints (
    size BIGINT PRIMARY KEY,
    time TEXT NOT NULL,
    note BYTEA NOT NULL
);
-- The checkpoint signer's compare-and-swap row: the largest size signed so far.
CREATE TABLE ledger_checkpoint_head (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    size BIGINT NOT NULL
);
INSERT INTO ledger_checkpoint_head (id, size) VALUES (0, 0);

CREATE TABLE ledger_mac_start (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    start BIGINT NOT NULL,
    mac BYTEA NOT NULL
);

CREATE TABLE ledger_cosignatures (
    size BIGINT NOT NULL REFERENCES ledger_checkpoints (size),
    witness TEXT NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (size, witness)
);

-- Envelopes: chunks written by a spool (before the share's transaction), made part of a share by the
-- `envelopes` row the share's transaction inserts. Chunks whose spool never became a share are swept.
CREATE TABLE envelope_chunks (
    spool UUID NOT NULL,
    name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (spool, name, seq)
);
CREATE TABLE envelope_spools (
    spool UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE envelopes (
    share_id TEXT NOT NULL,
    name TEXT NOT NULL,
    spool UUID NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    PRIMARY KEY (share_id, name)
);
CREATE INDEX envelopes_by_spool ON envelopes (spool);

CREATE FUNCTION safeshare_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger is append-only (% on %)', TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$$;
"""

_TRIGGERS = "".join(
    f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t}"
    " FOR EACH ROW EXECUTE FUNCTION safeshare_append_only();\n"
    f"CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t}"
    " FOR EACH STATEMENT EXECUTE FUNCTION safeshare_append_only();\n"
    for t in _V1_APPEND_ONLY_TABLES
)


async def _v1(conn: Any) -> None:
    await conn.execute(_V1 + _TRIGGERS)


#: Step 2: agreement documents in the database, as on SQLite (`sqlite/schema.py: AGREEMENT_DOCUMENTS`), so every
#: node serves every document: content-addressed, in chunks, and immutable (their own trigger function, whose
#: message names documents rather than the ledger). An existing home's `data/agreements/<sha256>` files are
#: imported at its first start (`store.agreements.import_document_files`).
AGREEMENT_DOCUMENTS_TABLES: Final = ("agreement_documents", "agreement_document_chunks")
_V2 = """
CREATE TABLE agreement_documents (
    sha256 TEXT PRIMARY KEY CHECK (length(sha256) = 64),
    size BIGINT NOT NULL CHECK (size > 0),
    chunks INTEGER NOT NULL CHECK (chunks > 0),
    created_at TEXT NOT NULL
);
CREATE TABLE agreement_document_chunks (
    sha256 TEXT NOT NULL REFERENCES agreement_documents (sha256),
    seq INTEGER NOT NULL CHECK (seq >= 0),
    data BYTEA NOT NULL,
    PRIMARY KEY (sha256, seq)
);
CREATE FUNCTION safeshare_immutable_document() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'agreement documents are immutable (% on %)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
""" + "".join(
    f"CREATE TRIGGER {t}_immutable BEFORE UPDATE OR DELETE ON {t}"
    " FOR EACH ROW EXECUTE FUNCTION safeshare_immutable_document();\n"
    f"CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t}"
    " FOR EACH STATEMENT EXECUTE FUNCTION safeshare_immutable_document();\n"
    for t in AGREEMENT_DOCUMENTS_TABLES
)


async def _v2(conn: Any) -> None:
    await conn.execute(_V2)


#: pg-audit (issue 11, the audit figures at 1M entries): what the statistics read from inside an entry, kept in a
#: small generated column so that a statistics query no longer parses every entry's JSON (it did up to four
#: times per decision: ~30 µs each, minutes at a million entries, where SQLite's json_extract is cheaper); and a
#: (time, idx) index, read index-only, that turns a time range into the exact band of ledger indexes it covers
#: (times are only roughly in index order), as SQLite's covering time index does. The facts are computed by the
#: database from the entry's own bytes, so they cannot disagree with the entry (and are computed once, at the
#: append). Adding the column rewrites `ledger` once (no row trigger fires on a rewrite).
_AUDIT_FACTS = """
-- PL/pgSQL, not SQL: a SQL function with a sub-select is not inlined and costs ~6x the JSON parse itself per
-- call (measured); this one costs about the parse (one per appended entry).
CREATE FUNCTION safeshare_entry_facts(entry BYTEA) RETURNS JSONB LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    j JSONB := convert_from(entry, 'UTF8')::jsonb;
BEGIN
    RETURN jsonb_build_object(
        'policy', j #>> '{policy,id}',
        'complete_by', j #>> '{emergency,complete_by}',
        'channel', j #>> '{disclosure,channel}',
        'flags', coalesce(j -> 'flags', '[]'::jsonb),
        'override', nullif(j -> 'agreement_override', 'null'::jsonb) IS NOT NULL
    );
END
$$;
ALTER TABLE ledger ADD COLUMN facts JSONB GENERATED ALWAYS AS (safeshare_entry_facts(entry)) STORED;
CREATE INDEX ledger_by_time_idx ON ledger (time, idx);
"""


async def _audit_facts(conn: Any) -> None:
    await conn.execute(_AUDIT_FACTS)


#: pg-audit: no parallel workers for scans of the ledger's side tables. Why: an audit page or export page reads a
#: few thousand side-table entries at most (one filter value within a band of indexes), and starting a parallel
#: worker for that costs more than the scan (measured at 1M entries: an export page of one organisation's year
#: 94 ms with a worker that started 50 ms in, against SQLite's 30 ms; 4x over a 14-page export). Statistics
#: scan `ledger` itself and may still go parallel.
_NO_PARALLEL_SIDE_SCANS = "".join(
    f"ALTER TABLE {t} SET (parallel_workers = 0);\n"
    for t in ("ledger_subjects", "ledger_recipients", "ledger_orgs", "ledger_agreements", "ledger_fts")
)


async def _no_parallel_side_scans(conn: Any) -> None:
    await conn.execute(_NO_PARALLEL_SIDE_SCANS)


#: Step 5 (issue 13): the sender's and their organisation's names as people read them, kept with each share (the
#: token's `name` and `org_name` claims or the directory, at the time of sharing). NULL for older shares.
_SENDER_NAMES = (
    "ALTER TABLE shares ADD COLUMN IF NOT EXISTS sender_name TEXT;\n"
    "ALTER TABLE shares ADD COLUMN IF NOT EXISTS sender_org_name TEXT;\n"
)


async def _sender_names(conn: Any) -> None:
    await conn.execute(_SENDER_NAMES)


#: Step 6 (issue 11, exports at parity with SQLite): new ledger entries are compressed with lz4 instead of pglz.
#: Why: an entry (a whole justification as JSON, 2-6 kB) is over the TOAST threshold, so PostgreSQL compresses it
#: in the row, and every read of it (an export reads every matching entry, a page 50) decompresses it: with pglz
#: that was most of an export's time on PostgreSQL (measured at 1M entries: whole-ledger export 1.7-3.8x
#: SQLite's, which stores entries as they are), and lz4 decompresses several times faster for about the same
#: size. Only where the server has lz4 (built `--with-lz4`, PostgreSQL 14 or newer: then 'lz4' is one of
#: `default_toast_compression`'s values); elsewhere the step changes nothing and entries stay pglz, which every
#: server reads.
#: Existing entries are not rewritten, on purpose: PostgreSQL recompresses a value only when it is written again
#: (`VACUUM FULL`, `CLUSTER` and a table rewrite copy compressed values as they are), so it would take an UPDATE
#: of every ledger row: the append-only guard switched off inside a start-up migration, a second copy of the
#: whole ledger (and every index entry) written under an exclusive lock, minutes at a million entries while
#: every node waits. The bytes would be the same, but "the ledger is never updated" is worth more than faster
#: exports of old entries; both compressions are read alike, and every entry appended from now on is lz4.
_LZ4_AVAILABLE = (
    "SELECT coalesce((SELECT 'lz4' = ANY (enumvals) FROM pg_settings WHERE name = 'default_toast_compression'), false)"
)


async def lz4_available(conn: Any) -> bool:
    """Whether this server can compress with lz4 (see step 6)."""
    return bool(await conn.fetchval(_LZ4_AVAILABLE))


async def _entries_lz4(conn: Any) -> None:
    if await lz4_available(conn):
        await conn.execute("ALTER TABLE ledger ALTER COLUMN entry SET COMPRESSION lz4")


#: Step 7 (issue 11, full-text search at parity with SQLite): every word of every purpose description, one row
#: per (word, entry), the words exactly as `ledger_fts` holds them (the `tsvector`'s lexemes). Why: a GIN index
#: answers "which entries hold this word" as an unordered set, so a page of the newest 50 matches either sorts
#: every match (a common word: tens of thousands) or walks `ledger_fts` newest first testing each tsvector (a
#: rare word: tens of thousands of rows per page), where FTS5's doclists are in rowid order. A (word, idx) B-tree
#: is that doclist: a page of one word, at any cursor, is a backward range scan of 50 index entries, exactly as
#: the subject or organisation side tables give theirs (measured at 1M entries: a rare word 3.6x and a paged
#: word walk 3.25x SQLite's before). `ledger_fts` stays for prefix searches (`'pre':*`), which GIN answers well.
#: Append-only like the other side tables, and granted to whoever may append to `ledger_fts` (an application role
#: set up before the upgrade keeps working). Existing entries' words are filled from `ledger_fts` in the step
#: (keys added after the fill: one index build and one foreign-key check instead of one per row).
_LEDGER_WORDS = """
CREATE TABLE ledger_words (
    word TEXT NOT NULL,
    idx BIGINT NOT NULL
);
INSERT INTO ledger_words (word, idx)
    SELECT w.word, x.idx FROM ledger_fts x CROSS JOIN LATERAL unnest(tsvector_to_array(x.description)) AS w (word);
ALTER TABLE ledger_words ADD PRIMARY KEY (word, idx);
ALTER TABLE ledger_words ADD FOREIGN KEY (idx) REFERENCES ledger (idx);
ALTER TABLE ledger_words SET (parallel_workers = 0);
CREATE TRIGGER ledger_words_append_only BEFORE UPDATE OR DELETE ON ledger_words
    FOR EACH ROW EXECUTE FUNCTION safeshare_append_only();
CREATE TRIGGER ledger_words_no_truncate BEFORE TRUNCATE ON ledger_words
    FOR EACH STATEMENT EXECUTE FUNCTION safeshare_append_only();
-- Whoever may append to ledger_fts (the application role of `app_role_sql`, granted by the owner after an earlier
-- migrate) may append here too: otherwise every append would fail on this table after the upgrade.
DO $$
DECLARE
    grantee TEXT;
BEGIN
    FOR grantee IN
        SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
        WHERE c.oid = 'ledger_fts'::regclass AND a.privilege_type = 'INSERT' AND a.grantee <> c.relowner
    LOOP
        EXECUTE format('GRANT SELECT, INSERT ON ledger_words TO %s', grantee);
    END LOOP;
END
$$;
"""


async def _ledger_words(conn: Any) -> None:
    await conn.execute(_LEDGER_WORDS)


#: Step 8 (issue 11, exports at parity with SQLite): a ledger row is kept whole in its heap page up to a page's
#: size (`toast_tuple_target` 8160, the largest allowed; PostgreSQL's default is 2032 bytes). Why: a share's
#: entry (a whole justification, 2-6 kB) went over the default, so PostgreSQL compressed it and, most of the time,
#: moved it out to the TOAST table: every read of the entry (an export reads every matching one) then looked it up
#: in the TOAST table's index and read its chunks from another page (measured at 300,000 entries: 64,000 of the
#: 76,000 share entries out of line; an export of one word's shares 523 ms against 358 ms with rows kept whole,
#: the whole ledger 2,058 ms against 1,543 ms). Rows over a page are still compressed (lz4, step 6) and moved out.
#: The price is space: the ledger's heap about 25% larger than heap and TOAST together were, and a statistics
#: pass that reads the whole heap about 10% slower (which reads `facts`, not entries). As for step 6, existing
#: rows are not rewritten (the ledger is never updated): rows appended from now on are kept whole.
_WHOLE_ROWS = "ALTER TABLE ledger SET (toast_tuple_target = 8160)"


async def _whole_rows(conn: Any) -> None:
    await conn.execute(_WHOLE_ROWS)


#: Step 9 (issue 13): an agreement version's standard answers, as in SQLite's step 9 (a JSON list, '[]' before).
_STANDARD_ANSWERS = "ALTER TABLE agreements ADD COLUMN IF NOT EXISTS standard_answers TEXT NOT NULL DEFAULT '[]'"


async def _standard_answers(conn: Any) -> None:
    await conn.execute(_STANDARD_ANSWERS)


#: Numbered steps (gateway/store/migrations.py), applied in order at start-up or by `safeshare migrate`, each in
#: its own transaction with its `schema_version` row.
STEPS: Final[tuple[Step[Any], ...]] = (
    Step(1, "PostgreSQL schema: the SQLite schema's tables, coordinator rows, chunked envelopes", _v1),
    Step(2, "agreement documents in the database (agreement_documents, agreement_document_chunks)", _v2),
    Step(3, "ledger.facts (what statistics read from entries) and the (time, idx) index", _audit_facts),
    Step(4, "no parallel workers for scans of the ledger's side tables", _no_parallel_side_scans),
    Step(5, "shares: the sender's name and organisation name (issue 13)", _sender_names),
    Step(6, "ledger entries compressed with lz4 where the server has it (older entries stay pglz)", _entries_lz4),
    Step(7, "ledger_words: each purpose description's words by (word, idx), for full-text pages", _ledger_words),
    Step(8, "ledger rows kept whole in their page up to 8 kB (toast_tuple_target), for exports", _whole_rows),
    Step(9, "agreements: each version's standard answers (issue 13)", _standard_answers),
)

#: Every table that only ever grows (the application role may only SELECT and INSERT on them).
APPEND_ONLY_TABLES: Final = (*_V1_APPEND_ONLY_TABLES, "ledger_words")

SCHEMA_VERSION: Final = latest(STEPS)

#: The application role (run once by the database's owner; `{role}` is the login the gateway nodes use). The
#: gateway needs no UPDATE, DELETE or TRUNCATE on the ledger's tables, so it is not given them: even a
#: compromised node cannot rewrite history, only append to it (and every append is MAC'd and tree-hashed).
APP_ROLE_SQL: Final = """
GRANT USAGE ON SCHEMA {schema} TO {role};
GRANT SELECT, INSERT ON {ledger_tables} TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON recipients, team_members, enrolments, recipient_keys, idempotency_keys,
    shares, share_recipients, held_recipients, claim_codes, agreements, envelope_chunks, envelope_spools, envelopes
    TO {role};
GRANT SELECT, UPDATE ON ledger_tree, ledger_checkpoint_head TO {role};
GRANT SELECT, INSERT ON agreement_documents, agreement_document_chunks TO {role};
GRANT SELECT ON schema_version TO {role};
GRANT SELECT, INSERT ON ledger_nodes TO {role};
GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {role};
"""


def app_role_sql(role: str, schema: str = "public") -> str:
    """The GRANTs for the gateway's own login (see `APP_ROLE_SQL`); identifiers are quoted by the caller."""
    return APP_ROLE_SQL.format(role=role, schema=schema, ledger_tables=", ".join(APPEND_ONLY_TABLES))
