"""`safeshare ledger verify` re-hashes the agreement documents the ledger names (issue 11: tamper-evidence against
what a database superuser can still do). Documents are immutable by trigger, but whoever can drop or disable a
trigger can change the bytes a share was made under, or remove them; the ledger names each document by its
SHA-256, so verification must catch both, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from . import pg
from .test_cli import safeshare

DOC = b"%PDF-1.4\n% county protocol\n" + bytes(range(256)) * 1200 + b"\n%%EOF\n"  # two 256 KiB pieces


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    with pg.database_for_sync_fixture() as dsn:
        yield dsn


def _run_sql(home: Path, dsn: str | None, statements: list[str]) -> None:
    """As someone with the database's full rights (not the gateway): SQLite's file, PostgreSQL's superuser."""
    if dsn is None:
        with sqlite3.connect(home / "data" / "safeshare.sqlite3") as db:
            for sql in statements:
                db.execute(sql)
        return
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            for sql in statements:
                await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def _triggers_off(dsn: str | None) -> list[str]:
    if dsn is not None:
        return [f"ALTER TABLE {t} DISABLE TRIGGER USER" for t in ("agreement_documents", "agreement_document_chunks")]
    return [
        f"DROP TRIGGER {name}"
        for name in (
            "agreement_documents_no_update",
            "agreement_documents_no_delete",
            "agreement_document_chunks_no_update",
            "agreement_document_chunks_no_delete",
        )
    ]


SHA = hashlib.sha256(DOC).hexdigest()
TAMPERING: dict[str, tuple[Callable[[str | None], list[str]], str]] = {
    "bytes changed": (
        lambda dsn: [
            "UPDATE agreement_document_chunks SET data = "
            + ("decode('00', 'hex')" if dsn else "x'00'")
            + f" WHERE sha256 = '{SHA}' AND seq = 1"
        ],
        f"agreement document {SHA} has been changed",
    ),
    "removed": (
        lambda dsn: [
            f"DELETE FROM agreement_document_chunks WHERE sha256 = '{SHA}'",
            f"DELETE FROM agreement_documents WHERE sha256 = '{SHA}'",
        ],
        f"agreement document {SHA} is named by the ledger or an agreement but is not in the database",
    ),
}


@pytest.mark.parametrize("how", sorted(TAMPERING))
def test_a_changed_or_removed_agreement_document_fails_verification(
    database: str | None, tmp_path: Path, how: str
) -> None:
    home = tmp_path / "home"
    db = ("--database", database) if database else ()
    safeshare(home, *db, "init")
    doc = tmp_path / "protocol.pdf"
    doc.write_bytes(DOC)
    safeshare(
        home, *db, "agreement", "add", "county-protocol", "--title", "County overarching protocol", "--kind",
        "protocol", "--scope", "both", "--signatory", "County Council", "--review-date", "2099-06-30",
        "--document", str(doc),
    )  # fmt: skip
    # Untouched: the entries are consistent (no gateway has signed a checkpoint yet, hence status 3, not 1).
    before = safeshare(home, *db, "ledger", "verify", check=False)
    assert before.returncode == 3, before.stderr
    assert "agreement document" not in before.stderr

    tamper, message = TAMPERING[how]
    _run_sql(home, database, _triggers_off(database) + tamper(database))
    after = safeshare(home, *db, "ledger", "verify", check=False)
    assert after.returncode == 1, (after.stdout, after.stderr)
    assert "ledger verification FAILED" in after.stderr and message in after.stderr
