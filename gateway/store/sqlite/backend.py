"""The SQLite backend's entry points, called by `gateway.store` (`open_store`, `migrate`, `ledger_snapshot`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ...ledger.merkle import CompactRange
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

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.checkpoints = [(int(r[0]), bytes(r[1])) for r in conn.execute("SELECT size, note FROM ledger_checkpoints")]
        has_start = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'ledger_mac_start'").fetchone()
        start = conn.execute("SELECT start, mac FROM ledger_mac_start WHERE id = 0").fetchone() if has_start else None
        self.mac_start = None if start is None else (int(start[0]), bytes(start[1]))
        self.total = int(conn.execute("SELECT count(*) FROM ledger").fetchone()[0])
        state = conn.execute("SELECT state FROM ledger_tree WHERE id = 0").fetchone()
        self.tree = CompactRange.from_bytes(bytes(state[0])) if state else CompactRange()
        self._has_mac = "mac" in {r[1] for r in conn.execute("PRAGMA table_info(ledger)")}

    def rows(self) -> Iterator[tuple[int, bytes, bytes, bytes | None]]:
        sql = (
            "SELECT idx, entry, leaf_hash, mac FROM ledger ORDER BY idx"
            if self._has_mac
            else "SELECT idx, entry, leaf_hash, NULL FROM ledger ORDER BY idx"
        )
        for r in self._conn.execute(sql):
            yield int(r[0]), bytes(r[1]), bytes(r[2]), None if r[3] is None else bytes(r[3])


@contextmanager
def ledger_snapshot(url: str) -> Iterator[_Snapshot]:
    """A read-only snapshot (one transaction: entries, checkpoints and tree state agree in time)."""
    path = _path(url)
    if not path.exists():
        raise StoreError(f"no ledger at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        conn.execute("BEGIN")
        yield _Snapshot(conn)
    finally:
        conn.close()


if TYPE_CHECKING:  # mypy checks here that SQLite keeps the whole contract
    from ..protocol import LedgerSnapshot, Store

    _store: type[Store] = SQLiteStore
    _snapshot: type[LedgerSnapshot] = _Snapshot
