"""The ledger as a C2SP transparency log (issue 15): tlog-tiles under /tlog, ML-DSA-44 + Ed25519 checkpoints,
offline tlog-proof receipts, checked by the independent client in tests/tlog_client.py (no gateway merkle code).
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.ledger.tiles import TilePathError, encode_index, parse_tile_path

from . import rfc9162_verifier as rfc
from . import tlog_client as tc
from .conftest import Api

ORIGIN_KEYS: dict[str, Any] = {}


def _entry(i: int) -> dict[str, Any]:
    return {
        "v": 1,
        "kind": "decision",
        "time": "2026-12-03T10:00:00.000Z",
        "actor": {"sub": f"p{i % 7}", "role": "practitioner", "org": "org-a", "iss": "test"},
        "subjects": [],
        "recipients": [],
        "n": i,
    }


async def _grow(api: Api, upto: int) -> tuple[int, bytes]:
    store = api.gateway.store
    while await store.tree_size() < upto:
        await store.record(_entry(await store.tree_size()))
    result = await api.gateway.checkpoint()
    if result is None:  # the gateway's own periodic checkpoint signed this very size first (a slow store, e.g. PG)
        result = await store.latest_checkpoint()
    assert result is not None and result[0] == upto
    return result


def _public_keys(keys: Any) -> tuple[bytes, bytes]:
    ed = keys.ledger_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    pq = keys.ledger_pq_key.public_key().public_bytes_raw()
    return ed, pq


def test_tile_paths_have_one_spelling() -> None:
    assert encode_index(1234067) == "x001/x234/067" == tc.tile_index_path(1234067)
    assert encode_index(0) == "000" and encode_index(1000) == "x001/000"
    ref = parse_tile_path("2/x001/x234/067.p/17")
    assert (ref.level, ref.index, ref.width) == (2, 1234067, 17)
    assert parse_tile_path("entries/005").level is None
    for bad in ("0/1", "00/000", "0/000.p/0", "0/000.p/256", "0/000.p/010", "0/x000/001", "64/000", "0/001/002", "x"):
        with pytest.raises(TilePathError):
            parse_tile_path(bad)


async def test_tiles_checkpoints_and_proofs_verify_independently(api: Api, keys: Any) -> None:
    client = api.client
    r = await client.get("/tlog/checkpoint")
    assert r.status == 404  # empty ledger: no checkpoint, no tiles
    ed_pub, pq_pub = _public_keys(keys)
    origin = api.gateway.settings.log_origin

    size1, _ = await _grow(api, 300)
    r = await client.get("/tlog/checkpoint")
    assert r.status == 200 and r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.headers["Cache-Control"] == "public, max-age=5"
    old_note = tc.parse_note(await r.read())
    size2, _ = await _grow(api, 600)
    r = await client.get("/tlog/checkpoint")
    new_note = tc.parse_note(await r.read())

    for note, size in ((old_note, size1), (new_note, size2)):
        assert tc.verify_ed25519(note, origin, ed_pub) and tc.verify_mldsa44(note, origin, pq_pub)
        assert tc.parse_checkpoint(note.text)[:2] == (origin, size)
        assert [s[0] for s in note.sigs] == [origin, origin]  # Ed25519 first, then ML-DSA-44
    # A tampered checkpoint fails both signatures.
    forged = tc.Note(new_note.text.replace(b"\n600\n", b"\n601\n"), new_note.sigs)
    assert not tc.verify_ed25519(forged, origin, ed_pub) and not tc.verify_mldsa44(forged, origin, pq_pub)

    fetched: list[str] = []

    async def fetch(url: str) -> bytes:
        resp = await client.get(url)
        assert resp.status == 200, url
        assert resp.headers["Content-Type"] == "application/octet-stream"
        assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        fetched.append(url)
        return await resp.read()

    _, _, root1 = tc.parse_checkpoint(old_note.text)
    _, _, root2 = tc.parse_checkpoint(new_note.text)
    log1, log2 = tc.TiledLog(fetch, size1), tc.TiledLog(fetch, size2)
    assert await log1.mth(0, size1) == root1
    assert await log2.mth(0, size2) == root2
    # Inclusion proofs from tiles, checked with the RFC 9162 transcription.
    level0 = [h for n in range(3) for h in (await log2._tile(0, n))]
    # 600 leaves: two full level-0 tiles, a partial one of 88, and a partial level-1 tile of 2.
    assert {"/tlog/tile/0/000", "/tlog/tile/0/001", "/tlog/tile/0/002.p/88", "/tlog/tile/1/000.p/2"} <= set(fetched)
    assert "/tlog/tile/0/001.p/44" in fetched  # the partial tile of the first checkpoint (300 = 256 + 44)
    # Each level-1 hash is the MTH of a full level-0 tile.
    level1 = await log2._tile(1, 0)
    for t in range(2):
        row = level0[256 * t : 256 * (t + 1)]
        while len(row) > 1:
            row = [tc.node(row[i], row[i + 1]) for i in range(0, len(row), 2)]
        assert row[0] == level1[t]
    for index in (0, 1, 255, 256, 299, 511, 599):
        proof = await log2.path(index, 0, size2)
        assert rfc.verify_inclusion(level0[index], index, size2, proof, root2)
        assert not rfc.verify_inclusion(level0[index - 1 if index else 1], index, size2, proof, root2)
    # Consistency from the first checkpoint to the second.
    proof = await log2.subproof(size1, 0, size2, True)
    assert rfc.verify_consistency(size1, size2, proof, root1, root2)
    assert not rfc.verify_consistency(size1, size2, proof, root2, root2)

    # Not covered by the latest checkpoint, or not a tile path: plain 404, nothing cached.
    for path in ("/tlog/tile/0/003", "/tlog/tile/0/002", "/tlog/tile/0/002.p/89", "/tlog/tile/1/000", "/tlog/tile/0/1"):
        resp = await client.get(path)
        assert resp.status == 404 and resp.headers["Cache-Control"] == "no-store", path

    # Entry bundles: auditors only; each entry hashes to its level-0 tile hash.
    assert (await client.get("/tlog/tile/entries/000")).status == 401
    resp = await client.get("/tlog/tile/entries/000", headers=api.auth("pat", "practitioner"))
    assert resp.status == 403
    # Bundles cross organisations: an organisation's auditor is refused, the partnership's reads (tenancy).
    resp = await client.get("/tlog/tile/entries/000", headers=api.auth("aud", "auditor"))
    assert resp.status == 403
    auditor = api.auth("aud", "partnership_auditor")
    resp = await client.get("/tlog/tile/entries/002.p/88", headers=auditor, auto_decompress=False)
    assert resp.status == 200 and resp.headers["Content-Encoding"] == "gzip"
    assert resp.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    entries = tc.decode_bundle(gzip.decompress(await resp.read()))
    assert len(entries) == 88
    assert [tc.leaf(e) for e in entries] == level0[512:600]
    full = await client.get("/tlog/tile/entries/000", headers=auditor)
    assert [tc.leaf(e) for e in tc.decode_bundle(await full.read())] == level0[:256]
    assert (await client.get("/tlog/tile/entries/003", headers=auditor)).status == 404


@pytest.fixture
async def api_signing_on_demand(aiohttp_client: Any, settings: Any, keys: Any, token: Any) -> Api:
    """`api` without the gateway's periodic checkpointer: a test that asks about an entry before any checkpoint
    covers it would otherwise race the 0.5 s one (it lost once in CI, the proof answering 200 instead of 409)."""
    from gateway.app import create_app

    quiet = dataclasses.replace(settings, checkpoint_interval_seconds=0)
    return Api(await aiohttp_client(create_app(quiet, keys)), token)


async def test_receipt_is_a_tlog_proof_verified_offline(
    api_signing_on_demand: Api, keys: Any, not_share_justification: dict[str, Any], tmp_path: Path
) -> None:
    from .test_cli import safeshare

    api = api_signing_on_demand
    h = api.auth("pat", "practitioner")
    r = await api.client.post("/api/v1/decisions", json=not_share_justification, headers=h)
    assert r.status == 201
    index = (await r.json())["ledger_index"]
    assert (await r.json())["receipt_proof"] == f"/api/v1/ledger/entries/{index}/proof"
    r = await api.client.get(f"/api/v1/ledger/entries/{index}/proof", headers=h)
    assert r.status == 409 and (await r.json())["error"] == "not_yet_checkpointed"
    await api.gateway.checkpoint()
    r = await api.client.get(f"/api/v1/ledger/entries/{index}/proof", headers=h)
    assert r.status == 200 and "tlog-proof" in r.headers["Content-Disposition"]
    data = await r.read()
    assert (
        await api.client.get(f"/api/v1/ledger/entries/{index}/proof", headers=api.auth("eve", "practitioner"))
    ).status == 404

    # Independently: the extra is the entry, its leaf hash is proven against a checkpoint signed by both keys.
    proof = tc.parse_tlog_proof(data)
    assert proof.index == index and proof.extra is not None
    assert b'"decision":"not_share"' in proof.extra
    note = tc.parse_note(proof.checkpoint)
    origin, size, root = tc.parse_checkpoint(note.text)
    ed_pub, pq_pub = _public_keys(keys)
    assert tc.verify_ed25519(note, origin, ed_pub) and tc.verify_mldsa44(note, origin, pq_pub)
    assert rfc.verify_inclusion(tc.leaf(proof.extra), index, size, proof.hashes, root)

    # Offline, with the CLI: either key, or both, pinned.
    ed_vkey, pq_vkey = api.gateway.signer.vkey, api.gateway.signer.pq_vkey
    assert pq_vkey is not None
    good = tmp_path / "r.tlog-proof"
    good.write_bytes(data)
    home = tmp_path / "elsewhere"  # a machine with no SafeShare keys
    for pins in ([ed_vkey], [pq_vkey], [ed_vkey, pq_vkey]):
        args = [a for v in pins for a in ("--vkey", v)]
        out = safeshare(home, "ledger", "verify-receipt", str(good), *args, "--origin", origin, check=False)
        assert out.returncode == 0, out.stderr
        assert "OK: entry" in out.stderr and '"not_share"' in out.stdout
    # A changed entry, a changed proof, a wrong key: refused.
    tampered = tmp_path / "t.tlog-proof"
    changed = base64.b64encode(proof.extra.replace(b"not_share", b"share_xxx")).decode()
    tampered.write_bytes(data.replace(base64.b64encode(proof.extra), changed.encode()))
    out = safeshare(home, "ledger", "verify-receipt", str(tampered), "--vkey", pq_vkey, check=False)
    assert out.returncode == 1 and "does NOT verify" in out.stderr
    assert safeshare(tmp_path / "other", "init", check=False).returncode == 0
    out = safeshare(tmp_path / "other", "ledger", "verify-receipt", str(good), check=False)
    assert out.returncode == 1 and "does NOT verify" in out.stderr  # that home's own (different) keys
    out = safeshare(home, "ledger", "verify-receipt", str(good), check=False)
    assert out.returncode == 2  # no key pinned, none local


BIG = "\U0001d11e" * 4000  # 4,000 characters (the schema's longest text), 16,000 bytes of UTF-8


async def test_over_large_entry_refused_before_anything_is_stored(
    api: Api, bob: Any, not_share_justification: dict[str, Any], share_justification: dict[str, Any]
) -> None:
    import copy

    store = api.gateway.store
    await api.add_recipient("bob", bob)
    before = await store.tree_size()
    big = copy.deepcopy(not_share_justification)
    big["purpose"]["description"] = BIG
    big["rules"]["3_advice"]["summary"] = BIG
    big["rules"]["5_safety_wellbeing"]["assessment"] = BIG
    big["rules"]["7_record"]["rationale"] = BIG
    r = await api.client.post("/api/v1/decisions", json=big, headers=api.auth("pat", "practitioner"))
    assert r.status == 422, await r.text()
    body = await r.json()
    assert body["error"] == "entry_too_large" and body["field"] == "justification"
    assert body["limit"] == 65535 and body["size"] > 65535
    # Shares: refused before a payload byte is read, no envelope left behind.
    big = copy.deepcopy(share_justification)
    big["purpose"]["description"] = BIG
    for rule, field in (("3_advice", "summary"), ("5_safety_wellbeing", "assessment"), ("7_record", "rationale")):
        big["rules"][rule][field] = BIG
    r = await api.share(b"hello", ["bob"], big)
    assert r.status == 422 and (await r.json())["error"] == "entry_too_large"
    assert await store.tree_size() == before
    envelopes = api.gateway.settings.envelopes_dir
    assert not [p for p in envelopes.rglob("*") if p.is_file()]
    # Just under the limit is fine.
    ok = copy.deepcopy(not_share_justification)
    ok["purpose"]["description"] = BIG
    ok["rules"]["7_record"]["rationale"] = BIG
    r = await api.client.post("/api/v1/decisions", json=ok, headers=api.auth("pat", "practitioner"))
    assert r.status == 201, await r.text()
    row = await store.ledger_entry((await r.json())["ledger_index"])
    assert row is not None and 48_000 < len(row.entry) <= 65535


def test_seal_refuses_an_entry_over_65535_bytes() -> None:
    from gateway.ledger.entry import EntryTooLarge, entry_size, seal

    base = {"v": 1, "kind": "decision", "time": "2026-12-03T10:00:00.000Z", "pad": ""}
    overhead = len(seal(base, 7)[0])
    fits = {**base, "pad": "a" * (65535 - overhead)}
    assert len(seal(fits, 7)[0]) == 65535
    with pytest.raises(EntryTooLarge):
        seal({**base, "pad": "a" * (65536 - overhead)}, 7)
    assert entry_size(fits) >= len(seal(fits, 7)[0])  # the pre-check assumes the largest index


# --- known-answer vectors from other implementations ------------------------------------------------------

KAT = Path(__file__).parent / "fixtures" / "c2sp"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = b"If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_SIG = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
GO_NOTE = GO_TEXT + f"\n\u2014 PeterNeumann {GO_SIG}\n".encode()


def test_kat_ed25519_signed_note_golang_sumdb() -> None:
    """golang.org/x/mod/sumdb/note's example: our signer reproduces it byte for byte; both verifiers accept it."""
    from gateway.ledger.checkpoint import NoteSigner, NoteVerifier, open_note

    assert NoteSigner.from_skey(GO_SKEY).sign(GO_TEXT) == GO_NOTE
    assert open_note(GO_NOTE, [NoteVerifier.from_vkey(GO_VKEY)]) == (GO_TEXT, ["PeterNeumann"])
    public = base64.b64decode(GO_VKEY.split("+", 2)[2])[1:]
    assert tc.verify_ed25519(tc.parse_note(GO_NOTE), "PeterNeumann", public)
    assert not tc.verify_ed25519(
        tc.parse_note(GO_NOTE.replace(b"cryptography", b"cryptographY")), "PeterNeumann", public
    )


