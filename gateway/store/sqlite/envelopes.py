"""Small envelopes in the SQLite file itself, written in their share's own transaction; larger ones as files.

Why (issue 15): as files, every share's envelopes cost a temp file's create, write and close, a directory, a
rename and three fsyncs (the file, its directory, the envelopes root) before the transaction that records them may
commit. Each of those calls hands the GIL over and waits to take it back from whichever thread holds it, in the
thread pool, on the event loop and in the writer in turn; the measured result was a ceiling of ~480 durable 1 KiB
shares a second with a third of the CPU idle. A share whose envelopes fit in `INLINE_LIMIT` bytes in all (a
message, a referral form) is instead a few rows of `envelope_blobs` inserted with the share's other rows: one
transaction, made durable by the commit's own fsync that covers the whole group (bench/bench_gateway.py: ~710/s
on the same machine). Anything larger spills to the envelope directory at its first flush, as before, and keeps
memory flat.

Destroying an envelope deletes its row with `PRAGMA secure_delete` on (the writer connection's): SQLite overwrites
the deleted bytes in the database file, as `destroy` on a file removes it. A copy of the page may stay in the
write-ahead log until the log is next reused, as a deleted file's blocks stay on the disk until reused; the file
key is unrecoverable either way without the recipient's private key (README, "Crypto-shredding").
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING

from ..envelopes import EnvelopeSpool, OpenEnvelope, Placement
from ..files import READ_SLICE, DirectoryEnvelopes

if TYPE_CHECKING:
    from .repository import SQLiteStore

#: A share's envelopes, together, up to this many bytes live in the database; one byte more and they are files.
#: 256 KiB covers messages and small documents, keeps a writer batch's rows small, and is one slice of the
#: encryptor's output for a 200 KiB payload to one recipient.
INLINE_LIMIT = 256 * 1024

INSERT_SQL = "INSERT INTO envelope_blobs (share_id, name, data) VALUES (?, ?, ?)"


class BlobSpool:
    """A share's envelopes held in memory until they outgrow `INLINE_LIMIT`, then written on as files.

    The digest and size are computed here, over every byte whichever way it went, so what the ledger records does
    not depend on where the envelope ends up."""

    def __init__(self, files: DirectoryEnvelopes, names: Iterable[str], limit: int = INLINE_LIMIT) -> None:
        self._files, self._limit = files, limit
        self._buf = {n: bytearray() for n in names}
        self._sha = {n: hashlib.sha256() for n in self._buf}
        self._size = dict.fromkeys(self._buf, 0)
        self._total = 0
        self._spilled: EnvelopeSpool | None = None

    def write(self, name: str, data: bytes | memoryview) -> None:
        if not data:
            return
        self._sha[name].update(data)
        self._size[name] += len(data)
        if self._spilled is not None:
            self._spilled.write(name, data)
        else:
            self._buf[name] += data  # copies: the encryptor reuses `data`'s buffer
            self._total += len(data)

    def writer(self, name: str) -> Callable[[memoryview], None]:
        return lambda data: self.write(name, data)

    async def flush(self) -> None:
        """Spill to files once the envelopes outgrow the limit (memory then stays at one slice, as for files)."""
        if self._spilled is None and self._total > self._limit:
            await self._spill()

    async def _spill(self) -> None:
        spool = await self._files.spool(list(self._buf))
        try:
            for name, buf in self._buf.items():
                await asyncio.to_thread(spool.write, name, bytes(buf))
                buf.clear()
        except BaseException:
            await spool.discard("")
            raise
        self._spilled, self._total = spool, 0

    async def seal(self) -> None:
        await self.flush()
        if self._spilled is not None:
            await self._spilled.seal()

    def digest(self, name: str) -> tuple[str, int]:
        return self._sha[name].hexdigest(), self._size[name]

    @property
    def inline(self) -> bool:
        """True while the envelopes are rows for the share's transaction, not files."""
        return self._spilled is None

    def rows(self, share_id: str) -> list[tuple[str, str, bytes]]:
        """The `envelope_blobs` rows the share's transaction inserts (`insert_blobs`)."""
        return [(share_id, name, bytes(buf)) for name, buf in self._buf.items()]

    def placement(self, share_id: str) -> Placement:
        if self._spilled is not None:
            return self._spilled.placement(share_id)
        return Placement(spool=self)

    async def discard(self, share_id: str) -> None:
        """Rows are never written outside the share's transaction, so only spilled files can be left to remove."""
        if self._spilled is not None:
            await self._spilled.discard(share_id)
        for buf in self._buf.values():
            buf.clear()


