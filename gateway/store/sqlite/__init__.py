"""The embedded store: one SQLite file in WAL mode with `synchronous=FULL` (the ledger must survive power loss).

Split by idea: `schema.py` (tables, triggers, versioned migrations), `writer.py` (the single writer thread with
group commit), `tree.py` (the ledger's Merkle tree upkeep and proofs), `repository.py` (`SQLiteStore`, the
`protocol.Store` contract), `queries.py` (the auditor's read-side SQL and its index plans), `held.py` and
`agreements.py` (the held-share and agreement records), `backend.py` (what `gateway.store.open_store` calls).
Only `gateway/store/` imports this package (tests/test_layers.py).
"""

from .backend import ledger_snapshot, migrate_url, open_url, schema_version
from .repository import SQLiteStore
from .schema import ADDED_COLUMNS, SCHEMA_VERSION, STATS_INDEXES, LedgerConnection, create_schema
from .tree import TreeReader, _stored_compact, append_entry, check_extension, load_tree, mac_start

__all__ = [
    "ADDED_COLUMNS",
    "SCHEMA_VERSION",
    "STATS_INDEXES",
    "LedgerConnection",
    "SQLiteStore",
    "TreeReader",
    "_stored_compact",
    "append_entry",
    "check_extension",
    "create_schema",
    "ledger_snapshot",
    "load_tree",
    "mac_start",
    "migrate_url",
    "open_url",
    "schema_version",
]
