"""The PostgreSQL store (asyncpg): the SQLite store's interface for several gateway nodes on one database.

`SAFESHARE_DATABASE=postgresql://…` selects it. Everything a node needs to agree with the others on lives in
the database: recipients, shares, the ledger and its tree (`ledger.py`), signed checkpoints, idempotency keys,
one-time claim codes, and by default the envelopes, in chunks (`envelopes.py`, the gateway's envelope store on
PostgreSQL unless `envelopes` names a shared directory). What stays per node: the in-memory rate limits (a
client spread over N nodes gets up to N times the per-node allowance; the limits are there against runaway
clients, not as an authorisation rule) and each node's copy of the last head it signed (`ledger-head.note`).

Writes: each node runs one writer task that group-commits queued operations, as the SQLite store's writer
thread does: one transaction per batch, a SAVEPOINT per operation (a failing one rolls back alone), and the
ledger's coordinator row locked at the start of the batch, so all writes across all nodes are serialised by
it (that is what keeps the ledger gap-free and makes `max_downloads`, idempotency keys and one-time codes
exact across nodes) while under load one lock and one commit serve a whole batch. Taking the lock first
also means two nodes can never deadlock on rows they touch in different orders.

Failures of the database itself (refused connection, lost connection, timeouts) become `StoreUnavailable`:
the caller's operation did not happen; the HTTP layer answers 503 with Retry-After; the pool reconnects on
its own when the database is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import json
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

import asyncpg

from ...ledger.entry import format_time as ledger_time
from ...ledger.entry import parse_time as parse_ledger_time
from ...ledger.guard import CheckpointGuard, LedgerInconsistent
from ...ledger.mac import start_mac
from ...ledger.merkle import CompactRange
from ..agreements import named_in_entry
from ..audit import AuditFilter, StoredCheckpoint
from ..files import ESCROW_ID
from ..idempotency import IdempotencyHit, IdempotentWrite, StoredResponse
from ..migrations import CURRENT_SQL, RECORD_SQL, SCHEMA_VERSION_TABLE, pending
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
    StoreUnavailable,
)
from ..rows import enrolment_from_row, recipient_from_row, share_from_rows
from . import held as pg_held
from . import ledger as pg_ledger
from . import queries as pg_queries
from .agreements import PgAgreementStore
from .envelopes import PgEnvelopes, PgSpool
from .schema import SCHEMA_VERSION, STEPS

T = TypeVar("T")

Conn = Any  # an asyncpg connection (asyncpg has no type information)
Op = Callable[[Conn], Awaitable[Any]]
EntryBuilder = Callable[[Share], Mapping[str, Any]]

#: Seconds to wait for a connection (from the pool, or a new one) and for any one statement.
CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 30.0
#: Key of the advisory lock that lets only one node migrate at a time.
MIGRATION_LOCK = 0x5AFE5A4E

#: What asyncpg raises when the database cannot be reached or the connection is lost mid-way.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)


#: Of those, the ones only the database raises (an OSError from an operation's own file work is not one).
_DATABASE_DOWN: tuple[type[BaseException], ...] = tuple(e for e in UNAVAILABLE if e is not OSError)


def _unavailable(exc: BaseException) -> StoreUnavailable:
    err = StoreUnavailable(f"the database is unavailable: {type(exc).__name__}")
    err.__cause__ = exc
    return err


# -- schema -------------------------------------------------------------------------------------------


async def migrate(conn: Conn, ledger_mac_key: bytes | None = None, legacy_upgrade: bool = True) -> tuple[int, int]:
    """Apply the numbered steps this database lacks (gateway/store/migrations.py), one node at a time (an advisory
    lock, the version re-read under it); refuse a newer schema. Returns (version before, version after)."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        if not await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL"):
            # Only when missing: the application role (no CREATE on the schema) opens a migrated database.
            await conn.execute(SCHEMA_VERSION_TABLE)
        current = int(await conn.fetchval(CURRENT_SQL))
        for step in pending(STEPS, current, "the PostgreSQL database"):
            async with conn.transaction():
                await cast(Awaitable[object], step.apply(conn))
                await conn.execute(
                    RECORD_SQL.format("$1", "$2", "$3"),
                    step.version,
                    step.description,
                    ledger_time(datetime.now(UTC)),
                )
        if ledger_mac_key is not None and legacy_upgrade:
            async with conn.transaction():
                if await conn.fetchval("SELECT 1 FROM ledger_mac_start WHERE id = 0") is None:
                    tree = await pg_ledger.lock_tree(conn)
                    await conn.execute(
                        "INSERT INTO ledger_mac_start (id, start, mac) VALUES (0, $1, $2)",
                        tree.size,
                        start_mac(ledger_mac_key, tree.size),
                    )
        return current, max(current, SCHEMA_VERSION)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)


# -- rows ---------------------------------------------------------------------------------------------


async def _load_share(conn: Conn, share_id: str, lock: bool = False) -> Share | None:
    sql = "SELECT * FROM shares WHERE id = $1 FOR UPDATE" if lock else "SELECT * FROM shares WHERE id = $1"
    row = await conn.fetchrow(sql, share_id)
    if row is None:
        return None
    rrows = await conn.fetch("SELECT * FROM share_recipients WHERE share_id = $1 ORDER BY recipient_id", share_id)
    return share_from_rows(row, rrows)


#: The tree of the batch the writer is running (its operations run in the writer's task, so they see it): read
#: once under the coordinator row's lock, advanced by each append, written back once before the commit.
_BATCH_TREE: contextvars.ContextVar[CompactRange | None] = contextvars.ContextVar(
    "safeshare_pg_batch_tree", default=None
)


class _RollBack(Exception):
    """Leaves a one-operation batch's transaction (rolling it back) after its operation failed on its own."""


async def _reset(conn: Conn) -> None:
    """What a pooled connection needs before reuse: no open transaction. (asyncpg's default reset is a round trip
    per release, for session state this store never sets: advisory locks, LISTEN, cursors, SET.)"""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


# -- the writer ---------------------------------------------------------------------------------------


