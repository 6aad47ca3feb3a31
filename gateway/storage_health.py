"""Is the gateway's storage writable? A full disk must show as a clear 507 to clients and as unhealthy.

Writes that fail for want of space (ENOSPC, EDQUOT, EFBIG, or SQLite's "database or disk is full") mark the
storage as failing; `/healthz` then probes with a small durable write in the data directory and reports
healthy again, by itself, as soon as that probe succeeds (space came back).
"""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
import time
from pathlib import Path

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
PROBE_BYTES = 64 * 1024


def is_storage_full(exc: BaseException | None) -> bool:
    """True if `exc`, or anything in its cause/context chain, is an out-of-space failure."""
    seen = 0
    while exc is not None and seen < 16:
        if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
            return True
        if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            return True
        text = str(exc)
        if "database or disk is full" in text or "No space left on device" in text:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


class StorageHealth:
    def __init__(self, data_dir: Path) -> None:
        self._dir = data_dir
        self.failed_at: float | None = None

    def note_full(self) -> None:
        self.failed_at = time.monotonic()

    def _probe(self) -> bool:
        path = self._dir / f".healthz-probe-{os.getpid()}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                view = memoryview(bytes(PROBE_BYTES))
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            return False
        finally:
            try:
                path.unlink()
            except OSError:
                pass
        return True

    async def writable(self) -> bool:
        """Healthy unless a write failed for want of space and a probe write still fails."""
        if self.failed_at is None:
            return True
        if await asyncio.to_thread(self._probe):
            self.failed_at = None
            return True
        return False
