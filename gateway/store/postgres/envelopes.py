"""Envelopes in PostgreSQL, so that every gateway node can serve every share: chunked, streamed, all or nothing.

A share's envelopes are written by a `PgSpool` before the share's transaction, in chunks of `CHUNK` bytes (one
row each, committed as they go, so memory stays flat whatever the envelope's size). They become part of a share
only when the share's own transaction inserts their `envelopes` rows (`PgSpool.place`); until then nothing refers
to them. A node killed mid-share leaves only unreferenced chunks, which `sweep` removes. Reads page through the
chunks in order, a few at a time, without holding a transaction open while a slow client downloads.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import timedelta
from typing import Any

from ..envelopes import Placement
from ..models import StoreError

#: Bytes per chunk row: large enough that a row's overhead is negligible, small enough to hold a few per node.
CHUNK = 256 * 1024
#: Chunks fetched per query while streaming an envelope out.
READ_AHEAD = 4
#: Spools younger than this are a share in progress on some node; older unreferenced ones are debris.
SPOOL_GRACE = timedelta(hours=1)

Pool = Any  # an asyncpg pool
Conn = Any  # an asyncpg connection


@contextlib.asynccontextmanager
async def _acquire(pool: Pool) -> AsyncIterator[Conn]:
    """A pooled connection; a database that cannot be reached is `StoreUnavailable` (503 with Retry-After), as
    for every other store call, never a 500 half-way through a share's upload or an envelope's download."""
    from .repository import CONNECT_TIMEOUT, UNAVAILABLE, _unavailable

    try:
        async with pool.acquire(timeout=CONNECT_TIMEOUT) as conn:
            yield conn
    except UNAVAILABLE as exc:
        raise _unavailable(exc) from exc


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
        async with _acquire(self._pool) as conn:
            await conn.execute("INSERT INTO envelope_spools (spool) VALUES ($1)", self.id)
        return self

    async def _flush(self, name: str, data: bytes) -> None:
        async with _acquire(self._pool) as conn:
            await conn.execute(
                "INSERT INTO envelope_chunks (spool, name, seq, data) VALUES ($1, $2, $3, $4)",
                self.id,
                name,
                self._seq[name],
                data,
            )
        self._seq[name] += 1

    def write(self, name: str, data: bytes | memoryview) -> None:
        """Buffer (no I/O, so the encryptor can call it from its thread); `flush` sends whole chunks on."""
        if self._sealed:
            raise StoreError("the spool is sealed")
        self._buf[name] += data
        self._sha[name].update(data)
        self._size[name] += len(data)

    def writer(self, name: str) -> Callable[[memoryview], None]:
        """`write` for one envelope, copying `data` before it returns (the encryptor reuses its buffer)."""
        buf, update = self._buf[name], self._sha[name].update

        def sink(data: memoryview) -> None:
            buf.extend(data)
            update(data)
            self._size[name] += len(data)

        return sink

    async def flush(self) -> None:
        """Write every whole chunk buffered so far (memory stays at one slice per envelope)."""
        for name, buf in self._buf.items():
            while len(buf) >= CHUNK:
                chunk = bytes(buf[:CHUNK])
                del buf[:CHUNK]
                await self._flush(name, chunk)

    async def seal(self) -> None:
        """Write what is buffered; after this every byte is committed in the database."""
        await self.flush()
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

    def placement(self, share_id: str) -> Placement:
        """The share's transaction inserts the `envelopes` rows itself (`place`, on its own connection)."""
        return Placement(spool=self)

    async def discard(self, share_id: str = "") -> None:
        """The share was not made: its chunks go (best effort; `sweep` removes what a crash leaves)."""
        async with _acquire(self._pool) as conn, conn.transaction():
            if await conn.fetchval("SELECT 1 FROM envelopes WHERE spool = $1 LIMIT 1", self.id):
                return  # placed and committed after all: the share exists
            await conn.execute("DELETE FROM envelope_chunks WHERE spool = $1", self.id)
            await conn.execute("DELETE FROM envelope_spools WHERE spool = $1", self.id)


