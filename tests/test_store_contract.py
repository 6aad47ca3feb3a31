"""The store contract: the same tests against the SQLite store and the PostgreSQL store, so that a behaviour
cannot exist on one backend only; then what only several nodes on PostgreSQL can get wrong (contiguous indexes
and one checkpoint per size under cross-node contention, append-only in the database, envelopes in chunks,
the database going away).

PostgreSQL tests use a database of their own (tests/pg.py) and skip, saying why, without a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.ledger import merkle
from gateway.ledger.entry import KIND_EXPIRE, KIND_FETCH, KIND_REVOKE, share_event_entry
from gateway.store import open_store as open_url
from gateway.store.idempotency import IdempotencyHit, IdempotentWrite
from gateway.store.models import Enrolment, Recipient, RecipientExists, Share, ShareRecipient, StoreError
from tests.pg import append_as_before_ledger_words, fresh_database

pg = pytest.importorskip("gateway.store.postgres")
pg_schema = pytest.importorskip("gateway.store.postgres.schema")
PostgresStore = pg.PostgresStore

BACKENDS = ["sqlite", "postgres"]
T0 = "2026-01-01T00:00:00Z"
FAR = "2099-01-01T00:00:00Z"


@contextlib.asynccontextmanager
async def open_store(backend: str, tmp_path: Path, mac_key: bytes | None = None) -> AsyncIterator[Any]:
    if backend == "sqlite":
        store = await open_url(f"sqlite://{tmp_path / 'gateway.db'}", ledger_mac_key=mac_key)
        try:
            yield store
        finally:
            await store.close()
        return
    async with fresh_database() as dsn:
        store = await open_url(dsn, ledger_mac_key=mac_key)
        try:
            yield store
        finally:
            await store.close()


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    async with open_store(request.param, tmp_path) as s:
        yield s


def entry(kind: str = "decision", time: str = T0, **extra: Any) -> dict[str, Any]:
    return {
        "v": 1,
        "kind": kind,
        "time": time,
        "actor": {"sub": "alice", "role": "practitioner", "org": "Hereford MASH", "iss": "test"},
        "subjects": ["S-1"],
        "recipients": [],
        "purpose": {"code": "safeguarding", "description": "Concern about a child at risk of harm"},
        **extra,
    }


def person(rid: str, org: str = "West Mercia Police") -> Recipient:
    return Recipient(id=rid, name=rid.title(), org=org, email=f"{rid}@example.org", age_recipient="age1" + rid)


def share(sid: str, rids: list[str], max_downloads: int | None = None, expires_at: str = FAR) -> Share:
    return Share(
        id=sid,
        created_at=T0,
        sender_sub="alice",
        sender_iss="test",
        sender_org="Hereford MASH",
        purpose_code="safeguarding",
        purpose_description="Concern",
        subjects=("S-1",),
        data_categories=("health",),
        payload_content_type="message/rfc822",
        payload_size=10,
        expires_at=expires_at,
        max_downloads=max_downloads,
        recipients=tuple(ShareRecipient(r, "West Mercia Police", "ab" * 32, 100) for r in rids),
    )


def event(kind: str) -> Callable[[Share], dict[str, Any]]:
    def make(s: Share) -> dict[str, Any]:
        return share_event_entry(
            kind=kind,
            time=T0,
            actor=None,
            share_id=s.id,
            share_index=s.ledger_index,
            subjects=s.subjects,
            recipients=[{"id": r.recipient_id, "org": r.recipient_org} for r in s.recipients],
        )

    return make


# -- the contract, on both backends ---------------------------------------------------------------------


async def test_recipients_and_contiguous_indexes(store: Any) -> None:
    assert await store.add_recipient(person("bob"), entry("recipient_add")) == 0
    assert await store.add_recipient(person("carol"), entry("recipient_add")) == 1
    with pytest.raises(RecipientExists):
        await store.add_recipient(person("bob"), entry("recipient_add"))
    assert await store.add_recipient(person("dave"), entry("recipient_add")) == 2  # the failure took no index
    got = await store.get_recipients(["bob", "carol", "nobody"])
    assert sorted(got) == ["bob", "carol"] and got["bob"].email == "bob@example.org"
    assert [r.id for r in await store.list_recipients(q="CAR")] == ["carol"]
    assert [r.id for r in await store.list_recipients()] == ["bob", "carol", "dave"]
    assert await store.set_recipient_status("carol", "disabled", entry("recipient_disable")) == 3
    assert await store.set_recipient_status("nobody", "disabled", entry("recipient_disable")) is None
    assert [r.id for r in await store.list_recipients()] == ["bob", "dave"]
    assert len(await store.list_recipients(include_disabled=True)) == 3
    assert await store.tree_size() == 4
    assert await store.recipient_keys("bob") == [("age1bob", "active", T0, None)]


async def test_teams_and_enrolments(store: Any) -> None:
    await store.add_recipient(person("bob"), entry())
    await store.add_recipient(Recipient("mash", "MASH", "Hereford", "mash@example.org", "", kind="team"), entry())
    assert await store.set_membership("mash", "bob", True, entry()) == 2
    assert await store.set_membership("mash", "bob", True, entry()) is None
    members = await store.team_members(["mash"])
    assert [r.id for r in members["mash"]] == ["bob"]
    e = Enrolment("e1", "bob", "Bob", "West Mercia Police", "bob@example.org", "age1new", "pending", T0)
    assert await store.request_enrolment(e, entry()) == 3
    assert [x.id for x in await store.enrolments(status="pending")] == ["e1"]
    decided = await store.decide_enrolment("bob", True, "admin", lambda en: entry())
    assert decided is not None and decided[0].id == "e1" and decided[1] == 4
    assert (await store.get_recipients(["bob"]))["bob"].age_recipient == "age1new"
    keys = {k[0]: k[1] for k in await store.recipient_keys("bob")}
    assert keys == {"age1new": "active", "age1bob": "retired"}
    assert await store.decide_enrolment("bob", True, "admin", lambda en: entry()) is None
    assert await store.set_membership("mash", "bob", False, entry()) == 5
    assert (await store.team_members(["mash"]))["mash"] == []


async def test_share_lifecycle(store: Any) -> None:
    for rid in ("bob", "carol"):
        await store.add_recipient(person(rid), entry())
    idx = await store.create_share(share("s1", ["bob", "carol"], max_downloads=1), entry("share", share_id="s1"))
    assert idx == 2
    s = await store.get_share("s1")
    assert s is not None and s.ledger_index == 2 and [r.recipient_id for r in s.recipients] == ["bob", "carol"]
    assert [x.id for x in await store.inbox("bob", None, 10)] == ["s1"]
    assert [x.id for x in await store.sent("alice", "test", None, 10)] == ["s1"]
    assert await store.sent("alice", "test", 2, 10) == []
    assert await store.record_fetch("s1", "mallory", T0, event(KIND_FETCH)) is None
    out = await store.record_fetch("s1", "bob", T0, event(KIND_FETCH))
    assert out.refused is None and out.ledger_index == 3 and out.exhausted
    assert await store.tree_size() == 5  # the fetch and the expiry for max_downloads
    again = await store.record_fetch("s1", "bob", T0, event(KIND_FETCH))
    assert again.refused == "exhausted"
    ack = await store.acknowledge("s1", "carol", "done", T0, event("acknowledge"))
    assert ack is not None and ack[1] == 5
    assert ("s1", "carol") in await store.live_envelopes()
    assert ("s1", "bob") not in await store.live_envelopes()
    revoked = await store.revoke("s1", event(KIND_REVOKE))
    assert revoked is not None and revoked[1] == 6
    assert (await store.revoke("s1", event(KIND_REVOKE)))[1] is None
    s = await store.get_share("s1")
    assert s.state == "revoked" and s.recipient("carol").acknowledgement == "done"
    assert await store.get_share("nope") is None
    # The sender's names as people read them (issue 13), kept as given: none above, so readers show the IDs.
    assert (s.sender_name, s.sender_org_name) == (None, None)
    named = dataclasses.replace(share("s2", ["bob"]), sender_name="Alice Ames", sender_org_name="Hereford MASH")
    await store.create_share(named, entry("share", share_id="s2"))
    s2 = await store.get_share("s2")
    assert s2 is not None and (s2.sender_name, s2.sender_org_name) == ("Alice Ames", "Hereford MASH")
    assert [x.sender_name for x in await store.inbox("bob", None, 10)] == ["Alice Ames", None]


async def test_ledger_rows_have_their_declared_types(store: Any) -> None:
    """Rows are built straight from the driver's values (`LedgerRow(*row)`, no conversion): each store's
    driver must give exactly int, str, str, bytes, bytes, whichever way the row is read."""
    from gateway.store.audit import AuditFilter

    await store.add_recipient(person("bob"), entry())
    await store.record(entry("decision"))
    read = [await store.ledger_entry(1)]
    read += await store.query_page(AuditFilter(), before=None, limit=5)
    read += [r for p in [p async for p in await store.export_pages(AuditFilter(), upto=10, page_size=1)] for r in p]
    assert len(read) == 5
    for r in read:
        assert [type(v) for v in (r.index, r.time, r.kind, r.entry, r.leaf_hash)] == [int, str, str, bytes, bytes]


async def test_an_export_left_early_holds_nothing(store: Any) -> None:
    """An export whose reader stops after a page (the client went away) leaves no connection or page fetch
    behind: more abandoned exports than the PostgreSQL pool has connections, then whole ones, still answer."""
    from gateway.store.audit import AuditFilter

    for _ in range(9):
        await store.add_recipient(person(f"r{_}"), entry())
    for _ in range(12):
        pages = await store.export_pages(AuditFilter(), upto=10**6, page_size=2)
        async for page in pages:
            assert [r.index for r in page] == [0, 1]
            break
        await pages.aclose()
    whole = [r.index async for p in await store.export_pages(AuditFilter(), upto=10**6, page_size=2) for r in p]
    assert whole == list(range(9))
    assert [r.index async for p in await store.export_pages(AuditFilter(), upto=5, page_size=2) for r in p] == [
        0,
        1,
        2,
        3,
        4,
    ]


async def test_an_export_follows_matches_whose_density_changes(store: Any) -> None:
    """An export's pages as the PostgreSQL store asks for them (several windows of index numbers at once, each
    about one page's span, a window with more than a page continuing before any later one): every match, once, in
    index order, whether matches thin out or crowd together after the first page. The same on SQLite."""
    from gateway.store.audit import AuditFilter

    # Subject D: every entry at first, then every 25th, then every entry again, then none at the end.
    wanted = [*range(0, 12), *range(12, 150, 25), *range(150, 190)]
    for i in range(220):
        await store.record(entry(subjects=["D" if i in wanted else "E"]))
    for page_size in (1, 3, 5, 8, 1000):
        got = [
            [r.index for r in p]
            async for p in await store.export_pages(AuditFilter(subject="D"), upto=10**6, page_size=page_size)
        ]
        assert [i for p in got for i in p] == wanted, page_size
        assert all(0 < len(p) <= page_size for p in got), page_size
    rest = [r.index async for p in await store.export_pages(AuditFilter(subject="D"), upto=160, page_size=4) for r in p]
    assert rest == [i for i in wanted if i < 160]


async def test_a_periodic_entry_is_recorded_once_a_period(store: Any) -> None:
    """`record_unless_since`: what several nodes' periodic jobs use to record one retention review a period."""
    review = "retention_review"
    first = await store.record_unless_since(entry(review, "2026-01-01T00:00:00.000Z"), "2025-12-31T12:00:00.000Z")
    assert first == 0
    # Another node's round an hour later: the review at midnight stands for it.
    assert (
        await store.record_unless_since(entry(review, "2026-01-01T01:00:00.000Z"), "2025-12-31T13:00:00.000Z") is None
    )
    # Entries of other kinds do not count.
    await store.record(entry("decision", "2026-01-01T02:00:00.000Z"))
    # Concurrent rounds in one batch (as workers of one process would): one is recorded.
    late = [entry(review, f"2026-01-02T00:00:0{i}.000Z") for i in range(4)]
    results = await asyncio.gather(*(store.record_unless_since(e, "2026-01-01T12:00:00.000Z") for e in late))
    assert sorted(r for r in results if r is not None) == [2] and results.count(None) == 3


