"""Key files, created crash-safely in one place: every secret the home holds is made by `load_or_create`.

Why this care: a key file is written once and then trusted for years (the ledger's MAC key, the holding key,
the token key). Creation writes a private temporary file in the same directory, fsyncs it, hard-links it into
place (atomic, and unlike rename it never replaces a file that appeared meanwhile: two processes starting
together end up sharing the first one's key) and fsyncs the directory, so after a crash at any moment the file
is either absent or whole. The earlier way (open with O_EXCL, then write) could leave an EMPTY file after a
crash between the two, which start-up then refused without saying why; `EmptyKeyFile` says what to do.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger("gateway.keyfiles")


class EmptyKeyFile(ValueError):
    """A key file exists but is empty: left by a crash while an older release created it."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"{path} is empty: it was left by a crash while an older SafeShare was creating it, so it never held a"
            f" key. Delete it (rm {path}) and start again: a new key is created. Nothing can have been protected"
            " with it; but if you have a backup of this file with content, restore that instead."
        )
        self.path = path


def ensure_private_dir(directory: Path) -> None:
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)  # mkdir's mode is filtered through the umask


def write_new_private_file(path: Path, data: bytes) -> None:
    """Write `data` to a NEW file (O_EXCL, 0600 whatever the umask), fsynced; nothing is left on failure."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def fsync_directory(directory: Path) -> None:
    """Make a new directory entry durable (best effort where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def create_exclusive(path: Path, data: bytes) -> bool:
    """Create `path` holding `data`, whole or not at all: temp file, fsync, link into place, directory fsync.

    False (and nothing written) if `path` already exists, e.g. another process created it first.
    """
    directory = path.parent
    ensure_private_dir(directory)
    tmp = directory / f".{path.name}.{secrets.token_hex(8)}.tmp"
    write_new_private_file(tmp, data)
    try:
        try:
            os.link(tmp, path)  # atomic and, unlike rename, refuses to replace an existing file
        except FileExistsError:
            return False
        except OSError:
            # Filesystems without hard links: rename is atomic too, but would replace a file created meanwhile,
            # so only when there is still none (the O_EXCL above and this check keep the window tiny).
            if path.exists():
                return False
            os.rename(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_directory(directory)
    return True


def read_key_file(path: Path) -> bytes:
    """The file's bytes; `EmptyKeyFile` for an empty one, a warning when others may read it."""
    data = path.read_bytes()
    if not data:
        raise EmptyKeyFile(path)
    mode = path.stat().st_mode
    if os.name == "posix" and mode & 0o077:
        # Warn rather than refuse: secret mounts (e.g. Kubernetes) default to 0644 inside a private volume.
        log.warning("key file %s is accessible to group/others (mode %o); chmod 600 it", path, mode & 0o777)
    return data


def load_or_create(path: Path, make: Callable[[], bytes], parse: Callable[[bytes], T]) -> T:
    """Read and parse the key at `path`, or create it from `make()` crash-safely; never replaces a file.

    `parse` raises ValueError for content that is not a key of the expected kind; the file is then left as it is.
    """
    try:
        return parse(read_key_file(path))
    except FileNotFoundError:
        pass
    data = make()
    if not create_exclusive(path, data):
        return parse(read_key_file(path))  # lost a first-start race: use the winner's key
    return parse(data)