class _OpenChunks:
    """An envelope in the database opened for streaming: its chunks are paged in `READ_AHEAD` at a time."""

    #: Destroying deletes the chunks, so a last download destroys the envelope after it has been sent.
    readable_after_destroy = False

    def __init__(self, envelopes: PgEnvelopes, spool: uuid.UUID, name: str, size: int) -> None:
        self._envelopes, self._spool, self._name, self.size = envelopes, spool, name, size

    def chunks(self) -> AsyncIterator[bytes]:
        return self._envelopes._chunks(self._spool, self._name, self.size)

    async def close(self) -> None:
        """Nothing held open between pages."""


class PgEnvelopes:
    """Reading, destroying and sweeping envelopes stored in PostgreSQL (`store/envelopes.EnvelopeStore`)."""

    in_database = True

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def spool(self, names: Iterable[str]) -> PgSpool:
        return await PgSpool(self._pool, names).open()

    async def _locate(self, share_id: str, name: str) -> tuple[uuid.UUID, int] | None:
        async with _acquire(self._pool) as conn:
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
        async for data in self._chunks(found[0], name, found[1]):
            yield data

    async def open(self, share_id: str, name: str) -> _OpenChunks | None:
        found = await self._locate(share_id, name)
        return None if found is None else _OpenChunks(self, found[0], name, found[1])

    async def _chunks(self, spool: uuid.UUID, name: str, size: int) -> AsyncIterator[bytes]:
        seq, sent = 0, 0
        while True:
            async with _acquire(self._pool) as conn:
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

    async def head(self, share_id: str, name: str, limit: int = CHUNK) -> bytes | None:
        """The first bytes of an envelope (its age header), without a download; None if it is not there."""
        found = await self._locate(share_id, name)
        if found is None:
            return None
        out = bytearray()
        async for data in self._chunks(found[0], name, found[1]):
            out += data
            if len(out) >= limit:
                break
        return bytes(out[:limit])

    async def destroy(self, share_id: str, names: Iterable[str]) -> None:
        """Remove envelopes for good (revoked, expired, used up): the ciphertext itself, not only the reference."""
        names = list(names)
        async with _acquire(self._pool) as conn, conn.transaction():
            rows = await conn.fetch(
                "DELETE FROM envelopes WHERE share_id = $1 AND name = ANY($2::text[]) RETURNING spool, name",
                share_id,
                names,
            )
            for r in rows:
                await conn.execute("DELETE FROM envelope_chunks WHERE spool = $1 AND name = $2", r[0], r[1])
            # A spool all of whose envelopes are gone goes too (nothing of the share is left to find).
            await conn.execute(
                "DELETE FROM envelope_spools s WHERE s.spool = ANY($1::uuid[])"
                " AND NOT EXISTS (SELECT 1 FROM envelopes e WHERE e.spool = s.spool)",
                list({r[0] for r in rows}),
            )

    async def sweep(self, live: set[tuple[str, str]], min_age: float = 0.0) -> int:
        """Remove envelopes the database does not vouch for, and chunks of spools that never became a share.

        `live` was read a moment ago; a share another node committed since is not in it, so envelopes whose spool
        is younger than `min_age` seconds are spared (debris of an interrupted destroy waits for a later sweep)."""
        removed = 0
        async with _acquire(self._pool) as conn:
            rows = await conn.fetch(
                "SELECT e.share_id, e.name FROM envelopes e JOIN envelope_spools s ON s.spool = e.spool"
                " WHERE s.created_at < now() - $1::interval",
                timedelta(seconds=min_age),
            )
        dead: dict[str, list[str]] = {}
        for r in rows:
            if (r[0], r[1]) not in live:
                dead.setdefault(r[0], []).append(r[1])
        for share_id, names in dead.items():
            await self.destroy(share_id, names)
            removed += len(names)
        async with _acquire(self._pool) as conn, conn.transaction():
            stale = await conn.fetch(
                "DELETE FROM envelope_spools s WHERE s.created_at < now() - $1::interval"
                " AND NOT EXISTS (SELECT 1 FROM envelopes e WHERE e.spool = s.spool) RETURNING spool",
                SPOOL_GRACE,
            )
            for r in stale:
                await conn.execute("DELETE FROM envelope_chunks WHERE spool = $1", r[0])
            removed += len(stale)
        return removed
