"""The ledger's Merkle tree kept in SQLite: appending an entry (its leaf, the compact range, stored subtrees),
reading hashes for proofs (`TreeReader`), and checking that the tree extends the last signed one (`check_extension`,
for the checkpoint guard). Ledger indexes are assigned inside the writing transaction from the table itself, so
another process (the CLI) may append too without gaps or duplicates."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...ledger import merkle
from ...ledger.entry import MAX_ENTRY_BYTES, EntryTooLarge, join_encoded, seal, split_encode
from ...ledger.guard import CheckpointGuard, LedgerInconsistent, TrustedHead
from ...ledger.mac import _ENTRY_DOMAIN as _MAC_DOMAIN
from ...ledger.mac import entry_mac, entry_mac_ok, start_mac_ok
from ...ledger.merkle import CompactRange, ProofError, verify_consistency
from ..models import (
    StoreError,
)
from ..rows import ledger_columns

#: Complete subtrees at this level and above (256+ leaves) are stored for fast proofs.
NODE_CACHE_MIN_LEVEL = 8


def _read_tree(conn: sqlite3.Connection) -> CompactRange:
    row = conn.execute("SELECT size, state FROM ledger_tree WHERE id = 0").fetchone()
    if row is None:
        return CompactRange()
    tree = CompactRange.from_bytes(bytes(row[1]))
    if tree.size != row[0]:
        raise StoreError("ledger tree state is inconsistent; run `safeshare ledger verify`")
    return tree


def load_tree(conn: sqlite3.Connection) -> CompactRange:
    """The tree as this connection's transaction sees it: inside a writer batch, the batch's (not yet stored) one."""
    batch: LedgerBatch | None = getattr(conn, "ledger_batch", None)
    if batch is not None and batch.tree is not None:
        return batch.tree.copy()
    return _read_tree(conn)


def latest_time(conn: sqlite3.Connection, kind: str) -> str | None:
    """The time of the ledger's last entry of `kind`, counting what the running writer batch has queued."""
    batch: LedgerBatch | None = getattr(conn, "ledger_batch", None)
    queued = batch.latest_time(kind) if batch is not None else None
    if queued is not None:
        return queued
    row = conn.execute("SELECT time FROM ledger WHERE kind = ? ORDER BY idx DESC LIMIT 1", (kind,)).fetchone()
    return None if row is None else str(row[0])