def test_kat_mldsa44_log_checkpoint_torchwood() -> None:
    """An ML-DSA-44 (type 0x06) checkpoint signed by filippo.io/torchwood's test log: the gateway's verifier,
    the independent client and `verify-receipt`'s key parser all accept it, and refuse it once altered."""
    from gateway.ledger.checkpoint import CheckpointError, open_note
    from gateway.ledger.receipt import verifier_from_vkey

    vkey = (KAT / "mldsa44-log.vkey").read_text().strip()
    note = (KAT / "mldsa44-log.checkpoint").read_bytes()
    name = "example.com/mldsa-log"
    v = verifier_from_vkey(vkey)
    assert v.vkey() == vkey
    body, names = open_note(note, [v])
    assert names == [name] and body.startswith(name.encode() + b"\n1\n")
    public = base64.b64decode(vkey.split("+", 2)[2])[1:]
    assert tc.verify_mldsa44(tc.parse_note(note), name, public)
    altered = note.replace(b"\n1\n", b"\n2\n", 1)
    assert not tc.verify_mldsa44(tc.parse_note(altered), name, public)
    with pytest.raises(CheckpointError):
        open_note(altered, [v])


async def test_vkeys_served_for_both_algorithms(api: Api) -> None:
    from gateway.ledger.receipt import verifier_from_vkey

    ed = (await (await api.client.get("/api/v1/ledger/vkey")).text()).strip()
    pq = (await (await api.client.get("/api/v1/ledger/vkey?alg=ml-dsa-44")).text()).strip()
    assert base64.b64decode(ed.split("+", 2)[2])[0] == 0x01 and base64.b64decode(pq.split("+", 2)[2])[0] == 0x06
    assert verifier_from_vkey(pq).vkey() == pq == api.gateway.signer.pq_vkey
    r = await api.client.get("/api/v1/ledger/vkey?alg=rsa")
    assert r.status == 400 and (await r.json())["field"] == "alg"


