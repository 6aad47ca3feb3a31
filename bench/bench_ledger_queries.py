#!/usr/bin/env python3
"""Auditor query, export and statistics figures at a million ledger entries, each next to a baseline.

The issue asks for ledger queries under 100 ms at 1M entries and a streamed export. This builds a realistic
ledger (shares with whole justifications, decisions not to share, fetches, revocations, expiries; 50k subject
refs, 2,000 practitioners in 40 organisations, 600 recipients, three years of timestamps with the small
out-of-order jitter concurrent requests produce) through the store's own `append_entry`, then measures:

1. each filter of GET /api/v1/ledger (median and p95 over varied values), both the database part alone
   (`gateway.store.sqlite.queries`) and the whole HTTP round trip through a real in-process gateway;
2. GET /api/v1/ledger/stats (whole ledger and one quarter);
3. the subject report (JSON, with inclusion proofs against the checkpoint);
4. export throughput (rows/s, MB/s) for jsonl and csv through HTTP, and the server process's peak RSS.

Baselines from the same run and the same file: a primary-key point lookup (`SELECT entry FROM ledger WHERE
idx = ?`) and a full `SELECT count(*) FROM ledger`.

Usage: python bench/bench_ledger_queries.py [--entries 1000000] [--home DIR] [--samples 30]
`--home DIR` keeps the built ledger there and reuses it on the next run (the build is the slow part).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import aiosqlite

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.auth import EmbeddedIssuer  # noqa: E402
from gateway.config import Settings  # noqa: E402
from gateway.home import init_home  # noqa: E402
from gateway.ledger import entry as E  # noqa: E402
from gateway.ledger.checkpoint import Checkpoint, NoteSigner  # noqa: E402
from gateway.store.sqlite import append_entry, create_schema, load_tree, queries  # noqa: E402

JUSTIFICATION = json.loads((ROOT / "tests/fixtures/justifications/justification-share.json").read_text())
NOT_SHARE = json.loads((ROOT / "tests/fixtures/justifications/justification-not-share.json").read_text())

PURPOSES = [
    ("referral", 30),
    ("s47_enquiry", 10),
    ("s17_assessment", 10),
    ("strategy_discussion", 8),
    ("cp_conference", 7),
    ("mash_research", 10),
    ("s42_enquiry", 8),
    ("crime_prevention", 7),
    ("emergency", 5),
    ("other", 5),
]
ARTICLE_6 = [("public_task", 60), ("legal_obligation", 25), ("vital_interests", 10), ("legitimate_interests", 5)]
ARTICLE_9 = [
    (None, 40),
    ("substantial_public_interest", 35),
    ("health_social_care", 15),
    ("social_protection", 7),
    ("legal_claims", 3),
]
SCHEDULE_1 = [("p18_safeguarding", 70), ("p6_statutory_purposes", 20), ("p10_preventing_crime", 10)]
WORDS = (
    "referral disclosure injury school bruising neglect concern domestic abuse parent carer sibling health visitor "
    "nursery attendance housing tenancy arrears hospital admission mental wellbeing police attended incident "
    "missing episode exploitation online grooming county lines substance misuse self harm escalation strategy "
    "meeting conference assessment follow review consultation advice request enquiry section forty seven "
    "seventeen safeguarding adult vulnerable financial scam cuckooing carer breakdown placement foster kinship "
    "court order protection plan core group visit welfare check emergency overnight"
).split()
RARE_WORD = "trafficking"  # in ~0.2% of descriptions: a selective full-text search
DAY0 = datetime(2023, 6, 1, tzinfo=UTC)
SPAN = timedelta(days=3 * 365)


def weighted(rng: random.Random, table: list[tuple[Any, int]]) -> Any:
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


def fmt(t: datetime) -> str:
    return E.format_time(t)


class LedgerBuilder:
    """Generates realistic entries: the mix and the shapes the gateway itself records."""

    def __init__(self, n: int, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.n = n
        self.orgs = [f"Org {i:02d} {'Children' if i % 2 else 'Adult'} Services" for i in range(40)]
        self.practitioners = [(f"prac-{i:04d}", self.orgs[i % 40]) for i in range(2000)]
        self.recipients = [(f"rcp-{i:03d}", self.orgs[(i * 7) % 40]) for i in range(600)]
        self.subjects = [f"CASE-{i:06d}" for i in range(50_000)]
        self.recent: deque[tuple[str, int, list[str], list[dict[str, Any]]]] = deque(maxlen=2000)
        self.policy = {"id": "hmg-2018", "version": "1.0.0", "digest": "sha256:" + "ab" * 32}
        self.pending_share: tuple[str, list[str], list[dict[str, Any]]] | None = None

    def append(self, conn: sqlite3.Connection, i: int) -> None:
        """Append entry `i` through the store's `append_entry`; remember shares so later events can refer to them."""
        self.pending_share = None
        idx = append_entry(conn, self.entry(i))
        if self.pending_share is not None:
            sid, refs, rec = self.pending_share
            self.recent.append((sid, idx, refs, rec))

    def time_at(self, i: int) -> str:
        # Mostly increasing, but up to two seconds out of order, as concurrent requests make it.
        t = DAY0 + SPAN * (i / self.n) - timedelta(milliseconds=self.rng.randrange(0, 2000))
        return fmt(t)

    def description(self) -> str:
        rng = self.rng
        words = rng.sample(WORDS, rng.randrange(8, 16))
        if rng.random() < 0.002:
            words.insert(rng.randrange(len(words)), RARE_WORD)
        return " ".join(words).capitalize() + "."

    def justification(self, decision: str) -> dict[str, Any]:
        rng = self.rng
        refs = rng.sample(self.subjects, 1 if rng.random() < 0.8 else 2)
        if decision == "not_share":
            j = copy.deepcopy(NOT_SHARE)
            j["purpose"] = {"code": weighted(rng, PURPOSES), "description": self.description()}
            j["subjects"] = [{"ref": r, "role": "adult_at_risk"} for r in refs]
            return j
        j = copy.deepcopy(JUSTIFICATION)
        j["purpose"] = {"code": weighted(rng, PURPOSES), "description": self.description()}
        j["subjects"] = [{"ref": r, "role": "child"} for r in refs]
        j["rules"]["5_safety_wellbeing"]["at_risk"] = refs
        basis: dict[str, Any] = {"article_6": weighted(rng, ARTICLE_6)}
        a9 = weighted(rng, ARTICLE_9)
        if a9 is not None:
            basis["article_9"] = a9
            if a9 == "substantial_public_interest":
                basis["dpa_schedule_1"] = weighted(rng, SCHEDULE_1)
        else:
            j["data_categories"] = ["identity", "safeguarding_concern"]
        j["rules"]["1_lawful_basis"] = basis
        return j

    def entry(self, i: int) -> dict[str, Any]:
        rng = self.rng
        t = self.time_at(i)
        roll = rng.random()
        if roll < 0.40 or not self.recent:
            sub, org = rng.choice(self.practitioners)
            recips = rng.sample(self.recipients, 1 if rng.random() < 0.7 else rng.randrange(2, 4))
            share_id = f"sh_{i:024d}"
            rec = [
                {"id": rid, "org": rorg, "envelope_sha256": f"{rng.getrandbits(256):064x}", "envelope_size": 4242}
                for rid, rorg in recips
            ]
            j = self.justification("share")
            e = E.share_entry(
                time=t,
                actor=E.actor(sub, "practitioner", org, "safeshare-embedded"),
                share_id=share_id,
                justification=j,
                policy=self.policy,
                recipients=rec,
                payload={"size": 4096, "content_type": "application/pdf", "hmac_sha256": "cd" * 32},
                expires_at=t,
                max_downloads=None,
            )
            self.pending_share = (share_id, [s["ref"] for s in j["subjects"]], rec)
            return e
        if roll < 0.50:
            sub, org = rng.choice(self.practitioners)
            return E.decision_entry(
                time=t,
                actor=E.actor(sub, "practitioner", org, "safeshare-embedded"),
                justification=self.justification("not_share"),
                policy=self.policy,
            )
        share_id, share_idx, refs, rec = rng.choice(self.recent)
        kind = E.KIND_FETCH if roll < 0.87 else E.KIND_REVOKE if roll < 0.90 else E.KIND_EXPIRE
        r = rng.choice(rec)
        common = {
            "time": t,
            "share_id": share_id,
            "share_index": share_idx,
            "subjects": refs,
        }
        if kind == E.KIND_FETCH:
            return E.share_event_entry(
                kind=kind,
                actor=E.actor(r["id"], "recipient", r["org"], "safeshare-embedded"),
                recipients=[{"id": r["id"], "org": r["org"]}],
                envelope_sha256=r["envelope_sha256"],
                download=1,
                **common,
            )
        if kind == E.KIND_REVOKE:
            sub, org = rng.choice(self.practitioners)
            return E.share_event_entry(
                kind=kind,
                actor=E.actor(sub, "practitioner", org, "safeshare-embedded"),
                recipients=[{"id": x["id"], "org": x["org"]} for x in rec],
                reason="sent to the wrong team",
                **common,
            )
        return E.share_event_entry(
            kind=kind,
            actor=None,
            recipients=[{"id": x["id"], "org": x["org"]} for x in rec],
            reason="expired",
            **common,
        )


