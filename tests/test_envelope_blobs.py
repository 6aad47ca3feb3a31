"""SQLite keeps a small share's envelopes as rows written with the share; larger ones stay files (issue 15).

Either way a recipient downloads the same age file, which the reference `age` CLI decrypts; destroying a row
overwrites its bytes in the database file (`secure_delete`), as crypto-shredding requires.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gateway.store.files import DirectoryEnvelopes
from gateway.store.sqlite.envelopes import INLINE_LIMIT, BlobSpool
from tests import pg
from tests.conftest import Api

pytestmark = pytest.mark.skipif(pg.backend() == "postgres", reason="SQLite's own envelope rows")


def _rows(api: Api) -> dict[tuple[str, str], bytes]:
    conn = sqlite3.connect(api.gateway.settings.db_path)
    try:
        return {(r[0], r[1]): bytes(r[2]) for r in conn.execute("SELECT share_id, name, data FROM envelope_blobs")}
    finally:
        conn.close()


def _files(api: Api) -> list[str]:
    root = api.gateway.settings.envelopes_dir
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def _download(api: Api, share_id: str) -> bytes:
    r = await api.client.get(f"/api/v1/shares/{share_id}/envelope", headers=api.auth("alice", "recipient"))
    assert r.status == 200, await r.text()
    return bytes(await r.read())


def _age_decrypt(identity: Any, envelope: bytes, tmp_path: Path) -> bytes:
    """The reference implementation, not ours: the envelope is a standard age file wherever it was kept."""
    age = shutil.which("age")
    if age is None:
        pytest.skip("the age CLI is not installed")
    key = tmp_path / "alice.key"
    key.write_text(str(identity) + "\n")
    out = subprocess.run([age, "-d", "-i", str(key)], input=envelope, capture_output=True, timeout=60, check=True)
    return out.stdout


@pytest.mark.parametrize("size", [1024, INLINE_LIMIT + 1])
async def test_a_small_share_is_rows_a_large_one_files_and_both_open_with_age(
    api: Api, alice: Any, share_justification: dict[str, Any], tmp_path: Path, size: int
) -> None:
    await api.add_recipient("alice", alice)
    payload = os.urandom(size)
    r = await api.share(payload, ["alice"], share_justification)
    assert r.status == 201, await r.text()
    body = await r.json()
    sid, recorded = body["share_id"], body["recipients"][0]
    rows = _rows(api)
    if size <= INLINE_LIMIT:
        assert list(rows) == [(sid, "alice")] and _files(api) == []
    else:
        assert rows == {} and _files(api) == [f"{sid}/alice.age"]
    envelope = await _download(api, sid)
    # What the ledger records is the envelope as released, wherever it was kept.
    assert hashlib.sha256(envelope).hexdigest() == recorded["envelope_sha256"]
    assert len(envelope) == recorded["envelope_size"]
    assert _age_decrypt(alice, envelope, tmp_path) == payload


async def test_revoking_overwrites_the_envelope_in_the_database_file(
    api: Api, alice: Any, share_justification: dict[str, Any]
) -> None:
    """Without `secure_delete` a deleted row's bytes stay in the file's free pages until reused. Some SQLite
    builds (this machine's Python among them) turn it on by default; the writer connection turns it on
    everywhere, and this checks the outcome: the file no longer holds any of the ciphertext."""
    await api.add_recipient("alice", alice)
    r = await api.share(os.urandom(100_000), ["alice"], share_justification)
    sid = (await r.json())["share_id"]
    envelope = _rows(api)[(sid, "alice")]
    # Ciphertext is random bytes that occur nowhere else: a slice of every KiB, so that pages the revocation's own
    # writes happen to reuse do not hide the ones it merely freed.
    probes = [envelope[i : i + 64] for i in range(0, len(envelope) - 64, 1024)]
    db = Path(api.gateway.settings.db_path)

    def on_disk() -> bytes:
        conn = sqlite3.connect(db)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page into the database file, the log emptied
        finally:
            conn.close()
        return db.read_bytes()

    before = await asyncio.to_thread(on_disk)
    assert all(p in before for p in probes)
    r = await api.client.post(
        f"/api/v1/shares/{sid}/revoke", headers=api.auth("pat", "practitioner"), json={"reason": "sent in error"}
    )
    assert r.status == 200, await r.text()
    assert _rows(api) == {}
    after = await asyncio.to_thread(on_disk)
    assert not [p for p in probes if p in after]
    r = await api.client.get(f"/api/v1/shares/{sid}/envelope", headers=api.auth("alice", "recipient"))
    assert r.status in (404, 410)


async def test_a_spool_spills_to_files_at_the_first_byte_over_its_limit(tmp_path: Path) -> None:
    files = DirectoryEnvelopes(tmp_path / "envelopes")
    limit = 100
    kept, spilled = BlobSpool(files, ["a", "b"], limit), BlobSpool(files, ["a", "b"], limit)
    for spool, extra in ((kept, 0), (spilled, 1)):
        spool.write("a", b"x" * 60)
        spool.writer("b")(memoryview(b"y" * (40 + extra)))
        await spool.flush()
        await spool.seal()
    assert kept.inline and sorted(kept.rows("sh_1")) == [("sh_1", "a", b"x" * 60), ("sh_1", "b", b"y" * 40)]
    assert kept.placement("sh_1").spool is kept
    assert not spilled.inline
    # The same digest whichever way the bytes went.
    assert spilled.digest("b") == (hashlib.sha256(b"y" * 41).hexdigest(), 41)
    assert kept.digest("b") == (hashlib.sha256(b"y" * 40).hexdigest(), 40)
    placement = spilled.placement("sh_2")
    assert placement.spool is None and placement.before_commit is not None
    placement.before_commit()
    for job in (placement.durable or {}).values():
        job()
    assert (tmp_path / "envelopes" / "sh_2" / "b.age").read_bytes() == b"y" * 41
    await spilled.discard("sh_2")  # the share was not made after all: nothing of it stays
    assert not (tmp_path / "envelopes" / "sh_2").exists()
    assert list((tmp_path / "envelopes" / ".tmp").iterdir()) == []
