"""Progress on a terminal for the `safeshare` command line (rich), and nothing at all when stderr is not one.

Progress goes to stderr only, so stdout stays clean for programs (`TOKEN=$(…)`, `fetch > file`); piped or
redirected (CI, cron, a log file), stderr is not a terminal and not a single progress character is written.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, cast

Advance = Callable[[int], None]


def _nothing(_: int) -> None:
    return None


def on_terminal() -> bool:
    return sys.stderr.isatty()


@contextmanager
def progress(description: str, total: int | None, unit: str = "bytes") -> Iterator[Advance]:
    """Yield `advance(n)`; on a terminal a bar (bytes: size and speed; items: counts), else a no-op."""
    if not on_terminal():
        yield _nothing
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn()]
    if unit == "bytes":
        columns += [DownloadColumn(), TransferSpeedColumn()]
    elif total is not None:
        columns += [MofNCompleteColumn()]
    else:
        columns += [TextColumn("{task.completed} " + unit)]
    if total is not None:
        columns.append(TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


class CountingReader:
    """A binary file that reports what is read from it (to show decryption progress)."""

    def __init__(self, raw: BinaryIO, advance: Advance) -> None:
        self._raw = raw
        self._advance = advance

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._advance(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        n = cast(Any, self._raw).readinto(buffer) or 0
        self._advance(n)
        return int(n)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def counting(raw: BinaryIO, advance: Advance) -> BinaryIO:
    return cast(BinaryIO, CountingReader(raw, advance))