async def test_expiry(store: Any) -> None:
    await store.add_recipient(person("bob"), entry())
    await store.create_share(share("s1", ["bob"], expires_at="2026-01-02T00:00:00Z"), entry("share"))
    await store.create_share(share("s2", ["bob"]), entry("share"))
    assert [s.id for s in await store.expire_due("2026-01-03T00:00:00Z", event(KIND_EXPIRE))] == ["s1"]
    assert await store.expire_due("2026-01-03T00:00:00Z", event(KIND_EXPIRE)) == []
    out = await store.record_fetch("s1", "bob", "2026-01-03T00:00:00Z", event(KIND_FETCH))
    assert out.refused == "expired"


async def test_failed_operation_changes_nothing(store: Any) -> None:
    """A share whose last step fails leaves no row, no ledger entry and no used index behind."""
    await store.add_recipient(person("bob"), entry())

    def boom() -> None:
        raise RuntimeError("placing the envelopes failed")

    with pytest.raises(RuntimeError):
        await store.create_share(share("s1", ["bob"]), entry("share"), before_commit=boom)
    assert await store.get_share("s1") is None
    assert await store.tree_size() == 1
    assert await store.create_share(share("s2", ["bob"]), entry("share")) == 1


async def test_idempotency_keys(store: Any) -> None:
    def write(key: str) -> IdempotentWrite:
        return IdempotentWrite("alice", key, lambda: "fp", lambda i: {"index": i}, 201, 3600)

    idx = await store.record(entry(), write("k1"))
    stored = await store.idempotent_answer("alice", "k1", T0)
    assert stored is not None and stored.body == {"index": idx} and stored.status == 201
    with pytest.raises(IdempotencyHit):
        await store.record(entry(), write("k1"))
    assert await store.tree_size() == 1
    assert await store.idempotent_answer("alice", "k1", "2027-01-01T00:00:00Z") is None