class _Writer:
    """One task per node that group-commits queued operations (see the module docstring)."""

    def __init__(self, pool: Any, max_batch: int = 256) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Op, asyncio.Future[Any]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def submit(self, op: Callable[[Conn], Awaitable[T]]) -> T:
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((op, fut))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="safeshare-pg-writer")
        return await fut

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._run_batch(batch)
            except asyncio.CancelledError:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(StoreUnavailable("the store is closing"))
                raise
            except BaseException as exc:  # never let the writer die: fail this batch, carry on
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(_unavailable(exc) if isinstance(exc, UNAVAILABLE) else StoreError(str(exc)))

    async def _run_batch(self, batch: list[tuple[Op, asyncio.Future[Any]]]) -> None:
        live = [(op, fut) for op, fut in batch if not fut.done()]  # a caller that gave up changes nothing
        if not live:
            return
        results: list[tuple[asyncio.Future[Any], bool, Any]] = []
        try:
            async with self._pool.acquire(timeout=CONNECT_TIMEOUT) as conn, conn.transaction():
                tree = await pg_ledger.lock_tree(conn)
                start = tree.size
                token = _BATCH_TREE.set(tree)
                try:
                    for op, fut in live:
                        if len(live) == 1:  # alone in its batch: the transaction is its savepoint (2 round trips less)
                            try:
                                results.append((fut, True, await op(conn)))
                            except Exception as exc:
                                failure = _unavailable(exc) if isinstance(exc, _DATABASE_DOWN) else exc
                                results.append((fut, False, failure))
                                raise _RollBack from exc
                            continue
                        before = tree.copy()
                        savepoint = conn.transaction()
                        await savepoint.start()
                        try:
                            value = await op(conn)
                        except Exception as exc:
                            # The operation's own failure (a refusal, or e.g. an OSError placing files) rolls back
                            # alone and reaches its caller as it is; its appends are forgotten with it. If the
                            # savepoint cannot be rolled back, the connection itself is gone: the batch is lost.
                            await savepoint.rollback()
                            tree = before
                            _BATCH_TREE.set(tree)
                            failure = _unavailable(exc) if isinstance(exc, _DATABASE_DOWN) else exc
                            results.append((fut, False, failure))
                        else:
                            await savepoint.commit()
                            results.append((fut, True, value))
                finally:
                    _BATCH_TREE.reset(token)
                if tree.size != start:
                    await pg_ledger.write_tree(conn, tree)
        except _RollBack:
            pass  # the one operation failed on its own; the transaction was rolled back; its caller is told below
        except UNAVAILABLE as exc:
            err = _unavailable(exc)
            for _, fut in live:
                if not fut.done():
                    fut.set_exception(err)
            return
        except asyncpg.PostgresError as exc:  # commit refused (e.g. serialisation, disk full): nothing was written
            for _, fut in live:
                if not fut.done():
                    fut.set_exception(StoreError(f"transaction rolled back: {exc}"))
            return
        for fut, ok, value in results:
            if fut.done():
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)


# -- the store ----------------------------------------------------------------------------------------