def build(db: Path, n: int, signer: NoteSigner) -> float:
    """Append through `append_entry` (the store's own code) in large transactions, fsync off for the build only.

    Returns the build time in seconds (0 when an existing ledger of the right size was reused).
    """
    create_schema(db)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    have = conn.execute("SELECT coalesce(max(idx) + 1, 0) FROM ledger").fetchone()[0]
    if have > n:
        raise SystemExit(f"{db} already holds {have:,} entries, more than --entries {n:,}; use another --home")
    builder = LedgerBuilder(n)
    if have:
        # Resume: the generator is deterministic, so replay it without writing to rebuild its state.
        for i in range(have):
            e = builder.entry(i)
            if builder.pending_share is not None:
                sid, refs, rec = builder.pending_share
                builder.recent.append((sid, i, refs, rec))
                builder.pending_share = None
            del e
    start = time.perf_counter()
    batch = 20_000
    for lo in range(have, n, batch):
        conn.execute("BEGIN")
        for i in range(lo, min(n, lo + batch)):
            builder.append(conn, i)
        conn.execute("COMMIT")
        done = min(n, lo + batch)
        rate = (done - have) / (time.perf_counter() - start)
        print(f"\r  built {done:,}/{n:,} entries ({rate:,.0f}/s)", end="", flush=True)
    if n > have:
        print()
    tree = load_tree(conn)
    last = conn.execute("SELECT coalesce(max(size), 0) FROM ledger_checkpoints").fetchone()[0]
    if tree.size > last:
        note = signer.sign(Checkpoint(signer.name, tree.size, tree.root()).body())
        conn.execute(
            "INSERT INTO ledger_checkpoints (size, time, note) VALUES (?, ?, ?)", (tree.size, E.utc_now(), note)
        )
    conn.execute("PRAGMA synchronous=FULL")
    conn.close()
    return time.perf_counter() - start if n > have else 0.0


