"""The SQLite backend's entry points, called by `gateway.store` (`open_store`, `migrate`, `ledger_snapshot`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ...ledger.merkle import CompactRange
from ..agreements import named_in_entry
from ..models import (
    StoreError,
)
from .repository import SQLiteStore
from .schema import SCHEMA_VERSION, create_schema, current_version

# -- the backend's entry points, called by `gateway.store` (open_store, migrate, ledger_snapshot) ---------------


def _path(url: str) -> Path:
    from .. import sqlite_path

    path = sqlite_path(url)
    if path is None:
        raise StoreError(f"not an SQLite database: {url}")
    return path


async def open_url(url: str, *, ledger_mac_key: bytes | None = None, legacy_upgrade: bool = True) -> SQLiteStore:
    return await SQLiteStore.open(_path(url), ledger_mac_key=ledger_mac_key, legacy_upgrade=legacy_upgrade)


def migrate_url(url: str, *, ledger_mac_key: bytes | None = None, legacy_upgrade: bool = True) -> tuple[int, int]:
    before = create_schema(_path(url), ledger_mac_key, legacy_upgrade)
    return before, SCHEMA_VERSION


def schema_version(path: Path) -> int:
    """The schema version of the database at `path` (0: no database, or an empty one)."""
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return current_version(conn)
    finally:
        conn.close()


class _Snapshot:
    """`protocol.LedgerSnapshot` over one read-only SQLite transaction."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.checkpoints = [(int(r[0]), bytes(r[1])) for r in conn.execute("SELECT size, note FROM ledger_checkpoints")]
        has_start = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'ledger_mac_start'").fetchone()
        start = conn.execute("SELECT start, mac FROM ledger_mac_start WHERE id = 0").fetchone() if has_start else None
        self.mac_start = None if start is None else (int(start[0]), bytes(start[1]))
        self.total = int(conn.execute("SELECT count(*) FROM ledger").fetchone()[0])
        state = conn.execute("SELECT state FROM ledger_tree WHERE id = 0").fetchone()
        self.tree = CompactRange.from_bytes(bytes(state[0])) if state else CompactRange()
        self._has_mac = "mac" in {r[1] for r in conn.execute("PRAGMA table_info(ledger)")}
        last = conn.execute("SELECT max(idx) FROM ledger").fetchone()[0]
        self.last_index = None if last is None else int(last)
        self._path = path

    def rows(self) -> Iterator[tuple[int, bytes, bytes, bytes | None]]:
        sql = (
            "SELECT idx, entry, leaf_hash, mac FROM ledger ORDER BY idx"
            if self._has_mac
            else "SELECT idx, entry, leaf_hash, NULL FROM ledger ORDER BY idx"
        )
        for r in self._conn.execute(sql):
            yield int(r[0]), bytes(r[1]), bytes(r[2]), None if r[3] is None else bytes(r[3])

    def reader(self) -> _RangeReader:
        return _RangeReader(str(self._path), self._has_mac)

    def documents(self) -> dict[str, tuple[int, int]]:
        if not self._has_table("agreement_documents"):
            return {}
        rows = self._conn.execute("SELECT sha256, size, chunks FROM agreement_documents")
        return {_text(r[0]): (int(r[1]), int(r[2])) for r in rows}

    def document_chunks(self, sha256: str) -> Iterator[bytes]:
        for (data,) in self._conn.execute(
            "SELECT data FROM agreement_document_chunks WHERE sha256 = ? ORDER BY seq", (sha256,)
        ):
            yield bytes(data) if isinstance(data, bytes | memoryview) else str(data).encode()

    def named_documents(self) -> set[str]:
        named = {_text(r[0]) for r in self._conn.execute("SELECT document_sha256 FROM agreements")}
        for (data,) in self._conn.execute("SELECT entry FROM ledger WHERE instr(entry, 'document_sha256') > 0"):
            named.update(named_in_entry(bytes(data) if isinstance(data, bytes | memoryview) else str(data).encode()))
        return named

    def _has_table(self, name: str) -> bool:
        return self._conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None


@dataclass(frozen=True)
class _RangeReader:
    """`protocol.LedgerRangeReader` for SQLite: each worker opens the file read-only (`mode=ro`).

    Not `immutable=1`: that would skip the write-ahead log, whose committed pages (the newest entries, until the
    gateway checkpoints the WAL) are part of the ledger. SQLite cannot share one read transaction between
    processes, so a worker's transaction starts after the snapshot's; the ledger is append-only and the ranges
    end at the snapshot's last index, so a gateway appending meanwhile changes nothing read. Rows come as the
    file holds them (`text_factory=bytes`: an entry rewritten as TEXT is read as its bytes, not decoded), a
    large memory map saves copying pages, and the cursor is iterated directly: no per-row conversion here.
    """

    path: str
    has_mac: bool

    def rows(self, lo: int, hi: int) -> Iterator[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{quote(self.path)}?mode=ro", uri=True)
        try:
            conn.text_factory = bytes
            conn.execute("PRAGMA mmap_size = 1073741824")
            mac = "mac" if self.has_mac else "NULL"
            yield from conn.execute(
                f"SELECT idx, entry, leaf_hash, {mac} FROM ledger WHERE idx >= ? AND idx < ? ORDER BY idx",  # noqa: S608 - a column name or NULL
                (lo, hi),
            )
        finally:
            conn.close()


def _text(value: object) -> str:
    """A TEXT column read with `text_factory=bytes` (or not)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


@contextmanager
def ledger_snapshot(url: str) -> Iterator[_Snapshot]:
    """A read-only snapshot (one transaction: entries, checkpoints and tree state agree in time)."""
    path = _path(url)
    if not path.exists():
        raise StoreError(f"no ledger at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        conn.execute("BEGIN")
        yield _Snapshot(conn, path)
    finally:
        conn.close()


if TYPE_CHECKING:  # mypy checks here that SQLite keeps the whole contract
    from ..protocol import LedgerSnapshot, Store

    _store: type[Store] = SQLiteStore
    _snapshot: type[LedgerSnapshot] = _Snapshot