async def test_checkpoints_proofs_and_tiles(store: Any) -> None:
    """300 entries (past the 256-leaf stored subtrees): checkpoints, proofs, tiles and bundles agree with a tree
    recomputed here from the entries."""
    for i in range(300):
        await store.record(entry(time=f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z"))
    rows = [await store.ledger_entry(i) for i in range(300)]
    leaves = [merkle.leaf_hash(r.entry) for r in rows]
    assert leaves == [r.leaf_hash for r in rows]
    sign = lambda size, root: f"{size}:{root.hex()}".encode()  # noqa: E731
    assert await store.checkpoint(sign, T0) == (300, sign(300, merkle.root(leaves)))
    assert await store.checkpoint(sign, T0) is None  # nothing new
    assert await store.latest_checkpoint() == (300, sign(300, merkle.root(leaves)))
    assert await store.checkpoint_note(300) == sign(300, merkle.root(leaves))
    for index, size in [(0, 1), (5, 300), (299, 300), (256, 257), (100, 256)]:
        proof = await store.inclusion_proof(index, size)
        merkle.verify_inclusion(leaves[index], index, size, proof, merkle.root(leaves[:size]))
    for m, n in [(1, 300), (256, 300), (100, 257), (300, 300)]:
        proof = await store.consistency_proof(m, n)
        merkle.verify_consistency(m, n, proof, merkle.root(leaves[:m]), merkle.root(leaves[:n]))
    assert await store.tile(0, 0, 256) == leaves[:256]
    assert await store.tile(0, 1, 44) == leaves[256:300]
    assert await store.tile(1, 0, 1) == [merkle.root(leaves[:256])]
    assert await store.entry_bundle(1, 44) == [r.entry for r in rows[256:]]
    await store.add_cosignatures(300, {"w2": "— w2 sig", "w1": "— w1 sig"})
    await store.add_cosignatures(300, {"w1": "— w1 sig"})
    assert await store.cosignature_lines(300) == ["— w1 sig", "— w2 sig"]
    assert await store.latest_cosigned_size() == 300


async def test_same_answers_on_both_backends(tmp_path: Path) -> None:
    """The same operations give byte-identical ledgers (so the same roots and checkpoints) on both backends."""
    roots = []
    for backend in BACKENDS:
        async with open_store(backend, tmp_path / backend, mac_key=b"k" * 32) as s:
            await s.add_recipient(person("bob"), entry("recipient_add"))
            await s.create_share(share("s1", ["bob"], max_downloads=1), entry("share", share_id="s1"))
            await s.record_fetch("s1", "bob", T0, event(KIND_FETCH))
            await s.record(entry())
            size = await s.tree_size()
            roots.append([(await s.ledger_entry(i)).entry for i in range(size)])
    assert roots[0] == roots[1] and len(roots[0]) == 5


# -- PostgreSQL: several nodes, one ledger --------------------------------------------------------------


@pytest.fixture
async def pg_dsn() -> AsyncIterator[str]:
    async with fresh_database() as dsn:
        yield dsn


async def test_nodes_append_one_gap_free_ledger(pg_dsn: str) -> None:
    """Three stores (as three nodes) append concurrently: indexes 0..n-1 exactly once, one tree over them."""
    nodes = [await PostgresStore.open(pg_dsn, ledger_mac_key=b"k" * 32) for _ in range(3)]
    try:
        results = await asyncio.gather(
            *(node.record(entry(time=f"2026-01-01T00:00:{n % 60:02d}Z")) for n in range(150) for node in nodes)
        )
        assert sorted(results) == list(range(450))
        leaves = [(await nodes[0].ledger_entry(i)).leaf_hash for i in range(450)]
        sign = lambda size, root: root  # noqa: E731
        signed = await asyncio.gather(*(node.checkpoint(sign, T0) for node in nodes))
        done = [s for s in signed if s is not None]
        assert done == [(450, merkle.root(leaves))]  # one node signed; the others saw the size taken
        for node in nodes:
            assert await node.latest_checkpoint() == (450, merkle.root(leaves))
    finally:
        for node in nodes:
            await node.close()


async def test_checkpoint_compare_and_swap_under_contention(pg_dsn: str) -> None:
    """Nodes appending and signing at once never sign two roots for one size, and every signed root is the
    root of the ledger's prefix of that size."""
    nodes = [await PostgresStore.open(pg_dsn) for _ in range(3)]
    try:

        async def work(node: Any) -> None:
            for _ in range(40):
                await node.record(entry())
                await node.checkpoint(lambda size, root: root, T0)

        await asyncio.gather(*(work(n) for n in nodes))
        conn = await asyncpg.connect(pg_dsn)
        try:
            rows = await conn.fetch("SELECT size, note FROM ledger_checkpoints ORDER BY size")
        finally:
            await conn.close()
        leaves = [(await nodes[0].ledger_entry(i)).leaf_hash for i in range(120)]
        assert len({r[0] for r in rows}) == len(rows) >= 2
        for r in rows:
            assert bytes(r[1]) == merkle.root(leaves[: r[0]])
    finally:
        for node in nodes:
            await node.close()


async def test_ledger_tables_are_append_only(pg_dsn: str) -> None:
    store = await PostgresStore.open(pg_dsn)
    try:
        await store.record(entry())
        await store.checkpoint(lambda size, root: root, T0)
    finally:
        await store.close()
    await _refused_in_postgres(
        pg_dsn,
        (
            "UPDATE ledger SET kind = 'x'",
            "DELETE FROM ledger",
            "TRUNCATE ledger CASCADE",
            "DELETE FROM ledger_checkpoints",
            "UPDATE ledger_subjects SET ref = 'x'",
            "DELETE FROM ledger_fts",
            "UPDATE ledger_words SET word = 'x'",
            "DELETE FROM ledger_words",
            "TRUNCATE ledger_words",
        ),
        "append-only",
    )
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM ledger") == 1
    finally:
        await conn.close()


async def test_application_role_cannot_rewrite_the_ledger(pg_dsn: str) -> None:
    """The documented application role appends and reads but has no UPDATE/DELETE on ledger tables at all."""
    role = "safeshare_app_" + os.urandom(4).hex()
    admin = await asyncpg.connect(pg_dsn)
    try:
        store = await PostgresStore.open(pg_dsn)
        await store.close()
        await admin.execute(f'CREATE ROLE "{role}" LOGIN')
        await admin.execute(pg_schema.app_role_sql(f'"{role}"'))
        app_dsn = pg_dsn.replace("postgres@", f"{role}@", 1)
        app = await PostgresStore.open(app_dsn)
        try:
            assert await app.record(entry()) == 0
            await app.add_recipient(person("bob"), entry())
            assert await app.checkpoint(lambda size, root: root, T0) is not None
            sha = await app.agreements.put_document(b"an agreement")  # documents: SELECT and INSERT only
            assert await app.agreements.document_size(sha) == len(b"an agreement")
        finally:
            await app.close()
        conn = await asyncpg.connect(app_dsn)
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await conn.execute("UPDATE ledger SET kind = 'x'")
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await conn.execute("DELETE FROM ledger_checkpoints")
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await conn.execute("DELETE FROM agreement_document_chunks")
        finally:
            await conn.close()
    finally:
        if await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
            await admin.execute(f'DROP OWNED BY "{role}"')
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()


async def test_envelopes_in_chunks_all_or_nothing(pg_dsn: str) -> None:
    from gateway.store.postgres import envelopes as pg_envelopes

    store = await PostgresStore.open(pg_dsn)
    try:
        await store.add_recipient(person("bob"), entry())
        big = os.urandom(pg_envelopes.CHUNK * 2 + 12345)
        spool = await store.envelopes.spool(["bob"])
        for i in range(0, len(big), 65536):
            spool.write("bob", big[i : i + 65536])
            await spool.flush()
        await spool.seal()
        assert spool.digest("bob") == (hashlib.sha256(big).hexdigest(), len(big))
        # Written but not yet part of a share: invisible.
        assert not await store.envelopes.exists("s1", "bob")
        await store.create_share(share("s1", ["bob"]), entry("share"), spool=spool)
        out = b"".join([c async for c in store.envelopes.read("s1", "bob")])
        assert out == big
        assert await store.envelopes.head("s1", "bob", 10) == big[:10]
        # A share whose transaction fails leaves its chunks unreferenced; discard removes them.
        spool2 = await store.envelopes.spool(["bob"])
        spool2.write("bob", b"x" * 1000)
        await spool2.seal()

        def boom() -> None:
            raise RuntimeError("no")

        with pytest.raises(RuntimeError):
            await store.create_share(share("s2", ["bob"]), entry("share"), spool=spool2, before_commit=boom)
        assert not await store.envelopes.exists("s2", "bob")
        await spool2.discard()
        conn = await asyncpg.connect(pg_dsn)
        try:
            assert await conn.fetchval("SELECT count(*) FROM envelope_chunks WHERE spool = $1", spool2.id) == 0
            await store.envelopes.destroy("s1", ["bob"])
            assert await conn.fetchval("SELECT count(*) FROM envelope_chunks") == 0
        finally:
            await conn.close()
        with pytest.raises(StoreError):
            [c async for c in store.envelopes.read("s1", "bob")]
    finally:
        await store.close()


async def test_newer_schema_is_refused(pg_dsn: str) -> None:
    store = await PostgresStore.open(pg_dsn)
    await store.close()
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(
            "INSERT INTO schema_version (version, description, applied_at) VALUES ($1, 'future', '2099-01-01')",
            pg_schema.SCHEMA_VERSION + 1,
        )
    finally:
        await conn.close()
    with pytest.raises(StoreError, match="newer than this"):
        await PostgresStore.open(pg_dsn)


class Cuttable:
    """A TCP proxy in front of PostgreSQL that a test can cut (every connection closed, new ones refused) and
    restore: the database going away for one node, without stopping the server other tests share."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.pipes: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.pipes |= {writer, up_w}

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            w.close()

        await asyncio.gather(pump(reader, up_w), pump(up_r, writer))

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in list(self.pipes):
            w.close()
        self.pipes.clear()
        await self.server.wait_closed()

    async def restore(self) -> None:
        await self.start()


async def test_database_unavailable_then_back(pg_dsn: str) -> None:
    """Cut the node's connection to PostgreSQL: reads and writes fail promptly with StoreUnavailable (nothing
    hangs, nothing half-done); restore it: the same store carries on by itself."""
    from urllib.parse import urlsplit

    parts = urlsplit(pg_dsn)
    proxy = Cuttable(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    via = pg_dsn.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
    store = await PostgresStore.open(via, min_size=2)
    try:
        assert await store.record(entry()) == 0
        await proxy.cut()
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(pg.StoreUnavailable):
            await store.record(entry())
        with pytest.raises(pg.StoreUnavailable):
            await store.tree_size()
        assert not await store.healthy()
        assert loop.time() - started < 3 * pg.CONNECT_TIMEOUT
        await proxy.restore()
        for _ in range(20):  # the pool replaces its dead connections on use
            with contextlib.suppress(pg.StoreUnavailable):
                if await store.healthy():
                    break
            await asyncio.sleep(0.1)
        assert await store.record(entry()) == 1  # the failed write took no index
        assert await store.tree_size() == 2
    finally:
        await store.close()
        await proxy.cut()


# -- audit queries: the same answers on both backends ---------------------------------------------------

SUBJECTS = ["C-1", "C-2", "C-3", "A-9"]
ORGS = ["Hereford Council", "Leominster Council", "West Mercia Police"]
WORDS = ["neglect", "school", "Séverine", "e-mail", "hospital", "bruising", "domestic_abuse", "referral"]


def audit_entry(i: int) -> dict[str, Any]:
    """A varied, deterministic entry: kinds, decisions, codes, subjects, orgs, text, flags, agreements."""
    kind = ["share", "decision", "fetch", "revoke", "decision", "share"][i % 6]
    e = entry(kind, time=f"2026-{1 + i % 4:02d}-{1 + i % 27:02d}T{i % 24:02d}:00:00Z")
    e["share_id"] = f"s{i // 3}" if kind in ("share", "fetch", "revoke") else None
    e["subjects"] = SUBJECTS[i % 3 : i % 3 + 1 + i % 2]
    e["actor"]["org"] = ORGS[i % 3]
    e["actor"]["sub"] = ["alice", "bob", "carol"][i % 5 % 3]
    e["recipients"] = [{"id": "dave", "org": ORGS[(i + 1) % 3]}] if kind != "decision" else []
    if kind in ("share", "decision"):
        e["decision"] = "share" if i % 4 else "not_share"
        e["purpose"] = {
            "code": ["safeguarding", "emergency", "prevention"][i % 3],
            "description": " ".join(WORDS[j % len(WORDS)] for j in range(i % 5, i % 5 + 3)),
        }
        e["justification"] = {"rules": {"1_lawful_basis": {"article_6": ["6(1)(c)", "6(1)(e)"][i % 2]}}}
        if i % 7 == 0:
            e["justification"]["rules"]["1_lawful_basis"]["article_9"] = "9(2)(g)"
    else:
        e["purpose"] = {}
    if kind == "decision" and i % 8 == 0:
        e["flags"] = ["not_share_despite_risk"]
    if kind == "decision" and e["decision"] == "share":
        e["disclosure"] = {"channel": ["phone", "meeting"][i % 2]}
    if kind == "share" and i % 5 == 0:
        e["agreements"] = [{"id": "isa-1", "version": 1 + i % 2}]
        if i % 10 == 0:
            e["agreement_override"] = {"reason": "urgent"}
    return e


async def _answers(store: Any, filters: list[Any]) -> list[Any]:
    out: list[Any] = []
    for f in filters:
        page = await store.query_page(f, before=None, limit=25)
        older = await store.query_page(f, before=page[-1].index if page else 0, limit=1000)
        exported = [r.index async for p in await store.export_pages(f, upto=10**6, page_size=7) for r in p]
        out.append(([r.index for r in page], [r.index for r in older], exported))
    out.append(await store.subject_events("C-2", 10))
    out.append(await store.subject_events("C-2", 1000, scope="West Mercia Police"))
    out.append(await store.stats(None, None))
    out.append(await store.stats("2026-02-01T00:00:00Z", "2026-04-01T00:00:00Z", scope=ORGS[0]))
    kw = {"org": None, "time_from": None, "time_to": None, "before": None, "limit": 50}
    out.append(await store.flagged_decisions("not_share_despite_risk", **kw))
    out.append(await store.own_decisions("alice", before=None, limit=50))
    # Issue 13: each decider's latest decision (the console's search form names them), everyone's or one org's.
    everyone = await store.latest_decisions_by_decider(None, limit=1000)
    deciders = [(e["actor"]["sub"], e["actor"]["org"]) for e in (json.loads(r.entry) for r in everyone)]
    assert len(deciders) == len(set(deciders)) == 9  # 3 practitioners x 3 organisations, one row each
    assert [r.index for r in everyone] == sorted((r.index for r in everyone), reverse=True)
    out.append(everyone)
    out.append(await store.latest_decisions_by_decider(ORGS[0], limit=1000))
    out.append(await store.latest_decisions_by_decider(ORGS[0], limit=1))
    # From an index on (what the console's DeciderIndex reads after its first pass): only the deciders whose
    # latest decision is at or after it, the same rows as the whole ledger's for them.
    middle = sorted(r.index for r in everyone)[4]
    since = await store.latest_decisions_by_decider(None, limit=1000, after=middle)
    assert [r.index for r in since] == [r.index for r in everyone if r.index >= middle]
    out.append(since)
    out.append(await store.ledger_end())
    return out


async def test_audit_queries_same_answers(tmp_path: Path) -> None:
    from gateway.store.audit import AuditFilter, fts_query

    filters = [
        AuditFilter(),
        AuditFilter(subject="C-2"),
        AuditFilter(subject="C-1", org="West Mercia Police"),
        AuditFilter(recipient="dave", kind="fetch"),
        AuditFilter(practitioner="bob", decision="not_share"),
        AuditFilter(purpose="emergency", article_6="6(1)(e)"),
        AuditFilter(article_9="9(2)(g)"),
        AuditFilter(agreement="isa-1"),
        AuditFilter(text=fts_query("neglect")),
        AuditFilter(text=fts_query("severine school")),
        AuditFilter(text=fts_query("hosp*")),
        AuditFilter(text=fts_query("mail")),
        AuditFilter(text=fts_query("abuse domestic")),
        AuditFilter(text=fts_query("nothing-like-it")),
        AuditFilter(time_from="2026-02-10T00:00:00Z", time_to="2026-03-05T00:00:00Z", kind="share"),
        AuditFilter(scope="Leominster Council", subject="C-3"),
    ]
    answers = []
    for backend in BACKENDS:
        async with open_store(backend, tmp_path / backend) as s:
            for i in range(240):
                await s.record(audit_entry(i))
            answers.append(await _answers(s, filters))
            assert await s.query_page(AuditFilter(text='""'), before=None, limit=10) == []
    sqlite_answers, pg_answers = answers
    for i, (a, b) in enumerate(zip(sqlite_answers, pg_answers, strict=True)):
        assert a == b, f"answer {i} differs"
    assert any(ans[0] for ans in sqlite_answers[: len(filters)])  # the filters do match something


async def test_time_band_same_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL narrows a time range to a band of ledger indexes (`_time_band`) only past ESTIMATE_CAP
    entries; with the cap lowered it runs on every time filter here, over times in no order at all (the
    entries' months cycle with the index), and every page, cursor page and export must still be SQLite's."""
    from gateway.store.audit import AuditFilter
    from gateway.store.postgres import queries as pg_queries

    monkeypatch.setattr(pg_queries, "ESTIMATE_CAP", 3)
    filters = [
        AuditFilter(time_from="2026-02-10T00:00:00Z", time_to="2026-03-05T00:00:00Z"),
        AuditFilter(time_from="2026-03-01T00:00:00Z"),
        AuditFilter(time_to="2026-01-20T00:00:00Z"),
        AuditFilter(time_from="2026-04-27T00:00:00Z"),
        AuditFilter(time_from="2026-01-03T05:00:00Z", time_to="2026-01-03T06:00:00Z"),
        AuditFilter(time_from="2027-01-01T00:00:00Z"),
        AuditFilter(time_from="2026-02-01T00:00:00Z", time_to="2026-03-01T00:00:00Z", kind="fetch"),
        AuditFilter(time_from="2026-02-01T00:00:00Z", time_to="2026-04-01T00:00:00Z", org=ORGS[1]),
    ]
    answers = []
    for backend in BACKENDS:
        async with open_store(backend, tmp_path / backend) as s:
            for i in range(240):
                await s.record(audit_entry(i))
            answers.append(await _answers(s, filters))
    for i, (a, b) in enumerate(zip(*answers, strict=True)):
        assert a == b, f"answer {i} differs"
    assert all(ans[2] for ans in answers[0][:4])  # the ranges do match entries


@pytest.mark.parametrize("rare_text", [-1, 10**9])
async def test_text_plans_same_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rare_text: int) -> None:
    """PostgreSQL picks a page's plan for a full-text search (and for a side table with ledger columns, forced
    to be driven from the side table or not with the prefix plans): a whole word drives the page from `ledger_words`
    (other words and prefixes probed at each match), and a search of prefixes only goes by the estimated matches
    (`_rare_text`): GIN matches first for a rare prefix, a walk of `ledger_fts` with a lookup per match for a
    common one. Here every word is rare (240 entries), so each prefix plan is forced in turn on the same searches,
    alone and with other conditions, newest first, by cursor and exported: every answer must still be SQLite's."""
    from gateway.store.audit import AuditFilter, fts_query
    from gateway.store.postgres import queries as pg_queries

    monkeypatch.setattr(pg_queries, "RARE_TEXT", rare_text)
    monkeypatch.setattr(pg_queries, "_RARITY", {})
    # And a side table with ledger columns: driven from the side table every time, or never (`_broad_columns`).
    monkeypatch.setattr(pg_queries, "BROAD_COLUMNS", 0.0 if rare_text < 0 else 2.0)
    monkeypatch.setattr(pg_queries, "_BREADTH", {})
    filters = [
        AuditFilter(text=fts_query("neglect")),
        AuditFilter(text=fts_query("severine school")),
        AuditFilter(text=fts_query("hosp*")),
        AuditFilter(text=fts_query("abuse domestic"), kind="share"),
        AuditFilter(text=fts_query("neglect"), decision="share", purpose="safeguarding"),
        AuditFilter(text=fts_query("nothing-like-it")),
        AuditFilter(text=fts_query("mail"), time_from="2026-02-10T00:00:00Z", time_to="2026-03-05T00:00:00Z"),
        AuditFilter(text=fts_query("neglect"), org=ORGS[1]),
        AuditFilter(text=fts_query("severine hosp*")),
        AuditFilter(text=fts_query("neglect school severine"), kind="share"),
        AuditFilter(text=fts_query("e-mail"), purpose="emergency"),
        AuditFilter(text=fts_query("neglect"), time_from="2026-02-01T00:00:00Z", time_to="2026-03-01T00:00:00Z"),
        AuditFilter(org=ORGS[1], decision="share", time_from="2026-01-10T00:00:00Z", time_to="2026-04-01T00:00:00Z"),
        AuditFilter(subject="C-2", kind="share", purpose="safeguarding"),
        AuditFilter(text=fts_query("neglect"), org=ORGS[0], decision="share", scope=ORGS[0]),
        AuditFilter(recipient="dave", kind="fetch", practitioner="bob"),
    ]
    answers = []
    for backend in BACKENDS:
        async with open_store(backend, tmp_path / backend) as s:
            for i in range(240):
                await s.record(audit_entry(i))
            answers.append(await _answers(s, filters))
    for i, (a, b) in enumerate(zip(*answers, strict=True)):
        assert a == b, f"answer {i} differs"
    assert all(ans[0] for ans in answers[0][:3])  # the searches do match entries