# --- the same log on both backends -----------------------------------------------------------------------


@pytest.mark.skipif(
    os.environ.get("SAFESHARE_TEST_BACKEND") == "postgres", reason="runs both backends itself, in the main pass"
)
async def test_same_tiles_bundles_and_checkpoint_on_both_backends(tmp_path: Path) -> None:
    """The same entries give byte-identical tlog answers on SQLite and on PostgreSQL: full and partial level-0
    tiles, a partial level-1 tile, full and partial entry bundles, the checkpoint's text and its Ed25519 line, and
    the same 404s for what no checkpoint covers. (Each backend's tiles are also checked against an independent
    client by the test above, which `.ci/run` reruns with SAFESHARE_TEST_BACKEND=postgres.)"""
    import shutil

    from aiohttp.test_utils import TestClient, TestServer

    from gateway.app import GATEWAY, create_app
    from gateway.auth import EmbeddedIssuer
    from gateway.home import init_home

    from . import pg
    from .conftest import api_settings

    first = api_settings(tmp_path / "sqlite-home")
    keys = init_home(first)
    issuer = EmbeddedIssuer(keys.token_key, first.issuer, first.audience)
    auditor = {"Authorization": f"Bearer {issuer.issue('aud', ['partnership_auditor'], org='test-org', ttl=600)}"}
    paths = [
        "/tlog/checkpoint",
        "/tlog/tile/0/000",
        "/tlog/tile/0/001",
        "/tlog/tile/0/002.p/88",
        "/tlog/tile/0/001.p/44",
        "/tlog/tile/1/000.p/1",
        "/tlog/tile/1/000.p/2",
        "/tlog/tile/0/002",  # not covered: 404 on both
        "/tlog/tile/1/000",
        "/tlog/tile/2/000.p/1",
    ]
    bundles = ["/tlog/tile/entries/000", "/tlog/tile/entries/002.p/88", "/tlog/tile/entries/002.p/89"]

    async def answers(settings: Any) -> dict[str, tuple[int, bytes]]:
        # The gateway's own 0.5 s checkpoint would race this test's explicit one (and may sign 600 first): off.
        settings = dataclasses.replace(settings, checkpoint_interval_seconds=0)
        client = TestClient(TestServer(create_app(settings, init_home(settings))))
        await client.start_server()
        try:
            gw = client.app[GATEWAY]
            for i in range(600):
                await gw.store.record(_entry(i))
            assert await gw.checkpoint() is not None
            out: dict[str, tuple[int, bytes]] = {}
            for path in paths:
                r = await client.get(path)
                out[path] = (r.status, await r.read())
            for path in bundles:
                r = await client.get(path, headers=auditor, auto_decompress=False)
                out[path] = (r.status, await r.read())
            return out
        finally:
            await client.close()

    on_sqlite = await answers(first)
    async with pg.fresh_database() as dsn:
        second = dataclasses.replace(api_settings(tmp_path / "pg-home"), database=dsn)
        second.keys_dir.parent.mkdir(parents=True)
        shutil.copytree(first.keys_dir, second.keys_dir)  # one home's keys, as nodes share them
        on_postgres = await answers(second)

    assert {p: s for p, (s, _) in on_sqlite.items()} == {
        **{p: 200 for p in paths[:7]},
        **{p: 404 for p in paths[7:]},
        bundles[0]: 200,
        bundles[1]: 200,
        bundles[2]: 404,
    }
    for path in paths[1:] + bundles:
        assert on_sqlite[path] == on_postgres[path], path
    assert len(on_sqlite["/tlog/tile/0/002.p/88"][1]) == 88 * 32 and len(on_sqlite["/tlog/tile/1/000.p/2"][1]) == 64
    # The checkpoint: the same signed text, and the same (deterministic) Ed25519 signature; ML-DSA-44 signatures
    # are randomised, so only their verification is compared (both verify under the one key).
    sq, pq = tc.parse_note(on_sqlite[paths[0]][1]), tc.parse_note(on_postgres[paths[0]][1])
    assert sq.text == pq.text and tc.parse_checkpoint(sq.text)[1] == 600
    assert sq.sigs[0] == pq.sigs[0]
    ed_pub, pq_pub = _public_keys(keys)
    origin = first.log_origin
    for note in (sq, pq):
        assert tc.verify_ed25519(note, origin, ed_pub) and tc.verify_mldsa44(note, origin, pq_pub)