_INSERT_ENTRY = (
    "INSERT INTO ledger (idx, time, kind, actor_sub, actor_org, decision, share_id, purpose_code, article_6,"
    " article_9, dpa_schedule_1, entry, leaf_hash, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_SUBJECT = "INSERT INTO ledger_subjects (ref, idx) VALUES (?, ?)"
_INSERT_RECIPIENT = "INSERT INTO ledger_recipients (recipient_id, idx) VALUES (?, ?)"
_INSERT_ORG = "INSERT INTO ledger_orgs (org, idx) VALUES (?, ?)"
_INSERT_AGREEMENT = "INSERT INTO ledger_agreements (agreement_id, version, idx, overridden) VALUES (?, ?, ?, ?)"
_INSERT_FTS = "INSERT INTO ledger_fts (rowid, description) VALUES (?, ?)"
_INSERT_NODE = "INSERT INTO ledger_nodes (level, idx, hash) VALUES (?, ?, ?)"
_UPSERT_TREE = (
    "INSERT INTO ledger_tree (id, size, state) VALUES (0, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET size = excluded.size, state = excluded.state"
)


class PreparedEntry:
    """A ledger entry made ready for the writer by its caller (`prepare_entry`): its canonical bytes around the
    index, its index-table values and its checks, all of which need no database and no index.

    Why (issue 15): the writer thread is the one serial stage of every write, and encoding an entry and deriving
    its index rows was most of its time per append (~100 µs of Python on a loaded machine). Prepared on the
    caller's side (the event loop, before `Writer.submit`), an append in the writer is a join of two byte strings,
    two hashes, the tree step and the row tuples. The stored bytes and rows are exactly those of the entry itself.
    """

    __slots__ = ("parts", "entry", "columns", "subjects", "recipients", "orgs", "agreements", "description")

    def __init__(self, entry: Mapping[str, Any]) -> None:
        #: None when the entry cannot be split (a non-string top-level key): it is then sealed whole.
        self.parts = split_encode(entry)
        self.entry = entry
        actor = entry.get("actor") or {}
        purpose = entry.get("purpose") or {}
        recipients = entry.get("recipients") or ()
        # The constraints the tables would enforce are checked here, with the error SQLite would raise: in a
        # writer batch the rows are inserted only at its end, where a refusal would take the whole batch down.
        if entry["time"] is None or entry["kind"] is None:
            raise sqlite3.IntegrityError("NOT NULL constraint failed: ledger.time or ledger.kind")
        agreements = entry.get("agreements") or ()
        agreement_ids = [a["id"] for a in agreements]
        if len(set(agreement_ids)) != len(agreement_ids):
            raise sqlite3.IntegrityError(
                "UNIQUE constraint failed: ledger_agreements.agreement_id, ledger_agreements.idx"
            )
        #: The `ledger` columns between idx and the entry bytes, in _INSERT_ENTRY's order.
        self.columns = ledger_columns(entry)
        subjects = entry.get("subjects")
        self.subjects = sorted(set(subjects)) if subjects else []
        if recipients:
            self.recipients = sorted({r["id"] for r in recipients} | {r["via"] for r in recipients if r.get("via")})
        else:
            self.recipients = []
        self.orgs = sorted({o for o in [actor.get("org"), *(r.get("org") for r in recipients)] if o})
        overridden = 1 if entry.get("agreement_override") else 0
        self.agreements = [(a["id"], a["version"], overridden) for a in agreements]
        self.description = purpose.get("description") or None

    def data(self, idx: int) -> bytes:
        """The canonical bytes at `idx` (`seal`'s), refused past the entry size limit as `seal` refuses them."""
        if self.parts is None:
            return seal(self.entry, idx)[0]
        data = join_encoded(self.parts, idx)
        if len(data) > MAX_ENTRY_BYTES:  # last line of defence: the append transaction rolls back
            raise EntryTooLarge(len(data))
        return data


def prepare_entry(entry: Mapping[str, Any] | PreparedEntry) -> PreparedEntry:
    """What a caller does before queueing an append (see `PreparedEntry`); raises what `append_entry` would."""
    return entry if isinstance(entry, PreparedEntry) else PreparedEntry(entry)


#: A batch's queued rows, one list per table, in the order they are inserted (the entries first: the index
#: tables reference them).
_TABLES = (_INSERT_ENTRY, _INSERT_SUBJECT, _INSERT_RECIPIENT, _INSERT_ORG, _INSERT_AGREEMENT, _INSERT_FTS, _INSERT_NODE)


class LedgerBatch:
    """The ledger state of one group-committed writer batch (issue 15: appends at group-commit speed).

    Why: per append, reloading and re-saving the tree state, finding the next index with `max(idx)`, and one
    small insert per table cost more than the entry itself; an FTS5 insert makes the next SAVEPOINT or RELEASE
    flush a one-row segment (measured ~40 µs, merged again later); and every statement hands the GIL to the event
    loop's thread and waits to get it back. So the tree is read once (under the batch's write lock: no other
    process can append meanwhile), advanced in memory, and the rows of every append (entry, index tables, FTS,
    completed Merkle nodes) are queued, one list per table; `flush` writes them with one `executemany` per table
    and the tree state once, just before the COMMIT. An append inside a batch therefore executes no SQL at all.
    No writer operation reads the ledger tables it appends to (the checkpoint reads the tree through `load_tree`,
    which sees this one).

    An operation that fails rolls back to its savepoint; the writer then calls `undo(mark)` so the queued rows
    and the in-memory tree forget its appends too.
    """

    __slots__ = ("_base", "tree", "_leaves", "_rows")

    def __init__(self) -> None:
        self._base: CompactRange | None = None
        #: None until the batch's first append loads it (a batch without appends never reads the tree).
        self.tree: CompactRange | None = None
        self._leaves: list[bytes] = []
        #: Queued rows per table, in `_TABLES` order.
        self._rows: tuple[list[tuple[Any, ...]], ...] = tuple([] for _ in _TABLES)

    def load(self, conn: sqlite3.Connection) -> CompactRange:
        if self.tree is None:
            tree = _read_tree(conn)
            idx = conn.execute("SELECT coalesce(max(idx) + 1, 0) FROM ledger").fetchone()[0]
            if idx != tree.size:
                raise StoreError(
                    f"ledger has {idx} entries but its tree covers {tree.size}; run `safeshare ledger verify`"
                )
            self._base, self.tree = tree.copy(), tree
        return self.tree

    def append(self, prepared: PreparedEntry, idx: int, data: bytes, leaf: bytes, mac: bytes | None) -> None:
        """Queue one entry's rows and advance the tree (which must be this batch's, at size `idx`)."""
        entries, subjects, recipients, orgs, agreements, fts, nodes = self._rows
        entries.append((idx, *prepared.columns, data, leaf, mac))
        if prepared.subjects:
            subjects.extend([(r, idx) for r in prepared.subjects])
        if prepared.recipients:
            recipients.extend([(r, idx) for r in prepared.recipients])
        if prepared.orgs:
            orgs.extend([(o, idx) for o in prepared.orgs])
        if prepared.agreements:
            agreements.extend([(a, v, idx, o) for a, v, o in prepared.agreements])
        if prepared.description:
            fts.append((idx, prepared.description))
        nodes.extend(_advance(self.tree, idx, leaf))  # type: ignore[arg-type]
        self._leaves.append(leaf)

    def latest_time(self, kind: str) -> str | None:
        """The time of this batch's last queued entry of `kind` (not yet in the table), or None."""
        for row in reversed(self._rows[0]):
            if row[2] == kind:
                return str(row[1])
        return None

    def mark(self) -> tuple[int, ...]:
        """Where an operation starts: O(1), so a savepoint per operation costs no copy of the tree."""
        return (len(self._leaves), *map(len, self._rows))

    def undo(self, mark: tuple[int, ...]) -> None:
        """Forget what was appended since `mark` (its rows were rolled back with the savepoint); rebuilds the
        tree from the batch's start, which is paid only when an operation fails after appending."""
        leaves = mark[0]
        for rows, length in zip(self._rows, mark[1:], strict=True):
            del rows[length:]
        if len(self._leaves) != leaves:
            del self._leaves[leaves:]
            assert self._base is not None
            tree = self._base.copy()
            for leaf in self._leaves:
                tree.append(leaf)
            self.tree = tree

    def flush(self, conn: sqlite3.Connection) -> None:
        """Write the queued index rows (a few multi-row INSERTs per table, in order) and the tree state once."""
        for sql, rows in zip(_TABLES, self._rows, strict=True):
            if rows:
                _insert_many(conn, sql, rows)
                rows.clear()
        if self.tree is not None and self._base is not None and self.tree.size != self._base.size:
            conn.execute(_UPSERT_TREE, (self.tree.size, self.tree.to_bytes()))
            self._base, self._leaves = self.tree.copy(), []


#: Rows per multi-row INSERT, largest first (a binary decomposition of the batch's row count): a batch's rows go in
#: at most 9 statements per table (4 or so on average), and each table has 8 statement shapes to cache.
_CHUNKS = (128, 64, 32, 16, 8, 4, 2, 1)
_MULTI_SQL: dict[tuple[str, int], str] = {}


def _multi_sql(sql: str, rows: int) -> str:
    """`INSERT ... VALUES (?, ...)` for `rows` rows: the single-row statement with its VALUES group repeated."""
    key = (sql, rows)
    text = _MULTI_SQL.get(key)
    if text is None:
        head, _, group = sql.rpartition(" VALUES ")
        text = _MULTI_SQL[key] = f"{head} VALUES {', '.join([group] * rows)}"
    return text


def _insert_many(conn: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert `rows` with multi-row INSERTs rather than `executemany`.

    Why (issue 15): `executemany` runs one `sqlite3_step` per row and releases the GIL around each; while the
    event loop's thread holds it (preparing the next entries), the writer waits for it back, up to the interpreter's
    switch interval (5 ms) a time, measured at ~2 ms per `executemany` on a loaded machine. One statement of 64 rows
    releases it once. The rows, their order and the stored result are the same."""
    start, total = 0, len(rows)
    for size in _CHUNKS:
        if total - start < size:
            continue
        stmt = _multi_sql(sql, size) if size > 1 else sql
        while total - start >= size:
            chunk = rows[start : start + size]
            conn.execute(stmt, [v for row in chunk for v in row] if size > 1 else chunk[0])
            start += size


def _advance(tree: CompactRange, idx: int, leaf: bytes) -> list[tuple[int, int, bytes]]:
    """Append `leaf` at `idx` (= tree.size) and return the stored-node rows it completes (levels 8 and up).

    A node of level 8 or more is completed only by a leaf whose index ends in eight one bits (1 leaf in 256):
    the others take `push`, which builds no `Node` objects (issue 15: the tree step per append)."""
    if idx & _NODE_MASK != _NODE_MASK:
        tree.push(leaf)
        return []
    return [(n.level, n.index, n.hash) for n in tree.append(leaf) if n.level >= NODE_CACHE_MIN_LEVEL]


_NODE_MASK = (1 << NODE_CACHE_MIN_LEVEL) - 1


class _MacPads:
    """`entry_mac` for one key from precomputed HMAC pads: the same HMAC-SHA-256 (RFC 2104), computed with hashlib
    objects whose small updates keep the GIL.

    Why (issue 15): the one-shot `hmac.digest` releases the GIL around OpenSSL's HMAC on every call; in the
    writer thread, on a busy machine, getting it back means waiting for the event loop's thread to yield it
    (up to the switch interval): measured as 12% of the writer thread's time, for a hash of 70 bytes."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        entry_mac(key, 0, bytes(32))  # the key's checks, as entry_mac makes them
        block = key.ljust(64, b"\0")  # keys are 32 bytes: shorter than SHA-256's block, so padded, never hashed
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block) + _MAC_DOMAIN)
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def __call__(self, index: int, leaf: bytes) -> bytes:
        if len(leaf) != 32 or not 0 <= index < 1 << 64:
            raise ValueError("leaf hash must be 32 bytes and the index a 64-bit unsigned integer")
        inner = self._inner.copy()
        inner.update(index.to_bytes(8, "big") + leaf)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


