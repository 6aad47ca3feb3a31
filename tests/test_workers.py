"""`safeshare serve --workers N` on the embedded SQLite store: several gateway processes on one port, one home and one
database file, kept running by the parent.

A real `serve --workers 2` takes concurrent shares; both workers serve them; one worker is SIGKILLed part-way and
the parent starts another. Afterwards every acknowledged share opens with `age`, the ledger has no gap and
`safeshare ledger verify` passes; SIGTERM to the parent stops everything cleanly. Bad worker counts and a port
already in use are refused at once with a clear message."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.kill_loop import _free_port, _request
from bench.multinode import cli, env, load, setup
from tests.conftest import assert_shares_open_with_age, require_tool


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _serve(
    home: Path, port: int, workers: str, log: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with open(log, "ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "--home", str(home), "serve", "--port", str(port)]
            + (["--workers", workers] if workers else []),
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**env(None), **(extra_env or {})},
        )


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _healthy(url: str) -> bool:
    try:
        return _request(url + "/healthz", timeout=2)[0] == 200
    except OSError:
        return False


def test_two_workers_share_one_ledger_and_survive_a_killed_worker(tmp_path: Path) -> None:
    require_tool("age")  # before any set-up: skipped (or failed in CI) at once without it
    home = tmp_path / "home"
    practitioner, recipient, identity = setup(home, None)
    (tmp_path / "identity.txt").write_text(str(identity) + "\n")
    # A retention review a second: recorded by the first worker only, not once per worker.
    (home / "safeshare.toml").write_text("retention_review_seconds = 1\n")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    started = time.monotonic()
    parent = _serve(home, port, "2", log)
    try:
        _wait(lambda: len(_children(parent.pid)) == 2 and _healthy(url), 60, "two workers never served")
        first = _children(parent.pid)
        cpu_before = {pid: _cpu_seconds(pid) for pid in first}

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            running = pool.submit(load, [url], practitioner, 4.0, 12, 4096)
            time.sleep(2.0)
            # Both workers have been serving: each has done a real part of the work so far.
            used = {pid: _cpu_seconds(pid) - cpu_before[pid] for pid in first}
            assert min(used.values()) > 0.2 * sum(used.values()), used
            os.kill(first[0], signal.SIGKILL)
            latencies, acked, others = running.result()
        assert len(acked) > 50, others
        # Only the killed worker's requests in flight may have failed (connection reset): nothing else.
        assert set(others) <= {"0"}, others

        # The parent has started another worker in the killed one's place.
        _wait(lambda: len(_children(parent.pid)) == 2 and first[0] not in _children(parent.pid), 30, "no new worker")
        assert first[1] in _children(parent.pid)
        assert "was killed by signal 9; starting another" in log.read_text()

        # Every acknowledged share is stored and opens with `age`.
        assert_shares_open_with_age(tmp_path / "identity.txt", [url], recipient, acked)

        # SIGTERM to the parent stops every worker and exits 0.
        workers = _children(parent.pid)
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(40) == 0, log.read_text()[-3000:]
        elapsed = time.monotonic() - started
        for pid in workers:
            assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()

    # One gap-free ledger, and every share's entry in it.
    conn = sqlite3.connect(home / "data" / "safeshare.sqlite3")
    try:
        rows, top = conn.execute("SELECT count(*), coalesce(max(idx) + 1, 0) FROM ledger").fetchone()
        size = conn.execute("SELECT size FROM ledger_tree WHERE id = 0").fetchone()[0]
        logged = {r[0] for r in conn.execute("SELECT share_id FROM ledger WHERE kind = 'share'")}
        reviews = conn.execute("SELECT count(*) FROM ledger WHERE kind = 'retention_review'").fetchone()[0]
    finally:
        conn.close()
    assert rows == top == size
    assert set(acked) <= logged
    assert 2 <= reviews <= elapsed + 1, (reviews, elapsed)
    verify = cli(home, None, "ledger", "verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr


@pytest.mark.parametrize(
    ("flag", "environment", "toml", "said"),
    [
        ("0", {}, "", "--workers must be a whole number from 1 to 64"),
        ("two", {}, "", "--workers must be a whole number from 1 to 64"),
        ("", {"SAFESHARE_WORKERS": "65"}, "", "workers must be a whole number from 1 to 64, not '65'"),
        ("", {}, "workers = true\n", "workers must be a whole number from 1 to 64, not True"),
    ],
)
def test_a_bad_worker_count_is_refused(
    tmp_path: Path, flag: str, environment: dict[str, str], toml: str, said: str
) -> None:
    home = tmp_path / "home"
    cli(home, None, "init")
    if toml:
        (home / "safeshare.toml").write_text(toml)
    proc = _serve(home, _free_port(), flag, tmp_path / "serve.log", environment)
    assert proc.wait(30) == 2
    text = (tmp_path / "serve.log").read_text()
    assert said in text and "Traceback" not in text, text


@pytest.mark.parametrize("shared", [False, True], ids=["another-program", "another-serve-workers"])
def test_a_port_in_use_is_refused_at_once(tmp_path: Path, shared: bool) -> None:
    """Also when the port's holder allows `SO_REUSEPORT` (another `serve --workers` of the same user): the new
    workers would join its group and the two gateways would split the traffic."""
    home = tmp_path / "home"
    cli(home, None, "init")
    with socket.create_server(("127.0.0.1", 0), reuse_port=shared) as taken:
        port = taken.getsockname()[1]
        proc = _serve(home, port, "2", tmp_path / "serve.log")
        assert proc.wait(30) == 1
    text = (tmp_path / "serve.log").read_text()
    assert f"cannot listen on 127.0.0.1:{port}" in text and "Traceback" not in text, text