# -- measuring ---------------------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def line(name: str, db_ms: list[float] | None, http_ms: list[float] | None, note: str = "") -> None:
    def fmt_ms(v: list[float] | None) -> str:
        if not v:
            return f"{'':>19}"
        return f"{statistics.median(v):8.2f} {pct(v, 0.95):8.2f}  "

    print(f"  {name:<34}{fmt_ms(db_ms)}{fmt_ms(http_ms)}{note}")


async def timed(fn: Callable[[], Awaitable[Any]], samples: int) -> list[float]:
    out = []
    for _ in range(samples):
        t = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


async def timed_each(fn: Callable[[dict[str, str]], Awaitable[Any]], values: list[dict[str, str]]) -> list[float]:
    out = []
    for value in values:
        t = time.perf_counter()
        await fn(value)
        out.append((time.perf_counter() - t) * 1000)
    return out


def month_range(rng: random.Random, months: int = 1) -> tuple[str, str]:
    start = DAY0 + timedelta(days=rng.randrange(0, 3 * 365 - 31 * months))
    start = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=31 * months)).replace(day=1)
    return fmt(start), fmt(end)


def filter_cases(rng: random.Random, b: LedgerBuilder) -> list[tuple[str, Callable[[], dict[str, str]]]]:
    """Each case draws fresh values per sample, so the figures are not one lucky (cached) value."""
    kinds = ["share", "decision", "fetch", "revoke", "expire"]
    a9 = ["substantial_public_interest", "health_social_care", "social_protection", "legal_claims"]
    return [
        ("no filter (newest page)", lambda: {}),
        ("subject", lambda: {"subject": rng.choice(b.subjects)}),
        ("practitioner", lambda: {"practitioner": rng.choice(b.practitioners)[0]}),
        ("recipient", lambda: {"recipient": rng.choice(b.recipients)[0]}),
        ("org", lambda: {"org": rng.choice(b.orgs)}),
        ("kind", lambda: {"kind": rng.choice(kinds)}),
        ("decision", lambda: {"decision": rng.choice(["share", "not_share"])}),
        ("purpose", lambda: {"purpose": weighted(rng, PURPOSES)}),
        ("article_6", lambda: {"article_6": weighted(rng, ARTICLE_6)}),
        ("article_9", lambda: {"article_9": rng.choice(a9)}),
        ("dpa_schedule_1", lambda: {"dpa_schedule_1": weighted(rng, SCHEDULE_1)}),
        ("q one common word", lambda: {"q": rng.choice(WORDS)}),
        ("q two words", lambda: {"q": " ".join(rng.sample(WORDS, 2))}),
        ("q rare word", lambda: {"q": RARE_WORD}),
        ("q prefix", lambda: {"q": rng.choice(WORDS)[:4] + "*"}),
        ("date range: one month", lambda: dict(zip(("from", "to"), month_range(rng), strict=True))),
        ("date range: one year", lambda: dict(zip(("from", "to"), month_range(rng, 12), strict=True))),
        ("date range: open-ended, old", lambda: {"from": month_range(rng)[0]}),
        ("subject + kind", lambda: {"subject": rng.choice(b.subjects), "kind": "share"}),
        (
            "org + decision + year",
            lambda: {
                "org": rng.choice(b.orgs),
                "decision": "not_share",
                **dict(zip(("from", "to"), month_range(rng, 12), strict=True)),
            },
        ),
        ("kind + month", lambda: {"kind": "fetch", **dict(zip(("from", "to"), month_range(rng), strict=True))}),
        ("q + purpose", lambda: {"q": rng.choice(WORDS), "purpose": "emergency"}),
        (
            "article_9 + purpose + org",
            lambda: {"article_9": "legal_claims", "purpose": "emergency", "org": rng.choice(b.orgs)},
        ),
        ("kind, deep cursor", lambda: {"kind": "fetch", "cursor": str(rng.randrange(b.n))}),
    ]


