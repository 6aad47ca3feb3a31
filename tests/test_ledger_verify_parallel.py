"""`ledger verify` over processes (gateway/ledger/verify_parallel.py) gives the verdict the one-process loop gives,
on SQLite and PostgreSQL, for an untouched ledger and for each kind of tampering, whatever the range size (so a
gap, an edit or a checkpoint falls at a range's start, middle or end) and whether the ranges run in this process
or in worker processes. And its pieces: the fast canonical-form check agrees with the exact one, the tree
assembled from ranges agrees with `CompactRange` at every size.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ledger.mac import entry_mac
from gateway.ledger.merkle import CompactRange, leaf_hash
from gateway.ledger.signer import LedgerSigner
from gateway.ledger.verify import LevelTree, VerifyReport, _entry_problem, check_rows, subtree_levels, verify_ledger
from gateway.ledger.verify_parallel import verify_ranges
from gateway.store import ledger_snapshot, open_store
from tests.pg import database_for_sync_fixture

ORIGIN = "verify.test/log"
MAC_KEY = bytes(range(32))
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
SIGNER = LedgerSigner(ORIGIN, KEY)
TOTAL = 37
CHECKPOINTS = (8, 20, TOTAL)


def entry(i: int) -> dict[str, Any]:
    """Mostly plain entries, and some the fast path must leave to the exact check (a float, a character beyond
    U+FFFF, a string that looks like a number token), all valid."""
    e: dict[str, Any] = {
        "v": 1,
        "kind": "decision",
        "time": f"2026-01-01T00:00:{i % 60:02d}.123Z",
        "actor": {"sub": "alice", "role": "practitioner", "org": "Hereford MASH", "iss": "test"},
        "subjects": [f"S-{i}"],
        "recipients": [],
        "purpose": {"code": "safeguarding", "description": f"Concern number {i} about a child"},
    }
    if i % 7 == 3:
        e["score"] = 0.5 + i
    if i % 11 == 4:
        e["purpose"]["description"] += " \U0001f600"
    if i % 5 == 2:
        e["note"] = f"ref:{i}.5,"
    return e


async def build(url: str) -> None:
    store = await open_store(url, ledger_mac_key=MAC_KEY)
    try:
        for i in range(TOTAL):
            await store.record(entry(i))
            if i + 1 in CHECKPOINTS:
                assert await store.checkpoint(SIGNER.sign, "2026-01-01T00:00:00Z") is not None
    finally:
        await store.close()


def rehashed(data: bytes, index: int) -> tuple[bytes, bytes, bytes]:
    """What someone with the database and the MAC key (not the signing key) writes: leaf and MAC to match."""
    leaf = leaf_hash(data)
    return data, leaf, entry_mac(MAC_KEY, index, leaf)


#: name -> (statements with ? parameters, built from the stored entries; expected verdict: first bad index and
#: words in the first problem, or None for an untouched ledger).
Statements = list[tuple[str, tuple[Any, ...]]]


def scenario(name: str, stored: dict[int, bytes]) -> Statements:
    other = LedgerSigner(ORIGIN, Ed25519PrivateKey.generate())
    edited = stored[13].replace(b"Concern number 13", b"Concern number 31")
    loose = json.dumps(json.loads(stored[13]), indent=1).encode()
    return {
        "untouched": [],
        "edit": [("UPDATE ledger SET entry = ? WHERE idx = 13", (edited,))],
        "edit_rehash": [("UPDATE ledger SET entry = ?, leaf_hash = ? WHERE idx = 13", rehashed(edited, 13)[:2])],
        "not_canonical": [("UPDATE ledger SET entry = ?, leaf_hash = ?, mac = ? WHERE idx = 13", rehashed(loose, 13))],
        "delete_one": [("DELETE FROM ledger WHERE idx = 5", ())],
        "delete_range_end": [("DELETE FROM ledger WHERE idx IN (14, 15)", ())],
        "delete_whole_range": [("DELETE FROM ledger WHERE idx >= 16 AND idx < 20", ())],
        "truncate": [("DELETE FROM ledger WHERE idx >= 30", ())],
        "swap": [
            ("UPDATE ledger SET idx = 1000 WHERE idx = 2", ()),
            ("UPDATE ledger SET idx = 2 WHERE idx = 9", ()),
            ("UPDATE ledger SET idx = 9 WHERE idx = 1000", ()),
        ],
        "negative_index": [("UPDATE ledger SET idx = -1 WHERE idx = 36", ())],
        "forged_root": [("UPDATE ledger_checkpoints SET note = ? WHERE size = 20", (SIGNER.sign(20, b"\x01" * 32),))],
        "other_key": [("UPDATE ledger_checkpoints SET note = ? WHERE size = 20", (other.sign(20, b"\x01" * 32),))],
    }[name]


EXPECTED: dict[str, tuple[int | None, str] | None] = {
    "untouched": None,
    "edit": (13, "does not match its recorded leaf hash"),
    "edit_rehash": (13, "has no valid MAC"),
    "not_canonical": (13, "not in canonical form"),
    "delete_one": (5, "entry 5 is missing (the next stored entry is 6)"),
    "delete_range_end": (14, "entry 14 is missing (the next stored entry is 16)"),
    "delete_whole_range": (16, "entry 16 is missing (the next stored entry is 20)"),
    "truncate": (30, "the ledger has 30 entries but a signed checkpoint covers 37"),
    "swap": (2, "entry 2 names index 9"),
    "negative_index": (0, "entry 0 is missing (the next stored entry is -1)"),
    "forged_root": (8, "entries 8..19 do not match the checkpoint signed for size 20"),
    "other_key": (None, "checkpoint for size 20 does not verify"),
}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param


@pytest.fixture
def ledger(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        url = f"sqlite://{tmp_path / 'ledger.db'}"
        asyncio.run(build(url))
        yield url
        return
    with database_for_sync_fixture() as dsn:
        asyncio.run(build(dsn))
        yield dsn


def stored_entries(url: str) -> dict[int, bytes]:
    with ledger_snapshot(url) as snap:
        return {int(r[0]): bytes(r[1]) for r in snap.rows()}


def tamper(url: str, statements: Statements) -> None:
    """Past the guards, as someone with the database can: SQLite's triggers dropped, PostgreSQL's (and its foreign
    keys) off for the session."""
    if url.startswith("sqlite://"):
        conn = sqlite3.connect(url.removeprefix("sqlite://"), isolation_level=None)
        try:
            for (trigger,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
                conn.execute(f"DROP TRIGGER {trigger}")
            for sql, params in statements:
                conn.execute(sql, params)
        finally:
            conn.close()
        return

    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("SET session_replication_role = replica")
            for sql, params in statements:
                n = 0

                def number(_: Any) -> str:
                    nonlocal n
                    n += 1
                    return f"${n}"

                await conn.execute(re.sub(r"\?", number, sql), *params)
        finally:
            await conn.close()

    asyncio.run(run())


def parallel(url: str, workers: int, bits: int) -> VerifyReport:
    with ledger_snapshot(url) as snap:
        return verify_ranges(
            snap.reader(),
            snap.last_index,
            snap.checkpoints,
            SIGNER.verifier(),
            ORIGIN,
            mac_key=MAC_KEY,
            mac_start=snap.mac_start,
            workers=workers,
            bits=bits,
        )


def serial(url: str) -> VerifyReport:
    with ledger_snapshot(url) as snap:
        return verify_ledger(
            snap.rows(), snap.checkpoints, SIGNER.verifier(), ORIGIN, mac_key=MAC_KEY, mac_start=snap.mac_start
        )


def verdict(report: VerifyReport) -> tuple[Any, ...]:
    return report.ok, report.first_bad_index, report.problems, report.entries, report.root_hash, report.checkpoints


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_split_gives_the_one_process_verdict(ledger: str, backend: str, name: str) -> None:
    if backend == "postgres" and name == "negative_index":
        pytest.skip("PostgreSQL's ledger refuses an index below 0 (CHECK idx >= 0), even to its owner")
    tamper(ledger, scenario(name, stored_entries(ledger)))
    expected = EXPECTED[name]
    reference = parallel(ledger, workers=1, bits=64)  # one range, in this process: the plain loop
    if expected is None:
        assert reference.ok and reference.entries == TOTAL and reference.checkpoints == len(CHECKPOINTS)
        with ledger_snapshot(ledger) as snap:
            assert reference.root_hash == snap.tree.root()
    else:
        assert not reference.ok and reference.first_bad_index == expected[0]
        assert expected[1] in reference.problems[0], reference.problems
    assert verdict(serial(ledger)) == verdict(reference)
    for workers, bits in ((1, 0), (1, 1), (1, 2), (2, 0), (2, 2), (2, 3)):
        assert verdict(parallel(ledger, workers, bits)) == verdict(reference), (workers, bits)


def test_progress_counts_every_entry(ledger: str) -> None:
    seen: list[int] = []
    with ledger_snapshot(ledger) as snap:
        report = verify_ranges(
            snap.reader(),
            snap.last_index,
            snap.checkpoints,
            SIGNER.verifier(),
            ORIGIN,
            mac_key=MAC_KEY,
            mac_start=snap.mac_start,
            workers=2,
            bits=3,
            advance=seen.append,
        )
    assert report.ok and sum(seen) == TOTAL and len(seen) == 5


def test_an_empty_ledger(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'empty.db'}"

    async def make() -> None:
        await (await open_store(url, ledger_mac_key=MAC_KEY)).close()

    asyncio.run(make())
    report = parallel(url, workers=2, bits=2)
    assert report.ok and report.entries == 0 and report.root_hash == CompactRange().root()


# -- the pieces --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [0, 1, 2, 3, 64])
def test_level_tree_gives_the_compact_range_root_at_every_size(bits: int) -> None:
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(70)]
    tree = LevelTree(bits)
    step = 1 << min(bits, 10)
    for lo in range(0, len(leaves), step):
        chunk = leaves[lo : lo + step]
        tree.add(subtree_levels(chunk), len(chunk))
    compact = CompactRange()
    assert tree.root(0) == compact.root()
    for n, leaf in enumerate(leaves, 1):
        compact.append(leaf)
        assert tree.root(n) == compact.root(), n


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(value=JSON, encoding=st.sampled_from(["canonical", "orjson", "stdlib", "spaced"]), index=st.integers(0, 3))
def test_the_fast_check_agrees_with_the_exact_one(value: Any, encoding: str, index: int) -> None:
    """Whatever the bytes (canonical or not, with floats, big integers, any characters), `check_rows` reports
    what `_entry_problem` (the exact parse-and-canonicalise check) reports."""
    import orjson

    from gateway.ledger.entry import canonical

    entry = {"index": 1, "x": value}
    try:
        data = {
            "canonical": lambda: canonical(entry),
            "orjson": lambda: orjson.dumps(entry, option=orjson.OPT_SORT_KEYS),
            "stdlib": lambda: json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(),
            "spaced": lambda: json.dumps(entry).encode(),
        }[encoding]()
    except (TypeError, ValueError, OverflowError):  # rfc8785 refuses some values; orjson refuses lone surrogates
        return
    checked = check_rows([(index, data, leaf_hash(data), None)], index)
    exact = _entry_problem(index, data)
    assert (checked.problem[1] if checked.problem else None) == exact


@pytest.mark.parametrize(
    "text",
    [
        '{"index":0,"x":1.0}',  # orjson's form of 1.0; RFC 8785 writes 1
        '{"index":0,"x":1}',
        '{"index":0,"x":1e16}',
        '{"index":0,"x":10000000000000000}',  # 2**53 < 1e16: an integer only RFC 8785's double can hold
        '{"index":0,"x":9007199254740991}',
        '{"index":0,"x":9007199254740992}',
        '{"index":0,"x":-9007199254740992}',
        '{"index":0,"x":18446744073709551616}',
        '{"index":0,"x":123456789012345678901234567890}',
        '{"index":0,"x":1e400}',
        '{"index":0,"x":-0}',
        '{"index":0,"x":0.5}',
        '{"index":0,"t":"12:30:05.123Z","v":"x:1.5,"}',
        '{"index":0,"b":1,"a":2}',
        '{"a":2,"index":0,"a":1}',
        '{"index":0,"\U0001f600":1,"\uffff":2}',
        '{"index":0,"\uffff":2,"\U0001f600":1}',
        '{"index":0,"x":"\\ud800"}',
        '{"index":0,"x":"\\u00e9"}',
        '{"index":0,"x":"\u00e9"}',
        '{"index":0.0}',
        '{"index":true}',
        "[0]",
        '{"index":0',
    ],
)
def test_tricky_entries_take_the_exact_path_where_they_must(text: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    checked = check_rows([(0, data, leaf_hash(data), None)], 0)
    assert (checked.problem[1] if checked.problem else None) == _entry_problem(0, data)
