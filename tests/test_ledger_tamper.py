"""Ledger tampering, one test per class, against real SQLite files and a real `safeshare serve` subprocess.

Each class is what someone with write access to the database file, but not to `keys/`, can do: drop the
append-only triggers, then edit, delete, insert in the middle, forge a tail entry (tree state updated to match),
reorder, truncate, roll the file back to an older copy, or rewrite history from some point on (a fork). Each
must be (1) caught by `safeshare ledger verify`, locally or against a checkpoint an auditor saved earlier, and
(2) refused by the running gateway: no new checkpoint is signed over it, `/healthz` answers 503 with
`ledger_inconsistent`, and the refusal is logged once.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.ledger.checkpoint import Checkpoint
from gateway.ledger.entry import decision_entry, seal, utc_now
from gateway.ledger.merkle import CompactRange, leaf_hash
from tests.conftest import example
from tests.test_cli import call, free_port, safeshare

FIRST = 6  # entries before the old copy of the database is taken
TOTAL = 12  # entries when the auditor saves a checkpoint


@contextlib.contextmanager
def serve(home: Path, log_path: Path) -> Iterator[str]:
    """A real `safeshare serve`; yields once /healthz answers at all (a tampered ledger makes it answer 503)."""
    port = free_port()
    with open(log_path, "a") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "--home", str(home), "serve", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while health(url) is None:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(log_path.read_text())
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            proc.wait(15)


def health(url: str) -> tuple[int, dict[str, Any]] | None:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except OSError:
        return None


def decide(url: str, token: str, n: int) -> None:
    body = json.dumps(example("not-share")).encode()
    for _ in range(n):
        status, resp = call(url + "/api/v1/decisions", token, body, "application/json")
        assert status == 201, resp


def served_size(url: str) -> int:
    status, note = call(url + "/api/v1/ledger/checkpoint")
    return Checkpoint.parse(note.split(b"\n\n")[0] + b"\n").size if status == 200 else 0


def wait_for_checkpoint(url: str, size: int) -> None:
    deadline = time.monotonic() + 10
    while served_size(url) < size:
        assert time.monotonic() < deadline, f"no checkpoint covering {size} entries"
        time.sleep(0.05)


def db(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / "data" / "safeshare.sqlite3", isolation_level=None)


def max_checkpoint(home: Path) -> int:
    conn = db(home)
    try:
        return int(conn.execute("SELECT coalesce(max(size), 0) FROM ledger_checkpoints").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home written only by the gateway: FIRST entries, an old copy of the database, then TOTAL entries and
    an auditor's saved checkpoint for TOTAL. Each test tampers with its own copy."""
    base = tmp_path_factory.mktemp("tamper-template")
    home = base / "home"
    token = safeshare(home, "token", "issue", "--sub", "pat", "--role", "practitioner").stdout.strip()
    (base / "token").write_text(token)
    with serve(home, base / "server.log") as url:
        decide(url, token, FIRST)
        wait_for_checkpoint(url, FIRST)
    # An old copy, taken consistently (the attacker's "backup" to roll back to).
    src, dst = db(home), sqlite3.connect(base / "old.sqlite3")
    src.backup(dst)
    src.close()
    dst.close()
    with serve(home, base / "server.log") as url:
        decide(url, token, TOTAL - FIRST)
        wait_for_checkpoint(url, TOTAL)
        safeshare(home, "ledger", "checkpoint", "--gateway", url, "-o", str(base / "saved.note"))
    assert max_checkpoint(home) == TOTAL
    return base


@pytest.fixture
def case(template: Path, tmp_path: Path) -> Path:
    shutil.copytree(template / "home", tmp_path / "home")
    for name in ("old.sqlite3", "saved.note", "token"):
        shutil.copy(template / name, tmp_path / name)
    return tmp_path


# -- what an attacker with the file does ------------------------------------------------------------


