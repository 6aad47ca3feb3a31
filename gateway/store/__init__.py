"""Persistence: recipients, shares, envelopes' metadata and the ledger, behind one interface (`protocol.Store`).

Every state change is one transaction that also appends its ledger entry, so the record can never disagree
with what happened. SQLite (`store/sqlite/`) is the embedded default; PostgreSQL (`store/postgres.py`,
issue 11) implements the same Protocols. This module is the only place outside a backend that knows backends
exist: `open_store` picks one from a database URL, so the use cases, handlers and CLI never name one.

A backend module provides three functions, which this module calls:
- `async open_url(url, *, ledger_mac_key, legacy_upgrade) -> protocol.Store` (migrating first, like `migrate_url`);
- `migrate_url(url, *, ledger_mac_key, legacy_upgrade) -> (version before, version after)`, raising
  `models.SchemaTooNew` for a schema newer than the code (`store/migrations.py` holds the versioned steps);
- `ledger_snapshot(url) -> contextmanager[protocol.LedgerSnapshot]` for `safeshare ledger verify`.
"""

from __future__ import annotations

import importlib
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from .models import (
    FetchOutcome,
    LedgerRow,
    Recipient,
    RecipientExists,
    SchemaTooNew,
    Share,
    ShareRecipient,
    StoreError,
    StoreUnavailable,
)
from .protocol import LedgerSnapshot, Store

SQLITE_SCHEME = "sqlite://"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class UnknownDatabase(StoreError):
    """The database URL names no backend this gateway has (a clear start-up error, never a traceback)."""


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL or a plain path; None for another scheme.

    Like a file: URL, `sqlite:///abs/path` is the absolute path /abs/path (`sqlite:////abs/path` too) and
    `sqlite://rel/path` a relative one.
    """
    if url.startswith(SQLITE_SCHEME):
        rest = url[len(SQLITE_SCHEME) :]
        while rest.startswith("//"):
            rest = rest[1:]
        return Path(rest) if rest else None
    if "://" in url:
        return None
    return Path(url)


def _postgres() -> Any:
    """The PostgreSQL backend, imported only when asked for (asyncpg is not needed to run on SQLite)."""
    try:
        return importlib.import_module(".postgres", __name__)
    except ModuleNotFoundError as exc:
        if exc.name not in (f"{__name__}.postgres", "asyncpg"):
            raise
        raise UnknownDatabase(
            "a postgresql:// database was given, but this gateway has no PostgreSQL store"
            f" ({exc.name} is not installed); use an SQLite path or install SafeShare's PostgreSQL support"
        ) from None


def _backend(url: str) -> tuple[str, Any]:
    if url.startswith(POSTGRES_SCHEMES):
        return "postgres", _postgres()
    path = sqlite_path(url)
    if path is None:
        scheme = url.split("://", 1)[0]
        raise UnknownDatabase(f"unknown database scheme {scheme!r}: use sqlite:///path/to/file or postgresql://…")
    from . import sqlite

    return "sqlite", sqlite


def describe(url: str) -> str:
    """The database for messages, without a password (`postgresql://user:secret@host/db` → `postgresql://host/db`)."""
    if url.startswith(POSTGRES_SCHEMES) and "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://{rest.rsplit('@', 1)[1]}"
    return url


async def open_store(url: str, *, ledger_mac_key: bytes | None = None, legacy_upgrade: bool = True) -> Store:
    """Open (creating or migrating the schema: `migrate`) the store at `url`.

    `ledger_mac_key` authenticates every entry appended (gateway/ledger/mac.py); `legacy_upgrade` says whether a
    ledger without a MAC start record may get one now (first start) or must be reported (see home.py).
    Refuses, with `SchemaTooNew`, a database whose schema is newer than this code.
    """
    _, module = _backend(url)
    store: Store = await module.open_url(url, ledger_mac_key=ledger_mac_key, legacy_upgrade=legacy_upgrade)
    return store


def migrate(url: str, *, ledger_mac_key: bytes | None = None, legacy_upgrade: bool = True) -> tuple[int, int]:
    """Bring the schema at `url` up to date (blocking): (version before, version after)."""
    _, module = _backend(url)
    result: tuple[int, int] = module.migrate_url(url, ledger_mac_key=ledger_mac_key, legacy_upgrade=legacy_upgrade)
    return result


def ledger_snapshot(url: str) -> AbstractContextManager[LedgerSnapshot]:
    """A read-only, consistent snapshot of the whole ledger for `ledger verify` (blocking; raises StoreError when
    there is no ledger at `url`)."""
    _, module = _backend(url)
    snapshot: AbstractContextManager[LedgerSnapshot] = module.ledger_snapshot(url)
    return snapshot


__all__ = [
    "FetchOutcome",
    "LedgerRow",
    "LedgerSnapshot",
    "Recipient",
    "RecipientExists",
    "SchemaTooNew",
    "Share",
    "ShareRecipient",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "UnknownDatabase",
    "describe",
    "ledger_snapshot",
    "migrate",
    "open_store",
    "sqlite_path",
]