class PostgresStore:
    """Open with `await PostgresStore.open(dsn)`; close with `await store.close()`."""

    def __init__(self, dsn: str, pool: Any, ledger_mac_key: bytes | None) -> None:
        self.dsn = dsn
        self._pool = pool
        self._writer = _Writer(pool)
        self.envelopes = PgEnvelopes(pool)
        #: Set by the gateway: checks every new tree against the last signed one before `checkpoint` signs it.
        self.guard: CheckpointGuard | None = None
        self.ledger_mac_key = ledger_mac_key

    @classmethod
    async def open(
        cls,
        dsn: str,
        ledger_mac_key: bytes | None = None,
        legacy_upgrade: bool = True,
        *,
        min_size: int = 2,
        max_size: int = 10,
        migrate_schema: bool = True,
    ) -> PostgresStore:
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT)
        try:
            if migrate_schema:
                await migrate(conn, ledger_mac_key, legacy_upgrade)
            else:
                await _check_version(conn)
        finally:
            await conn.close()
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            timeout=CONNECT_TIMEOUT,
            command_timeout=COMMAND_TIMEOUT,
            reset=_reset,
        )
        return cls(dsn, pool, ledger_mac_key)

    async def close(self) -> None:
        await self._writer.close()
        await self._pool.close()

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[Conn]:
        """A pooled connection for reads (committed data); database failures become StoreUnavailable."""
        try:
            async with self._pool.acquire(timeout=CONNECT_TIMEOUT) as conn:
                yield conn
        except UNAVAILABLE as exc:
            raise _unavailable(exc) from exc

    @contextlib.asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[Conn]:
        """One read-only REPEATABLE READ snapshot: entries, tree and checkpoints agree in time."""
        async with self._read() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            yield conn

    async def _submit(self, op: Callable[[Conn], Awaitable[T]]) -> T:
        return await self._writer.submit(op)

    async def _append(self, conn: Conn, entry: Mapping[str, Any]) -> int:
        return await pg_ledger.append_entry(conn, entry, self.ledger_mac_key, _BATCH_TREE.get())

    async def writable(self) -> bool:
        """Whether the database answers now and is not read-only (a standby, or `default_transaction_read_only`):
        `/healthz` says 503 otherwise, so a load balancer stops sending this node requests it cannot serve."""
        try:
            async with self._read() as conn:
                read_only = await conn.fetchval("SELECT current_setting('transaction_read_only')")
            return bool(read_only == "off")
        except StoreError:
            return False

    healthy = writable

    @property
    def held(self) -> pg_held.PgHeldStore:
        return pg_held.PgHeldStore(self)

    @property
    def agreements(self) -> PgAgreementStore:
        return PgAgreementStore(self)

    # -- recipients -------------------------------------------------------------------------------

    async def add_recipient(self, rec: Recipient, entry: Mapping[str, Any]) -> int:
        async def op(conn: Conn) -> int:
            if await conn.fetchval("SELECT 1 FROM recipients WHERE id = $1", rec.id):
                raise RecipientExists(rec.id)
            now = entry["time"]
            await conn.execute(
                "INSERT INTO recipients (id, name, org, email, age_recipient, status, created_at, updated_at, kind)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                rec.id,
                rec.name,
                rec.org,
                rec.email,
                rec.age_recipient,
                rec.status,
                now,
                now,
                rec.kind,
            )
            if rec.kind == "person":
                await conn.execute(
                    "INSERT INTO recipient_keys (recipient_id, age_recipient, status, since)"
                    " VALUES ($1, $2, 'active', $3)",
                    rec.id,
                    rec.age_recipient,
                    now,
                )
            return await self._append(conn, entry)

        return await self._submit(op)

    async def set_membership(self, team_id: str, member_id: str, add: bool, entry: Mapping[str, Any]) -> int | None:
        async def op(conn: Conn) -> int | None:
            current = await conn.fetchval(
                "SELECT since FROM team_members WHERE team_id = $1 AND member_id = $2 AND until IS NULL",
                team_id,
                member_id,
            )
            if add == (current is not None):
                return None
            if add:
                await conn.execute(
                    "INSERT INTO team_members (team_id, member_id, since) VALUES ($1, $2, $3)",
                    team_id,
                    member_id,
                    entry["time"],
                )
            else:
                await conn.execute(
                    "UPDATE team_members SET until = $1 WHERE team_id = $2 AND member_id = $3 AND until IS NULL",
                    entry["time"],
                    team_id,
                    member_id,
                )
            return await self._append(conn, entry)

        return await self._submit(op)

    async def team_members(self, team_ids: Sequence[str]) -> dict[str, list[Recipient]]:
        if not team_ids:
            return {}
        out: dict[str, list[Recipient]] = {t: [] for t in team_ids}
        async with self._read() as conn:
            rows = await conn.fetch(
                "SELECT tm.team_id, r.* FROM team_members tm JOIN recipients r ON r.id = tm.member_id"
                " WHERE tm.team_id = ANY($1::text[]) AND tm.until IS NULL AND r.status = 'active'"
                " AND r.kind = 'person' ORDER BY tm.team_id, r.id",
                list(team_ids),
            )
        for row in rows:
            out[row["team_id"]].append(recipient_from_row(row))
        return out

    async def request_enrolment(self, enrolment: Enrolment, entry: Mapping[str, Any]) -> int:
        async def op(conn: Conn) -> int:
            await conn.execute(
                "UPDATE enrolments SET status = 'superseded', decided_at = $1"
                " WHERE recipient_id = $2 AND status = 'pending'",
                enrolment.requested_at,
                enrolment.recipient_id,
            )
            await conn.execute(
                "INSERT INTO enrolments (id, recipient_id, name, org, email, age_recipient, status, requested_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7)",
                enrolment.id,
                enrolment.recipient_id,
                enrolment.name,
                enrolment.org,
                enrolment.email,
                enrolment.age_recipient,
                enrolment.requested_at,
            )
            return await self._append(conn, entry)

        return await self._submit(op)

    async def decide_enrolment(
        self, recipient_id: str, approve: bool, decided_by: str, make_entry: Callable[[Enrolment], Mapping[str, Any]]
    ) -> tuple[Enrolment, int] | None:
        async def op(conn: Conn) -> tuple[Enrolment, int] | None:
            row = await conn.fetchrow(
                "SELECT * FROM enrolments WHERE recipient_id = $1 AND status = 'pending'", recipient_id
            )
            if row is None:
                return None
            enrolment = enrolment_from_row(row)
            entry = make_entry(enrolment)
            now = entry["time"]
            await conn.execute(
                "UPDATE enrolments SET status = $1, decided_at = $2, decided_by = $3 WHERE id = $4",
                "approved" if approve else "rejected",
                now,
                decided_by,
                enrolment.id,
            )
            if approve:
                current = await conn.fetchval("SELECT age_recipient FROM recipients WHERE id = $1", recipient_id)
                if current is None:
                    await conn.execute(
                        "INSERT INTO recipients (id, name, org, email, age_recipient, status, created_at, updated_at)"
                        " VALUES ($1, $2, $3, $4, $5, 'active', $6, $7)",
                        recipient_id,
                        enrolment.name,
                        enrolment.org,
                        enrolment.email,
                        enrolment.age_recipient,
                        now,
                        now,
                    )
                else:
                    await conn.execute(
                        "INSERT INTO recipient_keys (recipient_id, age_recipient, status, since)"
                        " VALUES ($1, $2, 'active', $3) ON CONFLICT DO NOTHING",
                        recipient_id,
                        current,
                        now,
                    )
                    await conn.execute(
                        "UPDATE recipient_keys SET status = 'retired', until = $1"
                        " WHERE recipient_id = $2 AND status = 'active'",
                        now,
                        recipient_id,
                    )
                    await conn.execute(
                        "UPDATE recipients SET age_recipient = $1, status = 'active', updated_at = $2 WHERE id = $3",
                        enrolment.age_recipient,
                        now,
                        recipient_id,
                    )
                await conn.execute(
                    "INSERT INTO recipient_keys (recipient_id, age_recipient, status, since)"
                    " VALUES ($1, $2, 'active', $3) ON CONFLICT (recipient_id, age_recipient)"
                    " DO UPDATE SET status = 'active', since = excluded.since, until = NULL",
                    recipient_id,
                    enrolment.age_recipient,
                    now,
                )
            return enrolment, await self._append(conn, entry)

        return await self._submit(op)

    async def enrolments(self, recipient_id: str | None = None, status: str | None = None) -> list[Enrolment]:
        sql, args = "SELECT * FROM enrolments WHERE true", []
        if recipient_id is not None:
            args.append(recipient_id)
            sql += f" AND recipient_id = ${len(args)}"
        if status is not None:
            args.append(status)
            sql += f" AND status = ${len(args)}"
        sql += " ORDER BY requested_at DESC LIMIT 500"
        async with self._read() as conn:
            return [enrolment_from_row(r) for r in await conn.fetch(sql, *args)]

    async def recipient_keys(self, recipient_id: str) -> list[tuple[str, str, str, str | None]]:
        async with self._read() as conn:
            rows = await conn.fetch(
                "SELECT age_recipient, status, since, until FROM recipient_keys WHERE recipient_id = $1"
                " ORDER BY since DESC",
                recipient_id,
            )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    async def set_recipient_status(self, recipient_id: str, status: str, entry: Mapping[str, Any]) -> int | None:
        async def op(conn: Conn) -> int | None:
            done = await conn.execute(
                "UPDATE recipients SET status = $1, updated_at = $2 WHERE id = $3", status, entry["time"], recipient_id
            )
            if done.endswith(" 0"):
                return None
            return await self._append(conn, entry)

        return await self._submit(op)

    async def get_recipients(self, ids: Sequence[str]) -> dict[str, Recipient]:
        if not ids:
            return {}
        async with self._read() as conn:
            rows = await conn.fetch("SELECT * FROM recipients WHERE id = ANY($1::text[])", list(ids))
        return {row["id"]: recipient_from_row(row) for row in rows}

    async def list_recipients(
        self, q: str | None = None, include_disabled: bool = False, limit: int = 100
    ) -> list[Recipient]:
        sql = "SELECT * FROM recipients WHERE true"
        args: list[Any] = []
        if not include_disabled:
            args.append(RECIPIENT_ACTIVE)
            sql += f" AND status = ${len(args)}"
        if q:
            args.append("%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
            n = len(args)
            sql += (
                f" AND (lower(id) LIKE ${n} OR lower(name) LIKE ${n} OR lower(email) LIKE ${n} OR lower(org) LIKE ${n})"
            )
        args.append(limit)
        # The same order as SQLite's default (binary) collation, whatever the database's locale.
        sql += f' ORDER BY id COLLATE "C" LIMIT ${len(args)}'
        async with self._read() as conn:
            return [recipient_from_row(row) for row in await conn.fetch(sql, *args)]

    async def person_by_email(self, address: str) -> Recipient | None:
        async with self._read() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM recipients WHERE email = $1 AND status = $2 AND kind = 'person' AND age_recipient <> ''"
                ' ORDER BY id COLLATE "C" LIMIT 1',
                address,
                RECIPIENT_ACTIVE,
            )
        return None if row is None else recipient_from_row(row)

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
        """Insert the share, its recipients, its envelopes (`spool`, written beforehand) and its ledger entry in
        one transaction: from its commit on the share is complete on every node; before it, it does not exist.

        `durable` (keyed jobs such as the envelope directories' fsyncs) run here, off the event loop, before the
        transaction commits; SQLite's writer runs them once per group commit instead."""

        async def op(conn: Conn) -> int:
            now = str(entry["time"])
            if idempotency is not None:
                await _claim_idempotency_key(conn, idempotency, now)
            idx = await self._append(conn, entry)
            if idempotency is not None:
                await _store_idempotent_answer(conn, idempotency, idx, now)
            await conn.execute(
                "INSERT INTO shares (id, created_at, sender_sub, sender_iss, sender_org, purpose_code,"
                " purpose_description, subjects, data_categories, payload_content_type, payload_size,"
                " expires_at, max_downloads, state, ledger_index, escrow_sha256, escrow_size, sender_name,"
                " sender_org_name)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
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
            )
            await conn.executemany(
                "INSERT INTO share_recipients (share_id, recipient_id, recipient_org, envelope_sha256,"
                " envelope_size, downloads, state, via_team) VALUES ($1, $2, $3, $4, $5, 0, $6, $7)",
                [
                    (share.id, r.recipient_id, r.recipient_org, r.envelope_sha256, r.envelope_size, SHARE_ACTIVE)
                    + (r.via_team,)
                    for r in share.recipients
                ],
            )
            await pg_held.insert_held(conn, held)
            if isinstance(spool, PgSpool):
                await spool.place(conn, share.id)
            if before_commit is not None:
                before_commit()
            for job in (durable or {}).values():
                await asyncio.to_thread(job)
            return idx

        return await self._submit(op)

    async def record(self, entry: Mapping[str, Any], idempotency: IdempotentWrite | None = None) -> int:
        async def op(conn: Conn) -> int:
            now = str(entry["time"])
            if idempotency is not None:
                await _claim_idempotency_key(conn, idempotency, now)
            idx = await self._append(conn, entry)
            if idempotency is not None:
                await _store_idempotent_answer(conn, idempotency, idx, now)
            return idx

        return await self._submit(op)

    async def record_unless_since(self, entry: Mapping[str, Any], since: str) -> int | None:
        async def op(conn: Conn) -> int | None:
            # Under the coordinator row (`lock_tree`): another node's entry committed before it is seen here.
            last = await conn.fetchval(
                "SELECT time FROM ledger WHERE kind = $1 ORDER BY idx DESC LIMIT 1", str(entry["kind"])
            )
            if last is not None and str(last) >= since:
                return None
            return await self._append(conn, entry)

        return await self._submit(op)

    async def idempotent_answer(self, principal: str, key: str, now: str) -> StoredResponse | None:
        async with self._read() as conn:
            row = await conn.fetchrow(
                "SELECT fingerprint, status, response FROM idempotency_keys"
                " WHERE principal = $1 AND key = $2 AND expires_at > $3",
                principal,
                key,
                now,
            )
        return None if row is None else StoredResponse(row[0], int(row[1]), json.loads(row[2]))

    async def get_share(self, share_id: str) -> Share | None:
        async with self._read() as conn:
            return await _load_share(conn, share_id)

    async def _shares(self, sql: str, args: Sequence[Any]) -> list[Share]:
        async with self._read() as conn:
            rows = await conn.fetch(sql, *args)
            if not rows:
                return []
            rrows = await conn.fetch(
                "SELECT * FROM share_recipients WHERE share_id = ANY($1::text[]) ORDER BY recipient_id",
                [r["id"] for r in rows],
            )
        by_share: dict[str, list[Any]] = {}
        for r in rrows:
            by_share.setdefault(r["share_id"], []).append(r)
        return [share_from_rows(r, by_share.get(r["id"], [])) for r in rows]

    async def inbox(self, recipient_id: str, before: int | None, limit: int) -> list[Share]:
        sql = "SELECT s.* FROM shares s JOIN share_recipients sr ON sr.share_id = s.id WHERE sr.recipient_id = $1"
        args: list[Any] = [recipient_id]
        if before is not None:
            args.append(before)
            sql += f" AND s.ledger_index < ${len(args)}"
        args.append(limit)
        sql += f" ORDER BY s.ledger_index DESC LIMIT ${len(args)}"
        return await self._shares(sql, args)

    async def sent(self, sender_sub: str, sender_iss: str, before: int | None, limit: int) -> list[Share]:
        sql = "SELECT * FROM shares WHERE sender_sub = $1 AND sender_iss = $2"
        args: list[Any] = [sender_sub, sender_iss]
        if before is not None:
            args.append(before)
            sql += f" AND ledger_index < ${len(args)}"
        args.append(limit)
        sql += f" ORDER BY ledger_index DESC LIMIT ${len(args)}"
        return await self._shares(sql, args)

    async def record_fetch(
        self, share_id: str, recipient_id: str, now: str, make_entry: EntryBuilder
    ) -> FetchOutcome | None:
        """Count and record one release of an envelope, atomically with the max_downloads check (exact across
        nodes: writes are serialised by the coordinator row)."""

        async def op(conn: Conn) -> FetchOutcome | None:
            share = await _load_share(conn, share_id, lock=True)
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
            await conn.execute(
                "UPDATE share_recipients SET downloads = $1, state = $2, first_downloaded_at = coalesce("
                "first_downloaded_at, $3), last_downloaded_at = $3 WHERE share_id = $4 AND recipient_id = $5",
                downloads,
                SHARE_EXHAUSTED if exhausted else SHARE_ACTIVE,
                now,
                share_id,
                recipient_id,
            )
            entry = dict(make_entry(share))
            entry["download"] = downloads
            idx = await self._append(conn, entry)
            if exhausted:
                entry2: dict[str, Any] = {
                    **{k: v for k, v in entry.items() if k not in ("download", "envelope_sha256")},
                    "kind": "expire",
                    "actor": None,
                    "reason": "max_downloads",
                }
                await self._append(conn, entry2)
                await _settle_share_state(conn, share_id)
            return FetchOutcome(share=share, ledger_index=idx, exhausted=exhausted)

        return await self._submit(op)

    async def acknowledge(
        self, share_id: str, recipient_id: str, note: str, now: str, make_entry: EntryBuilder
    ) -> tuple[Share, int] | None:
        async def op(conn: Conn) -> tuple[Share, int] | None:
            share = await _load_share(conn, share_id)
            if share is None or share.recipient(recipient_id) is None:
                return None
            await conn.execute(
                "UPDATE share_recipients SET acknowledged_at = $1, acknowledgement = $2"
                " WHERE share_id = $3 AND recipient_id = $4",
                now,
                note,
                share_id,
                recipient_id,
            )
            return share, await self._append(conn, make_entry(share))

        return await self._submit(op)

    async def record_escrow_release(self, share_id: str, make_entry: EntryBuilder) -> Share | None:
        async def op(conn: Conn) -> Share | None:
            share = await _load_share(conn, share_id)
            if share is None or share.escrow_sha256 is None or share.state not in (SHARE_ACTIVE, SHARE_EXHAUSTED):
                return None
            await self._append(conn, make_entry(share))
            return share

        return await self._submit(op)

    async def append_for_share(
        self,
        share_id: str,
        kind: str,
        make_entry: Callable[[Share, dict[str, Any], int | None], Mapping[str, Any]],
    ) -> tuple[Share, int] | None:
        async def op(conn: Conn) -> tuple[Share, int] | None:
            # The share's row locked: two racing calls are serialised, so the second sees the first's entry.
            share = await _load_share(conn, share_id, lock=True)
            if share is None:
                return None
            own = await conn.fetchval("SELECT entry FROM ledger WHERE idx = $1", share.ledger_index)
            earlier = await conn.fetchval(
                "SELECT min(idx) FROM ledger WHERE kind = $1 AND share_id = $2", kind, share_id
            )
            entry = make_entry(share, json.loads(bytes(own)), None if earlier is None else int(earlier))
            return share, await self._append(conn, entry)

        return await self._submit(op)

    async def append_for_key(
        self,
        kinds: Sequence[str],
        path: str,
        key: str,
        make_entry: Callable[[list[tuple[int, dict[str, Any]]]], Mapping[str, Any]],
    ) -> int:
        if not path.startswith("$.") or not all(part.isidentifier() for part in path[2:].split(".")):
            raise ValueError(f"unsupported JSON path {path!r}")
        keys = path[2:].split(".")

        async def op(conn: Conn) -> int:
            # One key at a time across nodes: a transaction-scoped advisory lock on the key's hash, so "not
            # answered yet" cannot race (the ledger rows themselves are append-only and never locked).
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"{path}={key}")
            rows = await conn.fetch(
                "SELECT idx, entry FROM ledger WHERE kind = ANY($1::text[])"
                " AND convert_from(entry, 'UTF8')::jsonb #>> $2::text[] = $3 ORDER BY idx",
                list(kinds),
                keys,
                key,
            )
            entry = make_entry([(int(r[0]), json.loads(bytes(r[1]))) for r in rows])
            return await self._append(conn, entry)

        return await self._submit(op)

    async def revoke(self, share_id: str, make_entry: EntryBuilder) -> tuple[Share, int | None] | None:
        async def op(conn: Conn) -> tuple[Share, int | None] | None:
            share = await _load_share(conn, share_id, lock=True)
            if share is None:
                return None
            if share.state != SHARE_ACTIVE:
                return share, None
            await conn.execute(
                "UPDATE share_recipients SET state = $1 WHERE share_id = $2 AND state = $3",
                SHARE_REVOKED,
                share_id,
                SHARE_ACTIVE,
            )
            await conn.execute("UPDATE shares SET state = $1 WHERE id = $2", SHARE_REVOKED, share_id)
            await conn.execute(
                "UPDATE held_recipients SET state = 'revoked'"
                " WHERE share_id = $1 AND state IN ('held', 'claimed', 'active')",
                share_id,
            )
            return share, await self._append(conn, make_entry(share))

        return await self._submit(op)

    async def expire_due(self, now: str, make_entry: EntryBuilder, limit: int = 500) -> list[Share]:
        async def op(conn: Conn) -> list[Share]:
            ids = [
                r[0]
                for r in await conn.fetch(
                    "SELECT id FROM shares WHERE expires_at <= $1"
                    " AND (state = 'active' OR (state = 'exhausted' AND escrow_sha256 IS NOT NULL))"
                    " ORDER BY expires_at LIMIT $2",
                    now,
                    limit,
                )
            ]
            done = []
            for share_id in ids:
                share = await _load_share(conn, share_id)
                assert share is not None
                await conn.execute(
                    "UPDATE share_recipients SET state = $1 WHERE share_id = $2 AND state = $3",
                    SHARE_EXPIRED,
                    share_id,
                    SHARE_ACTIVE,
                )
                await conn.execute("UPDATE shares SET state = $1 WHERE id = $2", SHARE_EXPIRED, share_id)
                await self._append(conn, make_entry(share))
                done.append(share)
            return done

        return await self._submit(op)

    async def live_envelopes(self) -> set[tuple[str, str]]:
        async with self._read() as conn:
            rows = await conn.fetch(
                "SELECT share_id, recipient_id FROM share_recipients WHERE state = 'active'"
                " UNION ALL SELECT id, $1 FROM shares WHERE escrow_sha256 IS NOT NULL"
                " AND state IN ('active', 'exhausted')"
                " UNION ALL SELECT share_id, envelope FROM held_recipients"
                " WHERE state IN ('held', 'claimed', 'active')",
                ESCROW_ID,
            )
        return {(r[0], r[1]) for r in rows}

    # -- ledger -----------------------------------------------------------------------------------

    async def checkpoint(self, sign: Callable[[int, bytes], bytes], now: str) -> tuple[int, bytes] | None:
        """Sign the current tree if it grew since the last checkpoint (whichever node signed that).

        A compare-and-swap on `ledger_checkpoint_head`: under its row lock, sign only a size larger than the
        largest signed so far, so two nodes never sign two roots for one size. Appends are not held up: the
        coordinator row is only read (its committed state), not locked.
        """
        guard, key = self.guard, self.ledger_mac_key
        new: CompactRange | None = None
        if guard is not None and key is not None:
            try:
                async with self._snapshot() as conn:
                    new = await pg_ledger.check_extension(conn, guard, key)
            except LedgerInconsistent as exc:
                guard.fail(exc)
                return None
            guard.clear()
            if new is None:
                return None
        try:
            async with self._read() as conn, conn.transaction():
                signed = int(await conn.fetchval("SELECT size FROM ledger_checkpoint_head WHERE id = 0 FOR UPDATE"))
                tree = new if new is not None else await pg_ledger.load_tree(conn)
                if tree.size == 0 or tree.size <= signed:
                    return None
                note = sign(tree.size, tree.root())
                await conn.execute(
                    "INSERT INTO ledger_checkpoints (size, time, note) VALUES ($1, $2, $3)", tree.size, now, note
                )
                await conn.execute("UPDATE ledger_checkpoint_head SET size = $1 WHERE id = 0", tree.size)
        except UNAVAILABLE as exc:
            raise _unavailable(exc) from exc
        if guard is not None and new is not None:
            await asyncio.to_thread(guard.remember, note, new)
        return tree.size, note

    async def latest_checkpoint(self) -> tuple[int, bytes] | None:
        async with self._read() as conn:
            row = await conn.fetchrow("SELECT size, note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1")
        return None if row is None else (int(row[0]), bytes(row[1]))

    async def checkpoint_note(self, size: int) -> bytes | None:
        async with self._read() as conn:
            note = await conn.fetchval("SELECT note FROM ledger_checkpoints WHERE size = $1", size)
        return None if note is None else bytes(note)

    async def add_cosignatures(self, size: int, lines: Mapping[str, str]) -> None:
        async def op(conn: Conn) -> None:
            await conn.executemany(
                "INSERT INTO ledger_cosignatures (size, witness, line) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                [(size, name, line) for name, line in sorted(lines.items())],
            )

        await self._submit(op)

    async def cosignature_lines(self, size: int) -> list[str]:
        async with self._read() as conn:
            rows = await conn.fetch(
                'SELECT line FROM ledger_cosignatures WHERE size = $1 ORDER BY witness COLLATE "C"', size
            )
        return [r[0] for r in rows]

    async def latest_cosigned_size(self) -> int | None:
        async with self._read() as conn:
            size = await conn.fetchval("SELECT max(size) FROM ledger_cosignatures")
        return None if size is None else int(size)

    async def tree_size(self) -> int:
        async with self._read() as conn:
            size = await conn.fetchval("SELECT size FROM ledger_tree WHERE id = 0")
        return int(size or 0)

    async def ledger_entry(self, index: int) -> LedgerRow | None:
        async with self._read() as conn:
            r = await conn.fetchrow("SELECT idx, time, kind, entry, leaf_hash FROM ledger WHERE idx = $1", index)
        return None if r is None else LedgerRow(*r)

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        async with self._snapshot() as conn:
            return await pg_ledger.inclusion_proof(conn, index, size)

    async def consistency_proof(self, first: int, second: int) -> list[bytes]:
        async with self._snapshot() as conn:
            return await pg_ledger.consistency_proof(conn, first, second)

    async def tile(self, level: int, index: int, width: int) -> list[bytes]:
        first = index * 256
        async with self._read() as conn:
            if level == 0:
                rows = await conn.fetch(
                    "SELECT leaf_hash FROM ledger WHERE idx >= $1 AND idx < $2 ORDER BY idx", first, first + width
                )
            else:
                rows = await conn.fetch(
                    "SELECT hash FROM ledger_nodes WHERE level = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
                    8 * level,
                    first,
                    first + width,
                )
        return [bytes(r[0]) for r in rows]

    async def entry_bundle(self, index: int, width: int) -> list[bytes]:
        first = index * 256
        async with self._read() as conn:
            rows = await conn.fetch(
                "SELECT entry FROM ledger WHERE idx >= $1 AND idx < $2 ORDER BY idx", first, first + width
            )
        return [bytes(r[0]) for r in rows]

    # -- audit queries (queries.py) -----------------------------------------------------------------

    async def query_page(self, f: AuditFilter, *, before: int | None, limit: int) -> list[LedgerRow]:
        async with self._read() as conn:
            return await pg_queries.query_page(conn, f, before=before, limit=limit)

    async def export_pages(self, f: AuditFilter, *, upto: int, page_size: int) -> AsyncIterator[list[LedgerRow]]:
        """Checks the filter (QueryError) when awaited, before any row is read; then iterate the pages."""
        await pg_queries.check_filter(f)
        return pg_queries.export_pages(self._read, f, upto=upto, page_size=page_size)

    async def latest_stored_checkpoint(self) -> StoredCheckpoint | None:
        async with self._read() as conn:
            return await pg_queries.latest_checkpoint(conn)

    async def ledger_end(self) -> int:
        async with self._read() as conn:
            return await pg_queries.ledger_end(conn)

    async def subject_events(self, ref: str, cap: int, *, scope: str | None = None) -> tuple[list[LedgerRow], bool]:
        async with self._read() as conn:
            return await pg_queries.subject_events(conn, ref, cap, scope=scope)

    async def verify_inclusions(
        self, size: int, root: bytes, entries: Sequence[tuple[int, bytes]]
    ) -> dict[int, str | None]:
        async with self._snapshot() as conn:
            return await pg_queries.verify_inclusions(conn, size, root, entries)

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
        async with self._read() as conn:
            return await pg_queries.flagged_decisions(
                conn, flag, org=org, time_from=time_from, time_to=time_to, before=before, limit=limit
            )

    async def own_decisions(self, sub: str, *, before: int | None, limit: int) -> list[LedgerRow]:
        async with self._read() as conn:
            return await pg_queries.own_decisions(conn, sub, before=before, limit=limit)

    async def stats(
        self, time_from: str | None, time_to: str | None, *, scope: str | None = None, now: str | None = None
    ) -> dict[str, Any]:
        async with self._snapshot() as conn:
            return await pg_queries.stats(conn, time_from, time_to, scope=scope, now=now)

    async def open_emergencies(self, sub: str, *, limit: int) -> list[LedgerRow]:
        async with self._read() as conn:
            return await pg_queries.open_emergencies(conn, sub, limit=limit)

    async def awaiting_approval(self, share_id: str) -> bool:
        async with self._read() as conn:
            return await pg_queries.awaiting_approval(conn, share_id)

    async def shares_awaiting_approval(self, org: str, *, limit: int) -> list[LedgerRow]:
        async with self._read() as conn:
            return await pg_queries.shares_awaiting_approval(conn, org, limit=limit)

    async def retention_schedule(self, org: str | None, *, limit: int) -> list[tuple[Any, ...]]:
        async with self._read() as conn:
            return await pg_queries.retention_schedule(conn, org, limit=limit)

    async def retention_facts(self) -> dict[str, Any]:
        async with self._snapshot() as conn:
            return await pg_queries.retention_facts(conn)

    async def advice_entries(self, *, org: str | None, sub: str | None, limit: int) -> list[LedgerRow]:
        async with self._read() as conn:
            return await pg_queries.advice_entries(conn, org=org, sub=sub, limit=limit)

    async def latest_decisions_by_decider(self, org: str | None, *, limit: int, after: int = 0) -> list[LedgerRow]:
        async with self._read() as conn:
            return await pg_queries.latest_decisions_by_decider(conn, org, limit=limit, after=after)

    async def ledger_rows(self, start: int = 0, batch: int = 2000) -> AsyncIterator[LedgerRow]:
        """Every entry from `start` in index order, `batch` rows per query (for `ledger verify` and exports)."""
        while True:
            async with self._read() as conn:
                rows = await conn.fetch(
                    "SELECT idx, time, kind, entry, leaf_hash FROM ledger WHERE idx >= $1 ORDER BY idx LIMIT $2",
                    start,
                    batch,
                )
            for r in rows:
                yield LedgerRow(*r)
            if len(rows) < batch:
                return
            start = int(rows[-1][0]) + 1


