"""Agreement versions in SQLite (tables in `schema.SCHEMA`), each change one transaction with its ledger entry;
their documents in chunks (`schema.AGREEMENT_DOCUMENTS`, `store/agreements.py`).

A version's row is written once and never edited; retiring the current version sets its retirement columns
(the one state change an agreement has), in the same transaction as its ledger entry.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

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
from .repository import SQLiteStore
from .tree import append_entry


class AgreementStore:
    """`protocol.AgreementRecords` through the main store's writer thread and reader connection."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    async def put_document(self, data: bytes) -> str:
        """Store the document's chunks through the writer thread (one transaction); its SHA-256."""
        sha256 = digest(data)
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        def op(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM agreement_documents WHERE sha256 = ?", (sha256,)).fetchone():
                return  # content-addressed: the same bytes are already there
            conn.execute(
                "INSERT INTO agreement_documents (sha256, size, chunks, created_at) VALUES (?, ?, ?, ?)",
                (sha256, len(data), chunk_count(len(data)), created),
            )
            conn.executemany(
                "INSERT INTO agreement_document_chunks (sha256, seq, data) VALUES (?, ?, ?)",
                ((sha256, seq, piece) for seq, piece in chunks(data)),
            )

        await self._store._writer.submit(op)
        return sha256

    async def document_size(self, sha256: str) -> int | None:
        if not is_sha256(sha256):
            return None
        async with self._store.reader.execute(
            "SELECT size FROM agreement_documents WHERE sha256 = ?", (sha256,)
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else int(row[0])

    async def document_chunks(self, sha256: str) -> AsyncIterator[bytes]:
        if not is_sha256(sha256):
            return
        async with self._store.reader.execute(
            "SELECT chunks FROM agreement_documents WHERE sha256 = ?", (sha256,)
        ) as cur:
            row = await cur.fetchone()
        for seq in range(0 if row is None else int(row[0])):
            async with self._store.reader.execute(
                "SELECT data FROM agreement_document_chunks WHERE sha256 = ? AND seq = ?", (sha256, seq)
            ) as cur:
                piece = await cur.fetchone()
            if piece is None:  # cannot happen: chunks are written with their document, and never deleted
                raise StoreError(f"agreement document {sha256} lacks chunk {seq}")
            yield bytes(piece[0])

    async def add_version(
        self, fields: Mapping[str, Any], document: Mapping[str, Any], entry_for: Callable[[int], Mapping[str, Any]]
    ) -> tuple[int, int]:
        """Record version n+1 of an agreement with its ledger entry; returns (version, ledger index)."""

        def op(conn: sqlite3.Connection) -> tuple[int, int]:
            row = conn.execute("SELECT coalesce(max(version), 0) FROM agreements WHERE id = ?", (fields["id"],))
            version = int(row.fetchone()[0]) + 1
            entry = entry_for(version)
            values = agreement_insert(fields, version, document, entry["time"])
            conn.execute(
                f"INSERT INTO agreements ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",  # noqa: S608
                tuple(values.values()),
            )
            return version, append_entry(conn, entry)

        return await self._store._writer.submit(op)

    async def retire(
        self, agreement_id: str, reason: str, entry_for: Callable[[Agreement], Mapping[str, Any]]
    ) -> tuple[Agreement, int] | None:
        """Retire the current version, with its ledger entry; None when there is no such agreement."""

        def op(conn: sqlite3.Connection) -> tuple[Agreement, int] | None:
            row = conn.execute(
                f"SELECT {AGREEMENT_COLUMNS} FROM agreements WHERE id = ? ORDER BY version DESC LIMIT 1",  # noqa: S608
                (agreement_id,),
            ).fetchone()
            if row is None:
                return None
            current = agreement_from_row(row)
            if current.status == STATUS_RETIRED:
                raise AgreementExists(agreement_id)
            entry = entry_for(current)
            conn.execute(
                "UPDATE agreements SET retired_at = ?, retired_reason = ? WHERE id = ? AND version = ?",
                (entry["time"], reason, agreement_id, current.version),
            )
            return current, append_entry(conn, entry)

        return await self._store._writer.submit(op)

    async def _select(self, where: str, args: tuple[Any, ...]) -> list[Agreement]:
        sql = f"SELECT {AGREEMENT_COLUMNS} FROM agreements WHERE {where} ORDER BY id, version"  # noqa: S608 - fixed text
        async with self._store.reader.execute(sql, args) as cur:
            return [agreement_from_row(r) for r in await cur.fetchall()]

    async def current(self) -> dict[str, Agreement]:
        """The latest version of every agreement (retired ones included: naming them is a problem to report)."""
        rows = await self._select("version = (SELECT max(v.version) FROM agreements v WHERE v.id = agreements.id)", ())
        return {a.id: a for a in rows}

    async def versions(self, agreement_id: str) -> list[Agreement]:
        return await self._select("id = ?", (agreement_id,))

    async def version(self, agreement_id: str, version: int) -> Agreement | None:
        rows = await self._select("id = ? AND version = ?", (agreement_id, version))
        return rows[0] if rows else None

    async def by_document(self, sha256: str) -> Agreement | None:
        rows = await self._select("document_sha256 = ?", (sha256,))
        return rows[-1] if rows else None

    async def any_in_force(self) -> bool:
        async with self._store.reader.execute(
            "SELECT 1 FROM agreements a WHERE retired_at IS NULL"
            " AND version = (SELECT max(v.version) FROM agreements v WHERE v.id = a.id) LIMIT 1"
        ) as cur:
            return await cur.fetchone() is not None
