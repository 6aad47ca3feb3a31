#!/usr/bin/env python3
"""Kill -9 loop: a real `safeshare serve` on loopback, concurrent real shares, SIGKILL mid-way, restart, check.

Each trial fires shares from several threads at the running gateway, SIGKILLs it after a random moment, starts
it again on the same home (its start-up sweep runs) and checks that:

* every share acknowledged with 201, in this or any earlier trial, is still there: this trial's envelopes are
  fetched over HTTP and decrypted with pyrage (an independent age implementation) to the bytes sent;
* nothing is half-written: no temporary envelope files, the envelope files on disk are exactly those the
  database lists as live, every share row has its ledger entry and every share entry its share row;
* `safeshare ledger verify` passes, and `/healthz` is 200 (the checkpoint guard found the ledger consistent).

Requests in flight at the kill have no answer: they may or may not have been committed, and are not counted
as acknowledged (the client must retry them; see issue 9's Idempotency-Key).

Usage: python bench/kill_loop.py [--trials 20] [--home DIR] [--workers 8] [--min-run 0.4] [--max-run 1.5]
Prints one line per trial and a JSON summary; exits 1 on any loss or inconsistency.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyrage

ROOT = Path(__file__).resolve().parents[1]
JUSTIFICATION = ROOT / "tests" / "fixtures" / "justifications" / "justification-share.json"
RECIPIENT = "kl-recipient"
_LOCK = threading.Lock()


@dataclass
class Stats:
    trials: int = 0
    acknowledged: int = 0
    in_flight_at_kill: int = 0
    lost: int = 0
    orphans_swept: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "trials": self.trials,
            "acknowledged": self.acknowledged,
            "in_flight_at_kill": self.in_flight_at_kill,
            "lost": self.lost,
            "orphans_swept": self.orphans_swept,
            "problems": self.problems,
        }


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def cli(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )
    if check and r.returncode:
        raise RuntimeError(f"safeshare {args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _request(
    url: str, token: str | None = None, data: bytes | None = None, ctype: str | None = None, timeout: float = 30
) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Server:
    def __init__(self, home: Path, log_path: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "--home", str(home), "serve", "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=_env(),
        )

    def wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                status, body = _request(self.url + "/healthz", timeout=1)
                if status == 200:
                    return
                raise RuntimeError(f"/healthz answered {status}: {body.decode(errors='replace')}")
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the gateway did not start") from None
                time.sleep(0.05)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)
        self._log.close()


def _multipart(meta: dict[str, Any], payload: bytes) -> tuple[bytes, str]:
    b = uuid.uuid4().hex
    body = (
        f'--{b}\r\nContent-Disposition: form-data; name="share"\r\nContent-Type: application/json\r\n\r\n'.encode()
        + json.dumps(meta).encode()
        + f'\r\n--{b}\r\nContent-Disposition: form-data; name="payload"; filename="p"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + payload
        + f"\r\n--{b}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={b}"


def _fire(url: str, token: str, stop: threading.Event, acked: dict[str, bytes], counters: dict[str, int]) -> None:
    meta = {
        "recipients": [RECIPIENT],
        "justification": json.loads(JUSTIFICATION.read_text()),
        "payload_content_type": "application/octet-stream",
    }
    while not stop.is_set():
        # Mostly small (their envelopes are database rows), one in four over 256 KiB (files): both are killed.
        payload = os.urandom(
            random.randint(16, 64 * 1024) if random.random() < 0.75 else random.randint(300_000, 400_000)
        )
        body, ctype = _multipart(meta, payload)
        try:
            status, resp = _request(url + "/api/v1/shares", token, body, ctype, timeout=10)
        except OSError:
            with _LOCK:
                counters["no_answer"] += 1
            continue
        if status == 201:
            acked[json.loads(resp)["share_id"]] = payload
        else:
            with _LOCK:
                counters[f"status_{status}"] = counters.get(f"status_{status}", 0) + 1


def _consistency_problems(home: Path) -> list[str]:
    """Half-written state on disk or in the database (after the restart's sweep)."""
    problems: list[str] = []
    envelopes = home / "data" / "envelopes"
    tmp = [p.name for p in (envelopes / ".tmp").iterdir()] if (envelopes / ".tmp").exists() else []
    if tmp:
        problems.append(f"{len(tmp)} temporary envelope file(s) left")
    on_disk = {
        (d.name, p.name.removesuffix(".age"))
        for d in envelopes.iterdir()
        if d.is_dir() and d.name != ".tmp"
        for p in d.iterdir()
    }
    conn = sqlite3.connect(f"file:{home / 'data' / 'safeshare.sqlite3'}?mode=ro", uri=True)
    try:
        conn.execute("BEGIN")
        live = {
            (r[0], r[1])
            for r in conn.execute(
                "SELECT share_id, recipient_id FROM share_recipients WHERE state = 'active'"
                " UNION ALL SELECT id, '_escrow' FROM shares WHERE escrow_sha256 IS NOT NULL"
                " AND state IN ('active', 'exhausted')"
            )
        }
        # A small share's envelopes are rows written in its own transaction (gateway/store/sqlite/envelopes.py):
        # committed with it or not at all, so never orphans, but each must be there for a live envelope.
        rows = {(r[0], r[1]) for r in conn.execute("SELECT share_id, name FROM envelope_blobs")}
        if on_disk - live:
            problems.append(f"{len(on_disk - live)} envelope file(s) the database does not know (orphans)")
        if rows & on_disk:
            problems.append(f"{len(rows & on_disk)} envelope(s) both a file and a row")
        if live - on_disk - rows:
            problems.append(f"{len(live - on_disk - rows)} live envelope(s) in the database without a file or row")
        no_entry = conn.execute(
            "SELECT count(*) FROM shares s LEFT JOIN ledger l ON l.idx = s.ledger_index"
            " AND l.kind = 'share' AND l.share_id = s.id WHERE l.idx IS NULL"
        ).fetchone()[0]
        if no_entry:
            problems.append(f"{no_entry} share row(s) without their ledger entry")
        no_row = conn.execute(
            "SELECT count(*) FROM ledger l LEFT JOIN shares s ON s.id = l.share_id"
            " WHERE l.kind = 'share' AND s.id IS NULL"
        ).fetchone()[0]
        if no_row:
            problems.append(f"{no_row} share ledger entr(y/ies) without a share row")
        no_recipients = conn.execute(
            "SELECT count(*) FROM shares s WHERE NOT EXISTS (SELECT 1 FROM share_recipients r WHERE r.share_id = s.id)"
        ).fetchone()[0]
        if no_recipients:
            problems.append(f"{no_recipients} share row(s) without recipients")
    finally:
        conn.close()
    return problems


def _known_shares(home: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{home / 'data' / 'safeshare.sqlite3'}?mode=ro", uri=True)
    try:
        return {r[0] for r in conn.execute("SELECT id FROM shares")}
    finally:
        conn.close()


def setup(home: Path) -> tuple[str, str, pyrage.x25519.Identity]:
    identity = pyrage.x25519.Identity.generate()
    cli(home, "init")
    cli(
        home,
        "recipient",
        "add",
        RECIPIENT,
        "--name",
        "Kill Loop",
        "--org",
        "MASH",
        "--email",
        "kl@example.org",
        "--age-recipient",
        str(identity.to_public()),
    )
    practitioner = cli(home, "token", "issue", "--sub", "pat", "--role", "practitioner").stdout.strip()
    recipient = cli(home, "token", "issue", "--sub", RECIPIENT, "--role", "recipient").stdout.strip()
    return practitioner, recipient, identity


def run(
    home: Path,
    trials: int,
    workers: int = 8,
    min_run: float = 0.4,
    max_run: float = 1.5,
    log: Any = None,
) -> Stats:
    """Run `trials` kill -9 trials on `home` (created if new); returns the figures (problems listed, not raised)."""
    practitioner, recipient, identity = setup(home)
    stats = Stats()
    all_acked: set[str] = set()
    log_path = home / "kill-loop-server.log"
    server = Server(home, log_path)
    server.wait_healthy()
    for trial in range(1, trials + 1):
        acked: dict[str, bytes] = {}
        counters = {"no_answer": 0}
        stop = threading.Event()
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            futures = [pool.submit(_fire, server.url, practitioner, stop, acked, counters) for _ in range(workers)]
            time.sleep(random.uniform(min_run, max_run))
            stop.set()  # no new requests; those in flight now are cut off by the kill
            server.kill()
            for f in futures:
                f.result()
        stats.trials += 1
        stats.acknowledged += len(acked)
        stats.in_flight_at_kill += counters["no_answer"]
        before = log_path.read_text().count("start-up sweep removed")
        server = Server(home, log_path)
        try:
            server.wait_healthy()
        except RuntimeError as exc:
            stats.problems.append(f"trial {trial}: restart: {exc}")
            server.stop()
            break
        text = log_path.read_text()
        if text.count("start-up sweep removed") > before:
            line = [ln for ln in text.splitlines() if "start-up sweep removed" in ln][-1]
            stats.orphans_swept += int(line.split("removed ")[1].split()[0])
        problems: list[str] = []
        known = _known_shares(home)
        all_acked |= set(acked)
        missing = all_acked - known
        if missing:
            stats.lost += len(missing)
            problems.append(f"{len(missing)} acknowledged share(s) missing from the database")
        for share_id, payload in acked.items():
            status, env = _request(f"{server.url}/api/v1/shares/{share_id}/envelope", recipient)
            if status != 200:
                stats.lost += 1
                problems.append(f"share {share_id}: envelope fetch answered {status}")
                continue
            try:
                if pyrage.decrypt(env, [identity]) != payload:
                    problems.append(f"share {share_id}: decrypts to different bytes")
            except pyrage.DecryptError as exc:
                problems.append(f"share {share_id}: does not decrypt: {exc}")
        problems += _consistency_problems(home)
        verify = cli(home, "ledger", "verify", check=False)
        # 3: consistent, but killed before the first checkpoint was signed (nothing to check a signature against).
        if verify.returncode not in (0, 3):
            problems.append(f"ledger verify failed: {verify.stderr.strip()}")
        stats.problems += [f"trial {trial}: {p}" for p in problems]
        if log is not None:
            others = {k: v for k, v in counters.items() if k != "no_answer"}
            print(
                f"trial {trial}: {len(acked)} acknowledged, {counters['no_answer']} without answer at the kill"
                f"{', other answers ' + str(others) if others else ''}; "
                f"{'OK' if not problems else 'PROBLEMS: ' + '; '.join(problems)}",
                file=log,
                flush=True,
            )
    else:
        server.stop()
    return stats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--home", help="gateway home to use (default: a new temporary one)")
    ap.add_argument("--workers", type=int, default=8, help="concurrent clients sending shares")
    ap.add_argument("--min-run", type=float, default=0.4, help="shortest load before the kill, seconds")
    ap.add_argument("--max-run", type=float, default=1.5, help="longest load before the kill, seconds")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="safeshare-kill-loop-") as tmp:
        home = Path(args.home) if args.home else Path(tmp) / "home"
        t = time.monotonic()
        stats = run(home, args.trials, args.workers, args.min_run, args.max_run, log=sys.stdout)
        summary = stats.as_dict() | {"seconds": round(time.monotonic() - t, 1)}
        print(json.dumps(summary, indent=2))
    return 0 if not stats.problems and stats.lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
