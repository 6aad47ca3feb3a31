"""Schema versions: one mechanism for every backend — numbered steps, a `schema_version` table, refuse what is newer.

Each backend lists its steps (`sqlite/schema.py: STEPS`, `postgres`'s own) as `Step(version, description,
apply)`, numbered 1, 2, 3 … without gaps; `apply` gets the backend's connection inside the migration's transaction.
The backend reads the database's version (the highest row of `schema_version`), asks `pending` which steps to
run, runs each and records it (`RECORD_SQL`) in that same transaction, so a crash leaves the database at the
old version or the new one, never between. A database newer than the code's last step is refused
(`SchemaTooNew`): the code would misread or damage what it does not know, so start-up stops and says so.

Steps run at start-up (`open_store`) and with `safeshare migrate`; several processes starting at once are safe
because each backend takes a lock for the whole migration (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: an advisory
lock) and re-reads the version under it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from .models import SchemaTooNew, StoreError

C = TypeVar("C")

#: The table every backend keeps (same columns; `applied_at` is an RFC 3339 UTC time as text).
SCHEMA_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
)
#: Parameter style differs between drivers ('?' for sqlite3, '$1' for asyncpg): each backend formats this.
RECORD_SQL = "INSERT INTO schema_version (version, description, applied_at) VALUES ({0}, {1}, {2})"
CURRENT_SQL = "SELECT coalesce(max(version), 0) FROM schema_version"


@dataclass(frozen=True)
class Step(Generic[C]):
    version: int
    description: str
    apply: Callable[[C], object]


def latest(steps: Sequence[Step[C]]) -> int:
    """The version the code brings a database to."""
    check_numbering(steps)
    return steps[-1].version if steps else 0


def check_numbering(steps: Sequence[Step[C]]) -> None:
    """Steps are 1, 2, 3 … in order: a gap or a repeat is a programming error, caught by the tests at once."""
    for expected, step in enumerate(steps, start=1):
        if step.version != expected:
            raise StoreError(f"migration steps must be numbered 1, 2, 3 …: found {step.version} at place {expected}")


def pending(steps: Sequence[Step[C]], current: int, where: str = "the database") -> list[Step[C]]:
    """The steps to run on a database at `current`, in order; refuses one newer than the code."""
    newest = latest(steps)
    if current > newest:
        raise SchemaTooNew(
            f"{where} has schema version {current}, newer than this SafeShare knows ({newest}): it was written by a"
            " newer release. Run that release (or newer); this one will not start against it."
        )
    return [s for s in steps if s.version > current]
