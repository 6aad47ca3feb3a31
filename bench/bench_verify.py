#!/usr/bin/env python3
"""Full offline verification of a large ledger (default 1,000,000 entries) with `safeshare ledger verify`,
beside the raw cost measured in the same run on the same database: reading the same rows, and reading plus
SHA-256 hashing the same bytes (the RFC 6962 leaf hashes, the least any verifier must do).

The ledger is built once (entries with their MACs through the store's own `append_entry`, a signed checkpoint
every `--checkpoint-every` entries, signed with the home's real keys) and kept under `--dir` for reruns.
`ledger verify` runs as the command an auditor types; on a terminal it shows its progress bar.

Target (issue 15): at most 10 s for 1,000,000 entries.

Usage: python bench/bench_verify.py [--entries 1000000] [--checkpoint-every 1000] [--dir /tmp/safeshare-bench-verify]
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.config import load_settings  # noqa: E402
from gateway.home import init_home  # noqa: E402
from gateway.ledger.entry import decision_entry, utc_now  # noqa: E402
from gateway.ledger.signer import LedgerSigner  # noqa: E402
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


def raw(db: Path) -> tuple[float, float, int]:
    """Seconds to read every entry in index order, and to read and leaf-hash it; and the bytes hashed."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    t0 = time.perf_counter()
    for _ in conn.execute("SELECT idx, entry, leaf_hash, mac FROM ledger ORDER BY idx"):
        pass
    read = time.perf_counter() - t0
    total = 0
    sha = hashlib.sha256
    t0 = time.perf_counter()
    for _, data in conn.execute("SELECT idx, entry FROM ledger ORDER BY idx"):
        sha(b"\x00" + data).digest()
        total += len(data)
    hashed = time.perf_counter() - t0
    conn.close()
    return read, hashed, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--checkpoint-every", type=int, default=1000)
    ap.add_argument("--dir", default="/tmp/safeshare-bench-verify")
    args = ap.parse_args()
    home = Path(args.dir) / f"home-{args.entries}-{args.checkpoint_every}"
    home.mkdir(parents=True, exist_ok=True)
    build(home, args.entries, args.checkpoint_every)
    db = load_settings(home).db_path
    read, hashed, total = raw(db)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "--home", str(home), "ledger", "verify"], check=False)
    verify = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"ledger verify failed ({done.returncode})")
    checkpoints = args.entries // args.checkpoint_every
    print(
        f"offline verification of {args.entries} entries ({total / 2**20:.0f} MiB, {checkpoints} signed checkpoints):"
        f" `safeshare ledger verify` {verify:6.2f} s   raw read {read:5.2f} s   raw read+leaf-hash {hashed:5.2f} s"
        f"   ratio {verify / hashed:.1f}x   target <= 10 s"
    )


if __name__ == "__main__":
    main()