_MAC_PADS: dict[bytes, _MacPads] = {}


def _entry_mac(key: bytes, index: int, leaf: bytes) -> bytes:
    """`entry_mac(key, index, leaf)`, the same bytes (tests/test_sqlite_batch.py), without releasing the GIL."""
    pads = _MAC_PADS.get(key)
    if pads is None:
        pads = _MAC_PADS[key] = _MacPads(key)
    return pads(index, leaf)


def append_entry(conn: sqlite3.Connection, entry: Mapping[str, Any] | PreparedEntry) -> int:
    """Append one ledger entry inside the caller's transaction; returns its gap-free index.

    The Merkle tree state advances in the same transaction, so the tree always covers exactly the
    committed entries (and any process appending through this function keeps it right). Inside a writer
    batch (`conn.ledger_batch`) the tree and the index rows are the batch's, written once before its COMMIT.
    `entry` may be prepared already by the caller (`prepare_entry`, off the writer thread).
    """
    batch: LedgerBatch | None = getattr(conn, "ledger_batch", None)
    if batch is None:
        tree = _read_tree(conn)
        idx = conn.execute("SELECT coalesce(max(idx) + 1, 0) FROM ledger").fetchone()[0]
        if idx != tree.size:
            raise StoreError(f"ledger has {idx} entries but its tree covers {tree.size}; run `safeshare ledger verify`")
    else:
        tree = batch.load(conn)
        idx = tree.size
    # Every row is derived and checked before the first write (and, in a batch, before the tree moves): after that
    # only the database can fail this function, which is what lets the writer run a plain append without a
    # savepoint.
    prepared = prepare_entry(entry)
    data = prepared.data(idx)
    leaf = hashlib.sha256(b"\x00" + data).digest()  # merkle.leaf_hash
    key = getattr(conn, "ledger_mac_key", None)
    mac = None if key is None else _entry_mac(key, idx, leaf)
    if batch is not None:
        batch.append(prepared, idx, data, leaf, mac)
        return int(idx)
    one = LedgerBatch()
    one.tree = tree
    one.append(prepared, idx, data, leaf, mac)
    for sql, rows in zip(_TABLES, one._rows, strict=True):
        if rows:
            conn.executemany(sql, rows)
    conn.execute(_UPSERT_TREE, (tree.size, tree.to_bytes()))
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
