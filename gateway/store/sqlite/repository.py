"""`SQLiteStore`: the `protocol.Store` contract on SQLite. Writes are operations submitted to the writer thread
(`writer.py`), each one transaction with its ledger entry (`tree.append_entry`); reads use aiosqlite on a
read-only connection and see only committed data."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from ...ledger.entry import format_time as ledger_time
from ...ledger.entry import parse_time as parse_ledger_time
from ...ledger.guard import CheckpointGuard, LedgerInconsistent
from ...ledger.merkle import CompactRange
from ..audit import AuditFilter, StoredCheckpoint
from ..files import ESCROW_ID, DirectoryEnvelopes
from ..idempotency import IdempotencyHit, IdempotentWrite, StoredResponse
from ..models import (
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
    StoreError,
)
from ..protocol import AgreementRecords, HeldShares
from ..rows import enrolment_from_row, recipient_from_row, share_from_rows
from . import queries
from .envelopes import SQLiteEnvelopes, insert_blobs
from .schema import create_schema
from .tree import PreparedEntry, TreeReader, append_entry, check_extension, latest_time, load_tree, prepare_entry
from .writer import Writer

T = TypeVar("T")

EntryBuilder = Callable[[Share], Mapping[str, Any]]


def _prepared(entry: Mapping[str, Any]) -> Mapping[str, Any] | PreparedEntry:
    """The entry encoded and its rows derived here, in the caller's thread, so the writer thread (the one serial
    stage) only joins, hashes and inserts (issue 15). An entry that fails its checks is passed on as it is, so the
    writer's operation raises the same error at the same point as before (after an idempotency replay, say)."""
    try:
        return prepare_entry(entry)
    except Exception:
        return entry


def _load_share(conn: sqlite3.Connection, share_id: str) -> Share | None:
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT * FROM shares WHERE id = ?", (share_id,)).fetchone()
        if row is None:
            return None
        rrows = conn.execute(
            "SELECT * FROM share_recipients WHERE share_id = ? ORDER BY recipient_id", (share_id,)
        ).fetchall()
        return share_from_rows(row, rrows)
    finally:
        conn.row_factory = None


