"""The single writer thread: every write of the SQLite store goes through it, group-committed.

Every queued operation runs inside its own SAVEPOINT of one shared transaction, so a failing operation rolls
back alone while the batch pays for one fsync. That is what lets a 2-core machine append tens of thousands of
ledger entries a second instead of a thousand (measured: aiosqlite pays ~140 µs per awaited call). The ledger's
side of a batch is batch-level too (`tree.LedgerBatch`): the Merkle tree state is read once and written once just
before the COMMIT, the index and FTS rows are inserted then, one statement per table, and an operation alone in its
batch runs without a savepoint. When SQLite
has rolled the whole transaction back itself (disk full, I/O error), the batch's callers are failed with
`StoreUnavailable` and the thread carries on: it must never die, or every later write would wait for ever.

Several processes may write the same file (`serve --workers N`, the CLI beside a running gateway). Each batch's
transaction is taken under an exclusive `flock` on a lock file beside the database, held from `BEGIN IMMEDIATE`
to `COMMIT`: a waiting writer then wakes the moment the other commits. Left to SQLite's busy handler, it would
sleep in steps of up to 100 ms and could lose the race to the same writer's next batch again and again (measured
with two workers at 64 clients: p99 latency 365-580 ms, against 90-125 ms with the lock)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from ..models import (
    StoreUnavailable,
)
from .schema import LedgerConnection, _connect
from .tree import LedgerBatch

T = TypeVar("T")


class _Result:
    """What the writer thread decided for one operation: a lighter stand-in for `concurrent.futures.Future`,
    whose condition variable and lock cost the writer thread ~5 µs per operation (issue 15), and which nobody
    waits on: callers await an asyncio future in their own loop, settled once per batch (`_deliver`).

    Only the writer thread writes it; the caller's loop reads it after the batch's delivery is posted."""

    __slots__ = ("state", "value")

    def __init__(self) -> None:
        self.state = _PENDING
        self.value: Any = None

    def done(self) -> bool:
        return self.state is not _PENDING and self.state is not _RUNNING

    def set_running_or_notify_cancel(self, waiter: asyncio.Future[Any]) -> bool:
        """Start the operation unless its caller has given up (its awaited future is cancelled): then skip it.

        Reading the caller's future from this thread is a read of one field under the GIL; if the caller cancels
        just after this check, the operation runs and its result is dropped, as with `Future.cancel()` on a
        running future."""
        if waiter.cancelled():
            self.state = _CANCELLED
            return False
        self.state = _RUNNING
        return True

    def set_result(self, value: Any) -> None:
        self.state, self.value = _OK, value

    def set_exception(self, exc: BaseException) -> None:
        self.state, self.value = _FAILED, exc


_PENDING, _RUNNING, _OK, _FAILED, _CANCELLED = "pending", "running", "ok", "failed", "cancelled"


class _Item(NamedTuple):
    op: Callable[[sqlite3.Connection], Any]
    #: Settled by the writer thread (skipped when the caller's task cancelled `waiter` before its turn).
    fut: _Result
    savepoint: bool
    #: What the caller awaits, settled from `fut` in its loop: once per batch for the whole batch (`_deliver`).
    waiter: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


def _copy_states(items: list[_Item]) -> None:
    """In the callers' loop: settle each awaited future as its writer-side result was (what `wrap_future` does
    for one future, here for a whole batch)."""
    for item in items:
        waiter, fut = item.waiter, item.fut
        if waiter.done():
            continue
        state = fut.state
        if state is _OK:
            waiter.set_result(fut.value)
        elif state is _FAILED:
            waiter.set_exception(fut.value)
        else:
            waiter.cancel()


def _post(loop: asyncio.AbstractEventLoop, items: list[_Item]) -> None:
    try:
        loop.call_soon_threadsafe(_copy_states, items)
    except RuntimeError:
        pass  # the caller's loop is closed: nobody is waiting any more


def lock_path(database: Path) -> Path:
    """The writers' lock file: beside the database, so every process that opens it finds the same one."""
    return database.with_name(database.name + ".writer-lock")


