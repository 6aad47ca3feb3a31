#!/usr/bin/env python3
"""Cost of the checkpoint guard (gateway/ledger/guard.py, `check_extension` in the SQLite store).

Builds a ledger of N entries with MACs (through the store's own `append_entry`), signs a checkpoint at N - k,
then times the guard's proof that the tree of size N extends it, three ways: right after a restart (the old
compact range rebuilt from stored subtree hashes), with the compact range this process signed kept in memory,
and the unguarded signer for comparison. The guard never rehashes the ledger: its cost is O(log N) stored-hash
reads plus one read, hash and MAC check per new entry, plus SQLite's count(*) over the ledger.

Usage: python bench/bench_checkpoint_guard.py [--entries 200000] [--new 1000]
"""

from __future__ import annotations

import argparse
import secrets
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_ledger import entry  # noqa: E402
from gateway.ledger.entry import utc_now  # noqa: E402
from gateway.ledger.guard import CheckpointGuard  # noqa: E402
from gateway.ledger.signer import LedgerSigner  # noqa: E402
from gateway.store.sqlite import LedgerConnection, check_extension, create_schema, load_tree  # noqa: E402
from gateway.store.sqlite import append_entry as append  # noqa: E402

ORIGIN = "bench.local/ledger"


def build(path: Path, n: int, signed_at: int, key: bytes, signer: LedgerSigner) -> None:
    create_schema(path, key)
    conn = sqlite3.connect(path, isolation_level=None, factory=LedgerConnection)
    conn.ledger_mac_key = key
    conn.execute("PRAGMA synchronous=OFF")  # build only
    conn.execute("BEGIN")
    for i in range(n):
        append(conn, entry(i))
        if i + 1 == signed_at:
            tree = load_tree(conn)
            conn.execute(
                "INSERT INTO ledger_checkpoints (size, time, note) VALUES (?, ?, ?)",
                (tree.size, utc_now(), signer.sign(tree.size, tree.root())),
            )
    conn.execute("COMMIT")
    conn.close()


def timed(fn, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=200_000)
    ap.add_argument("--new", type=int, default=1000, help="entries since the last signed checkpoint")
    args = ap.parse_args()
    key = secrets.token_bytes(32)
    signer = LedgerSigner(ORIGIN, Ed25519PrivateKey.generate())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sqlite3"
        t = time.perf_counter()
        build(path, args.entries, args.entries - args.new, key, signer)
        print(f"built {args.entries:,} entries in {time.perf_counter() - t:.1f} s")
        conn = sqlite3.connect(path, isolation_level=None)

        def restart() -> None:
            guard = CheckpointGuard(signer.verifier(), ORIGIN, None)
            conn.execute("BEGIN")
            new = check_extension(conn, guard, key)
            conn.execute("ROLLBACK")
            assert new is not None and new.size == args.entries

        ms = timed(restart)
        print(
            f"guard after a restart (old compact range from stored hashes, every row counted),"
            f" {args.new} new entries: {ms:.1f} ms"
        )
        guard = CheckpointGuard(signer.verifier(), ORIGIN, None)
        cp_note = conn.execute("SELECT note FROM ledger_checkpoints").fetchone()[0]
        conn.execute("BEGIN")
        from gateway.store.sqlite import _stored_compact

        guard.remember(bytes(cp_note), _stored_compact(conn, args.entries - args.new))
        conn.execute("ROLLBACK")

        def warm() -> None:
            conn.execute("BEGIN")
            check_extension(conn, guard, key)
            conn.execute("ROLLBACK")

        print(
            f"guard in a running gateway (compact range in memory, only new rows counted),"
            f" {args.new} new entries: {timed(warm):.1f} ms"
        )

        def count() -> None:
            conn.execute("SELECT count(*), max(idx) FROM ledger").fetchone()

        print(f"  of which count(*) over {args.entries:,} rows: {timed(count):.1f} ms")

        def unguarded() -> None:
            tree = load_tree(conn)
            signer.sign(tree.size, tree.root())

        print(f"unguarded (load tree state, sign): {timed(unguarded):.2f} ms")
        conn.close()


if __name__ == "__main__":
    main()
