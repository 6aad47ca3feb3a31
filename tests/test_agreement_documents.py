"""Agreement documents live in the database (issue 11, several nodes), on both backends: a home written before
that, whose documents are files in `data/agreements/<sha256>`, has them imported at its first start on the new
schema (each checked against its digest), and they are served exactly as before; a damaged file is refused and
kept; the next start has nothing to do.

Both backends in one run: this module's `settings` fixture is parametrised (PostgreSQL skips, saying why, without a
server), and the old home is made by the code as it was, at the schema version before documents moved in.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app import GATEWAY, create_app
from gateway.config import Settings
from gateway.home import HomeKeys
from gateway.ledger import entry as ledger_entry
from gateway.store import open_store
from gateway.store.agreements import DOCUMENT_CHUNK

from . import pg
from .conftest import api_settings

STEP = "agreement documents in the database"
PDF = b"%PDF-1.4\n% the county protocol\n" + bytes(range(256)) * (3 * DOCUMENT_CHUNK // 256) + b"\n%%EOF\n"


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    base = api_settings(tmp_path / "home")
    if request.param == "sqlite":
        yield base
        return
    with pg.database_for_sync_fixture() as dsn:
        yield dataclasses.replace(base, database=dsn)


def _before_documents(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """Make the backend's migration stop just before the documents step (and any after it), as the old code did."""
    if settings.database_url.startswith("postgresql://"):
        from gateway.store.postgres import agreements as records
        from gateway.store.postgres import repository as module

        pg.append_as_before_ledger_words(monkeypatch)  # the old code's append (no step 7 table yet)
    else:
        from gateway.store.sqlite import agreements as records  # type: ignore[no-redef]
        from gateway.store.sqlite import schema as module  # type: ignore[no-redef]
    # The old code's agreement row had no standard answers (step 9).
    new_insert = records.agreement_insert
    monkeypatch.setattr(
        records, "agreement_insert", lambda *a: {k: v for k, v in new_insert(*a).items() if k != "standard_answers"}
    )
    [at] = [i for i, s in enumerate(module.STEPS) if s.description.startswith(STEP)]
    monkeypatch.setattr(module, "STEPS", module.STEPS[:at])
    monkeypatch.setattr(module, "SCHEMA_VERSION", at)


async def _old_home(settings: Settings, files: dict[str, bytes]) -> None:
    """An agreement version recorded by the old code: its row and ledger entry in the database, its document only
    a file in data/agreements/ (with whatever else `files` puts there)."""
    store = await open_store(settings.database_url)
    try:
        sha = hashlib.sha256(PDF).hexdigest()
        fields = {
            "id": "county-protocol",
            "title": "County overarching protocol",
            "kind": "protocol",
            "scope": "both",
            "signatories": ("County Council",),
            "purposes": (),
            "categories": (),
            "review_date": "2099-06-30",
        }
        doc = {"sha256": sha, "size": len(PDF), "name": "protocol.pdf", "content_type": "application/pdf"}
        actor = ledger_entry.actor("cli:admin", "admin", None, "local-cli")

        def entry_for(version: int) -> dict[str, Any]:
            agreement = {**{k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}, "version": version}
            agreement |= {"document_sha256": sha, "document_size": len(PDF), "document_name": "protocol.pdf"}
            return ledger_entry.agreement_entry(
                kind=ledger_entry.KIND_AGREEMENT_ADD, time="2026-12-01T09:00:00.000Z", actor=actor, agreement=agreement
            )

        assert await store.agreements.add_version(fields, doc, entry_for) == (1, 0)
    finally:
        await store.close()
    folder = settings.data_dir / "agreements"
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


async def test_an_old_homes_document_files_are_imported_and_served(
    settings: Settings, keys: HomeKeys, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = hashlib.sha256(PDF).hexdigest()
    damaged = hashlib.sha256(b"what it was").hexdigest()
    with monkeypatch.context() as m:
        _before_documents(m, settings)
        await _old_home(settings, {sha: PDF, damaged: b"what it became", ".0a1b2c3d.tmp": b"half"})
    # The new schema alone (`safeshare migrate`) does not have the bytes yet: they are still only files.
    store = await open_store(settings.database_url)
    try:
        assert await store.agreements.document_size(sha) is None
    finally:
        await store.close()

    client = await aiohttp_client(create_app(settings, keys))  # its start-up imports the files
    r = await client.get(f"/agreements/documents/{sha}")
    assert r.status == 200, await r.text()
    assert await r.read() == PDF
    assert r.headers["Content-Type"] == "application/pdf" and r.headers["Content-Length"] == str(len(PDF))
    assert r.headers["ETag"] == f'"{sha}"' and "immutable" in r.headers["Cache-Control"]
    r = await client.head(f"/agreements/documents/{sha}")
    assert r.status == 200 and r.headers["Content-Length"] == str(len(PDF)) and await r.read() == b""
    # The folder is renamed (kept, for the operator to remove); the file whose bytes are not its name is not taken.
    kept = settings.data_dir / "agreements.imported"
    assert not (settings.data_dir / "agreements").exists()
    assert sorted(p.name for p in kept.iterdir()) == sorted([sha, damaged, ".0a1b2c3d.tmp"])
    gw = client.app[GATEWAY]
    assert await gw.agreements.records.document_size(damaged) is None
    assert (await client.get(f"/agreements/documents/{damaged}")).status == 404
    # The next start has nothing to do.
    report = await gw.agreements.import_document_files()
    assert report.imported == [] and report.refused == [] and report.moved_to is None


async def test_import_refuses_a_file_whose_bytes_are_not_its_name(settings: Settings, keys: HomeKeys) -> None:
    """Directly: what is imported, what is refused, where the folder goes (and a second folder does not clobber it)."""
    from gateway.store.agreements import import_document_files

    good, other = b"protocol v1\n", b"protocol v2\n"
    folder = settings.data_dir / "agreements"
    folder.mkdir(parents=True)
    (settings.data_dir / "agreements.imported").mkdir()  # left by an earlier import
    (folder / hashlib.sha256(good).hexdigest()).write_bytes(good)
    (folder / hashlib.sha256(other).hexdigest()).write_bytes(good)  # named for other bytes
    (folder / "notes.txt").write_bytes(b"not a document")
    store = await open_store(settings.database_url)
    try:
        report = await import_document_files(store.agreements, folder)
        assert report.imported == [hashlib.sha256(good).hexdigest()]
        assert sorted(report.refused) == sorted([hashlib.sha256(other).hexdigest(), "notes.txt"])
        assert report.moved_to == settings.data_dir / "agreements.imported.2"
        assert b"".join([c async for c in store.agreements.document_chunks(hashlib.sha256(good).hexdigest())]) == good
        assert await store.agreements.document_size(hashlib.sha256(other).hexdigest()) is None
    finally:
        await store.close()