def to_filter(params: dict[str, str]) -> tuple[queries.AuditFilter, int | None]:
    tf = params.get("from")
    tt = params.get("to")
    return (
        queries.AuditFilter(
            subject=params.get("subject"),
            practitioner=params.get("practitioner"),
            recipient=params.get("recipient"),
            org=params.get("org"),
            kind=params.get("kind"),
            decision=params.get("decision"),
            purpose=params.get("purpose"),
            article_6=params.get("article_6"),
            article_9=params.get("article_9"),
            dpa_schedule_1=params.get("dpa_schedule_1"),
            text=queries.fts_query(params["q"]) if "q" in params else None,
            time_from=None if tf is None else E.format_time(E.parse_time(tf)),
            time_to=None if tt is None else E.format_time(E.parse_time(tt)),
        ),
        int(params["cursor"]) if "cursor" in params else None,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int, field: str) -> float:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith(field + ":"):
            return int(row.split()[1]) / 1024
    return float("nan")


def reset_peak_rss(pid: int) -> bool:
    """Linux: writing 5 to clear_refs resets VmHWM, so the next peak is the export's alone."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


async def wait_healthy(session: aiohttp.ClientSession, base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("gateway exited during start-up")
        try:
            async with session.get(base + "/healthz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("gateway never became healthy")


async def measure(settings: Settings, token: str, b: LedgerBuilder, samples: int) -> None:
    db = settings.db_path
    rng = random.Random(11)
    conn = await aiosqlite.connect(db)
    conn.row_factory = aiosqlite.Row
    await conn.execute("PRAGMA query_only=ON")
    n = b.n

    print("\nBaselines (same file, same connection):")
    print(f"  {'':<34}{'median ms':>9}{'p95 ms':>9}")

    async def point() -> None:
        async with conn.execute("SELECT entry FROM ledger WHERE idx = ?", (rng.randrange(n),)) as cur:
            await cur.fetchone()

    async def count() -> None:
        async with conn.execute("SELECT count(*) FROM ledger") as cur:
            await cur.fetchone()

    line("PK point lookup (idx = ?)", await timed(point, samples * 3), None)
    line("SELECT count(*) FROM ledger", await timed(count, 5), None)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "--home", str(settings.home), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with aiohttp.ClientSession() as session:
            await wait_healthy(session, base, proc)

            async def healthz() -> None:
                async with session.get(base + "/healthz") as r:
                    await r.read()

            line("HTTP GET /healthz", None, await timed(healthz, samples * 3))
            async with session.get(base + "/api/v1/ledger", headers=headers) as r:  # warm the server's reader
                assert r.status == 200, await r.text()

            print(f"\nGET /api/v1/ledger at {n:,} entries, limit=50 (median / p95 over {samples} varied values):")
            print(f"  {'filter':<34}{'db median':>9}{'p95':>9}  {'http median':>11}{'p95':>7}")
            worst = 0.0
            for name, make in filter_cases(rng, b):

                async def db_query(params: dict[str, str]) -> None:
                    f, cursor = to_filter(params)
                    await queries.query_page(conn, f, before=cursor, limit=50)

                async def http_query(params: dict[str, str]) -> None:
                    async with session.get(base + "/api/v1/ledger", params=params, headers=headers) as r:
                        assert r.status == 200, await r.text()
                        await r.read()

                # Untimed warm-up with other values (a running server's caches), then fresh values for each path.
                for params in [make() for _ in range(samples // 3)]:
                    await db_query(params)
                    await http_query(params)
                db_ms = await timed_each(db_query, [make() for _ in range(samples)])
                http_ms = await timed_each(http_query, [make() for _ in range(samples)])
                worst = max(worst, pct(http_ms, 0.95))
                line(name, db_ms, http_ms, "  <-- over 100 ms" if pct(http_ms, 0.95) > 100 else "")
            print(f"  worst p95 over all filters (HTTP): {worst:.1f} ms")

            print("\nGET /api/v1/ledger/report?format=json (every event of one subject + inclusion proofs):")
            subjects = []
            for _ in range(samples):  # subjects that have events: draw an entry, take its subject
                async with conn.execute(
                    "SELECT ref FROM ledger_subjects WHERE idx >= ? LIMIT 1", (rng.randrange(n),)
                ) as cur:
                    row = await cur.fetchone()
                subjects.append(row[0] if row else rng.choice(b.subjects))
            sizes: list[int] = []
            it3 = iter(subjects)

            async def report(it3: Any = it3) -> None:
                params = {"subject": next(it3), "format": "json"}
                async with session.get(base + "/api/v1/ledger/report", params=params, headers=headers) as r:
                    body = await r.json()
                    assert all(e["inclusion_verified"] for e in body["events"]), "a proof failed"
                    sizes.append(body["count"])

            line(
                "subject report (JSON, proofs)",
                None,
                await timed(report, samples),
                f"~{statistics.mean(sizes):.0f} events each",
            )

            print("\nGET /api/v1/ledger/stats:")
            q_from, q_to = "2024-01-01T00:00:00Z", "2024-04-01T00:00:00Z"

            async def stats_db(a: str | None, z: str | None) -> None:
                await queries.stats(
                    conn,
                    None if a is None else E.format_time(E.parse_time(a)),
                    None if z is None else E.format_time(E.parse_time(z)),
                )

            async def stats_http(params: dict[str, str]) -> None:
                async with session.get(base + "/api/v1/ledger/stats", params=params, headers=headers) as r:
                    assert r.status == 200
                    await r.read()

            reps = 3
            line(
                "stats, whole ledger (3 years)",
                await timed(lambda: stats_db(None, None), reps),
                await timed(lambda: stats_http({}), reps),
            )
            line(
                "stats, one quarter",
                await timed(lambda: stats_db(q_from, q_to), reps),
                await timed(lambda: stats_http({"from": q_from, "to": q_to}), reps),
            )

            print("\nExport through HTTP (whole ledger, streamed; server process RSS):")
            for fmt_name in ("jsonl", "csv"):
                rss_before = rss_mib(proc.pid, "VmRSS")
                reset = reset_peak_rss(proc.pid)
                t = time.perf_counter()
                nbytes, rows = 0, -1  # minus the checkpoint line (jsonl) or the header (csv; no newlines in cells)
                async with session.get(base + "/api/v1/ledger", params={"format": fmt_name}, headers=headers) as r:
                    assert r.status == 200, await r.text()
                    async for chunk in r.content.iter_chunked(1 << 20):
                        nbytes += len(chunk)
                        rows += chunk.count(b"\n")
                dt = time.perf_counter() - t
                peak = rss_mib(proc.pid, "VmHWM")
                print(
                    f"  {fmt_name:<6} {rows:>10,} rows  {nbytes / 1e6:8.1f} MB  {dt:6.1f} s  {rows / dt:>9,.0f} rows/s"
                    f"  {nbytes / 1e6 / dt:6.1f} MB/s  server RSS {rss_before:.0f} MiB before, peak "
                    f"{peak:.0f} MiB{'' if reset else ' (peak since start: clear_refs unavailable)'}"
                )
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    print("\nWith the indexes recommended for the schema (created here, dropped again at the end):")
    wconn = sqlite3.connect(db, isolation_level=None)
    try:
        for statement in queries.RECOMMENDED_INDEXES:
            t = time.perf_counter()
            wconn.execute(statement)
            print(f"  {time.perf_counter() - t:5.1f} s  {statement}")
        q_from_f, q_to_f = E.format_time(E.parse_time(q_from)), E.format_time(E.parse_time(q_to))
        line("stats, whole ledger (3 years)", await timed(lambda: queries.stats(conn, None, None), reps), None)
        line("stats, one quarter", await timed(lambda: queries.stats(conn, q_from_f, q_to_f), reps), None)
    finally:
        for statement in queries.RECOMMENDED_INDEXES:
            name = statement.split("EXISTS ")[1].split()[0]
            wconn.execute(f"DROP INDEX IF EXISTS {name}")
        wconn.close()
    await conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--home", type=Path, help="keep the built ledger here and reuse it next time")
    ap.add_argument("--samples", type=int, default=30)
    args = ap.parse_args()
    tmp = None
    if args.home is None:
        tmp = tempfile.TemporaryDirectory(prefix="safeshare-bench-")
        args.home = Path(tmp.name)
    settings = Settings(home=args.home.resolve())
    keys = init_home(settings)
    print(f"Ledger of {args.entries:,} entries in {settings.db_path}")
    secs = build(settings.db_path, args.entries, NoteSigner(settings.log_origin, keys.ledger_key))
    if secs:
        print(f"  build: {secs:.0f} s ({args.entries / secs:,.0f} entries/s through append_entry, synchronous=OFF)")
    print(f"  file: {settings.db_path.stat().st_size / 1e9:.2f} GB; times are with the file in the OS page cache")
    issuer = EmbeddedIssuer(keys.token_key, settings.issuer, settings.audience)
    token = issuer.issue("bench-auditor", ["auditor"], ttl=3600)
    asyncio.run(measure(settings, token, LedgerBuilder(args.entries), args.samples))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
