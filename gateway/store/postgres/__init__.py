"""The PostgreSQL store (asyncpg), for several gateway nodes on one database; split by idea like the SQLite one:

- `schema`: the tables, their numbered migrations, the append-only triggers and the application role's grants;
- `repository`: `PostgresStore` (the `protocol.Store`), its per-node group-committing writer, and the module
  interface the factory calls (`open_url`, `migrate_url`, `ledger_snapshot`);
- `ledger`: appends under the coordinator row, the tree state, proofs, the checkpoint guard's extension check;
- `queries`: the auditor's read side; `held`, `agreements`: held shares and claim codes, agreement versions;
- `envelopes`: envelopes stored in chunks in the database.
"""

from ..models import StoreUnavailable
from .repository import CONNECT_TIMEOUT, PostgresStore, ledger_snapshot, migrate_url, open_url

__all__ = ["CONNECT_TIMEOUT", "PostgresStore", "StoreUnavailable", "ledger_snapshot", "migrate_url", "open_url"]
