"""The agreements' documents, on disk by digest, whichever database holds the versions (`protocol.AgreementRecords`).

Documents are stored
content-addressed (`data/agreements/<sha256>`), fsynced before the version that refers to them commits, so a
ledger entry's document digest always finds its bytes; a file with no version (a crash in between) is inert.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

_SHA256_HEX = frozenset("0123456789abcdef")


class DocumentFiles:
    """Agreement documents, named by their SHA-256, written whole and fsynced before use."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path | None:
        if len(sha256) != 64 or not set(sha256) <= _SHA256_HEX:
            return None
        p = self.root / sha256
        return p if p.is_file() else None

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / digest
        if final.is_file() and final.stat().st_size == len(data):
            return digest
        tmp = self.root / f".{secrets.token_hex(8)}.tmp"
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return digest


class AgreementExists(Exception):
    """Retiring what is already retired (nothing recorded)."""