async def _check_version(conn: Conn) -> None:
    exists = await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
    current = int(await conn.fetchval(CURRENT_SQL)) if exists else 0
    pending(STEPS, current, "the PostgreSQL database")  # raises SchemaTooNew
    if current < SCHEMA_VERSION:
        raise StoreError(f"database schema {current} is older than this gateway's ({SCHEMA_VERSION}): run migrate")


async def _claim_idempotency_key(conn: Conn, idem: IdempotentWrite, now: str) -> None:
    """Inside the write transaction: if the key is taken (by a request on another node, or one that finished
    since it was looked up), raise IdempotencyHit so that nothing is written; forget a few expired keys."""
    await conn.execute(
        "DELETE FROM idempotency_keys WHERE (principal, key) IN"
        " (SELECT principal, key FROM idempotency_keys WHERE expires_at <= $1 LIMIT 64)",
        now,
    )
    row = await conn.fetchrow(
        "SELECT fingerprint, status, response FROM idempotency_keys WHERE principal = $1 AND key = $2",
        idem.principal,
        idem.key,
    )
    if row is not None:
        raise IdempotencyHit(StoredResponse(row[0], int(row[1]), json.loads(row[2])))


async def _store_idempotent_answer(conn: Conn, idem: IdempotentWrite, index: int, now: str) -> None:
    expires = ledger_time(parse_ledger_time(now) + timedelta(seconds=idem.ttl_seconds))
    await conn.execute(
        "INSERT INTO idempotency_keys (principal, key, fingerprint, status, response, created_at, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        *idem.row(index, now, expires),
    )


