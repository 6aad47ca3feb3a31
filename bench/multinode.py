#!/usr/bin/env python3
"""Several `safeshare serve` nodes on one PostgreSQL database: throughput, latency and ledger contention.

One run measures, with the same concurrent clients and payloads:
* shares per second and p50/p99 latency with 1, 2 and 4 nodes on PostgreSQL, beside 1 node on SQLite, and the
  ratios to SQLite;
* ledger appends per second under cross-node contention: N store instances (as N nodes) appending to one
  PostgreSQL ledger at once, straight through the store (no HTTP), against the same on one node.

Every node is a real `safeshare serve` process on loopback, sharing one home (its keys, its envelopes directory)
and one database, as README's "Several nodes" describes; clients spread requests round-robin over the nodes (as a
load balancer would). Each configuration gets a fresh database (or SQLite file).

Usage: python bench/multinode.py [--seconds 8] [--clients 16] [--payload 16384]
       [--dsn postgresql://postgres@127.0.0.1:5432/postgres]
Prints a table and a JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import pyrage  # noqa: E402

from bench.kill_loop import JUSTIFICATION, _free_port, _multipart, _request  # noqa: E402
from bench.kill_loop import Server as _Server  # noqa: E402

DEFAULT_DSN = os.environ.get("SAFESHARE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
RECIPIENT = "mn-recipient"


def _with_database(dsn: str, name: str) -> str:
    p = urlsplit(dsn)
    return urlunsplit((p.scheme, p.netloc, "/" + name, p.query, p.fragment))


@contextmanager
def fresh_database(dsn: str = DEFAULT_DSN) -> Iterator[str]:
    """A new PostgreSQL database for one run, dropped afterwards (with whatever is still connected)."""
    name = "safeshare_mn_" + uuid.uuid4().hex[:12]

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(dsn, name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def env(database: str | None) -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e.pop("SAFESHARE_DATABASE", None)
    if database is not None:
        e["SAFESHARE_DATABASE"] = database
    return e


def cli(home: Path, database: str | None, *args: str, check: bool = True) -> Any:
    import subprocess

    r = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env(database),
    )
    if check and r.returncode:
        raise RuntimeError(f"safeshare {args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


class Node(_Server):
    """A `safeshare serve` process on the shared home and database (health checks, kill and stop as kill_loop's)."""

    def __init__(self, home: Path, database: str | None, log_path: Path, port: int | None = None) -> None:
        import subprocess

        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "--home", str(home), "serve", "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env(database),
        )


def node_home(home: Path, path: Path) -> Path:
    """A node's own home: the shared home's keys (and settings), and a data/ directory of its own. With the
    envelopes in PostgreSQL, nothing else is shared between nodes (README, "Several nodes")."""
    import shutil

    if not path.exists():
        path.mkdir(mode=0o700)
        shutil.copytree(home / "keys", path / "keys")
        if (home / "safeshare.toml").exists():
            shutil.copy2(home / "safeshare.toml", path / "safeshare.toml")
    return path


def setup(home: Path, database: str | None) -> tuple[str, str, Any]:
    """`safeshare init` (keys in the home; the schema in the database), one recipient, two tokens."""
    identity = pyrage.x25519.Identity.generate()
    cli(home, database, "init")
    cli(
        home,
        database,
        "recipient",
        "add",
        RECIPIENT,
        "--name",
        "Multi Node",
        "--org",
        "MASH",
        "--email",
        "mn@example.org",
        "--age-recipient",
        str(identity.to_public()),
    )
    practitioner = cli(home, database, "token", "issue", "--sub", "pat", "--role", "practitioner").stdout.strip()
    recipient = cli(home, database, "token", "issue", "--sub", RECIPIENT, "--role", "recipient").stdout.strip()
    return practitioner, recipient, identity


def share_body(payload: bytes) -> tuple[bytes, str]:
    meta = {
        "recipients": [RECIPIENT],
        "justification": json.loads(JUSTIFICATION.read_text()),
        "payload_content_type": "application/octet-stream",
    }
    return _multipart(meta, payload)


