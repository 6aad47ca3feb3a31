#!/usr/bin/env python3
"""Full offline verification of a large ledger (default 1,000,000 entries) with `safeshare ledger verify`,
beside the raw cost measured in the same run on the same database: reading the same rows with sqlite3 and
SHA-256 hashing the same bytes (the RFC 6962 leaf hashes, the least any verifier must do), in one process and
spread over the cores in the ranges `ledger verify` uses (its fair floor). All figures read from the page cache.

The ledger is built once (entries with their MACs through the store's own `append_entry`, a signed checkpoint
every `--checkpoint-every` entries, signed with the home's real keys) and kept under `--dir` for reruns.
`ledger verify` runs as the command an auditor types; on a terminal it shows its progress bar.

Target (issue 15): at most 10 s for 1,000,000 entries.

Usage: python bench/bench_verify.py [--entries 1000000] [--checkpoint-every 1000] [--dir /tmp/safeshare-bench-verify]
       [--compare CHECKOUT]   (also time the `ledger verify` of another checkout, e.g. the code before, same run)
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import resource
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.config import load_settings  # noqa: E402
from gateway.home import init_home  # noqa: E402
from gateway.ledger.entry import decision_entry, utc_now  # noqa: E402
from gateway.ledger.signer import LedgerSigner  # noqa: E402
from gateway.ledger.verify_parallel import RANGE_BITS, default_workers  # noqa: E402
from gateway.store.sqlite import LedgerConnection, append_entry, create_schema, load_tree  # noqa: E402

JUSTIFICATION = {
    "policy": "hmg-2018",
    "decision": "not_share",
    "purpose": {"code": "other", "description": "Request from a housing association for a tenant's history."},
    "subjects": [{"ref": "ADULT-88-1930", "role": "adult_at_risk"}],
    "rules": {"7_record": {"rationale": "No safeguarding purpose.", "not_shared_reason": "no_lawful_basis"}},
}
POLICY = {"id": "hmg-2018", "version": "2018.1", "digest": "sha256:" + "0" * 64}
ACTOR = {"sub": "bench", "role": "practitioner", "org": "bench-org", "iss": "bench"}


def build(home: Path, n: int, every: int) -> None:
    settings = load_settings(home)
    keys = init_home(settings)
    db = settings.db_path
    if db.exists():
        with sqlite3.connect(db) as conn:
            if conn.execute("SELECT count(*) FROM ledger").fetchone()[0] == n:
                return
        raise SystemExit(f"{db} exists with a different size; remove {home}")
    create_schema(db, keys.ledger_mac_key)
    signer = LedgerSigner(settings.log_origin, keys.ledger_key, keys.ledger_pq_key)
    conn = sqlite3.connect(db, isolation_level=None, factory=LedgerConnection)
    conn.ledger_mac_key = keys.ledger_mac_key
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")  # the build only; nothing measured here
    t0 = time.perf_counter()
    for start in range(0, n, every):
        conn.execute("BEGIN")
        for i in range(start, min(n, start + every)):
            j = dict(JUSTIFICATION)
            j["subjects"] = [{"ref": f"CASE-{i % 50000:05d}", "role": "child"}]
            append_entry(conn, decision_entry(time=utc_now(), actor=ACTOR, justification=j, policy=POLICY))
        tree = load_tree(conn)
        note = signer.sign(tree.size, tree.root())
        conn.execute("INSERT INTO ledger_checkpoints (size, time, note) VALUES (?, ?, ?)", (tree.size, utc_now(), note))
        conn.execute("COMMIT")
        if start % (every * 100) == 0:
            print(f"  built {start + every} entries ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    conn.close()


def _raw_range(db: str, lo: int, hi: int) -> int:
    """Read rows [lo, hi) as `ledger verify` reads them and leaf-hash each entry: the bytes hashed."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.execute("PRAGMA mmap_size = 1073741824")
    sha, total = hashlib.sha256, 0
    for _, data, _, _ in conn.execute(
        "SELECT idx, entry, leaf_hash, mac FROM ledger WHERE idx >= ? AND idx < ? ORDER BY idx", (lo, hi)
    ):
        sha(b"\x00" + data).digest()
        total += len(data)
    conn.close()
    return total


def raw(db: Path, n: int, workers: int) -> tuple[float, float, int]:
    """The floor, measured here: read every row (idx, entry, leaf hash, MAC) with sqlite3 and SHA-256 its leaf,
    nothing else, (wall seconds, CPU seconds of this process and its children, bytes hashed). `workers` > 1
    splits the same ranges `ledger verify` uses over that many processes."""
    step = 1 << RANGE_BITS
    ranges = [(lo, min(lo + step, n)) for lo in range(0, n, step)]
    before = _cpu()
    t0 = time.perf_counter()
    if workers == 1:
        total = sum(_raw_range(str(db), lo, hi) for lo, hi in ranges)
    else:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            total = sum(pool.map(_raw_range, [str(db)] * len(ranges), *zip(*ranges, strict=True)))
    return time.perf_counter() - t0, _cpu() - before, total


def _cpu() -> float:
    """User + system CPU seconds of this process and of its children that have been waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def verify(home: Path, code: Path) -> tuple[float, float, float]:
    """`safeshare ledger verify` as a command, with the gateway package from `code`: (wall, user, system)."""
    # Run from `code` too: `python -m` puts the working directory first on sys.path, before PYTHONPATH.
    env = {**os.environ, "PYTHONPATH": str(code)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    command = [sys.executable, "-m", "gateway.cli", "--home", str(home), "ledger", "verify"]
    done = subprocess.run(command, env=env, cwd=code)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"ledger verify ({code}) failed ({done.returncode})")
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--checkpoint-every", type=int, default=1000)
    ap.add_argument("--dir", default="/tmp/safeshare-bench-verify")
    ap.add_argument("--compare", type=Path, help="also time `ledger verify` of another checkout (the code before)")
    args = ap.parse_args()
    home = Path(args.dir) / f"home-{args.entries}-{args.checkpoint_every}"
    home.mkdir(parents=True, exist_ok=True)
    build(home, args.entries, args.checkpoint_every)
    db = load_settings(home).db_path
    workers = default_workers()
    print(f"load: {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f}, {workers} cores")
    raw(db, args.entries, 1)  # warm the page cache: every figure below reads from memory
    one = raw(db, args.entries, 1)
    spread = raw(db, args.entries, workers)
    new = verify(home, ROOT)
    old = verify(home, args.compare) if args.compare else None
    total = one[2]
    checkpoints = args.entries // args.checkpoint_every
    print(f"offline verification of {args.entries} entries ({total / 2**20:.0f} MiB, {checkpoints} signed checkpoints)")
    floor = "raw floor, sqlite3 read + leaf SHA-256,"
    print(f"  {floor} 1 process:   {one[0]:6.2f} s wall  {one[1]:6.2f} s CPU")
    print(f"  {floor} {workers} processes: {spread[0]:6.2f} s wall  {spread[1]:6.2f} s CPU")
    print(
        f"  `safeshare ledger verify`:                             {new[0]:6.2f} s wall  {new[1] + new[2]:6.2f} s CPU"
        f" ({new[1]:.2f} user)   {new[0] / spread[0]:.1f}x the {workers}-process floor   target <= 10 s"
    )
    if old is not None:
        print(
            f"  `safeshare ledger verify` of {args.compare}: {old[0]:6.2f} s wall  {old[1] + old[2]:6.2f} s CPU"
            f" ({old[1]:.2f} user)"
        )
    print(f"load: {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f}")


if __name__ == "__main__":
    main()