async def _settle_share_state(conn: Conn, share_id: str) -> None:
    left = await conn.fetchval(
        "SELECT count(*) FROM share_recipients WHERE share_id = $1 AND state = 'active'", share_id
    )
    if left == 0:
        await conn.execute("UPDATE shares SET state = $1 WHERE id = $2 AND state = 'active'", SHARE_EXHAUSTED, share_id)


# -- the backend's module interface (gateway/store/__init__.py) -----------------------------------------------


async def open_url(url: str, *, ledger_mac_key: bytes | None = None, legacy_upgrade: bool = True) -> PostgresStore:
    return await PostgresStore.open(url, ledger_mac_key=ledger_mac_key, legacy_upgrade=legacy_upgrade)


class _LoopThread:
    """An event loop of its own in a thread, so blocking callers (the CLI's `migrate`, `ledger verify`) can use
    asyncpg whether or not they are themselves inside a running loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="safeshare-pg-blocking", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


def migrate_url(url: str, *, ledger_mac_key: bytes | None = None, legacy_upgrade: bool = True) -> tuple[int, int]:
    """`safeshare migrate` on PostgreSQL (blocking): (version before, version after)."""

    async def run() -> tuple[int, int]:
        try:
            conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT)
        except UNAVAILABLE as exc:
            raise _unavailable(exc) from exc
        try:
            return await migrate(conn, ledger_mac_key, legacy_upgrade)
        finally:
            await conn.close()

    worker = _LoopThread()
    try:
        return worker.run(run())
    finally:
        worker.close()


class _Snapshot:
    """`protocol.LedgerSnapshot` over one read-only REPEATABLE READ transaction (blocking, for `ledger verify`)."""

    BATCH = 5000

    def __init__(self, worker: _LoopThread, conn: Conn, url: str) -> None:
        self._worker = worker
        self._conn = conn
        run = worker.run
        self.checkpoints = [
            (int(r[0]), bytes(r[1])) for r in run(conn.fetch("SELECT size, note FROM ledger_checkpoints"))
        ]
        start = run(conn.fetchrow("SELECT start, mac FROM ledger_mac_start WHERE id = 0"))
        self.mac_start = None if start is None else (int(start[0]), bytes(start[1]))
        self.total = int(run(conn.fetchval("SELECT count(*) FROM ledger")))
        state = run(conn.fetchval("SELECT state FROM ledger_tree WHERE id = 0"))
        self.tree = CompactRange.from_bytes(bytes(state)) if state is not None else CompactRange()
        last = run(conn.fetchval("SELECT max(idx) FROM ledger"))
        self.last_index = None if last is None else int(last)
        self._url = url
        self._exported: str | None = None

    def rows(self) -> Iterator[tuple[int, bytes, bytes, bytes | None]]:
        after = -1
        while True:
            batch = self._worker.run(
                self._conn.fetch(
                    "SELECT idx, entry, leaf_hash, mac FROM ledger WHERE idx > $1 ORDER BY idx LIMIT $2",
                    after,
                    self.BATCH,
                )
            )
            for r in batch:
                yield int(r[0]), bytes(r[1]), bytes(r[2]), None if r[3] is None else bytes(r[3])
            if len(batch) < self.BATCH:
                return
            after = int(batch[-1][0])

    def reader(self) -> _RangeReader:
        """Exports this transaction's snapshot (once) so that every worker reads exactly what it reads."""
        if self._exported is None:
            self._exported = str(self._worker.run(self._conn.fetchval("SELECT pg_export_snapshot()")))
        return _RangeReader(self._url, self._exported, self.BATCH)

    def documents(self) -> dict[str, tuple[int, int]]:
        rows = self._worker.run(self._conn.fetch("SELECT sha256, size, chunks FROM agreement_documents"))
        return {str(r[0]): (int(r[1]), int(r[2])) for r in rows}

    def document_chunks(self, sha256: str) -> Iterator[bytes]:
        count = self._worker.run(
            self._conn.fetchval("SELECT count(*) FROM agreement_document_chunks WHERE sha256 = $1", sha256)
        )
        for seq in range(int(count)):  # one piece at a time: a document is never read whole into memory here
            data = self._worker.run(
                self._conn.fetchval(
                    "SELECT data FROM agreement_document_chunks WHERE sha256 = $1 ORDER BY seq OFFSET $2 LIMIT 1",
                    sha256,
                    seq,
                )
            )
            if data is not None:
                yield bytes(data)

    def named_documents(self) -> set[str]:
        named = {str(r[0]) for r in self._worker.run(self._conn.fetch("SELECT document_sha256 FROM agreements"))}
        after = -1
        while True:
            batch = self._worker.run(
                self._conn.fetch(
                    "SELECT idx, entry FROM ledger WHERE idx > $1 AND position('document_sha256'::bytea IN entry) > 0"
                    " ORDER BY idx LIMIT $2",
                    after,
                    self.BATCH,
                )
            )
            for r in batch:
                named.update(named_in_entry(bytes(r[1])))
            if len(batch) < self.BATCH:
                return named
            after = int(batch[-1][0])


