"""Tamper evidence: signed checkpoints, proofs checked by an independent RFC 9162 verifier, and
`safeshare ledger verify` catching edits, deletions, reorderings, truncation, forged checkpoints and forks."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.auth import load_or_create_ed25519_key
from gateway.config import Settings
from gateway.home import init_home
from gateway.ledger import merkle
from gateway.ledger.checkpoint import Checkpoint, NoteVerifier, verify_checkpoint
from gateway.ledger.entry import decision_entry, utc_now
from gateway.ledger.signer import LedgerSigner
from gateway.store.sqlite import LedgerConnection, TreeReader, append_entry, create_schema, load_tree
from tests import rfc9162_verifier as rfc
from tests.conftest import Api, example
from tests.test_cli import call, safeshare, served  # noqa: F401 - `served` is a fixture

PAYLOAD = b"strategy discussion minutes"


async def _checkpoint(api: Api, min_size: int) -> bytes:
    """Poll until the background checkpointer covers min_size entries (it runs every 0.5 s)."""
    for _ in range(100):
        r = await api.client.get("/api/v1/ledger/checkpoint")
        if r.status == 200 and int(r.headers["X-SafeShare-Tree-Size"]) >= min_size:
            return await r.read()
        await asyncio.sleep(0.05)
    raise AssertionError("no checkpoint covering the new entries within 5 s")


async def test_entries_are_provably_in_the_signed_log(
    api: Api, alice: Any, share_justification: dict[str, Any], not_share_justification: dict[str, Any]
) -> None:
    await api.add_recipient("alice", alice)
    share = await (await api.share(PAYLOAD, ["alice"], share_justification)).json()
    r = await api.client.post(
        "/api/v1/decisions", json=not_share_justification, headers=api.auth("pat", "practitioner")
    )
    decision = await r.json()
    assert decision["receipt"] == f"/api/v1/ledger/entries/{decision['ledger_index']}"

    # Public: the verifier key and the checkpoint, no token needed.
    vkey = (await (await api.client.get("/api/v1/ledger/vkey")).text()).strip()
    note = await _checkpoint(api, decision["ledger_index"] + 1)
    cp = verify_checkpoint(note, NoteVerifier.from_vkey(vkey), origin=api.gateway.settings.log_origin)
    assert cp.size == decision["ledger_index"] + 1

    # The share's receipt: entry bytes, inclusion proof and checkpoint — checked with the RFC's own algorithm.
    r = await api.client.get(share["receipt"], headers=api.auth("pat", "practitioner"))
    assert r.status == 200
    receipt = await r.json()
    leaf = base64.b64decode(receipt["leaf"])
    assert json.loads(leaf) == receipt["entry"]
    assert receipt["entry"]["recipients"][0]["envelope_sha256"] == share["recipients"][0]["envelope_sha256"]
    proof = [base64.b64decode(h) for h in receipt["inclusion_proof"]["hashes"]]
    size = receipt["inclusion_proof"]["size"]
    cp2 = verify_checkpoint(receipt["checkpoint"]["note"].encode(), NoteVerifier.from_vkey(vkey))
    assert cp2.size == size
    assert rfc.verify_inclusion(rfc.sha256_leaf(leaf), share["ledger_index"], size, proof, cp2.root_hash)
    assert not rfc.verify_inclusion(rfc.sha256_leaf(leaf + b" "), share["ledger_index"], size, proof, cp2.root_hash)

    # The recipient may see the entry naming them; another practitioner may not (404, no leak).
    r = await api.client.get(share["receipt"], headers=api.auth("alice", "recipient"))
    assert r.status == 200
    r = await api.client.get(share["receipt"], headers=api.auth("sam", "practitioner"))
    assert r.status == 404
    r = await api.client.get("/api/v1/ledger/entries/999999", headers=api.auth("a", "auditor"))
    assert r.status == 404


async def test_proof_routes_match_the_rfc(api: Api, not_share_justification: dict[str, Any]) -> None:
    h = api.auth("pat", "practitioner")
    for _ in range(13):
        assert (await api.client.post("/api/v1/decisions", json=not_share_justification, headers=h)).status == 201
    a = api.auth("audrey", "auditor")
    leaves = []
    for i in range(13):
        body = await (await api.client.get(f"/api/v1/ledger/entries/{i}", headers=a)).json()
        leaves.append(rfc.sha256_leaf(base64.b64decode(body["leaf"])))
    roots = {n: merkle.root(leaves[:n]) for n in range(1, 14)}
    for index, size in [(0, 1), (4, 13), (12, 13), (7, 8), (3, 5)]:
        r = await api.client.get(f"/api/v1/ledger/proof/inclusion?index={index}&size={size}", headers=a)
        proof = [base64.b64decode(x) for x in (await r.json())["hashes"]]
        assert rfc.verify_inclusion(leaves[index], index, size, proof, roots[size])
    for first, second in [(1, 13), (5, 13), (8, 13), (3, 7)]:
        r = await api.client.get(f"/api/v1/ledger/proof/consistency?first={first}&second={second}", headers=a)
        proof = [base64.b64decode(x) for x in (await r.json())["hashes"]]
        assert rfc.verify_consistency(first, second, proof, roots[first], roots[second])
    for query, field in [
        ("inclusion?index=13&size=13", "index"),
        ("inclusion?index=0&size=14", "size"),
        ("inclusion?index=x&size=3", "index"),
        ("consistency?first=5&second=4", "first"),
        ("consistency?first=1&second=99", "second"),
        ("consistency?first=1", "second"),
    ]:
        r = await api.client.get(f"/api/v1/ledger/proof/{query}", headers=a)
        assert r.status == 400 and (await r.json())["field"] == field, query
    r = await api.client.get("/api/v1/ledger/proof/inclusion?index=0&size=1", headers=h)
    assert r.status == 403


def test_subtree_cache_gives_the_same_proofs(tmp_path: Path) -> None:
    """Proofs built from cached 256-leaf subtrees equal proofs built from every leaf."""
    db = tmp_path / "l.sqlite3"
    _build_ledger(db, 700, checkpoint_at=())
    with TreeReader(db) as t:
        leaves = [t.leaf_hash(i) for i in range(700)]
        assert t.size() == 700
        for index, size in [(0, 700), (255, 512), (256, 700), (699, 700), (300, 513)]:
            assert t.inclusion_proof(index, size) == merkle.inclusion_proof(index, size, leaves.__getitem__)
        for first, second in [(256, 700), (255, 700), (512, 700), (1, 700)]:
            assert t.consistency_proof(first, second) == merkle.consistency_proof(first, second, leaves.__getitem__)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM ledger_nodes WHERE level = 8").fetchone()[0] == 2
    assert load_tree(conn).root() == merkle.root(leaves)


# -- `safeshare ledger verify` against a tampered SQLite file -----------------------------------------


def _build_ledger(
    db: Path,
    n: int,
    checkpoint_at: tuple[int, ...],
    key: Ed25519PrivateKey | None = None,
    origin: str = "safeshare.local/ledger",
    mac_key: bytes | None = None,
) -> None:
    """Append through the store's own `append_entry`; with `mac_key`, as the gateway does (entries carry MACs)."""
    create_schema(db, mac_key)
    signer = LedgerSigner(origin, key or Ed25519PrivateKey.generate())
    conn = sqlite3.connect(db, isolation_level=None, factory=LedgerConnection)
    conn.ledger_mac_key = mac_key
    conn.execute("BEGIN")
    j = example("not-share")
    for i in range(n):
        j["purpose"]["description"] = f"Request number {i} from a housing association."
        append_entry(
            conn,
            decision_entry(
                time=utc_now(),
                actor={"sub": "pat", "role": "practitioner", "org": "o", "iss": "x"},
                justification=j,
                policy={"id": "hmg-2018", "version": "1", "digest": "sha256:00"},
            ),
        )
        if i + 1 in checkpoint_at:
            tree = load_tree(conn)
            conn.execute(
                "INSERT INTO ledger_checkpoints (size, time, note) VALUES (?, ?, ?)",
                (tree.size, utc_now(), signer.sign(tree.size, tree.root())),
            )
    conn.execute("COMMIT")
    conn.close()


