"""Envelopes in PostgreSQL, so that every gateway node can serve every share: chunked, streamed, all or nothing.

A share's envelopes are written by a `PgSpool` before the share's transaction, in chunks of `CHUNK` bytes (one
row each, committed as they go, so memory stays flat whatever the envelope's size). They become part of a share
only when the share's own transaction inserts their `envelopes` rows (`PgSpool.place`); until then nothing refers
to them. A node killed mid-share leaves only unreferenced chunks, which `sweep` removes. Reads page through the
chunks in order, a few at a time, without holding a transaction open while a slow client downloads.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import timedelta
from typing import Any

from ..models import StoreError

#: Bytes per chunk row: large enough that a row's overhead is negligible, small enough to hold a few per node.
CHUNK = 256 * 1024
#: Chunks fetched per query while streaming an envelope out.
READ_AHEAD = 4
#: Spools younger than this are a share in progress on some node; older unreferenced ones are debris.
SPOOL_GRACE = timedelta(hours=1)

Pool = Any  # an asyncpg pool
Conn = Any  # an asyncpg connection


class PgSpool:
    """One share's envelopes being written (the PostgreSQL counterpart of `files.Spool`)."""

    def __init__(self, pool: Pool, names: Iterable[str]) -> None:
        self.id = uuid.uuid4()
        self._pool = pool
        self._buf = {n: bytearray() for n in names}
        self._seq = dict.fromkeys(self._buf, 0)
        self._sha = {n: hashlib.sha256() for n in self._buf}
        self._size = dict.fromkeys(self._buf, 0)
        self._sealed = False

    async def open(self) -> PgSpool:
        async with self._pool.acquire() as conn:
            await conn.execute("INSERT INTO envelope_spools (spool) VALUES ($1)", self.id)
        return self

    async def _flush(self, name: str, data: bytes) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO envelope_chunks (spool, name, seq, data) VALUES ($1, $2, $3, $4)",
                self.id,
                name,
                self._seq[name],
                data,
            )
        self._seq[name] += 1

    async def write(self, name: str, data: bytes) -> None:
        if self._sealed:
            raise StoreError("the spool is sealed")
        buf = self._buf[name]
        buf += data
        self._sha[name].update(data)
        self._size[name] += len(data)
        while len(buf) >= CHUNK:
            chunk = bytes(buf[:CHUNK])
            del buf[:CHUNK]
            await self._flush(name, chunk)

    async def seal(self) -> None:
        """Write what is buffered; after this every byte is committed in the database."""
        for name, buf in self._buf.items():
            if buf or self._seq[name] == 0:
                await self._flush(name, bytes(buf))
                buf.clear()
        self._sealed = True

    def digest(self, name: str) -> tuple[str, int]:
        return self._sha[name].hexdigest(), self._size[name]

    async def place(self, conn: Conn, share_id: str) -> None:
        """Inside the share's transaction: from its commit on, these envelopes are the share's."""
        if not self._sealed:
            raise StoreError("the spool must be sealed before it is placed")
        await conn.executemany(
            "INSERT INTO envelopes (share_id, name, spool, sha256, size) VALUES ($1, $2, $3, $4, $5)",
            [(share_id, n, self.id, self._sha[n].hexdigest(), self._size[n]) for n in self._buf],
        )

    async def discard(self) -> None:
        """The share was not made: its chunks go (best effort; `sweep` removes what a crash leaves)."""
        async with self._pool.acquire() as conn, conn.transaction():
            if await conn.fetchval("SELECT 1 FROM envelopes WHERE spool = $1 LIMIT 1", self.id):
                return  # placed and committed after all: the share exists
            await conn.execute("DELETE FROM envelope_chunks WHERE spool = $1", self.id)
            await conn.execute("DELETE FROM envelope_spools WHERE spool = $1", self.id)


class PgEnvelopes:
    """Reading, destroying and sweeping envelopes stored in PostgreSQL."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def spool(self, names: Iterable[str]) -> PgSpool:
        return await PgSpool(self._pool, names).open()

    async def _locate(self, share_id: str, name: str) -> tuple[uuid.UUID, int] | None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT spool, size FROM envelopes WHERE share_id = $1 AND name = $2", share_id, name
            )
        return None if row is None else (row[0], int(row[1]))

    async def exists(self, share_id: str, name: str) -> bool:
        return await self._locate(share_id, name) is not None

    async def size(self, share_id: str, name: str) -> int | None:
        found = await self._locate(share_id, name)
        return None if found is None else found[1]

    async def read(self, share_id: str, name: str) -> AsyncIterator[bytes]:
        """The envelope's bytes in order, `READ_AHEAD` chunks per query; raises StoreError if it is gone or cut
        short meanwhile (destroyed while being read), so a truncated envelope is never passed off as whole."""
        found = await self._locate(share_id, name)
        if found is None:
            raise StoreError("envelope not found")
        spool, size = found
        seq, sent = 0, 0
        while True:
            async with self._pool.acquire() as conn:
                rows = await conn.fetch(
                    "SELECT seq, data FROM envelope_chunks WHERE spool = $1 AND name = $2 AND seq >= $3"
                    " ORDER BY seq LIMIT $4",
                    spool,
                    name,
                    seq,
                    READ_AHEAD,
                )
            if not rows:
                break
            for r in rows:
                if int(r[0]) != seq:
                    raise StoreError("envelope chunk missing")
                data = bytes(r[1])
                sent += len(data)
                seq += 1
                if data:
                    yield data
        if sent != size:
            raise StoreError("envelope incomplete (destroyed while being read)")

    async def head(self, share_id: str, name: str, limit: int = CHUNK) -> bytes:
        """The first bytes of an envelope (its age header), without a download."""
        out = bytearray()
        async for data in self.read(share_id, name):
            out += data
            if len(out) >= limit:
                break
        return bytes(out[:limit])

    async def destroy(self, share_id: str, names: Iterable[str]) -> None:
        """Remove envelopes for good (revoked, expired, used up): the ciphertext itself, not only the reference."""
        names = list(names)
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "DELETE FROM envelopes WHERE share_id = $1 AND name = ANY($2::text[]) RETURNING spool, name",
                share_id,
                names,
            )
            for r in rows:
                await conn.execute("DELETE FROM envelope_chunks WHERE spool = $1 AND name = $2", r[0], r[1])

    async def sweep(self, live: set[tuple[str, str]]) -> int:
        """Remove envelopes the database does not vouch for, and chunks of spools that never became a share."""
        removed = 0
        async with self._pool.acquire() as conn:
            rows = await conn.fetch("SELECT share_id, name FROM envelopes")
        dead: dict[str, list[str]] = {}
        for r in rows:
            if (r[0], r[1]) not in live:
                dead.setdefault(r[0], []).append(r[1])
        for share_id, names in dead.items():
            await self.destroy(share_id, names)
            removed += len(names)
        async with self._pool.acquire() as conn, conn.transaction():
            stale = await conn.fetch(
                "DELETE FROM envelope_spools s WHERE s.created_at < now() - $1::interval"
                " AND NOT EXISTS (SELECT 1 FROM envelopes e WHERE e.spool = s.spool) RETURNING spool",
                SPOOL_GRACE,
            )
            for r in stale:
                await conn.execute("DELETE FROM envelope_chunks WHERE spool = $1", r[0])
            removed += len(stale)
        return removed
