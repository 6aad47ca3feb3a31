"""Partnership agreements' versions on PostgreSQL (`protocol.AgreementRecords`): the same rows and rules as
`sqlite/agreements.py`, each change one transaction with its ledger entry through the node's writer.

The documents are in the database too (`schema._V2`, `store/agreements.py`), so every node serves every document
(README, "Several nodes"). Storing one needs no ledger append, so it does not wait for the writer's coordinator
lock: it is its own transaction on a pooled connection, and a document another node stored first is kept as it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..agreements import (
    AGREEMENT_COLUMNS,
    AgreementExists,
    agreement_from_row,
    agreement_insert,
    chunk_count,
    chunks,
    digest,
    is_sha256,
)
from ..models import STATUS_RETIRED, Agreement, StoreError

if TYPE_CHECKING:
    from .repository import PostgresStore

Conn = Any


class PgAgreementStore:
    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def put_document(self, data: bytes) -> str:
        sha256 = digest(data)
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        async with self._store._read() as conn, conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO agreement_documents (sha256, size, chunks, created_at) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (sha256) DO NOTHING RETURNING 1",
                sha256,
                len(data),
                chunk_count(len(data)),
                created,
            )
            if inserted:  # else the same bytes are already there (or another node is committing them now)
                await conn.executemany(
                    "INSERT INTO agreement_document_chunks (sha256, seq, data) VALUES ($1, $2, $3)",
                    [(sha256, seq, piece) for seq, piece in chunks(data)],
                )
        return sha256

    async def document_size(self, sha256: str) -> int | None:
        if not is_sha256(sha256):
            return None
        async with self._store._read() as conn:
            size = await conn.fetchval("SELECT size FROM agreement_documents WHERE sha256 = $1", sha256)
        return None if size is None else int(size)

    async def document_chunks(self, sha256: str) -> AsyncIterator[bytes]:
        if not is_sha256(sha256):
            return
        async with self._store._read() as conn:
            count = await conn.fetchval("SELECT chunks FROM agreement_documents WHERE sha256 = $1", sha256)
        for seq in range(int(count or 0)):
            async with self._store._read() as conn:  # one short read per chunk: no connection held while sending
                piece = await conn.fetchval(
                    "SELECT data FROM agreement_document_chunks WHERE sha256 = $1 AND seq = $2", sha256, seq
                )
            if piece is None:  # cannot happen: chunks are written with their document, and never deleted
                raise StoreError(f"agreement document {sha256} lacks chunk {seq}")
            yield bytes(piece)

    async def add_version(
        self, fields: Mapping[str, Any], document: Mapping[str, Any], entry_for: Callable[[int], Mapping[str, Any]]
    ) -> tuple[int, int]:
        async def op(conn: Conn) -> tuple[int, int]:
            version = int(
                await conn.fetchval("SELECT coalesce(max(version), 0) FROM agreements WHERE id = $1", fields["id"])
            )
            version += 1
            entry = entry_for(version)
            row = agreement_insert(fields, version, document, entry["time"])
            await conn.execute(
                f"INSERT INTO agreements ({', '.join(row)})"  # noqa: S608 - column names are fixed text
                f" VALUES ({', '.join(f'${i}' for i in range(1, len(row) + 1))})",
                *row.values(),
            )
            return version, await self._store._append(conn, entry)

        return await self._store._submit(op)

    async def retire(
        self, agreement_id: str, reason: str, entry_for: Callable[[Agreement], Mapping[str, Any]]
    ) -> tuple[Agreement, int] | None:
        async def op(conn: Conn) -> tuple[Agreement, int] | None:
            row = await conn.fetchrow(
                f"SELECT {AGREEMENT_COLUMNS} FROM agreements WHERE id = $1 ORDER BY version DESC LIMIT 1",  # noqa: S608
                agreement_id,
            )
            if row is None:
                return None
            current = agreement_from_row(row)
            if current.status == STATUS_RETIRED:
                raise AgreementExists(agreement_id)
            entry = entry_for(current)
            await conn.execute(
                "UPDATE agreements SET retired_at = $1, retired_reason = $2 WHERE id = $3 AND version = $4",
                entry["time"],
                reason,
                agreement_id,
                current.version,
            )
            return current, await self._store._append(conn, entry)

        return await self._store._submit(op)

    async def _select(self, where: str, *args: Any) -> list[Agreement]:
        sql = f'SELECT {AGREEMENT_COLUMNS} FROM agreements WHERE {where} ORDER BY id COLLATE "C", version'  # noqa: S608
        async with self._store._read() as conn:
            return [agreement_from_row(r) for r in await conn.fetch(sql, *args)]

    async def current(self) -> dict[str, Agreement]:
        rows = await self._select("version = (SELECT max(v.version) FROM agreements v WHERE v.id = agreements.id)")
        return {a.id: a for a in rows}

    async def versions(self, agreement_id: str) -> list[Agreement]:
        return await self._select("id = $1", agreement_id)

    async def version(self, agreement_id: str, version: int) -> Agreement | None:
        rows = await self._select("id = $1 AND version = $2", agreement_id, version)
        return rows[0] if rows else None

    async def by_document(self, sha256: str) -> Agreement | None:
        rows = await self._select("document_sha256 = $1", sha256)
        return rows[-1] if rows else None

    async def any_in_force(self) -> bool:
        async with self._store._read() as conn:
            found = await conn.fetchval(
                "SELECT 1 FROM agreements a WHERE retired_at IS NULL"
                " AND version = (SELECT max(v.version) FROM agreements v WHERE v.id = a.id) LIMIT 1"
            )
        return found is not None
