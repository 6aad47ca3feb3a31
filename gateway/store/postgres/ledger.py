"""The ledger on PostgreSQL: one gap-free log whatever the number of gateway nodes appending to it.

An append runs inside the caller's transaction and holds the coordinator row (`ledger_tree`, locked with
`SELECT … FOR UPDATE`) until that transaction commits: the entry's index is the tree's size, the new tree
state is written back to the same row, so two nodes can never take one index and no index is skipped (a
rolled-back transaction gives its index back with everything else). Each node batches its writes (see
`repository._Writer`), so under load the lock is taken once for many appends and one commit.

Proofs are built by `merkle` from synchronous hash getters; here they run in two passes (ask which hashes a
proof needs, fetch them in a few queries on one snapshot, build it), so a proof costs O(log n) indexed reads
and never blocks the event loop.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ...ledger import merkle
from ...ledger.entry import seal
from ...ledger.guard import CheckpointGuard, LedgerInconsistent, TrustedHead
from ...ledger.mac import entry_mac, entry_mac_ok, start_mac_ok
from ...ledger.merkle import CompactRange, ProofError, verify_consistency
from ..models import StoreError
from ..rows import ledger_columns

T = TypeVar("T")

#: Complete subtrees at this level and above (256+ leaves) are stored for fast proofs (as on SQLite).
NODE_CACHE_MIN_LEVEL = 8

Conn = Any  # an asyncpg connection (asyncpg has no type information)

#: A word as FTS5's unicode61 tokenizer sees it (letters and digits; '_' separates): the full-text index on
#: PostgreSQL is built from the same words, so a search matches the same entries on both backends.
WORD = re.compile(r"[^\W_]+")


def fold(word: str) -> str:
    """Case and diacritics folded, as unicode61 (remove_diacritics) does: 'Séverine' -> 'severine'."""
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def description_words(text: str) -> list[str]:
    """The lexemes stored for a purpose description (see the module docstring)."""
    return sorted({fold(w) for w in WORD.findall(text)})


def _tree(size: int, state: bytes) -> CompactRange:
    tree = CompactRange.from_bytes(bytes(state))
    if tree.size != size:
        raise StoreError("ledger tree state is inconsistent; run `safeshare ledger verify`")
    return tree


async def lock_tree(conn: Conn) -> CompactRange:
    """Take the coordinator row for the rest of the transaction and return the tree of the committed ledger."""
    row = await conn.fetchrow("SELECT size, state FROM ledger_tree WHERE id = 0 FOR UPDATE")
    if row is None:
        raise StoreError("the ledger's coordinator row is missing; run `safeshare migrate`")
    return _tree(int(row[0]), bytes(row[1]))


async def load_tree(conn: Conn) -> CompactRange:
    row = await conn.fetchrow("SELECT size, state FROM ledger_tree WHERE id = 0")
    return CompactRange() if row is None else _tree(int(row[0]), bytes(row[1]))


#: The description's words by (word, idx) (schema step 7): a CTE of its own in `_APPEND_SQL`, so that the append
#: as it was before that step (which the migration tests replay) is `_APPEND_SQL` without it.
WORDS_CTE = """), words AS (
    INSERT INTO ledger_words (word, idx) SELECT unnest($21::text[]), $1
"""

#: One statement per append (the entry and every row derived from it): round trips, not SQL, are what an append
#: costs on a busy machine. Foreign keys on the side tables are checked at the end of the statement, after the
#: entry's own row is in.
_APPEND_SQL = """
WITH entry AS (
    INSERT INTO ledger (idx, time, kind, actor_sub, actor_org, decision, share_id, purpose_code, article_6,
        article_9, dpa_schedule_1, entry, leaf_hash, mac)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
), subjects AS (
    INSERT INTO ledger_subjects (ref, idx) SELECT unnest($15::text[]), $1
), recipients AS (
    INSERT INTO ledger_recipients (recipient_id, idx) SELECT unnest($16::text[]), $1
), orgs AS (
    INSERT INTO ledger_orgs (org, idx) SELECT unnest($17::text[]), $1
), agreements AS (
    INSERT INTO ledger_agreements (agreement_id, version, idx, overridden)
    SELECT a, v, $1, $20 FROM unnest($18::text[], $19::int[]) AS t (a, v)
), fts AS (
    INSERT INTO ledger_fts (idx, description) SELECT $1, array_to_tsvector($21::text[]) WHERE $21 IS NOT NULL
), words AS (
    INSERT INTO ledger_words (word, idx) SELECT unnest($21::text[]), $1
), nodes AS (
    INSERT INTO ledger_nodes (level, idx, hash) SELECT * FROM unnest($22::int[], $23::bigint[], $24::bytea[])
)
SELECT 1
"""


async def append_entry(
    conn: Conn, entry: Mapping[str, Any], mac_key: bytes | None, tree: CompactRange | None = None
) -> int:
    """Append one entry inside the caller's transaction; returns its gap-free index (see the module docstring).

    `tree`: the batch's tree, read once under the coordinator row's lock by the writer, advanced here and
    written back by the writer before it commits; without it the row is locked, read and written here.
    """
    own = tree is None
    if tree is None:
        tree = await lock_tree(conn)
    idx = tree.size
    data, leaf = seal(entry, idx)
    mac = None if mac_key is None else entry_mac(mac_key, idx, leaf)
    actor = entry.get("actor") or {}
    purpose = entry.get("purpose") or {}
    recipients = entry.get("recipients") or ()
    agreements = entry.get("agreements") or ()
    description = purpose.get("description")
    nodes = [n for n in tree.copy().append(leaf) if n.level >= NODE_CACHE_MIN_LEVEL]
    await conn.execute(
        _APPEND_SQL,
        idx,
        *ledger_columns(entry),
        data,
        leaf,
        mac,
        sorted(set(entry.get("subjects") or ())),
        sorted({r["id"] for r in recipients} | {r["via"] for r in recipients if r.get("via")}),
        sorted({o for o in [actor.get("org"), *(r.get("org") for r in recipients)] if o}),
        [a["id"] for a in agreements],
        [a["version"] for a in agreements],
        1 if entry.get("agreement_override") else 0,
        description_words(description) if description else None,
        [n.level for n in nodes],
        [n.index for n in nodes],
        [n.hash for n in nodes],
    )
    tree.append(leaf)  # only once the rows are in: a refused insert leaves the tree as it was
    if own:
        await write_tree(conn, tree)
    return idx


async def write_tree(conn: Conn, tree: CompactRange) -> None:
    await conn.execute("UPDATE ledger_tree SET size = $1, state = $2 WHERE id = 0", tree.size, tree.to_bytes())


# -- hashes for proofs --------------------------------------------------------------------------------

LeafGetter = Callable[[int], bytes]
SubtreeGetter = Callable[[int, int], bytes | None]


async def leaf_range(conn: Conn, start: int, end: int) -> list[bytes]:
    rows = await conn.fetch("SELECT leaf_hash FROM ledger WHERE idx >= $1 AND idx < $2 ORDER BY idx", start, end)
    return [bytes(r[0]) for r in rows]


async def subtree(conn: Conn, start: int, end: int) -> bytes:
    """A perfect subtree's hash: from `ledger_nodes` (256+ leaves), else from one range read of leaf hashes."""
    level = (end - start).bit_length() - 1
    if level >= NODE_CACHE_MIN_LEVEL:
        h = await conn.fetchval("SELECT hash FROM ledger_nodes WHERE level = $1 AND idx = $2", level, start >> level)
        if h is not None:
            return bytes(h)
    leaves = await leaf_range(conn, start, end)
    if len(leaves) != end - start:
        raise LedgerInconsistent(f"entries {start}..{end - 1} are incomplete", start)
    return merkle.root(leaves)


async def with_hashes(conn: Conn, build: Callable[[LeafGetter, SubtreeGetter], T]) -> T:
    """Run a `merkle` proof builder on stored hashes: a dry run names the hashes it needs, then they are
    fetched (call inside one read-only snapshot) and the builder runs again on them."""
    leaves: set[int] = set()
    ranges: set[tuple[int, int]] = set()
    dummy = bytes(merkle.HASH_SIZE)

    def want_leaf(i: int) -> bytes:
        leaves.add(i)
        return dummy

    def want_range(a: int, b: int) -> bytes:
        ranges.add((a, b))
        return dummy

    build(want_leaf, want_range)
    known: dict[int, bytes] = {}
    if leaves:
        rows = await conn.fetch("SELECT idx, leaf_hash FROM ledger WHERE idx = ANY($1::bigint[])", sorted(leaves))
        known = {int(r[0]): bytes(r[1]) for r in rows}
    subtrees = {(a, b): await subtree(conn, a, b) for a, b in sorted(ranges)}

    def leaf(i: int) -> bytes:
        if i not in known:
            raise LedgerInconsistent(f"entry {i} is missing", i)
        return known[i]

    return build(leaf, lambda a, b: subtrees[(a, b)])


async def inclusion_proof(conn: Conn, index: int, size: int) -> list[bytes]:
    return await with_hashes(conn, lambda leaf, sub: merkle.inclusion_proof(index, size, leaf, sub))


async def consistency_proof(conn: Conn, first: int, second: int) -> list[bytes]:
    return await with_hashes(conn, lambda leaf, sub: merkle.consistency_proof(first, second, leaf, sub))


async def stored_compact(conn: Conn, size: int) -> CompactRange:
    """The compact range at `size` from stored hashes: one perfect subtree per set bit, largest first."""
    hashes, start = [], 0
    for bit in reversed(range(size.bit_length())):
        if size >> bit & 1:
            end = start + (1 << bit)
            if end - start == 1:
                h = await conn.fetchval("SELECT leaf_hash FROM ledger WHERE idx = $1", start)
                if h is None:
                    raise LedgerInconsistent(f"entry {start} is missing", start)
                hashes.append(bytes(h))
            else:
                hashes.append(await subtree(conn, start, end))
            start = end
    return CompactRange(size, hashes)


async def _stored_consistency(conn: Conn, m: int, n: int, old_root: bytes, new_root: bytes) -> None:
    try:
        proof = await consistency_proof(conn, m, n)
        verify_consistency(m, n, proof, old_root, new_root)
    except ProofError as exc:
        raise LedgerInconsistent(
            f"fork: the stored tree of size {n} is not an append-only extension of the signed size {m} ({exc})"
        ) from None


async def mac_start(conn: Conn, key: bytes) -> int:
    row = await conn.fetchrow("SELECT start, mac FROM ledger_mac_start WHERE id = 0")
    if row is None:
        raise LedgerInconsistent("the record of the first authenticated entry (ledger_mac_start) is missing")
    start, mac = int(row[0]), None if row[1] is None else bytes(row[1])
    if not start_mac_ok(key, start, mac):
        raise LedgerInconsistent("the record of the first authenticated entry (ledger_mac_start) was altered")
    return start


async def check_extension(conn: Conn, guard: CheckpointGuard, key: bytes) -> CompactRange | None:
    """The SQLite store's `check_extension` on PostgreSQL (call inside one REPEATABLE READ snapshot): prove the
    stored tree extends the trusted signed head and every entry since carries this gateway's MAC; return the
    compact range to sign, or None when there is nothing new. Raises LedgerInconsistent."""
    tree = await load_tree(conn)
    db_latest = await conn.fetchrow("SELECT size, note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1")
    outside, db = guard.heads(None if db_latest is None else (int(db_latest[0]), bytes(db_latest[1])))
    if outside is not None and db is not None and db.checkpoint.size > outside.checkpoint.size:
        await _stored_consistency(
            conn, outside.checkpoint.size, db.checkpoint.size, outside.checkpoint.root_hash, db.checkpoint.root_hash
        )
    head: TrustedHead | None = db or outside
    start = await mac_start(conn, key)
    m = 0 if head is None else head.checkpoint.size
    full = guard.full_count_due()
    since = 0 if full else min(m, tree.size)
    row = await conn.fetchrow(
        "SELECT count(*), (SELECT coalesce(max(idx) + 1, 0) FROM ledger) FROM ledger WHERE idx >= $1", since
    )
    count, top = int(row[0]), int(row[1])
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
        compact = guard.trusted_compact(head.checkpoint) or await stored_compact(conn, m)
        if compact.root() != head.checkpoint.root_hash:
            raise LedgerInconsistent(
                f"the stored entries 0..{m - 1} no longer reproduce the checkpoint signed for size {m}"
                " (an entry was edited, removed, inserted or moved)",
                0,
            )
    expected = m
    async for r in conn.cursor("SELECT idx, entry, leaf_hash, mac FROM ledger WHERE idx >= $1 ORDER BY idx", m):
        idx, data, leaf = int(r[0]), bytes(r[1]), bytes(r[2])
        if idx != expected:
            raise LedgerInconsistent(f"entry {expected} is missing", expected)
        if merkle.leaf_hash(data) != leaf:
            raise LedgerInconsistent(f"entry {idx} does not match its recorded leaf hash (edited)", idx)
        if idx >= start and not entry_mac_ok(key, idx, leaf, None if r[3] is None else bytes(r[3])):
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
        await _stored_consistency(conn, m, compact.size, head.checkpoint.root_hash, compact.root())
    if full:
        guard.full_count_done()
    return compact