def load(
    urls: list[str], token: str, seconds: float, clients: int, payload_size: int
) -> tuple[list[float], dict[str, bytes], dict[str, int]]:
    """`clients` threads sending shares round-robin over `urls` for `seconds`: latencies, acknowledged shares."""
    latencies: list[float] = []
    acked: dict[str, bytes] = {}
    others: dict[str, int] = {}
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    turn = iter(range(10**9))

    def client() -> None:
        while time.monotonic() < stop:
            with lock:
                url = urls[next(turn) % len(urls)]
            payload = os.urandom(payload_size)
            body, ctype = share_body(payload)
            t = time.perf_counter()
            try:
                status, resp = _request(url + "/api/v1/shares", token, body, ctype, timeout=30)
            except OSError:
                status, resp = 0, b""
            dt = time.perf_counter() - t
            with lock:
                if status == 201:
                    latencies.append(dt)
                    acked[json.loads(resp)["share_id"]] = payload
                else:
                    others[str(status)] = others.get(str(status), 0) + 1

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client) for _ in range(clients)]:
            f.result()
    return latencies, acked, others


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def run_config(label: str, nodes: int, database: str | None, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="safeshare-mn-") as tmp:
        home = Path(tmp) / "home"
        practitioner, _, _ = setup(home, database)
        servers = [Node(home, database, home / f"node{i}.log") for i in range(nodes)]
        try:
            for s in servers:
                s.wait_healthy(60)
            load([s.url for s in servers], practitioner, 1.0, args.clients, args.payload)  # warm-up
            lat, acked, others = load([s.url for s in servers], practitioner, args.seconds, args.clients, args.payload)
        finally:
            for s in servers:
                s.stop()
    result = {
        "config": label,
        "nodes": nodes,
        "shares": len(acked),
        "shares_per_second": round(len(acked) / args.seconds, 1),
        "p50_ms": round(1000 * percentile(lat, 50), 1),
        "p99_ms": round(1000 * percentile(lat, 99), 1),
        "mean_ms": round(1000 * statistics.fmean(lat), 1) if lat else None,
        "other_answers": others,
    }
    print(
        f"{label:<16} {result['shares_per_second']:>9} shares/s  p50 {result['p50_ms']:>7} ms"
        f"  p99 {result['p99_ms']:>7} ms  {others or ''}",
        flush=True,
    )
    return result


async def ledger_contention(dsn: str, nodes: int, seconds: float, writers_per_node: int = 32) -> dict[str, Any]:
    """Appends per second with `nodes` store instances (each its own pool and writer, as separate nodes are)."""
    from gateway.store.postgres import PostgresStore

    stores = [await PostgresStore.open(dsn, ledger_mac_key=b"k" * 32) for _ in range(nodes)]
    count = 0
    stop = time.monotonic() + seconds

    async def writer(store: Any) -> None:
        nonlocal count
        while time.monotonic() < stop:
            await store.record(
                {
                    "v": 1,
                    "kind": "decision",
                    "time": "2026-01-01T00:00:00Z",
                    "actor": {"sub": "bench", "role": "practitioner", "org": "Bench", "iss": "bench"},
                    "subjects": [f"S-{random.randint(0, 999)}"],
                    "recipients": [],
                    "purpose": {"code": "safeguarding", "description": "bench entry"},
                }
            )
            count += 1

    try:
        await asyncio.gather(*(writer(s) for s in stores for _ in range(writers_per_node)))
        size = await stores[0].tree_size()
        conn = await asyncpg.connect(dsn)
        try:
            rows, top = await conn.fetchrow("SELECT count(*), coalesce(max(idx) + 1, 0) FROM ledger")
        finally:
            await conn.close()
    finally:
        for s in stores:
            await s.close()
    gap_free = rows == top == size
    result = {"nodes": nodes, "appends_per_second": round(count / seconds), "entries": size, "gap_free": gap_free}
    print(f"ledger, {nodes} node(s): {result['appends_per_second']:>6} appends/s  gap-free: {gap_free}", flush=True)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--payload", type=int, default=16 * 1024, help="payload bytes per share")
    ap.add_argument("--dsn", default=DEFAULT_DSN, help="PostgreSQL server (a database is created per run)")
    ap.add_argument("--nodes", default="1,2,4", help="PostgreSQL node counts to measure")
    args = ap.parse_args()
    print(f"{args.clients} clients, {args.payload}-byte payloads, {args.seconds} s per configuration", flush=True)
    results = [run_config("sqlite, 1 node", 1, None, args)]
    for n in [int(x) for x in args.nodes.split(",")]:
        with fresh_database(args.dsn) as db:
            results.append(run_config(f"postgres, {n} node{'s' if n > 1 else ''}", n, db, args))
    base = results[0]["shares_per_second"] or float("nan")
    for r in results:
        r["ratio_to_sqlite"] = round(r["shares_per_second"] / base, 2)
    ledger = []
    for n in (1, 2, 4):
        with fresh_database(args.dsn) as db:
            ledger.append(asyncio.run(ledger_contention(db, n, min(args.seconds, 5.0))))
    summary = {"cpus": os.cpu_count(), "http": results, "ledger": ledger}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
