"""Witness co-signing: a second key, held by a partner organisation, vouches for append-only growth."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.config import Settings
from gateway.home import init_home
from gateway.ledger import merkle
from gateway.ledger.checkpoint import Checkpoint, NoteSigner, open_note, split_note
from gateway.ledger.signer import LedgerSigner
from gateway.ledger.witness import Witness, WitnessRefusal
from tests.conftest import example
from tests.test_cli import call, safeshare, serve

ORIGIN = "safeshare.local/ledger"


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(b"entry %d" % i) for i in range(n)]


def test_witness_cosigns_only_append_only_growth() -> None:
    log = LedgerSigner(ORIGIN, Ed25519PrivateKey.generate())
    witness = Witness(NoteSigner("partner.example/witness", Ed25519PrivateKey.generate()), log.verifier(), ORIGIN)
    leaves = _leaves(9)
    note5 = log.sign(5, merkle.root(leaves[:5]))
    note9 = log.sign(9, merkle.root(leaves))
    first = witness.cosign(note5, None, None)
    _, names = open_note(first, [log.verifier(), witness.signer.verifier()])
    assert names == [ORIGIN, "partner.example/witness"]
    proof = merkle.consistency_proof(5, 9, leaves.__getitem__)
    assert witness.cosign(note9, first, proof)
    with pytest.raises(WitnessRefusal, match="fork"):
        witness.cosign(note9, first, proof[:-1])
    forked = log.sign(9, merkle.root(_leaves(4) + [merkle.leaf_hash(b"rewritten")] + leaves[5:]))
    with pytest.raises(WitnessRefusal, match="fork"):
        witness.cosign(forked, first, proof)
    with pytest.raises(WitnessRefusal, match="rollback"):
        witness.cosign(log.sign(3, merkle.root(leaves[:3])), first, None)
    with pytest.raises(WitnessRefusal, match="fork"):
        witness.cosign(log.sign(5, merkle.root(leaves[1:6])), first, None)
    stranger = LedgerSigner(ORIGIN, Ed25519PrivateKey.generate())
    with pytest.raises(WitnessRefusal, match="log's key"):
        witness.cosign(stranger.sign(9, merkle.root(leaves)), first, proof)


def _wait_for_checkpoint(url: str, size: int) -> None:
    for _ in range(100):
        status, note = call(url + "/api/v1/ledger/checkpoint")
        if status == 200 and Checkpoint.parse(split_note(note)[0]).size >= size:
            return
        time.sleep(0.05)
    raise AssertionError("no checkpoint")


def test_witness_against_a_real_gateway(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home)
    log_vkey = LedgerSigner(settings.log_origin, init_home(settings).ledger_key).vkey
    wdir = tmp_path / "witness"
    wvkey = safeshare(
        home, "witness", "init", "--dir", str(wdir), "--name", "partner.example/witness", "--log-vkey", log_vkey
    ).stdout.strip()
    (home / "safeshare.toml").write_text(f"witnesses = [{json.dumps(wvkey)}]\n")
    with serve(home, tmp_path / "server.log") as url:
        practitioner = safeshare(home, "token", "issue", "--sub", "pat", "--role", "practitioner").stdout.strip()
        auditor = safeshare(home, "token", "issue", "--sub", "audrey", "--role", "auditor").stdout.strip()
        body = json.dumps(example("not-share")).encode()
        for _ in range(3):
            assert call(url + "/api/v1/decisions", practitioner, body, "application/json")[0] == 201
        _wait_for_checkpoint(url, 3)
        status, _ = call(url + "/api/v1/ledger/checkpoint?witnessed=1")
        assert status == 404

        r = safeshare(home, "witness", "cosign", "--dir", str(wdir), "--gateway", url, "--token", auditor)
        assert "co-signed checkpoint for 3 entries" in r.stdout
        status, note = call(url + "/api/v1/ledger/checkpoint?witnessed=1")
        assert status == 200 and len(split_note(note)[1]) == 3  # log Ed25519, log ML-DSA-44, witness
        saved = tmp_path / "saved"
        saved.write_bytes(note)

        for _ in range(2):
            assert call(url + "/api/v1/decisions", practitioner, body, "application/json")[0] == 201
        _wait_for_checkpoint(url, 5)
        r = safeshare(home, "witness", "cosign", "--dir", str(wdir), "--gateway", url, "--token", auditor)
        assert "for 5 entries" in r.stdout
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
            log_vkey,
            "--witness-vkey",
            wvkey,
        )
        assert "consistent: 3 -> 5" in r.stdout
        other = NoteSigner("other.example/witness", Ed25519PrivateKey.generate()).vkey()
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
            log_vkey,
            "--witness-vkey",
            other,
            check=False,
        )
        assert r.returncode == 1 and "other.example/witness" in r.stderr

        # The gateway only takes co-signatures from configured witnesses, over checkpoints it signed.
        status, latest = call(url + "/api/v1/ledger/checkpoint")
        text, sigs = split_note(latest)
        log_only = text + b"\n" + sigs[0][2].encode() + b"\n"
        stranger = NoteSigner("stranger.example/w", Ed25519PrivateKey.generate()).add_signature(log_only)
        status, resp = call(url + "/api/v1/ledger/cosignatures", None, stranger, "text/plain", method="POST")
        assert status == 422 and json.loads(resp)["error"] == "cosignature_invalid"
        status, resp = call(url + "/api/v1/ledger/cosignatures", None, b"not a note", "text/plain", method="POST")
        assert status == 400 and json.loads(resp)["error"] == "invalid_note"

        # A witness whose last co-signed view disagrees with the gateway refuses (an operator fork).
        key = init_home(settings).ledger_key
        forked = LedgerSigner(settings.log_origin, key).sign(5, b"\x07" * 32)
        (wdir / "last-checkpoint").write_bytes(forked)
        r = safeshare(home, "witness", "cosign", "--dir", str(wdir), "--gateway", url, "--token", auditor, check=False)
        assert r.returncode == 1 and "REFUSED" in r.stderr and "fork" in r.stderr