def insert_blobs(conn: sqlite3.Connection, spool: object, share_id: str) -> None:
    """Inside a share's (or a re-wrap's) transaction: the spool's envelopes become rows, if it kept them inline."""
    if isinstance(spool, BlobSpool) and spool.inline:
        conn.executemany(INSERT_SQL, spool.rows(share_id))


class _OpenBlob:
    """An envelope read from its row: the bytes are in memory, so they can be sent after the row is deleted."""

    readable_after_destroy = True

    def __init__(self, data: bytes) -> None:
        self._data, self.size = data, len(data)

    async def chunks(self) -> AsyncIterator[bytes]:
        view = memoryview(self._data)
        for start in range(0, len(view), READ_SLICE):
            yield bytes(view[start : start + READ_SLICE])

    async def close(self) -> None:
        self._data = b""


class SQLiteEnvelopes:
    """`EnvelopeStore` for the SQLite default: small envelopes as rows of its file, the others in `files`."""

    in_database = False

    def __init__(self, store: SQLiteStore, files: DirectoryEnvelopes, limit: int = INLINE_LIMIT) -> None:
        self._store, self.files, self._limit = store, files, limit

    async def spool(self, names: Iterable[str]) -> BlobSpool:
        return BlobSpool(self.files, names, self._limit)

    async def _blob(self, share_id: str, name: str, limit: int | None = None) -> bytes | None:
        column = "data" if limit is None else f"substr(data, 1, {int(limit)})"
        rows = await self._store.reader.execute_fetchall(
            f"SELECT {column} FROM envelope_blobs WHERE share_id = ? AND name = ?",  # noqa: S608 - a column expression
            (share_id, name),
        )
        rows = list(rows)
        return None if not rows else bytes(rows[0][0])

    async def open(self, share_id: str, name: str) -> OpenEnvelope | None:
        data = await self._blob(share_id, name)
        if data is not None:
            return _OpenBlob(data)
        return await self.files.open(share_id, name)

    async def head(self, share_id: str, name: str, limit: int) -> bytes | None:
        data = await self._blob(share_id, name, limit)
        return data if data is not None else await self.files.head(share_id, name, limit)

    async def destroy(self, share_id: str, names: Iterable[str]) -> None:
        names = list(names)
        await self._store.delete_envelope_blobs([(share_id, n) for n in names])
        await self.files.destroy(share_id, names)

    async def sweep(self, live: set[tuple[str, str]], min_age: float) -> int:
        """Files as `DirectoryEnvelopes` sweeps them; rows whose deletion was interrupted (the share was revoked,
        expired or used up, and the process stopped before `destroy`), only when `min_age` is 0 (this process is
        the only writer). Rows are never half-written."""
        removed = await self.files.sweep(live, min_age)
        if min_age > 0:
            # Other processes write this database (`serve --workers N`): a share one of them committed after
            # `live` was read would look dead here. Its rows are left for the full sweep `serve` makes before
            # its workers start.
            return removed
        rows = await self._store.reader.execute_fetchall("SELECT share_id, name FROM envelope_blobs")
        dead = [(str(r[0]), str(r[1])) for r in rows if (r[0], r[1]) not in live]
        if dead:
            await self._store.delete_envelope_blobs(dead)
        return removed + len(dead)