class Writer:
    """A dedicated thread that owns the only write connection and group-commits queued operations."""

    def __init__(self, path: Path, max_batch: int = 256, ledger_mac_key: bytes | None = None) -> None:
        self._conn = _connect(path, ledger_mac_key)
        self._lock_fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        #: Each item is what one turn of a caller's loop submitted (`_flush`), handed over whole.
        self._queue: queue.SimpleQueue[list[_Item] | None] = queue.SimpleQueue()
        self._pending: dict[asyncio.AbstractEventLoop, list[_Item]] = {}
        self._max_batch = max_batch
        #: False from a batch the database failed (disk full, I/O error, busy) until one commits again:
        #: `/healthz` reports it, so a store that cannot write does not look healthy.
        self.healthy = True
        #: The group commit's fsyncs run here, concurrently: threads made once and kept, not per batch (a
        #: pool per batch started up to 16 threads every commit, about a tenth of a share's CPU at 400/s).
        self._sync_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="safeshare-fsync")
        self._thread = threading.Thread(target=self._run, name="safeshare-sqlite-writer", daemon=True)
        self._thread.start()

    def submit(self, op: Callable[[sqlite3.Connection], T], savepoint: bool = True) -> asyncio.Future[T]:
        """Queue `op` for the next batch.

        `savepoint=False` is for an operation that makes all its own checks before its first write (a plain
        ledger append): it runs without a SAVEPOINT/RELEASE pair, the costliest part of a small operation once
        the other thread holds the GIL (each statement hands it over). If it fails without having changed a row,
        the others in its batch are unaffected as before; if it fails after writing (only the database itself
        can do that to such an operation: a full disk, an I/O error), the whole batch is rolled back and each of
        its callers told `StoreUnavailable`, as when a savepoint cannot be rolled back.
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()
        # A caller that gives up before its operation's turn cancels `waiter`: the writer then skips the operation.
        # Handed to the writer once per turn of the caller's loop, not one by one (`_flush`).
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = []
            loop.call_soon(self._flush, loop)
        pending.append(_Item(op, _Result(), savepoint, waiter, loop))
        return waiter

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """Queue what the loop's last turn submitted, together.

        Why (issue 15): when a batch is delivered, its callers resume in one turn of their loop and most submit
        again. Queued one by one, the writer woke at the first and took a batch of the few already there (29 of 64,
        then 35), paying a transaction and a commit for each part. Queued together, the batch is whole: 64
        concurrent appenders went from about 18,000 to about 20,000 a second (`bench/bench_ledger.py`). One list
        per turn, one `put`: put item by item, the writer could wake at the first and take a part of the turn's
        items while this thread was still queueing the rest (seen under load: 64 submissions in two batches)."""
        items = self._pending.pop(loop, [])
        for start in range(0, len(items), self._max_batch):
            self._queue.put(items[start : start + self._max_batch])

    def close(self) -> None:
        for loop in list(self._pending):  # submitted, not yet handed over: run before the writer stops
            self._flush(loop)
        self._queue.put(None)
        self._thread.join()
        self._sync_pool.shutdown()
        self._conn.close()
        os.close(self._lock_fd)

    def _run(self) -> None:
        conn = self._conn
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = first  # a list of its own (a slice made by `_flush`)
            stop = False
            while len(batch) < self._max_batch:  # whole turns only: at most twice max_batch
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.extend(more)
            try:
                self._run_batch(conn, batch)
            except BaseException as exc:  # a bug here must not end the thread: every later write would hang
                self._fail_all(conn, batch, exc)
            self._deliver(batch)
            if stop:
                return

    @staticmethod
    def _deliver(batch: list[_Item]) -> None:
        """Wake the batch's callers with one `call_soon_threadsafe` per event loop rather than one per caller: each
        is a write to the loop's self-pipe, measured at ~50 µs of the writer thread's time on a loaded machine."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Item]] = {}
        for item in batch:
            if not item.fut.done():  # not expected: every path settles its batch; never leave a caller waiting
                item.fut.set_exception(StoreUnavailable("the writer did not settle this write"))
            by_loop.setdefault(item.loop, []).append(item)
        for loop, items in by_loop.items():
            _post(loop, items)

    def _fail_all(
        self,
        conn: sqlite3.Connection,
        batch: list[_Item],
        exc: BaseException,
    ) -> None:
        self.healthy = False
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        for fut in (item.fut for item in batch):
            if not fut.done():
                err = StoreUnavailable(f"the write failed: {exc}")
                err.__cause__ = exc
                fut.set_exception(err)

    def _run_batch(self, conn: LedgerConnection, batch: list[_Item]) -> None:
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # the other processes' writers (module docstring)
        try:
            self._run_locked(conn, batch)
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _run_locked(self, conn: LedgerConnection, batch: list[_Item]) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self.healthy = False
            if conn.in_transaction:  # never leave a transaction open: every later BEGIN would fail too
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            for item in batch:
                fut = item.fut
                if fut.set_running_or_notify_cancel(item.waiter):
                    err = StoreUnavailable(f"could not start a transaction: {exc}")
                    err.__cause__ = exc
                    fut.set_exception(err)
            return
        ledger = LedgerBatch()
        conn.ledger_batch = ledger
        try:
            self._run_ops(conn, batch, ledger)
        finally:
            conn.ledger_batch = None

    def _run_ops(
        self,
        conn: LedgerConnection,
        batch: list[_Item],
        ledger: LedgerBatch,
    ) -> None:
        results: list[tuple[_Result, bool, Any]] = []
        degraded = False
        # Alone in its batch, an operation needs no savepoint: the transaction is one (2 statements less, and the
        # usual case on a quiet gateway).
        alone = len(batch) == 1
        for i, (op, fut, wants_savepoint, waiter, _) in enumerate(batch):
            if not fut.set_running_or_notify_cancel(waiter):
                continue  # the caller gave up before its turn: do not change state on its behalf
            mark = ledger.mark()
            guarded = wants_savepoint and not alone
            changes = conn.total_changes
            if guarded:
                try:
                    conn.execute("SAVEPOINT op")
                except sqlite3.Error as exc:
                    self._abort(conn, results, [(fut, exc)], exc, batch[i + 1 :])
                    return
            try:
                value = op(conn)
            except BaseException as exc:
                if not alone and not guarded and conn.total_changes != changes:
                    # It wrote and then failed, with no savepoint to undo it alone: nothing of the batch is kept.
                    self._abort(conn, results, [(fut, exc)], exc, batch[i + 1 :])
                    return
                try:
                    if alone:
                        conn.execute("ROLLBACK")
                    elif guarded:
                        conn.execute("ROLLBACK TO op")
                        conn.execute("RELEASE op")
                except sqlite3.Error as rollback_exc:
                    # e.g. the disk filled up: the savepoint cannot be undone alone, so the whole batch is
                    # rolled back and each of its callers told; the writer thread carries on with the next batch.
                    self._abort(conn, results, [(fut, exc)], rollback_exc, batch[i + 1 :])
                    return
                ledger.undo(mark)
                if isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.IntegrityError):
                    # The database failed the operation (full, read-only, I/O, busy), not the operation's own rules:
                    # its caller may retry; the store is reported unhealthy until a batch commits cleanly.
                    degraded = True
                    err = StoreUnavailable(f"the database failed the operation: {exc}")
                    err.__cause__ = exc
                    exc = err
                if alone:
                    conn.before_commit.clear()  # its transaction is gone: nothing of it is to be made durable
                    self.healthy = not degraded
                    fut.set_exception(exc)
                    return
                results.append((fut, False, exc))
            else:
                if guarded:
                    try:
                        conn.execute("RELEASE op")
                    except sqlite3.Error as exc:
                        self._abort(conn, results, [(fut, exc)], exc, batch[i + 1 :])
                        return
                results.append((fut, True, value))
        try:
            ledger.flush(conn)  # the batch's tree state and queued index rows, once
        except BaseException as exc:
            self._abort(conn, results, [], exc, [])
            return
        hooks = getattr(conn, "before_commit", None)
        if hooks:
            # Once per group commit rather than once per share, and concurrently: the file system's journal
            # then covers many directory syncs with one flush (issue 15: durable shares at 1,000/s).
            jobs = list(hooks.values())
            hooks.clear()
            try:
                if len(jobs) == 1:
                    jobs[0]()
                else:
                    futures = [self._sync_pool.submit(job) for job in jobs]
                    wait(futures)  # every job ends before the batch goes on, whichever failed
                    for done in futures:
                        done.result()
            except BaseException as exc:
                self._abort(conn, results, [], exc, [])
                return
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self.healthy = False
            for fut, _, _ in results:
                err = StoreUnavailable(f"commit failed: {exc}")
                err.__cause__ = exc
                fut.set_exception(err)
            return
        self.healthy = not degraded
        for fut, ok, value in results:
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

    def _abort(
        self,
        conn: sqlite3.Connection,
        results: list[tuple[_Result, bool, Any]],
        failing: list[tuple[_Result, BaseException]],
        cause: BaseException,
        rest: list[_Item],
    ) -> None:
        """Roll back the whole batch after a failure that cannot be confined to one savepoint.

        Every caller whose operation ran in it is failed (nothing of theirs was committed); queued callers
        that have not run yet were never started and are failed too, so none waits for ever.
        """
        getattr(conn, "before_commit", {}).clear()  # the rolled-back shares' directories are removed by their callers
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite already rolled the transaction back itself (the usual case after a disk or I/O error)
        self.healthy = False
        # What the database said first (e.g. "database or disk is full"): every caller's error carries it, so the
        # HTTP layer answers each of them the same way (507 for a full disk, else 503).
        origin = failing[0][1] if failing and isinstance(failing[0][1], sqlite3.Error) else cause
        for fut, _, _ in results:
            error = StoreUnavailable(f"transaction rolled back: {origin}")
            error.__cause__ = origin
            fut.set_exception(error)
        for fut, exc in failing:
            err = StoreUnavailable(f"transaction rolled back: {origin}")
            err.__cause__ = exc
            fut.set_exception(err)
        for item in rest:
            fut = item.fut
            if fut.set_running_or_notify_cancel(item.waiter):
                err = StoreUnavailable(f"not run: the transaction was rolled back ({origin})")
                err.__cause__ = origin
                fut.set_exception(err)
