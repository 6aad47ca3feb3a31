"""The SQLite writer's batch-level ledger appends (issue 15 speed): the tree read once and written once per batch,
the rows of every append queued and inserted before the COMMIT, and plain appends run without a savepoint.

What must not change: the stored ledger (entries, index tables, FTS, Merkle nodes, tree state) is the same as one
appended entry by entry, and one failing operation neither takes down the others in its batch nor leaves any of its
appends behind."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gateway.ledger.entry import decision_entry
from gateway.store.models import StoreUnavailable
from gateway.store.sqlite import SQLiteStore, append_entry, create_schema, load_tree
from gateway.store.sqlite.schema import _connect

KEY = bytes(range(32))
ACTOR = {"sub": "p1", "role": "practitioner", "org": "org-a", "iss": "test"}
POLICY = {"id": "hmg-2018", "version": "2018.1", "digest": "sha256:" + "0" * 64}


def _entry(i: int) -> dict[str, Any]:
    justification = {
        "policy": "hmg-2018",
        "decision": "not_share",
        "purpose": {"code": "other", "description": f"Request number {i} from a housing association."},
        "subjects": [{"ref": f"CASE-{i % 7:05d}", "role": "child"}],
        "rules": {"7_record": {"rationale": "No safeguarding purpose.", "not_shared_reason": "no_lawful_basis"}},
    }
    e = decision_entry(
        time=f"2026-01-01T00:00:{i % 60:02d}.000Z", actor=ACTOR, justification=justification, policy=POLICY
    )
    return dict(e)


TABLES = {
    "ledger": "SELECT * FROM ledger ORDER BY idx",
    "ledger_subjects": "SELECT ref, idx FROM ledger_subjects ORDER BY idx, ref",
    "ledger_recipients": "SELECT recipient_id, idx FROM ledger_recipients ORDER BY idx, recipient_id",
    "ledger_orgs": "SELECT org, idx FROM ledger_orgs ORDER BY idx, org",
    "ledger_agreements": "SELECT * FROM ledger_agreements ORDER BY idx",
    "ledger_nodes": "SELECT level, idx, hash FROM ledger_nodes ORDER BY level, idx",
    "ledger_tree": "SELECT size, state FROM ledger_tree",
    "fts": "SELECT rowid FROM ledger_fts WHERE ledger_fts MATCH 'housing' ORDER BY rowid",
}


def _dump(path: Path) -> dict[str, list[Any]]:
    conn = sqlite3.connect(path)
    try:
        return {name: conn.execute(sql).fetchall() for name, sql in TABLES.items()}
    finally:
        conn.close()


def _reference(path: Path, entries: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The same entries appended one by one outside any writer batch (the CLI's path, and the old one)."""
    create_schema(path, KEY)
    conn = _connect(path, KEY)
    try:
        for e in entries:
            conn.execute("BEGIN IMMEDIATE")
            append_entry(conn, e)
            conn.execute("COMMIT")
    finally:
        conn.close()
    return _dump(path)


async def test_batched_appends_store_what_single_appends_store_despite_failing_operations(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "db.sqlite3", ledger_mac_key=KEY)
    kept: list[dict[str, Any]] = []
    try:
        writer = store._writer

        def appends_then_fails(e: dict[str, Any]) -> Any:
            def op(conn: sqlite3.Connection) -> None:
                append_entry(conn, e)
                append_entry(conn, e)
                raise ValueError("refused on its own rules after appending")

            return op

        def fails_before_writing(conn: sqlite3.Connection) -> None:
            raise ValueError("refused before writing")

        futures: list[tuple[asyncio.Future[Any], str]] = []
        for i in range(600):  # past 512 entries: Merkle nodes of level 8 and 9 are stored on the way
            e = _entry(i)
            if i % 37 == 5:
                futures.append((writer.submit(appends_then_fails(e)), "fails"))
            elif i % 41 == 7:
                futures.append((writer.submit(fails_before_writing, savepoint=False), "fails"))
            else:
                kept.append(e)
                futures.append((writer.submit(lambda c, e=e: append_entry(c, e), savepoint=False), "ok"))
        results = await asyncio.gather(*(f for f, _ in futures), return_exceptions=True)
        for (_, want), got in zip(futures, results, strict=True):
            if want == "ok":
                assert isinstance(got, int), got
            else:
                assert isinstance(got, ValueError), got
        assert sorted(r for r in results if isinstance(r, int)) == list(range(len(kept)))
    finally:
        await store.close()
    assert _dump(tmp_path / "db.sqlite3") == _reference(tmp_path / "ref.sqlite3", kept)


