#!/usr/bin/env python3
"""Where the SQLite writer thread's time goes per ledger append: its operations, its flush, its COMMIT.

Why (issue 15): at many concurrent appenders the writer thread is the serial stage of every append, and the one
figure bench/bench_ledger.py gives (appends per second) moves by tens of percent from run to run on a shared
2-core machine. This splits the writer's time per append, wall and thread CPU, into the three phases of a batch,
so a change can be judged by the phase it aims at (and by CPU, which other load disturbs far less than wall time):

  ops     the queued operations' Python (`append_entry`: join, leaf hash, MAC, tree step, row tuples)
  flush   the batch's INSERTs (`LedgerBatch.flush`: ledger row and its indexes, subjects, orgs, FTS, nodes)
  commit  COMMIT: WAL frames written and fsynced (and SQLite's automatic checkpoint when one is due)

plus the event loop's thread CPU per append, batch sizes, and bytes written to disk per append (Linux
/proc/self/io: WAL and checkpoints). The writer is timed by wrapping its methods in this process only.

Usage: python bench/bench_ledger_phases.py [--appends 20000] [--concurrency 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_ledger import appends  # noqa: E402

from gateway.store.sqlite import schema, tree, writer  # noqa: E402

PHASES = ("batch", "flush", "commit")
wall: dict[str, float] = dict.fromkeys(PHASES, 0.0)
cpu: dict[str, float] = dict.fromkeys(PHASES, 0.0)
sizes: list[int] = []


class _TimedConnection(schema.LedgerConnection):
    """The writer's connection, timing its COMMITs."""

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        if sql != "COMMIT":
            return super().execute(sql, *args)
        w0, c0 = time.perf_counter(), time.thread_time()
        try:
            return super().execute(sql, *args)
        finally:
            wall["commit"] += time.perf_counter() - w0
            cpu["commit"] += time.thread_time() - c0


def _connect(path: Path, ledger_mac_key: bytes | None = None) -> schema.LedgerConnection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0, factory=_TimedConnection)
    conn.ledger_mac_key = ledger_mac_key
    conn.before_commit = {}
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=30000"):
        conn.execute(f"PRAGMA {pragma}")
    return conn


def _timed(phase: str, fn: Any) -> Any:
    def wrapper(self: Any, conn: Any, *rest: Any) -> Any:
        if phase == "batch":
            sizes.append(len(rest[0]))
        w0, c0 = time.perf_counter(), time.thread_time()
        try:
            return fn(self, conn, *rest)
        finally:
            wall[phase] += time.perf_counter() - w0
            cpu[phase] += time.thread_time() - c0

    return wrapper


def _instrument() -> None:
    writer._connect = _connect  # type: ignore[assignment]
    writer.Writer._run_batch = _timed("batch", writer.Writer._run_batch)  # type: ignore[method-assign]
    tree.LedgerBatch.flush = _timed("flush", tree.LedgerBatch.flush)  # type: ignore[method-assign]


def _written_bytes() -> int:
    try:
        with open("/proc/self/io") as f:
            fields = dict(line.split(": ") for line in f.read().splitlines())
        return int(fields["write_bytes"])
    except OSError:
        return 0


def one_round(path: Path, n: int, concurrency: int) -> dict[str, float]:
    for d in (wall, cpu):
        for k in d:
            d[k] = 0.0
    sizes.clear()
    bytes0, loop0 = _written_bytes(), time.thread_time()
    rate, _, cpu_per_append = asyncio.run(appends(path, n, concurrency, False))
    loop_cpu = time.thread_time() - loop0
    per = 1e6 / n
    ops_wall = wall["batch"] - wall["flush"] - wall["commit"]
    ops_cpu = cpu["batch"] - cpu["flush"] - cpu["commit"]
    return {
        "rate": rate,
        "cpu": cpu_per_append,
        "loop_cpu": loop_cpu * per,
        "ops_wall": ops_wall * per,
        "ops_cpu": ops_cpu * per,
        "flush_wall": wall["flush"] * per,
        "flush_cpu": cpu["flush"] * per,
        "commit_wall": wall["commit"] * per,
        "commit_cpu": cpu["commit"] * per,
        "batches": len(sizes),
        "mean_batch": statistics.mean(sizes) if sizes else 0.0,
        "bytes": (_written_bytes() - bytes0) / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--appends", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    _instrument()
    with tempfile.TemporaryDirectory(prefix="safeshare-bench-phases-") as tmp:
        for r in range(args.rounds):
            m = one_round(Path(tmp) / f"{r}.sqlite3", args.appends, args.concurrency)
            print(
                f"{args.concurrency} appenders: {m['rate']:7.0f}/s  CPU/append {m['cpu']:5.1f} µs (loop thread"
                f" {m['loop_cpu']:5.1f})  writer wall (CPU) µs/append: ops {m['ops_wall']:5.1f} ({m['ops_cpu']:4.1f})"
                f"  flush {m['flush_wall']:5.1f} ({m['flush_cpu']:4.1f})  commit {m['commit_wall']:5.1f}"
                f" ({m['commit_cpu']:4.1f})  batches {m['batches']} of {m['mean_batch']:.0f} on average"
                f"  disk writes {m['bytes']:.0f} B/append"
            )


if __name__ == "__main__":
    main()
