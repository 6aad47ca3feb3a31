"""Where envelopes live, behind one small interface: a directory, or PostgreSQL so that every node reads them.

The use cases (`service.py`, `holding.py`) and the handlers only see `EnvelopeStore` and `EnvelopeSpool`, so a
share written through one gateway node can be downloaded through any other when the envelopes are in the
database, and nothing else in the gateway knows where the bytes are. Two implementations:

- `DirectoryEnvelopes` (`files.py`): one file per envelope under a directory. The SQLite default (the home's
  `data/envelopes`) and, on PostgreSQL, the option of a directory every node mounts (`envelopes = "/path"`).
- `PgEnvelopes` (`postgres/envelopes.py`): chunks in PostgreSQL, the default when the database is PostgreSQL.

Both keep today's crash-safety: a spool is written before the share's transaction and becomes the share's only
inside that transaction (a rename, or the `envelopes` rows); whatever a crash leaves behind is swept.
Both keep memory flat: `write` only buffers or writes locally, and `flush` (awaited after every slice the
encryptor produces) sends what is buffered on, so no envelope is ever held whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

from .files import ESCROW_ID

__all__ = ["ESCROW_ID", "EnvelopeSpool", "EnvelopeStore", "OpenEnvelope", "Placement", "envelope_store"]


@dataclass(frozen=True)
class Placement:
    """How a spool becomes part of a share inside the share's transaction (passed on to the store).

    `before_commit`/`durable`: the directory store's rename and fsyncs. `spool`: an envelope spool the database
    places itself (PostgreSQL inserts its `envelopes` rows on the share's own connection)."""

    before_commit: Callable[[], None] | None = None
    durable: Mapping[object, Callable[[], None]] | None = None
    spool: object | None = None


class EnvelopeSpool(Protocol):
    """One share's envelopes (or one re-wrapped envelope) being written, before the transaction that adopts them."""

    def write(self, name: str, data: bytes | memoryview) -> None:
        """Append to an envelope. Blocking local work only (call it off the event loop); see `flush`."""
        ...

    def writer(self, name: str) -> Callable[[memoryview], None]:
        """`write` for one envelope, consuming `data` before it returns (the encryptor reuses its buffer)."""
        ...

    async def flush(self) -> None:
        """Send on what `write` buffered, so memory stays flat (await it after every slice)."""
        ...

    async def seal(self) -> None:
        """Finish writing. Every byte is durable before the database is told about the envelopes: here, or
        by `placement().durable`, which the store runs before the share's transaction commits."""
        ...

    def digest(self, name: str) -> tuple[str, int]:
        """(hex SHA-256, size) of an envelope as written (recorded in the ledger)."""
        ...

    def placement(self, share_id: str) -> Placement:
        """What the store runs inside the share's transaction to adopt these envelopes."""
        ...

    async def discard(self, share_id: str) -> None:
        """The transaction failed: remove what this spool wrote (and placed under `share_id`), never more."""
        ...


class OpenEnvelope(Protocol):
    """An envelope opened for streaming out."""

    size: int
    #: Whether the bytes can still be read after `destroy` (an open file can; database chunks cannot): if not,
    #: a last permitted download destroys the envelope once it has been sent instead of at once.
    readable_after_destroy: bool

    def chunks(self) -> AsyncIterator[bytes]:
        """The envelope's bytes in order; raises `StoreError` if it is cut short (never a truncated one as whole)."""
        ...

    async def close(self) -> None: ...


class EnvelopeStore(Protocol):
    """Every envelope operation the gateway needs; nothing outside `gateway/store/` knows where they live."""

    #: True when every node reads the same envelopes without sharing a directory (the database holds them).
    in_database: bool

    async def spool(self, names: Iterable[str]) -> EnvelopeSpool: ...

    async def open(self, share_id: str, name: str) -> OpenEnvelope | None:
        """The envelope, ready to stream with its size; None if it is not there (destroyed, or never was)."""
        ...

    async def head(self, share_id: str, name: str, limit: int) -> bytes | None:
        """The first `limit` bytes (enough for the age header); None if the envelope is not there."""
        ...

    async def destroy(self, share_id: str, names: Iterable[str]) -> None:
        """Crypto-shredding: the envelopes hold the only wrapped copies of the file key; remove them for good."""
        ...

    async def sweep(self, live: set[tuple[str, str]], min_age: float) -> int:
        """Remove envelopes the database does not vouch for and spools that never became a share, sparing what
        is younger than `min_age` seconds (another node may be writing it); returns how many were removed."""
        ...


def envelope_store(store: object, directory: Path, in_database: bool, shared: bool) -> EnvelopeStore:
    """The envelope store for this database: its own (`store.envelopes`, PostgreSQL) when `in_database`, else
    the directory (`shared`: several nodes write there, so sweeps spare what is young)."""
    kept = getattr(store, "envelopes", None)
    if in_database and kept is not None:
        return cast("EnvelopeStore", kept)
    from .files import DirectoryEnvelopes

    files = DirectoryEnvelopes(directory, shared)
    # SQLite keeps small envelopes in its own file (store/sqlite/envelopes.py); larger ones go to the directory.
    inline = getattr(store, "inline_envelopes", None)
    return files if inline is None else cast("EnvelopeStore", inline(files))