async def test_pg_prefix_search_counts_its_words_to_choose_a_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """A search of prefixes alone is planned from how many entries hold a word with each prefix, counted in
    `ledger_words` (`_rare_text`), not from the planner's estimate, which is the same 1% of the table for every
    prefix: the common prefix is walked, the rare one (and one that matches nothing) goes to the GIN index, and
    several prefixes are as rare as their rarest."""
    from gateway.store.audit import AuditFilter, fts_query
    from gateway.store.postgres import queries as pg_queries

    monkeypatch.setattr(pg_queries, "_RARITY", {})
    async with fresh_database() as dsn:
        store = await open_url(dsn)
        try:
            for i in range(240):
                await store.record(audit_entry(i))
        finally:
            await store.close()
        conn = await asyncpg.connect(dsn)
        try:
            count = "SELECT count(*) FROM ledger_words WHERE starts_with(word, $1)"
            common, rare = await conn.fetchval(count, "sever"), await conn.fetchval(count, "negl")
            assert rare < common, (rare, common)
            monkeypatch.setattr(pg_queries, "RARE_TEXT", (rare + common) // 2)

            async def is_rare(q: str) -> bool:
                return await pg_queries._rare_text(conn, AuditFilter(text=fts_query(q)))

            assert not await is_rare("seve*")
            assert await is_rare("negl*")
            assert await is_rare("refer*") and await is_rare("zzz*")
            assert await is_rare("seve* negl*") and not await is_rare("seve* hosp*")
            assert not await is_rare("neglect")  # a whole word: `ledger_words` drives the page, nothing to ask
        finally:
            await conn.close()


def _big(e: dict[str, Any], lines: int = 120) -> dict[str, Any]:
    """An entry well over PostgreSQL's default TOAST threshold (2 kB; about 6 kB with 120 lines): before step 8 its
    `entry` bytes were stored compressed. With 300 lines (about 15 kB) it is over a page, and still compressed."""
    return {**e, "note": " ".join(f"line {n} of a long and repetitive justification" for n in range(lines))}


@pytest.mark.parametrize("how", ["safeshare migrate", "start-up"])
async def test_pg_steps_6_to_8_migrate_an_existing_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A database written at step 5 (the code as it was: no `ledger_words`, entries pglz) is brought to the last
    step by `safeshare migrate` or by a start-up: its existing entries' words are all in `ledger_words` (so every
    full-text answer is still SQLite's, old entries included), old entries keep their pglz bytes (not
    rewritten: step 6's docstring says why); a new entry under a page is kept whole in its row (step 8: neither
    compressed nor moved out to the TOAST table) and one over a page is lz4 where the server has it."""
    import gateway.store as stores
    from gateway.store.audit import AuditFilter, fts_query
    from gateway.store.postgres import repository

    entries = [audit_entry(i) for i in range(120)] + [_big(entry())]
    later = [
        _big(entry(time="2026-05-01T00:00:00Z")),
        _big(entry(time="2026-05-01T00:00:01Z"), lines=300),
        *(audit_entry(i) for i in range(120, 150)),
    ]
    filters = [
        AuditFilter(text=fts_query("neglect")),
        AuditFilter(text=fts_query("severine school")),
        AuditFilter(text=fts_query("severine hosp*")),
        AuditFilter(text=fts_query("bruising"), kind="share", org=ORGS[1]),
        AuditFilter(text=fts_query("concern")),
    ]
    async with fresh_database() as dsn:
        with monkeypatch.context() as m:
            m.setattr(repository, "STEPS", pg_schema.STEPS[:5])
            m.setattr(repository, "SCHEMA_VERSION", 5)
            append_as_before_ledger_words(m)  # ... and its append, which wrote no `ledger_words` rows
            old = await open_url(dsn)
            try:
                for e in entries:
                    await old.record(e)
            finally:
                await old.close()
        conn = await asyncpg.connect(dsn)
        role = "safeshare_app_" + os.urandom(4).hex()
        try:
            # The application role as the owner granted it then (no ledger_words yet): it must still append after.
            await conn.execute(f'CREATE ROLE "{role}" LOGIN')
            tables = ", ".join(pg_schema._V1_APPEND_ONLY_TABLES)
            await conn.execute(pg_schema.APP_ROLE_SQL.format(role=f'"{role}"', schema="public", ledger_tables=tables))
            assert await conn.fetchval("SELECT to_regclass('ledger_words')") is None
            if how == "safeshare migrate":
                assert await asyncio.to_thread(stores.migrate, dsn) == (5, pg_schema.SCHEMA_VERSION)
            pg_store = await open_url(dsn)
            try:
                for e in later:
                    await pg_store.record(e)
                pg_answers = await _answers(pg_store, filters)
            finally:
                await pg_store.close()
            versions = [r[0] for r in await conn.fetch("SELECT version FROM schema_version ORDER BY version")]
            assert versions == list(range(1, pg_schema.SCHEMA_VERSION + 1))
            words = await conn.fetch("SELECT word, idx FROM ledger_words ORDER BY idx, word")
            assert [tuple(r) for r in words] == [
                tuple(r)
                for r in await conn.fetch(
                    "SELECT w, idx FROM ledger_fts, unnest(tsvector_to_array(description)) w ORDER BY idx, w"
                )
            ]
            assert {r[1] for r in words} >= set(range(120)) - {i for i in range(120) if i % 6 in (2, 3)}
            compression = "SELECT pg_column_compression(entry) FROM ledger WHERE idx = $1"
            assert await conn.fetchval(compression, len(entries) - 1) == "pglz"  # as it was written
            assert await conn.fetchval(compression, len(entries)) is None  # kept whole, as written
            whole = "SELECT pg_column_size(entry) = octet_length(entry) + 4 FROM ledger WHERE idx = $1"
            assert await conn.fetchval(whole, len(entries)) is True  # in the row itself (a TOAST pointer is 18 bytes)
            lz4 = await pg_schema.lz4_available(conn)
            assert await conn.fetchval(compression, len(entries) + 1) == ("lz4" if lz4 else "pglz")
            app = await open_url(dsn.replace("postgres@", f"{role}@", 1))
            try:
                assert await app.record(entry()) == len(entries) + len(later)
            finally:
                await app.close()
            assert await conn.fetchval("SELECT count(*) FROM ledger_words WHERE idx = $1", len(entries) + len(later))
        finally:
            await conn.execute(f'DROP OWNED BY "{role}"')
            await conn.execute(f'DROP ROLE "{role}"')
            await conn.close()
    async with open_store("sqlite", tmp_path) as lite:
        for e in entries + later:
            await lite.record(e)
        lite_answers = await _answers(lite, filters)
    for i, (a, b) in enumerate(zip(lite_answers, pg_answers, strict=True)):
        assert a == b, f"answer {i} differs"
    assert all(ans[0] for ans in lite_answers[: len(filters)]), [ans[0] for ans in lite_answers[: len(filters)]]


async def test_held_shares_and_claim_codes(store: Any) -> None:
    from gateway.store.models import HeldRow

    await store.add_recipient(person("bob"), entry())
    held = [
        HeldRow("s1", "new@example.org", "held", "held-1", "cd" * 32, 50, "held", "new@example.org"),
        HeldRow("s1", "pass@example.org", "passphrase", "pass-1", "ef" * 32, 60, "active", "pass@example.org"),
    ]
    await store.create_share(share("s1", ["bob"], max_downloads=2), entry("share"), held=held)
    rows = await store.held.rows(["s1"])
    assert [r.address for r in rows["s1"]] == ["new@example.org", "pass@example.org"]
    ev = event("claim_code_sent")
    assert await store.held.issue_code("s1", "nobody@example.org", b"m" * 32, T0, FAR, ev) == "none"
    assert await store.held.issue_code("s1", "new@example.org", b"m" * 32, T0, FAR, ev) == "sent"

    def entries(outcome: str, s: Share, left: int) -> dict[str, Any]:
        return {**event("claim_code_" + outcome if outcome != "locked" else "claim_locked")(s), "left": left}

    wrong = await store.held.check_code("s1", "new@example.org", T0, lambda m: False, 5, 10, entries)
    assert wrong.outcome == "invalid" and wrong.attempts_left == 4
    right = await store.held.check_code("s1", "new@example.org", T0, lambda m: m == b"m" * 32, 5, 10, entries)
    assert right.outcome == "accepted"
    claimed = await store.held.claimed_for("new@example.org")
    assert [r.state for r in claimed] == ["claimed"]
    await store.add_recipient(person("new@example.org"), entry())
    placed: list[bool] = []
    idx = await store.held.complete_rewrap(
        claimed[0], "Hereford", "01" * 32, 70, event(KIND_FETCH), lambda: placed.append(True)
    )
    assert idx is not None and placed == [True]
    assert [s.id for s in await store.inbox("new@example.org", None, 10)] == ["s1"]
    got = await store.held.passphrase_row("s1")
    assert got is not None and got[1].mode == "passphrase"
    first = await store.held.passphrase_fetch("s1", T0, event(KIND_FETCH))
    second = await store.held.passphrase_fetch("s1", T0, event(KIND_FETCH))
    third = await store.held.passphrase_fetch("s1", T0, event(KIND_FETCH))
    assert (first[0], second[0], third[0]) == ("ok", "exhausted_now", "gone")
    assert await store.held.expire_held("2100-01-01T00:00:00Z", lambda s, rows: event(KIND_EXPIRE)(s)) == []
    assert await store.tree_size() == 9


async def test_agreement_versions(store: Any) -> None:
    from gateway.store.agreements import AgreementExists

    fields = {
        "id": "isa-1",
        "title": "Children's data exchange",
        "kind": "data_exchange",
        "scope": "children",
        "signatories": ["Hereford"],
        "purposes": ["safeguarding"],
        "categories": ["health"],
        "review_date": "2027-01-01",
    }
    doc = {"sha256": "aa" * 32, "size": 10, "name": "isa.pdf", "content_type": "application/pdf"}
    assert await store.agreements.add_version(fields, doc, lambda v: entry("agreement_add")) == (1, 0)
    assert await store.agreements.add_version(fields, doc, lambda v: entry("agreement_add")) == (2, 1)
    current = await store.agreements.current()
    assert current["isa-1"].version == 2 and current["isa-1"].status == "active"
    assert [a.status for a in await store.agreements.versions("isa-1")] == ["superseded", "active"]
    assert (await store.agreements.version("isa-1", 1)).title == fields["title"]
    assert (await store.agreements.by_document("aa" * 32)).version == 2
    assert await store.agreements.any_in_force()
    retired = await store.agreements.retire("isa-1", "ended", lambda a: entry("agreement_retire"))
    assert retired is not None and retired[1] == 2
    with pytest.raises(AgreementExists):
        await store.agreements.retire("isa-1", "ended", lambda a: entry("agreement_retire"))
    assert not await store.agreements.any_in_force()
    assert await store.agreements.retire("nope", "x", lambda a: entry()) is None


async def test_agreement_documents(store: Any) -> None:
    """Documents by SHA-256, in chunks: stored once, read back exactly a chunk at a time, unknown digests empty."""
    from gateway.store.agreements import DOCUMENT_CHUNK

    records = store.agreements
    small = b"%PDF-1.4\n% one chunk\n%%EOF\n"
    large = os.urandom(2 * DOCUMENT_CHUNK + 17)  # three chunks, the last of 17 bytes
    exact = b"x" * DOCUMENT_CHUNK  # exactly one full chunk
    for data in (small, large, exact):
        sha = await records.put_document(data)
        assert sha == hashlib.sha256(data).hexdigest()
        assert await records.put_document(data) == sha  # the same bytes again: nothing changes
        assert await records.document_size(sha) == len(data)
        pieces = [p async for p in records.document_chunks(sha)]
        assert b"".join(pieces) == data and all(len(p) <= DOCUMENT_CHUNK for p in pieces)
    assert [len(p) async for p in records.document_chunks(hashlib.sha256(large).hexdigest())] == [
        DOCUMENT_CHUNK,
        DOCUMENT_CHUNK,
        17,
    ]
    for unknown in ("0" * 64, "A" * 64, "../x", ""):
        assert await records.document_size(unknown) is None
        assert [p async for p in records.document_chunks(unknown)] == []
    assert await store.tree_size() == 0  # storing a document is not a ledger event (its agreement version is)


async def test_agreement_documents_are_immutable_in_the_database(pg_dsn: str, tmp_path: Path) -> None:
    """Once stored, a document cannot be changed or removed, on either backend (a ledger entry names its digest)."""
    import sqlite3

    sqlite_store = await open_url(f"sqlite://{tmp_path / 'gateway.db'}")
    await sqlite_store.agreements.put_document(b"v1")
    await sqlite_store.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "gateway.db")) as db:
        for sql in (
            "UPDATE agreement_document_chunks SET data = x'00'",
            "DELETE FROM agreement_document_chunks",
            "UPDATE agreement_documents SET size = 1",
            "DELETE FROM agreement_documents",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="immutable"):
                db.execute(sql)
    store = await PostgresStore.open(pg_dsn)
    await store.agreements.put_document(b"v1")
    await store.close()
    await _refused_in_postgres(
        pg_dsn,
        (
            "UPDATE agreement_document_chunks SET data = '\\x00'",
            "DELETE FROM agreement_document_chunks",
            "TRUNCATE agreement_document_chunks",
            "UPDATE agreement_documents SET size = 1",
            "DELETE FROM agreement_documents",
        ),
        "immutable",
    )


async def test_factory_migrate_and_ledger_snapshot(pg_dsn: str) -> None:
    """`open_store`, `migrate` and `ledger_snapshot` (what `serve`, `safeshare migrate` and `ledger verify` use)
    on a postgresql:// URL."""
    import gateway.store as stores

    assert await asyncio.to_thread(stores.migrate, pg_dsn, ledger_mac_key=b"k" * 32) == (0, pg_schema.SCHEMA_VERSION)
    assert await asyncio.to_thread(stores.migrate, pg_dsn) == (pg_schema.SCHEMA_VERSION,) * 2
    s = await stores.open_store(pg_dsn, ledger_mac_key=b"k" * 32)
    try:
        for _ in range(3):
            await s.record(entry())
        await s.checkpoint(lambda size, root: root, T0)
    finally:
        await s.close()

    def read() -> tuple[Any, ...]:
        with stores.ledger_snapshot(pg_dsn) as snap:
            return snap.total, snap.tree.size, snap.mac_start is not None, len(snap.checkpoints), list(snap.rows())

    total, size, has_start, checkpoints, rows = await asyncio.to_thread(read)
    assert (total, size, has_start, checkpoints) == (3, 3, True, 1)
    assert [r[0] for r in rows] == [0, 1, 2] and all(r[3] is not None for r in rows)