async def test_an_unguarded_operation_that_fails_after_writing_rolls_back_its_batch(tmp_path: Path) -> None:
    """The safety net behind `savepoint=False`: it wrote, then failed, with nothing to undo it alone."""
    store = await SQLiteStore.open(tmp_path / "db.sqlite3", ledger_mac_key=KEY)
    try:
        writer = store._writer

        def writes_then_fails(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO ledger_checkpoints (size, time, note) VALUES (1, 't', x'00')")
            raise ValueError("broke its promise")

        futs = [
            writer.submit(lambda c: append_entry(c, _entry(0)), savepoint=False),
            writer.submit(writes_then_fails, savepoint=False),
            writer.submit(lambda c: append_entry(c, _entry(1)), savepoint=False),
        ]
        results = await asyncio.gather(*futs, return_exceptions=True)
        assert isinstance(results[1], StoreUnavailable), results
        for r in (results[0], results[2]):  # rolled back with it, or committed in a batch of its own
            assert isinstance(r, int | StoreUnavailable), results
        idx = await store.record(_entry(2))
        committed = sum(isinstance(r, int) for r in results)
        assert idx == committed
    finally:
        await store.close()
    conn = sqlite3.connect(tmp_path / "db.sqlite3")
    try:
        assert conn.execute("SELECT count(*) FROM ledger_checkpoints").fetchone()[0] == 0
        count = conn.execute("SELECT count(*) FROM ledger").fetchone()[0]
        assert load_tree(conn).size == count == committed + 1
    finally:
        conn.close()


@pytest.mark.parametrize("savepoint", [True, False])
async def test_a_checkpoint_in_the_batch_signs_the_appends_before_it(tmp_path: Path, savepoint: bool) -> None:
    store = await SQLiteStore.open(tmp_path / "db.sqlite3", ledger_mac_key=KEY)
    try:
        writer = store._writer
        for i in range(5):
            writer.submit(lambda c, i=i: append_entry(c, _entry(i)), savepoint=savepoint)
        size = writer.submit(lambda c: load_tree(c).size)
        assert await size == 5
    finally:
        await store.close()


async def test_an_append_the_tables_would_refuse_fails_alone_in_its_batch(tmp_path: Path) -> None:
    """Index rows are inserted at the batch's end, so what their constraints refuse is refused up front instead."""
    store = await SQLiteStore.open(tmp_path / "db.sqlite3", ledger_mac_key=KEY)
    try:
        twice = _entry(1)
        twice["agreements"] = [{"id": "isa-1", "version": 1}, {"id": "isa-1", "version": 2}]
        results = await asyncio.gather(
            store.record(_entry(0)), store.record(twice), store.record(_entry(2)), return_exceptions=True
        )
        assert isinstance(results[1], sqlite3.IntegrityError), results
        assert results[0] == 0 and results[2] == 1, results
    finally:
        await store.close()


async def test_entries_prepared_by_their_callers_store_what_single_appends_store(tmp_path: Path) -> None:
    """`record` encodes the entry and derives its rows before queueing (`prepare_entry`); the writer only joins
    and hashes: the ledger is the same, across batches of every size (multi-row INSERTs of 64, 16, 4 and 1)."""
    entries = [_entry(i) for i in range(700)]
    for i, e in enumerate(entries):
        if i % 3 == 0:
            e["agreements"] = [{"id": f"isa-{i % 5}", "version": 1}, {"id": "isa-x", "version": 2}]
        if i % 4 == 0:
            e["recipients"] = [{"id": f"r{i % 9}", "org": "org-b"}, {"id": "t1", "via": "team-1", "org": "org-c"}]
    store = await SQLiteStore.open(tmp_path / "db.sqlite3", ledger_mac_key=KEY)
    try:
        done = 0
        for size in (1, 3, 5, 17, 64, 65, 83, 200, 262):  # batches of assorted sizes, in order
            got = await asyncio.gather(*(store.record(e) for e in entries[done : done + size]))
            assert got == list(range(done, done + size))
            done += size
        assert done == len(entries)
    finally:
        await store.close()
    assert _dump(tmp_path / "db.sqlite3") == _reference(tmp_path / "ref.sqlite3", entries)


def test_the_writer_s_entry_mac_is_entry_mac() -> None:
    """The writer computes entry MACs from precomputed HMAC pads (no GIL release per entry): the same bytes."""
    import os

    from gateway.ledger.mac import entry_mac
    from gateway.store.sqlite.tree import _entry_mac

    for i in range(200):
        key, leaf = os.urandom(32), os.urandom(32)
        index = int.from_bytes(os.urandom(8), "big") >> (i % 64)
        assert _entry_mac(key, index, leaf) == entry_mac(key, index, leaf)
    with pytest.raises(ValueError):
        _entry_mac(KEY, 1 << 64, bytes(32))
    with pytest.raises(ValueError):
        _entry_mac(KEY, 0, bytes(31))
    with pytest.raises(ValueError):
        _entry_mac(bytes(31), 0, bytes(32))


async def test_a_batch_waits_for_another_process_s_writer_lock(tmp_path: Path) -> None:
    """`serve --workers N` and the CLI write the same file from other processes: a batch's transaction is taken
    under the lock file's `flock` (another open file description, as another process has), and goes ahead the
    moment it is released."""
    import fcntl
    import os

    from gateway.store.sqlite.writer import lock_path

    store = await SQLiteStore.open(tmp_path / "db.sqlite3", ledger_mac_key=KEY)
    try:
        fd = os.open(lock_path(tmp_path / "db.sqlite3"), os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            pending = store._writer.submit(lambda c: append_entry(c, _entry(0)), savepoint=False)
            done, _ = await asyncio.wait([pending], timeout=0.5)
            assert not done, "the writer went ahead while another process held the lock"
            fcntl.flock(fd, fcntl.LOCK_UN)
            assert await asyncio.wait_for(pending, 10) == 0
            # ... and holds it only for its transaction: free again once the batch has committed.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    finally:
        await store.close()


async def test_what_one_turn_of_the_loop_submits_is_one_batch(tmp_path: Path) -> None:
    """Callers resumed together submit together: the writer takes their operations as one batch even when the
    turn is long enough (here ~13 ms, past the interpreter's 5 ms switch interval) for it to have woken at the
    first of them and committed a part alone."""
    import time

    store = await SQLiteStore.open(tmp_path / "db.sqlite3", ledger_mac_key=KEY)
    try:
        seen: list[object] = []  # the batches themselves, kept alive so that no two share an id()

        def op(conn: sqlite3.Connection) -> None:
            seen.append(conn.ledger_batch)  # type: ignore[attr-defined]

        futures = []
        for _ in range(64):
            futures.append(store._writer.submit(op))
            end = time.perf_counter() + 0.0002
            while time.perf_counter() < end:  # the caller's own work between submissions
                pass
        await asyncio.gather(*futures)
        batches = {id(b) for b in seen}
        assert len(seen) == 64 and len(batches) == 1, f"{len(batches)} batches"
    finally:
        await store.close()
