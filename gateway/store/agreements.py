"""The agreements' documents, in the database whichever backend holds it (`protocol.AgreementRecords`).

A document is content-addressed by its SHA-256 and kept in chunks of `DOCUMENT_CHUNK` bytes (tables
`agreement_documents` and `agreement_document_chunks`, immutable by trigger), so that every node of a gateway on
one PostgreSQL database serves every document, and a document is streamed out a chunk at a time rather than read
whole for each request. It is written (its own transaction) before the agreement version that refers to it, so a
ledger entry's document digest always finds its bytes; a document with no version (a crash in between) is inert:
`GET /agreements/documents/{sha256}` serves only documents an agreement names.

Before this, documents were files in the home's `data/agreements/<sha256>`; `import_document_files` moves an
existing home's files into the database at its first start on this version (each file's name checked against its
bytes' digest) and then renames the folder, so nothing is lost and nothing is imported twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .models import STATUS_ACTIVE, STATUS_RETIRED, STATUS_SUPERSEDED, Agreement

if TYPE_CHECKING:
    from .protocol import AgreementRecords

log = logging.getLogger("safeshare.store")

#: The columns both backends read an agreement version from (`agreement_from_row`), with whether it is the latest.
AGREEMENT_COLUMNS = (
    "id, version, title, kind, scope, signatories, purposes, categories, review_date, document_sha256,"
    " document_size, document_name, document_type, created_at, retired_at, retired_reason,"
    " (SELECT max(v.version) FROM agreements v WHERE v.id = agreements.id) AS latest, standard_answers"
)


def agreement_from_row(row: Any) -> Agreement:
    """An `Agreement` from a row of `AGREEMENT_COLUMNS` (JSON lists as text in both backends)."""
    version, latest = int(row[1]), int(row[16])
    status = STATUS_RETIRED if row[14] else (STATUS_ACTIVE if version == latest else STATUS_SUPERSEDED)
    return Agreement(
        id=row[0],
        version=version,
        title=row[2],
        kind=row[3],
        scope=row[4],
        signatories=tuple(json.loads(row[5])),
        purposes=tuple(json.loads(row[6])),
        categories=tuple(json.loads(row[7])),
        review_date=row[8],
        document_sha256=row[9],
        document_size=int(row[10]),
        document_name=row[11],
        document_type=row[12],
        status=status,
        created_at=row[13],
        retired_at=row[14],
        retired_reason=row[15],
        standard_answers=tuple(json.loads(row[17] or "[]")),
    )


def agreement_insert(
    fields: Mapping[str, Any], version: int, document: Mapping[str, Any], created: str
) -> dict[str, Any]:
    """A new version's row, column by column, for both backends' INSERT (JSON lists as text)."""
    return {
        "id": fields["id"],
        "version": version,
        "title": fields["title"],
        "kind": fields["kind"],
        "scope": fields["scope"],
        "signatories": json.dumps(list(fields["signatories"])),
        "purposes": json.dumps(list(fields["purposes"])),
        "categories": json.dumps(list(fields["categories"])),
        "review_date": fields["review_date"],
        "document_sha256": document["sha256"],
        "document_size": document["size"],
        "document_name": document["name"],
        "document_type": document["content_type"],
        "created_at": created,
        "standard_answers": json.dumps([dict(s) for s in fields.get("standard_answers", ())]),
    }


#: A document's bytes are stored and served in pieces of this size (as envelopes are on PostgreSQL).
DOCUMENT_CHUNK = 256 * 1024
#: What the folder of an imported home's document files is renamed to (kept: the operator may delete it).
IMPORTED_SUFFIX = ".imported"

_SHA256_HEX = frozenset("0123456789abcdef")


def is_sha256(text: str) -> bool:
    """A lower-case hex SHA-256, as documents are named (anything else is no document)."""
    return len(text) == 64 and set(text) <= _SHA256_HEX


#: How a ledger entry names a document (`Agreement.ref()`, an agreement version's entry): canonical JSON, so
#: always this exact spelling, the digest lower-case hex.
_NAMED_IN_ENTRY = re.compile(rb'"document_sha256":"([0-9a-f]{64})"')


def named_in_entry(entry: bytes) -> set[str]:
    """The document digests a canonical ledger entry names (for `ledger verify`: each must have its bytes)."""
    return {m.decode() for m in _NAMED_IN_ENTRY.findall(entry)}


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chunks(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(sequence number, bytes) of each stored piece of a document."""
    for seq, start in enumerate(range(0, len(data), DOCUMENT_CHUNK)):
        yield seq, data[start : start + DOCUMENT_CHUNK]


def chunk_count(size: int) -> int:
    return -(-size // DOCUMENT_CHUNK)


class AgreementExists(Exception):
    """Retiring what is already retired (nothing recorded)."""


@dataclass
class DocumentImport:
    """What `import_document_files` did with an old home's `data/agreements/` folder."""

    imported: list[str] = field(default_factory=list)
    #: Files whose name is not the SHA-256 of their bytes (damaged, or not a document): left in the renamed folder.
    refused: list[str] = field(default_factory=list)
    #: Where the folder went once its documents were in the database (None: there was nothing to import).
    moved_to: Path | None = None


def _read(path: Path) -> bytes:
    return path.read_bytes()


def _files(folder: Path) -> list[Path] | None:
    """The folder's document files (None: no folder), without temporary files a crashed old writer left."""
    if not folder.is_dir():
        return None
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file())


def _rename(folder: Path) -> Path | None:
    """Rename the imported folder out of the way (first free `agreements.imported`, `.imported.2`, …)."""
    for n in range(1, 1000):
        target = folder.with_name(folder.name + IMPORTED_SUFFIX + (f".{n}" if n > 1 else ""))
        if target.exists():
            continue
        try:
            folder.rename(target)
        except FileNotFoundError:
            return None  # another node sharing this data/ directory moved it first
        return target
    return None


async def import_document_files(records: AgreementRecords, folder: Path) -> DocumentImport:
    """Move the document files of a home written before documents were in the database into it.

    Each `<sha256>` file is read, its digest checked against its name, and stored (a document already in the
    database is left as it is: content-addressed, so the same bytes). A file whose digest differs is not imported
    and is reported; half-written temporary files (`.….tmp`, from a crash of the old writer) are ignored. Then the
    folder is renamed to `agreements.imported`, so the next start has nothing to do and the bytes stay on disk
    until an operator removes them. Safe with several nodes sharing one data/ directory (idempotent inserts; the
    rename happens once).
    """
    result = DocumentImport()
    files = await asyncio.to_thread(_files, folder)
    if files is None:
        return result
    for path in files:
        data = await asyncio.to_thread(_read, path)
        if not is_sha256(path.name) or digest(data) != path.name or not data:
            result.refused.append(path.name)
            log.warning("agreement document file %s is not the SHA-256 of its bytes: not imported", path.name)
            continue
        await records.put_document(data)
        result.imported.append(path.name)
    result.moved_to = await asyncio.to_thread(_rename, folder)
    log.info(
        "imported %d agreement document file(s) into the database (%d refused); the files are kept in %s",
        len(result.imported),
        len(result.refused),
        result.moved_to,
    )
    return result
