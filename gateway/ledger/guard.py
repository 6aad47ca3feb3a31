"""The checkpoint signer's conscience: never sign a tree that does not extend what this gateway signed before.

The store hands the guard what it found (the database's latest checkpoint, its tree state) and the guard
decides which signed tree head is to be trusted: the newest of the one this process signed last (memory),
the one recorded outside the database after every signature (`data/ledger-head.note`, so a database file
rolled back to an older copy is noticed after a restart) and the database's own latest checkpoint (each
opened with the ledger key). The store then proves, from its own stored leaves and subtree hashes, that the
new tree is an RFC 9162 extension of that head and that every entry since carries a valid MAC; any failure
becomes `LedgerInconsistent`, which the guard records: logged once per incident, reported by `/healthz` as
`ledger_inconsistent`, and no checkpoint is signed until the ledger is consistent again.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import Checkpoint, CheckpointError, NoteVerifier, verify_checkpoint
from .merkle import CompactRange

log = logging.getLogger("safeshare.ledger")

REASON = "ledger_inconsistent"


class LedgerInconsistent(Exception):
    """The stored ledger does not extend the last signed checkpoint, or holds an entry this gateway did not write."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.index = index


@dataclass(frozen=True)
class TrustedHead:
    """A signed tree head this gateway stands by, and (when known) the compact range at its size."""

    checkpoint: Checkpoint
    note: bytes
    compact: CompactRange | None = None


class CheckpointGuard:
    def __init__(self, verifier: NoteVerifier, origin: str, head_path: Path | None) -> None:
        self.verifier = verifier
        self.origin = origin
        self.head_path = head_path
        self._memory: TrustedHead | None = None
        #: The current incident, if any: what `/healthz` reports.
        self.problem: str | None = None
        self.full_count_seconds = 60.0
        self._full_count_at: float | None = None

    def full_count_due(self) -> bool:
        """Whether this round should count every ledger row (start-up, then once a minute)."""
        return self._full_count_at is None or time.monotonic() - self._full_count_at >= self.full_count_seconds

    def full_count_done(self) -> None:
        self._full_count_at = time.monotonic()

    # -- incidents -------------------------------------------------------------------------------

    def fail(self, exc: LedgerInconsistent) -> None:
        """Record an incident; the error is logged once, not every round the checkpointer retries."""
        where = f" (first bad index: {exc.index})" if exc.index is not None else ""
        if self.problem is None:
            log.error("REFUSING TO SIGN a ledger checkpoint%s: %s", where, exc.message)
        elif self.problem != exc.message:
            log.warning("ledger still inconsistent, no checkpoint signed%s: %s", where, exc.message)
        self.problem = exc.message

    def clear(self) -> None:
        if self.problem is not None:
            log.warning("ledger consistent again; checkpoint signing resumes")
        self.problem = None

    # -- trusted head ----------------------------------------------------------------------------

    def _open(self, note: bytes, what: str) -> Checkpoint:
        try:
            return verify_checkpoint(note, self.verifier, origin=self.origin)
        except CheckpointError as exc:
            raise LedgerInconsistent(f"{what} does not verify with the ledger key: {exc}") from None

    def head_file_note(self) -> bytes | None:
        if self.head_path is None:
            return None
        try:
            data = self.head_path.read_bytes()
        except FileNotFoundError:
            return None
        return data or None

    def heads(self, db_latest: tuple[int, bytes] | None) -> tuple[TrustedHead | None, TrustedHead | None]:
        """(head remembered outside the database, the database's latest), each signature-checked.

        Raises LedgerInconsistent when the database's checkpoints were rolled back or replaced.
        """
        outside: TrustedHead | None = self._memory
        file_note = self.head_file_note()
        if file_note is not None:
            file_cp = self._open(file_note, "the recorded head checkpoint (data/ledger-head.note)")
            if outside is None or file_cp.size > outside.checkpoint.size:
                outside = TrustedHead(file_cp, file_note)
        db: TrustedHead | None = None
        if db_latest is not None:
            cp = self._open(db_latest[1], f"the stored checkpoint for size {db_latest[0]}")
            if cp.size != db_latest[0]:
                raise LedgerInconsistent(f"the checkpoint stored for size {db_latest[0]} says size {cp.size}")
            db = TrustedHead(cp, db_latest[1])
        if outside is not None:
            if db is None or db.checkpoint.size < outside.checkpoint.size:
                have = "none" if db is None else f"size {db.checkpoint.size}"
                raise LedgerInconsistent(
                    f"roll back: this gateway last signed a checkpoint for size {outside.checkpoint.size}, but the "
                    f"database's latest is {have} (the database was replaced by an older copy or its checkpoints "
                    "were removed)",
                    db.checkpoint.size if db else 0,
                )
            if (
                db.checkpoint.size == outside.checkpoint.size
                and db.checkpoint.root_hash != outside.checkpoint.root_hash
            ):
                raise LedgerInconsistent(
                    f"fork: the database's checkpoint for size {db.checkpoint.size} differs from the one this gateway "
                    "signed"
                )
        return outside, db

    def remember(self, note: bytes, compact: CompactRange) -> None:
        """After a signature is committed: keep it in memory and outside the database (atomic, fsynced)."""
        cp = verify_checkpoint(note, self.verifier, origin=self.origin)
        self._memory = TrustedHead(cp, note, compact.copy())
        self.write_head(note)

    def trusted_compact(self, cp: Checkpoint) -> CompactRange | None:
        """The compact range this process computed itself at `cp` (no need to rebuild it from the store)."""
        m = self._memory
        if m is not None and m.compact is not None and m.checkpoint == cp:
            return m.compact.copy()
        return None

    def write_head(self, note: bytes) -> None:
        if self.head_path is None:
            return
        self.head_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".ledger-head.", dir=self.head_path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(note)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.head_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.head_path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