# --- level-2 tiles (more than 65,536 entries) on both backends --------------------------------------------------

LEVEL2_SIZE = 65_536 + 300  # one full level-1 tile (256 x 256 leaves) and a partial one: a level-2 tile of width 1


def _fill_sqlite(db: Path, n: int) -> None:
    """`n` entries through the SQLite store's own batched append (the writer thread's path), quickly."""
    import sqlite3

    from gateway.store.sqlite import LedgerConnection, append_entry, create_schema
    from gateway.store.sqlite.tree import LedgerBatch

    create_schema(db)
    conn = sqlite3.connect(db, isolation_level=None, factory=LedgerConnection)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        for lo in range(0, n, 20_000):
            conn.execute("BEGIN")
            conn.ledger_batch = LedgerBatch()
            for i in range(lo, min(n, lo + 20_000)):
                append_entry(conn, _entry(i))
            conn.ledger_batch.flush(conn)
            conn.ledger_batch = None
            conn.execute("COMMIT")
    finally:
        conn.close()


async def _fill_postgres(dsn: str, n: int) -> None:
    """The same entries through the PostgreSQL store's own append, in batches under one coordinator-row lock each
    (as its writer task batches)."""
    import asyncpg

    from gateway.store.postgres import ledger as pg_ledger
    from gateway.store.postgres.repository import migrate

    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        for lo in range(0, n, 5_000):
            async with conn.transaction():
                tree = await pg_ledger.lock_tree(conn)
                for i in range(lo, min(n, lo + 5_000)):
                    await pg_ledger.append_entry(conn, _entry(i), None, tree)
                await pg_ledger.write_tree(conn, tree)
    finally:
        await conn.close()