@dataclasses.dataclass(frozen=True)
class _RangeReader:
    """`protocol.LedgerRangeReader` for PostgreSQL: a worker's own connection, in a read-only REPEATABLE READ
    transaction set to the exported snapshot of `ledger verify`'s transaction (`SET TRANSACTION SNAPSHOT`), so
    all processes see one state of the ledger; rows fetched `batch` at a time by index, on an event loop of the
    worker's own (it runs in a process of its own, with no loop)."""

    url: str
    snapshot: str
    batch: int

    def rows(self, lo: int, hi: int) -> Iterator[Sequence[Any]]:
        if not _SNAPSHOT_ID.fullmatch(self.snapshot):
            raise StoreError(f"not an exported snapshot id: {self.snapshot!r}")
        loop = asyncio.new_event_loop()
        try:
            conn = loop.run_until_complete(asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT))
            try:
                loop.run_until_complete(conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
                loop.run_until_complete(conn.execute(f"SET TRANSACTION SNAPSHOT '{self.snapshot}'"))
                start = lo
                while True:
                    batch = loop.run_until_complete(
                        conn.fetch(
                            "SELECT idx, entry, leaf_hash, mac FROM ledger WHERE idx >= $1 AND idx < $2"
                            " ORDER BY idx LIMIT $3",
                            start,
                            hi,
                            self.batch,
                        )
                    )
                    yield from batch
                    if len(batch) < self.batch:
                        return
                    start = int(batch[-1][0]) + 1
            finally:
                loop.run_until_complete(conn.close())
        finally:
            loop.close()


#: What `pg_export_snapshot()` returns (e.g. 00000003-0000001B-1): checked before it is put in a statement.
_SNAPSHOT_ID = re.compile(r"[0-9A-Fa-f]+(?:-[0-9A-Fa-f]+)+")


@contextlib.contextmanager
def ledger_snapshot(url: str) -> Iterator[_Snapshot]:
    """A read-only snapshot of the whole ledger: entries, checkpoints and tree state agree in time."""
    worker = _LoopThread()
    try:
        try:
            conn = worker.run(asyncpg.connect(url, timeout=CONNECT_TIMEOUT))
        except UNAVAILABLE as exc:
            raise _unavailable(exc) from exc
        try:
            if not worker.run(conn.fetchval("SELECT to_regclass('ledger') IS NOT NULL")):
                raise StoreError(f"no ledger in the database at {url.rsplit('@', 1)[-1]}")
            tx = conn.transaction(isolation="repeatable_read", readonly=True)
            worker.run(tx.start())
            yield _Snapshot(worker, conn, url)
            worker.run(tx.rollback())
        finally:
            worker.run(conn.close())
    finally:
        worker.close()


if TYPE_CHECKING:  # mypy checks here that PostgreSQL keeps the whole contract
    from ..protocol import LedgerSnapshot, Store

    _store: type[Store] = PostgresStore
    _snapshot: type[LedgerSnapshot] = _Snapshot
