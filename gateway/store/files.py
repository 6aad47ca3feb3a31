"""Envelope files on disk: written to a temp file, fsynced, renamed into place inside the share's transaction.

A crash at any moment leaves either the whole share or nothing: temp files and share directories the
database does not know are removed by `sweep` at start-up, and so are envelopes the database says were
destroyed (revoked, expired, used up) but whose deletion was interrupted.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from .envelopes import Placement

#: Bytes per read while streaming an envelope file out.
READ_SLICE = 256 * 1024

ENVELOPE_SUFFIX = ".age"
#: File stem of the organisational recovery envelope; recipient IDs cannot start with "_", so it cannot clash.
ESCROW_ID = "_escrow"
TMP_DIR = ".tmp"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    """fsync a closed file by name (fsync acts on the inode, whichever descriptor asks)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class _SpoolFile:
    tmp_path: Path
    fh: BinaryIO
    sha256: hashlib._Hash = field(default_factory=hashlib.sha256)
    size: int = 0


class Spool:
    """One temp file per recipient for a share being written."""

    def __init__(self, root: Path, recipient_ids: Iterable[str]) -> None:
        self._root = root
        self._files: dict[str, _SpoolFile] = {}
        tmp = root / TMP_DIR
        try:
            for rid in recipient_ids:
                path = tmp / f"{secrets.token_hex(12)}{ENVELOPE_SUFFIX}"
                fh = open(path, "xb")  # closed in seal()/discard()
                os.chmod(path, 0o600)
                self._files[rid] = _SpoolFile(path, fh)
        except BaseException:
            self.discard()
            raise

    def write(self, recipient_id: str, data: bytes | memoryview) -> None:
        f = self._files[recipient_id]
        if data:
            f.fh.write(data)
            f.sha256.update(data)
            f.size += len(data)

    def writer(self, recipient_id: str) -> Callable[[memoryview], None]:
        """`write` for one recipient, consuming `data` before it returns (the encryptor reuses its buffer)."""
        f = self._files[recipient_id]
        write, update = f.fh.write, f.sha256.update

        def sink(data: memoryview) -> None:
            write(data)
            update(data)
            f.size += len(data)

        return sink

    def digest(self, recipient_id: str) -> tuple[str, int]:
        """(hex SHA-256, size) of the envelope as written: recorded in the ledger so a recipient can prove
        later that the file they hold is the one the gateway released."""
        f = self._files[recipient_id]
        return f.sha256.hexdigest(), f.size

    def seal(self) -> None:
        """Finish writing the temp files (closed, not yet fsynced: `durability` or `place(sync=True)` does that,
        after the rename and before the database is told about them)."""
        for f in self._files.values():
            f.fh.close()

    def place(self, share_id: str, sync: bool = True) -> None:
        """Rename every temp file into the share's directory (called inside the share's transaction).

        With `sync=False` nothing is fsynced here: the caller runs `durability(share_id)`'s jobs before its
        transaction commits (the store does so once per group commit, concurrently)."""
        final = self._root / share_id
        final.mkdir(mode=0o700, exist_ok=True)  # exists already when a held envelope is re-wrapped
        for rid, f in self._files.items():
            os.rename(f.tmp_path, final / f"{rid}{ENVELOPE_SUFFIX}")
        if sync:
            for job in self.durability(share_id).values():
                job()

    def durability(self, share_id: str) -> dict[object, Callable[[], None]]:
        """The fsyncs that make `place(share_id, sync=False)` durable: each envelope's bytes, then the share's
        directory and the envelopes root (shared by every share, so a batch syncs it once). Run before the
        commit that records the share, a crash leaves either a durable share or files `sweep` removes.

        The files' own fsyncs used to run per share at `seal`, on a thread of their own, before the group
        commit: here the store runs them with the batch's other jobs, concurrently, so the journal covers many
        of them with one flush (issue 15). They are listed first: a job runner that runs them in order
        (PostgreSQL's, the re-wrap) syncs the data before the names."""
        final, root = self._root / share_id, self._root
        jobs: dict[object, Callable[[], None]] = {}
        for rid in self._files:
            path = final / f"{rid}{ENVELOPE_SUFFIX}"
            jobs[("fsync-file", str(path))] = functools.partial(_fsync_file, path)
        jobs[("fsync-dir", str(final))] = lambda: _fsync_dir(final)
        jobs[("fsync-dir", str(root))] = lambda: _fsync_dir(root)
        return jobs

    def discard(self) -> None:
        for f in self._files.values():
            try:
                f.fh.close()
            except OSError:
                pass
            f.tmp_path.unlink(missing_ok=True)


class EnvelopeFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / TMP_DIR).mkdir(parents=True, exist_ok=True, mode=0o700)

    def spool(self, recipient_ids: Iterable[str]) -> Spool:
        return Spool(self.root, recipient_ids)

    def path(self, share_id: str, recipient_id: str) -> Path:
        return self.root / share_id / f"{recipient_id}{ENVELOPE_SUFFIX}"

    def remove_share_dir(self, share_id: str) -> None:
        shutil.rmtree(self.root / share_id, ignore_errors=True)

    def destroy(self, share_id: str, recipient_ids: Iterable[str]) -> None:
        """Crypto-shredding: the envelope holds the only wrapped copies of the file key; remove it."""
        for rid in recipient_ids:
            self.path(share_id, rid).unlink(missing_ok=True)
        try:
            (self.root / share_id).rmdir()
        except OSError:
            pass  # not empty (other recipients still active) or already gone

    def sweep(self, live: set[tuple[str, str]], min_age: float = 0.0) -> int:
        """Remove every temp file and every envelope not in `live`; returns how many files were removed.

        `min_age` (seconds): leave files younger than that. With several gateway nodes sharing this directory,
        another node may be writing a share right now (its temp files, and its envelopes placed but not yet
        committed are not in `live`); they are only debris once older than any share can take to write.
        """
        removed = 0
        cutoff = time.time() - min_age

        def young(p: Path) -> bool:
            try:
                return min_age > 0 and p.stat().st_mtime > cutoff
            except FileNotFoundError:
                return True  # gone meanwhile: nothing to remove

        for p in (self.root / TMP_DIR).iterdir():
            if young(p):
                continue
            p.unlink(missing_ok=True)
            removed += 1
        for d in self.root.iterdir():
            if d.name == TMP_DIR or not d.is_dir():
                continue
            for p in d.iterdir():
                rid = p.name.removesuffix(ENVELOPE_SUFFIX)
                if (d.name, rid) not in live and not young(p):
                    p.unlink(missing_ok=True)
                    removed += 1
            try:
                d.rmdir()
            except OSError:
                pass
        return removed


class _DirectorySpool:
    """`EnvelopeSpool` over `Spool`: temp files, fsynced at `seal`, renamed into place in the transaction."""

    def __init__(self, files: EnvelopeFiles, spool: Spool, names: list[str]) -> None:
        self._files, self._spool, self._names = files, spool, names
        self._placed = False

    def write(self, name: str, data: bytes | memoryview) -> None:
        self._spool.write(name, data)

    def writer(self, name: str) -> Callable[[memoryview], None]:
        return self._spool.writer(name)

    async def flush(self) -> None:
        """Nothing buffered: `write` went to the temp file already."""

    async def seal(self) -> None:
        """Close the temp files: a close of a page-cached file, cheap enough for the event loop (no thread
        hand-off per share); their fsyncs run with the group commit (`placement().durable`)."""
        self._spool.seal()

    def digest(self, name: str) -> tuple[str, int]:
        return self._spool.digest(name)

    def placement(self, share_id: str) -> Placement:
        from .envelopes import Placement

        def place() -> None:
            self._placed = True  # set first: a rename that fails half-way leaves files `discard` must remove
            self._spool.place(share_id, sync=False)

        return Placement(before_commit=place, durable=self._spool.durability(share_id))

    async def discard(self, share_id: str) -> None:
        """Temp files always; placed files only if this spool placed them (a re-wrap whose transaction found
        nothing to do must not remove the envelope already there)."""
        await asyncio.to_thread(self._spool.discard)
        if self._placed:
            await asyncio.to_thread(self._files.destroy, share_id, self._names)


class _OpenFile:
    """An envelope file opened for streaming; the open handle still reads it after the file is unlinked."""

    readable_after_destroy = True

    def __init__(self, fh: BinaryIO, size: int) -> None:
        self._fh, self.size = fh, size

    async def chunks(self) -> AsyncIterator[bytes]:
        while data := self._fh.read(READ_SLICE):
            yield data

    async def close(self) -> None:
        self._fh.close()


class DirectoryEnvelopes:
    """`EnvelopeStore` in a directory: the home's data/envelopes, or one directory every node mounts."""

    in_database = False

    def __init__(self, root: Path, shared: bool = False) -> None:
        self.files = EnvelopeFiles(root)
        #: Several nodes write here: the sweep spares young files (another node's share in progress).
        self.shared = shared

    async def spool(self, names: Iterable[str]) -> _DirectorySpool:
        names = list(names)
        return _DirectorySpool(self.files, await asyncio.to_thread(self.files.spool, names), names)

    async def open(self, share_id: str, name: str) -> _OpenFile | None:
        try:
            fh = open(self.files.path(share_id, name), "rb")  # noqa: ASYNC230 - a local file, read in slices
        except FileNotFoundError:
            return None
        return _OpenFile(fh, os.fstat(fh.fileno()).st_size)

    async def head(self, share_id: str, name: str, limit: int) -> bytes | None:
        def read() -> bytes | None:
            try:
                with open(self.files.path(share_id, name), "rb") as fh:
                    return fh.read(limit)
            except FileNotFoundError:
                return None

        return await asyncio.to_thread(read)

    async def destroy(self, share_id: str, names: Iterable[str]) -> None:
        await asyncio.to_thread(self.files.destroy, share_id, list(names))

    async def sweep(self, live: set[tuple[str, str]], min_age: float) -> int:
        return await asyncio.to_thread(self.files.sweep, live, min_age)