@pytest.mark.skipif(
    os.environ.get("SAFESHARE_TEST_BACKEND") == "postgres", reason="runs both backends itself, in the main pass"
)
async def test_level_2_tiles_on_both_backends(tmp_path: Path) -> None:
    """Past 65,536 entries the log has a level-2 tile: on SQLite and on PostgreSQL it is the same bytes, its hash
    is the MTH of the full level-1 tile below it (computed here from that tile's 256 hashes), and the independent
    client's MTH of the whole log from the tiles (which takes the first 65,536 leaves from the level-2 tile) is
    the signed checkpoint's root. What no checkpoint covers (a full level-2 tile) is 404 on both."""
    import dataclasses
    import shutil

    from aiohttp.test_utils import TestClient, TestServer

    from gateway.app import GATEWAY, create_app
    from gateway.home import init_home

    from . import pg
    from .conftest import api_settings

    paths = ["/tlog/tile/2/000.p/1", "/tlog/tile/1/000", "/tlog/tile/1/001.p/1", "/tlog/tile/0/257.p/44"]

    async def answers(settings: Any) -> tuple[dict[str, tuple[int, bytes]], bytes, bytes]:
        settings = dataclasses.replace(settings, checkpoint_interval_seconds=0)
        client = TestClient(TestServer(create_app(settings, init_home(settings))))
        await client.start_server()
        try:
            assert await client.app[GATEWAY].checkpoint() is not None
            note = await (await client.get("/tlog/checkpoint")).read()
            out = {}
            for path in [*paths, "/tlog/tile/2/000"]:
                r = await client.get(path)
                out[path] = (r.status, await r.read())

            async def fetch(url: str) -> bytes:
                r = await client.get(url)
                assert r.status == 200, url
                return await r.read()

            root = await tc.TiledLog(fetch, LEVEL2_SIZE).mth(0, LEVEL2_SIZE)
            return out, note, root
        finally:
            await client.close()

    first = api_settings(tmp_path / "sqlite-home")
    keys = init_home(first)
    _fill_sqlite(first.db_path, LEVEL2_SIZE)
    on_sqlite, note_sqlite, root_sqlite = await answers(first)
    async with pg.fresh_database() as dsn:
        second = dataclasses.replace(api_settings(tmp_path / "pg-home"), database=dsn)
        second.keys_dir.parent.mkdir(parents=True)
        shutil.copytree(first.keys_dir, second.keys_dir)
        await _fill_postgres(dsn, LEVEL2_SIZE)
        on_postgres, note_postgres, root_postgres = await answers(second)

    assert {p: s for p, (s, _) in on_sqlite.items()} == {**{p: 200 for p in paths}, "/tlog/tile/2/000": 404}
    assert on_sqlite == on_postgres
    level1 = on_sqlite["/tlog/tile/1/000"][1]
    row = [level1[i : i + 32] for i in range(0, len(level1), 32)]
    assert len(row) == 256
    while len(row) > 1:
        row = [tc.node(row[i], row[i + 1]) for i in range(0, len(row), 2)]
    assert on_sqlite["/tlog/tile/2/000.p/1"][1] == row[0]
    for note, root in ((note_sqlite, root_sqlite), (note_postgres, root_postgres)):
        parsed = tc.parse_note(note)
        assert tc.parse_checkpoint(parsed.text)[1:] == (LEVEL2_SIZE, root)
        ed_pub, pq_pub = _public_keys(keys)
        origin = first.log_origin
        assert tc.verify_ed25519(parsed, origin, ed_pub) and tc.verify_mldsa44(parsed, origin, pq_pub)
