"""`safeshare ledger verify` over several processes: the per-entry work of `verify.check_rows` (parse, canonical
form, leaf hash, MAC, the subtrees above the leaves) split into ranges of `2**bits` indexes, each read by a
worker process through its own read-only connection, then the tree assembled and every signed checkpoint checked
here, exactly as `verify.verify_ledger` does in one process (same checks, same order of verdicts, same messages).

Why processes: a million entries are a million JSON parses, encodings and hashes in CPython; one core does
them in roughly 10 s, so the wall time divides by the cores there are. Ranges are aligned to a power of two so
that every perfect subtree inside a range is one the whole tree has, and the parent only combines range roots.

The rows reach a worker through a `RangeReader` the store gives (`LedgerSnapshot.reader()`): a small picklable
object that opens its own read-only connection to the same snapshot where the database can share one
(PostgreSQL's exported snapshots) or to the same append-only file (SQLite), so this module never knows which
database it is.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Protocol

from .checkpoint import NoteVerifier
from .verify import NO_LOWER_BOUND, Checked, LevelTree, VerifyReport, check_rows, judge, signed_checkpoints

#: Leaves per range: 16,384 entries (about 20 MiB of rows) is a second or two of work, enough ranges for a
#: million entries (61) to keep every core busy to the end and the progress display moving.
RANGE_BITS = 14


class RangeReader(Protocol):
    """Rows of one snapshot of the ledger, readable from another process (picklable; opens its own connection)."""

    def rows(self, lo: int, hi: int) -> Iterator[Sequence[Any]]:
        """(index, canonical bytes, stored leaf hash, MAC or None) for lo <= index < hi, in index order."""
        ...


def default_workers() -> int:
    """The cores this process may run on (the CPU affinity, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _check_range(reader: RangeReader, lo: int, hi: int, mac_key: bytes | None, mac_from: int) -> Checked:
    """One worker's share: the rows of [lo, hi) through their own connection, every per-entry check."""
    first = max(lo, 0)
    return check_rows(reader.rows(lo, hi), first, hi, mac_key=mac_key, mac_from=mac_from)


def _ranges(end: int, bits: int) -> list[tuple[int, int]]:
    """[lo, hi) covering every index below `end`, aligned to `2**bits`; the first also takes any index below 0."""
    step = 1 << bits
    spans = [(lo, min(lo + step, end)) for lo in range(0, max(end, 1), step)]
    return [(NO_LOWER_BOUND, spans[0][1]), *spans[1:]]


def verify_ranges(
    reader: RangeReader,
    last_index: int | None,
    checkpoints: Sequence[tuple[int, bytes]],
    verifier: NoteVerifier,
    origin: str,
    *,
    mac_key: bytes | None = None,
    mac_start: tuple[int, bytes] | None = None,
    saved: Sequence[tuple[str, bytes]] = (),
    workers: int | None = None,
    bits: int = RANGE_BITS,
    advance: Callable[[int], None] | None = None,
) -> VerifyReport:
    """`verify.verify_ledger` over the rows `reader` gives, indexes up to `last_index` (the largest stored index,
    None when there are none), split over `workers` processes (default: the usable cores; 1: in this process).

    `advance(n)` is told as each range is done (n entries), for a progress display. The checkpoints' signatures
    are checked while the workers read and hash; a failure there (reported first, as by `verify_ledger`) stops
    the rest.
    """
    report = VerifyReport()
    ranges = _ranges(last_index + 1, bits) if last_index is not None else []
    workers = min(default_workers() if workers is None else workers, len(ranges))
    pool: ProcessPoolExecutor | None = None
    futures: list[Future[Checked]] = []
    if workers > 1:
        # fork: the workers start in milliseconds with everything imported; nothing here holds a lock a child needs.
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    try:
        mac_from = mac_start[0] if mac_key is not None and mac_start is not None else 0
        if pool is not None:
            futures = [pool.submit(_check_range, reader, lo, hi, mac_key, mac_from) for lo, hi in ranges]
        prepared = signed_checkpoints(
            report, checkpoints, verifier, origin, mac_key=mac_key, mac_start=mac_start, saved=saved
        )
        if prepared is None:
            return report
        signed = prepared[0]  # its first authenticated index is `mac_from`, which the workers already use
        results = _collect(reader, ranges, futures, mac_key, mac_from, advance)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    tree = LevelTree(bits)
    problem: tuple[int, str] | None = None
    for position, checked in enumerate(results):
        if checked.first_stored is None or checked.short:
            # The range ran out of rows: the entry after the last one it had is missing; name the next one stored.
            expect = checked.first + checked.count
            after = next((r.first_stored for r in results[position + 1 :] if r.first_stored is not None), None)
            if checked.count:
                tree.add(checked.levels, checked.count)
            if after is not None:
                problem = (expect, f"entry {expect} is missing (the next stored entry is {after})")
            break
        tree.add(checked.levels, checked.count)
        if checked.problem is not None:
            problem = checked.problem
            break
    return judge(report, signed, tree, problem)


def _collect(
    reader: RangeReader,
    ranges: list[tuple[int, int]],
    futures: list[Future[Checked]],
    mac_key: bytes | None,
    mac_from: int,
    advance: Callable[[int], None] | None,
) -> list[Checked]:
    """Every range's result, in index order, up to the first range that found a problem or ran short (the
    ranges after it cannot change the verdict and are cancelled, apart from one naming the next stored row)."""
    if not futures:
        results: list[Checked] = []
        for lo, hi in ranges:
            checked = _check_range(reader, lo, hi, mac_key, mac_from)
            results.append(checked)
            if advance is not None:
                advance(checked.count)
            if checked.problem is not None or checked.short or checked.first_stored is None:
                # One more range, if any, names the next stored row after a gap at the end of this one.
                if checked.problem is None and len(results) < len(ranges):
                    results.extend(_rest_first_stored(reader, ranges[len(results) :], mac_key, mac_from))
                break
        return results
    done: dict[int, Checked] = {}
    pending = set(futures)
    order = {id(f): i for i, f in enumerate(futures)}
    stop = len(futures)
    while pending:
        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
        for future in finished:
            if future.cancelled():
                continue
            checked = future.result()
            position = order[id(future)]
            done[position] = checked
            if advance is not None:
                advance(checked.count)
            if checked.problem is not None and position < stop:
                stop = position
                for later in futures[position + 1 :]:
                    later.cancel()
    results = []
    for position in range(len(futures)):
        if position not in done:
            break
        results.append(done[position])
    return results


def _rest_first_stored(
    reader: RangeReader, ranges: list[tuple[int, int]], mac_key: bytes | None, mac_from: int
) -> Iterator[Checked]:
    """After a gap at the end of a range (in-process only): the following ranges until one has a stored row."""
    for lo, hi in ranges:
        checked = _check_range(reader, lo, hi, mac_key, mac_from)
        yield checked
        if checked.first_stored is not None:
            return