class SQLiteStore:
    """The embedded store. Open with `await SQLiteStore.open(path)`; close with `await store.close()`."""

    def __init__(self, path: Path, writer: Writer, reader: aiosqlite.Connection) -> None:
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
        writer = Writer(path, ledger_mac_key=ledger_mac_key)
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
        """True unless the last write failed on the database's side and a probe write still fails.

        Healthy writers answer at once (no I/O on every /healthz); after a failure, each call tries a small
        real write (`store_probe`: a row of 8 KiB, written and deleted in one transaction, so a database that
        cannot grow fails it) and a clean commit makes the writer healthy again by itself.
        """
        if self._writer.healthy:
            return True
        try:
            await self._writer.submit(_probe)
        except StoreError:
            return False
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
                out[row["team_id"]].append(recipient_from_row(row))
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
            enrolment = enrolment_from_row(row)
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
            return [enrolment_from_row(r) for r in await cur.fetchall()]

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
        # One hop to the reader thread instead of three (execute, fetchall, close): on every share (issue 15).
        rows = await self._reader.execute_fetchall(f"SELECT * FROM recipients WHERE id IN ({marks})", tuple(ids))  # noqa: S608
        return {row["id"]: recipient_from_row(row) for row in rows}

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
            return [recipient_from_row(row) for row in await cur.fetchall()]

    # -- shares -----------------------------------------------------------------------------------

    async def create_share(
        self,
        share: Share,
        entry: Mapping[str, Any],
        before_commit: Callable[[], None] | None = None,
        idempotency: IdempotentWrite | None = None,
        held: Sequence[HeldRow] = (),
        durable: Mapping[object, Callable[[], None]] | None = None,
        spool: object | None = None,
    ) -> int:
        """Insert the share, its recipients, its held rows and its ledger entry in one transaction.

        `before_commit` runs inside the transaction (in the writer thread) after the rows are written: the
        envelope files are moved into place there, so a failure to place them aborts the whole share.
        `durable` (keyed jobs, e.g. directory fsyncs) run once for the whole group commit, before COMMIT;
        if one fails, every share in the batch fails.
        """

        ready = _prepared(entry)

        def op(conn: sqlite3.Connection) -> int:
            if idempotency is not None:
                _claim_idempotency_key(conn, idempotency, str(entry["time"]))
            idx = append_entry(conn, ready)
            if idempotency is not None:
                _store_idempotent_answer(conn, idempotency, idx, str(entry["time"]))
            conn.execute(
                "INSERT INTO shares (id, created_at, sender_sub, sender_iss, sender_org, purpose_code,"
                " purpose_description, subjects, data_categories, payload_content_type, payload_size,"
                " expires_at, max_downloads, state, ledger_index, escrow_sha256, escrow_size, sender_name,"
                " sender_org_name)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    share.sender_name,
                    share.sender_org_name,
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
            insert_blobs(conn, spool, share.id)
            if before_commit is not None:
                before_commit()
            if durable:
                getattr(conn, "before_commit", {}).update(durable)
            return idx

        return await self._writer.submit(op)

    async def record(self, entry: Mapping[str, Any], idempotency: IdempotentWrite | None = None) -> int:
        """Append an entry that changes no other state (a decision not to share)."""
        ready = _prepared(entry)

        def op(conn: sqlite3.Connection) -> int:
            if idempotency is not None:
                _claim_idempotency_key(conn, idempotency, str(entry["time"]))
            idx = append_entry(conn, ready)
            if idempotency is not None:
                _store_idempotent_answer(conn, idempotency, idx, str(entry["time"]))
            return idx

        # A plain append checks everything before it writes, so it needs no savepoint of its own (writer.submit);
        # claiming an idempotency key can refuse after deleting expired keys, so that one keeps its savepoint.
        return await self._writer.submit(op, savepoint=idempotency is not None)

    async def record_unless_since(self, entry: Mapping[str, Any], since: str) -> int | None:
        ready = _prepared(entry)

        def op(conn: sqlite3.Connection) -> int | None:
            # In the writer's transaction, under the writers' lock: another process's entry committed before it
            # is seen here, and so is one queued earlier in this batch.
            last = latest_time(conn, str(entry["kind"]))
            if last is not None and last >= since:
                return None
            return append_entry(conn, ready)

        return await self._writer.submit(op, savepoint=False)

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
        return share_from_rows(row, rrows)

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
        return [share_from_rows(r, by_share.get(r["id"], [])) for r in rows]

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

    async def append_for_share(
        self,
        share_id: str,
        kind: str,
        make_entry: Callable[[Share, dict[str, Any], int | None], Mapping[str, Any]],
    ) -> tuple[Share, int] | None:
        """Append an entry about a share, built from the share, its own ledger entry and the index of an earlier
        entry of `kind` about it (None if none), in one transaction: two requests racing cannot both see "none".

        `make_entry` may raise to refuse (nothing is written). None when there is no such share.
        """

        def op(conn: sqlite3.Connection) -> tuple[Share, int] | None:
            share = _load_share(conn, share_id)
            if share is None:
                return None
            row = conn.execute("SELECT entry FROM ledger WHERE idx = ?", (share.ledger_index,)).fetchone()
            earlier = conn.execute(
                "SELECT min(idx) FROM ledger WHERE kind = ? AND share_id = ?", (kind, share_id)
            ).fetchone()[0]
            entry = make_entry(share, json.loads(bytes(row[0])), earlier)
            return share, append_entry(conn, entry)

        return await self._writer.submit(op)

    async def append_for_key(
        self,
        kinds: Sequence[str],
        path: str,
        key: str,
        make_entry: Callable[[list[tuple[int, dict[str, Any]]]], Mapping[str, Any]],
    ) -> int:
        """Append an entry built from the earlier entries of `kinds` whose JSON at `path` (e.g. `$.advice.id`) is
        `key`, in one transaction: a check such as "not answered yet" cannot race. `make_entry` may raise to refuse.
        """

        def op(conn: sqlite3.Connection) -> int:
            marks = ",".join("?" for _ in kinds)
            rows = conn.execute(
                f"SELECT idx, entry FROM ledger WHERE kind IN ({marks})"  # noqa: S608
                " AND json_extract(CAST(entry AS TEXT), ?) = ? ORDER BY idx",
                [*kinds, path, key],
            ).fetchall()
            entry = make_entry([(int(r[0]), json.loads(bytes(r[1]))) for r in rows])
            return append_entry(conn, entry)

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

    def inline_envelopes(self, files: DirectoryEnvelopes) -> SQLiteEnvelopes:
        """The envelope store over this file: small envelopes as its rows, the others in `files`."""
        return SQLiteEnvelopes(self, files)

    async def delete_envelope_blobs(self, names: Sequence[tuple[str, str]]) -> None:
        """Destroy envelopes kept in the database ((share_id, name) pairs; absent ones are ignored)."""
        if not names:
            return

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany("DELETE FROM envelope_blobs WHERE share_id = ? AND name = ?", names)

        await self._writer.submit(op)

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
        return None if r is None else LedgerRow(*r)

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

    # -- audit queries (queries.py holds the SQL and its plans) ---------- -----------------------------------------

    async def query_page(self, f: AuditFilter, *, before: int | None, limit: int) -> list[LedgerRow]:
        return await queries.query_page(self._reader, f, before=before, limit=limit)

    async def export_pages(self, f: AuditFilter, *, upto: int, page_size: int) -> AsyncIterator[list[LedgerRow]]:
        plan = await queries.export_plan(self._reader, f, upto=upto)
        return queries.export_pages(self._reader, plan, page_size=page_size)

    async def latest_stored_checkpoint(self) -> StoredCheckpoint | None:
        return await queries.latest_checkpoint(self._reader)

    async def ledger_end(self) -> int:
        return await queries.ledger_end(self._reader)

    async def subject_events(self, ref: str, cap: int, *, scope: str | None = None) -> tuple[list[LedgerRow], bool]:
        return await queries.subject_events(self._reader, ref, cap, scope=scope)

    async def verify_inclusions(
        self, size: int, root: bytes, entries: Sequence[tuple[int, bytes]]
    ) -> dict[int, str | None]:
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
        return await queries.flagged_decisions(
            self._reader, flag, org=org, time_from=time_from, time_to=time_to, before=before, limit=limit
        )

    async def own_decisions(self, sub: str, *, before: int | None, limit: int) -> list[LedgerRow]:
        return await queries.own_decisions(self._reader, sub, before=before, limit=limit)

    async def stats(
        self, time_from: str | None, time_to: str | None, *, scope: str | None = None, now: str | None = None
    ) -> dict[str, Any]:
        return await queries.stats(self._reader, time_from, time_to, scope=scope, now=now)

    async def open_emergencies(self, sub: str, *, limit: int) -> list[LedgerRow]:
        return await queries.open_emergencies(self._reader, sub, limit=limit)

    async def awaiting_approval(self, share_id: str) -> bool:
        return await queries.awaiting_approval(self._reader, share_id)

    async def shares_awaiting_approval(self, org: str, *, limit: int) -> list[LedgerRow]:
        return await queries.shares_awaiting_approval(self._reader, org, limit=limit)

    async def retention_schedule(self, org: str | None, *, limit: int) -> list[tuple[Any, ...]]:
        return await queries.retention_schedule(self._reader, org, limit=limit)

    async def retention_facts(self) -> dict[str, Any]:
        return await queries.retention_facts(self._reader)

    async def advice_entries(self, *, org: str | None, sub: str | None, limit: int) -> list[LedgerRow]:
        return await queries.advice_entries(self._reader, org=org, sub=sub, limit=limit)

    async def latest_decisions_by_decider(self, org: str | None, *, limit: int, after: int = 0) -> list[LedgerRow]:
        return await queries.latest_decisions_by_decider(self._reader, org, limit=limit, after=after)


def _probe(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT OR REPLACE INTO store_probe (id, pad) VALUES (0, zeroblob(8192))")
    conn.execute("DELETE FROM store_probe")


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