def drop_guards(conn: sqlite3.Connection) -> None:
    for (trig,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {trig}")


def forged_entry(index: int, description: str) -> tuple[bytes, bytes]:
    """A well-formed entry the attacker builds with the gateway's own (public) code: canonical bytes, leaf."""
    j = example("not-share")
    j["purpose"]["description"] = description
    entry = decision_entry(
        time=utc_now(),
        actor={"sub": "pat", "role": "practitioner", "org": None, "iss": "safeshare-embedded"},
        justification=j,
        policy={"id": "hmg-2018", "version": "1", "digest": "sha256:00"},
    )
    return seal(entry, index)


def insert_row(conn: sqlite3.Connection, index: int, data: bytes, leaf: bytes) -> None:
    conn.execute(
        "INSERT INTO ledger (idx, time, kind, entry, leaf_hash) VALUES (?, ?, 'decision', ?, ?)",
        (index, utc_now(), data, leaf),
    )


def recompute_tree(conn: sqlite3.Connection) -> None:
    """Make the stored tree state agree with whatever rows are there now (the attacker covering tracks)."""
    tree = CompactRange()
    for (leaf,) in conn.execute("SELECT leaf_hash FROM ledger ORDER BY idx"):
        tree.append(bytes(leaf))
    conn.execute("UPDATE ledger_tree SET size = ?, state = ? WHERE id = 0", (tree.size, tree.to_bytes()))


def entry_bytes(conn: sqlite3.Connection, index: int) -> bytes:
    return bytes(conn.execute("SELECT entry FROM ledger WHERE idx = ?", (index,)).fetchone()[0])


def t_edit(home: Path, case: Path, conn: sqlite3.Connection) -> None:
    data = entry_bytes(conn, 3)
    edited = data.replace(b'"decision":"not_share"', b'"decision":"share"')
    assert edited != data
    conn.execute("UPDATE ledger SET entry = ?, leaf_hash = ? WHERE idx = 3", (edited, leaf_hash(edited)))
    recompute_tree(conn)


def t_delete(home: Path, case: Path, conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM ledger_subjects WHERE idx = 4")
    conn.execute("DELETE FROM ledger_orgs WHERE idx = 4")
    conn.execute("DELETE FROM ledger WHERE idx = 4")


def t_insert_middle(home: Path, case: Path, conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("UPDATE ledger SET idx = idx + 1000 WHERE idx >= 5")
    conn.execute("UPDATE ledger SET idx = idx - 999 WHERE idx >= 1000")
    insert_row(conn, 5, *forged_entry(5, "Inserted afterwards to justify an earlier disclosure."))
    recompute_tree(conn)


def t_forged_tail(home: Path, case: Path, conn: sqlite3.Connection) -> None:
    data, leaf = forged_entry(TOTAL, "Appended at the tail with the tree state updated.")
    insert_row(conn, TOTAL, data, leaf)
    recompute_tree(conn)


def t_reorder(home: Path, case: Path, conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("UPDATE ledger SET idx = -1 WHERE idx = 2")
    conn.execute("UPDATE ledger SET idx = 2 WHERE idx = 8")
    conn.execute("UPDATE ledger SET idx = 8 WHERE idx = -1")
    recompute_tree(conn)


def t_truncate(home: Path, case: Path, conn: sqlite3.Connection) -> None:
    """The last entries and every checkpoint that covered them removed; what is left is self-consistent."""
    conn.execute("PRAGMA foreign_keys=OFF")
    for table in ("ledger_subjects", "ledger_orgs", "ledger_recipients", "ledger"):
        conn.execute(f"DELETE FROM {table} WHERE idx >= 9")
    conn.execute("DELETE FROM ledger_cosignatures WHERE size > 9")
    conn.execute("DELETE FROM ledger_checkpoints WHERE size > 9")
    recompute_tree(conn)


def t_roll_back(home: Path, case: Path, conn: sqlite3.Connection) -> None:
    """The database file replaced by an older copy, written by the gateway itself (every MAC valid)."""
    old = sqlite3.connect(case / "old.sqlite3")
    old.backup(conn)
    old.close()


def t_fork(home: Path, case: Path, conn: sqlite3.Connection) -> None:
    """History rewritten from FIRST on: the same number of entries, different ones, tree state and checkpoint
    table made consistent with the rewrite (the later checkpoints cannot be re-signed, so they go)."""
    conn.execute("PRAGMA foreign_keys=OFF")
    for table in ("ledger_subjects", "ledger_orgs", "ledger_recipients"):
        conn.execute(f"DELETE FROM {table} WHERE idx >= ?", (FIRST,))
    conn.execute("DELETE FROM ledger WHERE idx >= ?", (FIRST,))
    for i in range(FIRST, TOTAL):
        insert_row(conn, i, *forged_entry(i, f"Alternative history, entry {i}."))
    conn.execute("DELETE FROM ledger_cosignatures WHERE size > ?", (FIRST,))
    conn.execute("DELETE FROM ledger_checkpoints WHERE size > ?", (FIRST,))
    recompute_tree(conn)


Tamper = Callable[[Path, Path, sqlite3.Connection], None]

#: class -> (tampering, how `ledger verify` must name it: (extra arguments, words expected in its error)).
CLASSES: dict[str, tuple[Tamper, tuple[str, ...], tuple[str, ...]]] = {
    "edit": (t_edit, (), ("first bad index: 3", "MAC")),
    "delete": (t_delete, (), ("first bad index: 4", "missing")),
    "insert_middle": (t_insert_middle, (), ("first bad index: 5", "MAC")),
    "forged_tail": (t_forged_tail, (), (f"first bad index: {TOTAL}", "MAC")),
    "reorder": (t_reorder, (), ("first bad index: 2", "reordered")),
    "truncate": (t_truncate, ("--since", "saved.note"), ("roll back", "first bad index: 9")),
    "roll_back": (t_roll_back, ("--since", "saved.note"), ("roll back", f"first bad index: {FIRST}")),
    "fork": (t_fork, ("--since", "saved.note"), (f"first bad index: {FIRST}", "MAC")),
}


def test_untouched_copy_verifies_and_the_gateway_keeps_signing(case: Path) -> None:
    """The control: without tampering, both checks pass and a new entry is signed within a second."""
    home = case / "home"
    r = safeshare(home, "ledger", "verify", "--since", str(case / "saved.note"))
    assert f"{TOTAL} entries" in r.stdout
    with serve(home, case / "server.log") as url:
        decide(url, (case / "token").read_text(), 1)
        wait_for_checkpoint(url, TOTAL + 1)
        assert health(url) == (200, {"status": "ok"})
    assert max_checkpoint(home) == TOTAL + 1
    assert "REFUSING" not in (case / "server.log").read_text()


@pytest.mark.parametrize("name", list(CLASSES))
def test_tampering_is_caught_and_not_signed(case: Path, name: str) -> None:
    tamper, extra, expected = CLASSES[name]
    home = case / "home"
    conn = db(home)
    try:
        drop_guards(conn)
        tamper(home, case, conn)
    finally:
        conn.close()

    # 1. `ledger verify` names it (locally; against the auditor's saved checkpoint where the file alone agrees).
    args = [a if a != "saved.note" else str(case / "saved.note") for a in extra]
    r = safeshare(home, "ledger", "verify", *args, check=False)
    assert r.returncode == 1, (r.stdout, r.stderr)
    for words in expected:
        assert words in r.stderr, r.stderr
    # The auditor's own check, with nothing but the saved checkpoint and the database, agrees.
    r = safeshare(home, "ledger", "verify", "--since", str(case / "saved.note"), check=False)
    assert r.returncode == 1, r.stdout

    # 2. The running gateway refuses to sign over it, says so on /healthz and in its log (once).
    signed_before = max_checkpoint(home)
    log_path = case / "server.log"
    with serve(home, log_path) as url:
        decide(url, (case / "token").read_text(), 2)  # new, genuine entries: the gateway would sign these
        deadline = time.monotonic() + 10
        while (h := health(url)) is None or h[0] != 503:
            assert time.monotonic() < deadline, f"{name}: /healthz still {h}"
            time.sleep(0.1)
        status, body = h
        assert status == 503 and body["status"] == "unhealthy" and body["reason"] == "ledger_inconsistent", body
        decide(url, (case / "token").read_text(), 1)  # another round of the checkpointer: still refused
        time.sleep(1.5)
        assert max_checkpoint(home) == signed_before
        assert served_size(url) <= signed_before
    log = log_path.read_text()
    assert log.count("REFUSING TO SIGN") == 1, log
    assert max_checkpoint(home) == signed_before  # not even on shutdown


# -- ledgers written before entries had MACs ----------------------------------------------------------


def test_a_ledger_from_before_entry_macs_is_upgraded_in_place(tmp_path: Path) -> None:
    """An old ledger (no `mac` column, 10 entries signed, 2 more not yet signed) keeps its entries as legacy;
    the gateway records the first authenticated index once, and that record can be neither removed nor moved."""
    from gateway.config import Settings
    from gateway.home import init_home
    from tests.test_ledger_verify import _build_ledger

    home = tmp_path / "home"
    settings = Settings(home=home)
    keys = init_home(settings)
    _build_ledger(settings.db_path, 12, checkpoint_at=(10,), key=keys.ledger_key, origin=settings.log_origin)
    conn = db(home)
    conn.execute("ALTER TABLE ledger DROP COLUMN mac")  # the schema as it was: version 3, before versioned steps
    conn.execute("DROP TABLE schema_version")
    conn.execute("DROP TABLE store_probe")
    conn.execute("PRAGMA user_version=3")
    conn.close()
    token = safeshare(home, "token", "issue", "--sub", "pat", "--role", "practitioner").stdout.strip()
    with serve(home, tmp_path / "server.log") as url:
        wait_for_checkpoint(url, 12)  # the legacy entries are covered by a checkpoint of their own
        decide(url, token, 3)
        wait_for_checkpoint(url, 15)
        assert health(url) == (200, {"status": "ok"})
    conn = db(home)
    assert conn.execute("SELECT start FROM ledger_mac_start").fetchone()[0] == 12
    assert [r[0] for r in conn.execute("SELECT mac IS NOT NULL FROM ledger ORDER BY idx")] == [0] * 12 + [1] * 3
    conn.close()
    r = safeshare(home, "ledger", "verify")
    assert "15 entries" in r.stdout

    # Moving the start up (to pass a forged row off as legacy) breaks its MAC ...
    conn = db(home)
    drop_guards(conn)
    conn.execute("UPDATE ledger_mac_start SET start = 14")
    conn.close()
    r = safeshare(home, "ledger", "verify", check=False)
    assert r.returncode == 1 and "ledger_mac_start) was altered" in r.stderr
    # ... and removing it is not taken for a ledger still to be upgraded: verify and the gateway both refuse.
    conn = db(home)
    conn.execute("DELETE FROM ledger_mac_start")
    conn.close()
    r = safeshare(home, "ledger", "verify", check=False)
    assert r.returncode == 1 and "ledger_mac_start) is missing" in r.stderr
    with serve(home, tmp_path / "server.log") as url:
        decide(url, token, 1)
        deadline = time.monotonic() + 10
        while (h := health(url)) is None or h[0] != 503:
            assert time.monotonic() < deadline, h
            time.sleep(0.1)
        assert h[1]["reason"] == "ledger_inconsistent" and "ledger_mac_start" in h[1]["message"]
    assert max_checkpoint(home) == 15


# -- the MAC itself --------------------------------------------------------------------------------------


def test_entry_mac_binds_key_index_and_leaf() -> None:
    from gateway.ledger.mac import entry_mac, entry_mac_ok, start_mac, start_mac_ok

    key, other = b"k" * 32, b"o" * 32
    leaf = leaf_hash(b"entry")
    mac = entry_mac(key, 7, leaf)
    assert entry_mac_ok(key, 7, leaf, mac)
    assert not entry_mac_ok(other, 7, leaf, mac)  # a different key
    assert not entry_mac_ok(key, 8, leaf, mac)  # moved to another index
    assert not entry_mac_ok(key, 7, leaf_hash(b"entrY"), mac)  # edited
    assert not entry_mac_ok(key, 7, leaf, None) and not entry_mac_ok(key, 7, leaf, mac[:31])
    assert not entry_mac_ok(key, 7, leaf, start_mac(key, 7))  # the two MACs are domain-separated
    assert start_mac_ok(key, 12, start_mac(key, 12)) and not start_mac_ok(key, 13, start_mac(key, 12))
    with pytest.raises(ValueError):
        entry_mac(b"short", 0, leaf)