async def test_envelopes_when_the_database_goes_away(pg_dsn: str) -> None:
    """Writing or reading an envelope while PostgreSQL cannot be reached is `StoreUnavailable` (the API's 503
    with Retry-After), not an asyncpg or socket error (a 500), and works again once it is back."""
    from urllib.parse import urlsplit

    from gateway.store.postgres import envelopes as pg_envelopes

    parts = urlsplit(pg_dsn)
    proxy = Cuttable(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    via = pg_dsn.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
    store = await PostgresStore.open(via, min_size=2)
    try:
        await store.add_recipient(person("bob"), entry())
        spool = await store.envelopes.spool(["bob"])
        spool.write("bob", os.urandom(pg_envelopes.CHUNK + 1))
        await spool.seal()
        await store.create_share(share("s1", ["bob"]), entry("share"), spool=spool)
        await proxy.cut()
        with pytest.raises(pg.StoreUnavailable):
            await store.envelopes.spool(["bob"])
        with pytest.raises(pg.StoreUnavailable):
            await store.envelopes.open("s1", "bob")
        with pytest.raises(pg.StoreUnavailable):
            await store.envelopes.destroy("s1", ["bob"])
        await proxy.restore()
        for _ in range(20):  # the pool replaces its dead connections on use
            with contextlib.suppress(pg.StoreUnavailable):
                if await store.healthy():
                    break
            await asyncio.sleep(0.1)
        opened = await store.envelopes.open("s1", "bob")
        assert opened is not None and opened.size == pg_envelopes.CHUNK + 1
        assert sum([len(c) async for c in opened.chunks()]) == opened.size
    finally:
        await store.close()
        await proxy.cut()


async def _refused_in_postgres(dsn: str, statements: Sequence[str], match: str) -> None:
    """Each statement, run by the database's owner, is refused by the tables' own triggers (not by privileges)."""
    conn = await asyncpg.connect(dsn)
    try:
        for sql in statements:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match=match):
                await conn.execute(sql)
    finally:
        await conn.close()
