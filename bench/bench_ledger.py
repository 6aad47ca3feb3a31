#!/usr/bin/env python3
"""Ledger benchmarks: append throughput with checkpointing on vs off, and proof latency at scale.

1. Appends per second through the store's group-committing writer (`synchronous=FULL`, entry MACs on, as
   the gateway runs it), with many concurrent appenders, once with no checkpointer and once with the
   checkpointer signing as fast as it can (a harsher load than the gateway's 0.5 s interval); beside the
   limit measured in the same run: raw sqlite3 inserting the same entry bytes, leaf hashes and MACs into a
   plain table, group-committed in batches of the writer's size (256), WAL and `synchronous=FULL`, one thread.
2. Inclusion- and consistency-proof latency on a ledger of N entries (default 1,000,000), next to a
   primary-key point lookup measured in the same run.

Usage: python bench/bench_ledger.py [--entries 1000000] [--appends 20000] [--concurrency 1,16,64,256]
       [--no-checkpointing] [--entries 0: appends only]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.ledger.entry import decision_entry, seal, utc_now  # noqa: E402
from gateway.ledger.mac import entry_mac  # noqa: E402
from gateway.ledger.signer import LedgerSigner  # noqa: E402
from gateway.store.sqlite import SQLiteStore, TreeReader, append_entry, create_schema  # noqa: E402

JUSTIFICATION = {
    "policy": "hmg-2018",
    "decision": "not_share",
    "purpose": {"code": "other", "description": "Request from a housing association for a tenant's history."},
    "subjects": [{"ref": "ADULT-88-1930", "role": "adult_at_risk"}],
    "rules": {"7_record": {"rationale": "No safeguarding purpose.", "not_shared_reason": "no_lawful_basis"}},
}
POLICY = {"id": "hmg-2018", "version": "2018.1", "digest": "sha256:" + "0" * 64}
ACTOR = {"sub": "bench", "role": "practitioner", "org": "bench-org", "iss": "bench"}


def entry(i: int) -> dict[str, object]:
    j = dict(JUSTIFICATION)
    j["subjects"] = [{"ref": f"CASE-{i % 50000:05d}", "role": "child"}]
    return decision_entry(time=utc_now(), actor=ACTOR, justification=j, policy=POLICY)


MAC_KEY = bytes(range(32))


def raw_baseline(path: Path, n: int, batch: int = 256) -> tuple[float, float]:
    """The storage limit: the same rows, precomputed, inserted by one thread in group commits."""
    rows = []
    for i in range(n):
        data, leaf = seal(entry(i), i)
        rows.append((i, data, leaf, entry_mac(MAC_KEY, i, leaf)))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE ledger (idx INTEGER PRIMARY KEY, entry BLOB NOT NULL, leaf_hash BLOB, mac BLOB)")
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, n, batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO ledger VALUES (?, ?, ?, ?)", rows[start : start + batch])
        conn.execute("COMMIT")
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    conn.close()
    return n / elapsed, cpu / n * 1e6


async def appends(path: Path, n: int, concurrency: int, checkpointing: bool) -> tuple[float, int, float]:
    store = await SQLiteStore.open(path, ledger_mac_key=MAC_KEY)
    signer = LedgerSigner("bench.local/ledger", Ed25519PrivateKey.generate())
    signed = 0
    stop = asyncio.Event()

    async def checkpointer() -> None:
        nonlocal signed
        while not stop.is_set():
            if await store.checkpoint(signer.sign, utc_now()):
                signed += 1
            await asyncio.sleep(0)

    todo = iter(range(n))

    async def worker() -> None:
        for i in todo:
            await store.record(entry(i))

    cp_task = asyncio.create_task(checkpointer()) if checkpointing else None
    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    stop.set()
    if cp_task:
        await cp_task
    await store.close()
    return n / elapsed, signed, cpu / n * 1e6


def build(path: Path, n: int) -> float:
    create_schema(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")  # build only; the measured appends above use FULL
    t0 = time.perf_counter()
    batch = 20000
    for start in range(0, n, batch):
        conn.execute("BEGIN")
        for i in range(start, min(n, start + batch)):
            append_entry(conn, entry(i))
        conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - t0


def timed(fn, reps: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--appends", type=int, default=20_000)
    ap.add_argument(
        "--concurrency", type=lambda v: [int(c) for c in v.split(",")], default=[64], help="e.g. 1,16,64,256"
    )
    ap.add_argument("--no-checkpointing", action="store_true", help="skip the run with the checkpointer signing")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="safeshare-bench-ledger-") as tmp:
        raw, raw_cpu = raw_baseline(Path(tmp) / "raw.sqlite3", args.appends)
        for run, concurrency in enumerate(args.concurrency):
            off, _, off_cpu = asyncio.run(appends(Path(tmp) / f"off{run}.sqlite3", args.appends, concurrency, False))
            if args.no_checkpointing:
                cp = ""
            else:
                on, signed, _ = asyncio.run(appends(Path(tmp) / f"on{run}.sqlite3", args.appends, concurrency, True))
                cp = f"on {on:8.0f} ({signed} checkpoints signed)   "
            # CPU time per append (all threads of the process, the load generator's entry building included): what
            # bounds the rate on a quiet machine, much less disturbed than wall time by other work on a busy one.
            print(
                f"appends/s (synchronous=FULL, {concurrency:3d} concurrent): checkpointing off {off:8.0f}   {cp}"
                f"raw sqlite3 group-commit limit {raw:8.0f}   ratio off/raw {off / raw:.2f}   target 20000/s   "
                f"CPU per append: store {off_cpu:.0f} µs, raw limit {raw_cpu:.1f} µs"
            )
        if not args.entries:
            return

        db = Path(tmp) / "big.sqlite3"
        secs = build(db, args.entries)
        print(f"built {args.entries} entries in {secs:.1f} s ({args.entries / secs:.0f}/s, synchronous=OFF)")
        rnd = random.Random(7)
        size = args.entries
        with TreeReader(db) as t:
            conn = t._conn
            lookup = timed(
                lambda: conn.execute("SELECT entry FROM ledger WHERE idx = ?", (rnd.randrange(size),)).fetchone(), 500
            )
            incl = timed(lambda: t.inclusion_proof(rnd.randrange(size), size), 200)
            cons = timed(lambda: t.consistency_proof(rnd.randrange(1, size), size), 200)
        print(
            f"inclusion proof at {size}: median {incl[0]:.2f} ms p95 {incl[1]:.2f} ms   "
            f"PK lookup baseline median {lookup[0]:.3f} ms   ratio {incl[0] / lookup[0]:.0f}x"
        )
        print(f"consistency proof at {size}: median {cons[0]:.2f} ms p95 {cons[1]:.2f} ms")


if __name__ == "__main__":
    main()