@pytest.fixture
def home_ledger(tmp_path: Path) -> Settings:
    settings = Settings(home=tmp_path / "home")
    keys = init_home(settings)
    _build_ledger(
        settings.db_path,
        40,
        checkpoint_at=(10, 25, 40),
        key=keys.ledger_key,
        origin=settings.log_origin,
        mac_key=keys.ledger_mac_key,
    )
    return settings


def _tamper(settings: Settings, *statements: str, params: tuple[Any, ...] = ()) -> None:
    """What someone with the file (not the gateway's key) can do: drop the guards and rewrite rows."""
    conn = sqlite3.connect(settings.db_path, isolation_level=None)
    for trig in [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")]:
        conn.execute(f"DROP TRIGGER {trig}")
    for st in statements:
        conn.execute(st, params if "?" in st else ())
    conn.close()


def _verify(settings: Settings, *extra: str) -> subprocess.CompletedProcess[str]:
    return safeshare(settings.home, "ledger", "verify", *extra, check=False)


def _entry(settings: Settings, idx: int) -> bytes:
    conn = sqlite3.connect(settings.db_path)
    try:
        return bytes(conn.execute("SELECT entry FROM ledger WHERE idx = ?", (idx,)).fetchone()[0])
    finally:
        conn.close()


def test_verify_passes_on_an_untouched_ledger(home_ledger: Settings) -> None:
    r = _verify(home_ledger)
    assert r.returncode == 0, r.stderr
    assert "40 entries, 3 signed checkpoint(s)" in r.stdout


def test_verify_names_an_edited_entry(home_ledger: Settings) -> None:
    edited = _entry(home_ledger, 17).replace(b"Request number 17", b"Request number 71")
    _tamper(home_ledger, "UPDATE ledger SET entry = ? WHERE idx = 17", params=(edited,))
    r = _verify(home_ledger)
    assert r.returncode == 1 and "first bad index: 17" in r.stderr


def test_verify_catches_an_edit_with_a_recomputed_leaf_hash(home_ledger: Settings) -> None:
    edited = _entry(home_ledger, 17).replace(b"Request number 17", b"Request number 71")
    leaf = merkle.leaf_hash(edited)
    _tamper(home_ledger, "UPDATE ledger SET entry = ?, leaf_hash = ? WHERE idx = 17", params=(edited, leaf))
    r = _verify(home_ledger)
    # The entry's MAC (keyed outside the database) no longer matches its leaf: named exactly.
    assert r.returncode == 1 and "first bad index: 17" in r.stderr and "MAC" in r.stderr


def test_verify_names_a_deleted_row(home_ledger: Settings) -> None:
    _tamper(home_ledger, "DELETE FROM ledger WHERE idx = 5")
    r = _verify(home_ledger)
    assert r.returncode == 1 and "first bad index: 5" in r.stderr and "missing" in r.stderr


def test_verify_names_swapped_rows(home_ledger: Settings) -> None:
    _tamper(
        home_ledger,
        "UPDATE ledger SET idx = -1 WHERE idx = 30",
        "UPDATE ledger SET idx = 30 WHERE idx = 12",
        "UPDATE ledger SET idx = 12 WHERE idx = -1",
    )
    r = _verify(home_ledger)
    assert r.returncode == 1 and "first bad index: 12" in r.stderr


def test_verify_names_a_truncated_tail(home_ledger: Settings) -> None:
    _tamper(home_ledger, "DELETE FROM ledger WHERE idx >= 33")
    r = _verify(home_ledger)
    assert r.returncode == 1 and "first bad index: 33" in r.stderr and "removed" in r.stderr


def test_verify_refuses_a_replaced_checkpoint(home_ledger: Settings) -> None:
    forged = LedgerSigner(home_ledger.log_origin, Ed25519PrivateKey.generate()).sign(25, b"\x00" * 32)
    _tamper(home_ledger, "UPDATE ledger_checkpoints SET note = ? WHERE size = 25", params=(forged,))
    r = _verify(home_ledger)
    assert r.returncode == 1 and "checkpoint for size 25" in r.stderr


def test_verify_refuses_a_checkpoint_from_a_fork(home_ledger: Settings) -> None:
    """Signed with the real key but over a different history: caught because the root is not this tree's."""
    key = load_or_create_ed25519_key(home_ledger.ledger_key_path)
    forged = LedgerSigner(home_ledger.log_origin, key).sign(25, b"\x01" * 32)
    _tamper(home_ledger, "UPDATE ledger_checkpoints SET note = ? WHERE size = 25", params=(forged,))
    r = _verify(home_ledger)
    assert r.returncode == 1 and "size 25" in r.stderr and "first bad index: 10" in r.stderr


def test_verify_with_a_pinned_key_refuses_a_swapped_signing_key(home_ledger: Settings) -> None:
    pinned = LedgerSigner(home_ledger.log_origin, load_or_create_ed25519_key(home_ledger.ledger_key_path)).vkey
    other = LedgerSigner(home_ledger.log_origin, Ed25519PrivateKey.generate()).vkey
    assert _verify(home_ledger, "--vkey", pinned).returncode == 0
    r = _verify(home_ledger, "--vkey", other)
    assert r.returncode == 1 and "checkpoint for size 10" in r.stderr


# -- remote: a rollback or fork is caught against a checkpoint saved earlier ------------------------


def test_remote_verify_since_a_saved_checkpoint(served: tuple[Path, str], tmp_path: Path) -> None:  # noqa: F811
    home, url = served
    practitioner = safeshare(home, "token", "issue", "--sub", "pat", "--role", "practitioner").stdout.strip()
    auditor = safeshare(home, "token", "issue", "--sub", "audrey", "--role", "auditor").stdout.strip()
    body = json.dumps(example("not-share")).encode()

    def decide(n: int) -> None:
        for _ in range(n):
            status, _ = call(url + "/api/v1/decisions", practitioner, body, "application/json")
            assert status == 201

    def wait_for(size: int) -> None:
        for _ in range(100):
            status, note = call(url + "/api/v1/ledger/checkpoint")
            if status == 200 and Checkpoint.parse(note.split(b"\n\n")[0] + b"\n").size >= size:
                return
            subprocess.run([sys.executable, "-c", "import time; time.sleep(0.05)"], check=True)
        raise AssertionError("no checkpoint")

    decide(3)
    wait_for(3)
    vkey = call(url + "/api/v1/ledger/vkey")[1].decode().strip()
    (tmp_path / "vkey").write_text(vkey)
    saved = tmp_path / "cp-3"
    r = safeshare(
        home, "ledger", "checkpoint", "--gateway", url, "--vkey-file", str(tmp_path / "vkey"), "-o", str(saved)
    )
    assert Checkpoint.parse(saved.read_bytes().split(b"\n\n")[0] + b"\n").size == 3

    decide(4)
    wait_for(7)
    r = safeshare(
        home,
        "ledger",
        "verify",
        "--gateway",
        url,
        "--token",
        auditor,
        "--since",
        str(saved),
        "--vkey",
        vkey,
        "--save",
        str(tmp_path / "cp-7"),
    )
    assert "consistent: 3 -> 7" in r.stdout

    # A checkpoint "saved earlier" from a different history (same key: an operator fork) is caught...
    key = load_or_create_ed25519_key(home / "keys" / "ledger-signing.ed25519.pem")
    origin = Checkpoint.parse(saved.read_bytes().split(b"\n\n")[0] + b"\n").origin
    fork = tmp_path / "fork"
    fork.write_bytes(LedgerSigner(origin, key).sign(5, b"\x02" * 32))
    r = safeshare(
        home,
        "ledger",
        "verify",
        "--gateway",
        url,
        "--token",
        auditor,
        "--since",
        str(fork),
        "--vkey",
        vkey,
        check=False,
    )
    assert r.returncode == 1 and "fork" in r.stderr
    # ...and so is a gateway that now shows fewer entries than the auditor saw (a rollback).
    ahead = tmp_path / "ahead"
    ahead.write_bytes(LedgerSigner(origin, key).sign(50, b"\x03" * 32))
    r = safeshare(
        home,
        "ledger",
        "verify",
        "--gateway",
        url,
        "--token",
        auditor,
        "--since",
        str(ahead),
        "--vkey",
        vkey,
        check=False,
    )
    assert r.returncode == 1 and "rollback" in r.stderr
    # The local check of the same home agrees that nothing was altered.
    r = safeshare(home, "ledger", "verify")
    assert "7 entries" in r.stdout or "entries" in r.stdout
