"""The gateway's HTTP API against a real app, a real SQLite file and real age envelopes."""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import io
import json
import logging
import os
import sqlite3
import subprocess
import time
from datetime import timedelta
from typing import Any

import aiohttp
import pyrage
import pytest

from gateway.service import SHARE_ID_RE, SHARED_SWEEP_GRACE_SECONDS, SIZING_SHARE_ID, new_share_id
from gateway.store.sqlite.envelopes import INLINE_LIMIT
from tests import pg
from tests.conftest import Api

PAYLOAD = "Disclosure notes: bruising on the left arm; child said 'dad hit me'. ✓".encode()


async def _setup(api: Api, alice: Any, bob: Any | None = None) -> None:
    await api.add_recipient("alice", alice)
    if bob is not None:
        await api.add_recipient("bob", bob, org="Hereford Police PPU")


def _envelope_files(api: Api) -> list[str]:
    """Every envelope stored, as `share/name.age`, and every spool not (yet) part of a share, as `.tmp/…`:
    files in the envelopes directory, or rows in PostgreSQL when the envelopes live there."""
    settings = api.gateway.settings
    if settings.envelopes_in_database:
        assert settings.database is not None
        rows = pg.query_sync(
            settings.database,
            "SELECT share_id || '/' || name || '.age' FROM envelopes UNION ALL"
            " SELECT '.tmp/' || s.spool::text FROM envelope_spools s"
            " WHERE NOT EXISTS (SELECT 1 FROM envelopes e WHERE e.spool = s.spool) UNION ALL"
            " SELECT DISTINCT '.tmp/chunks-' || c.spool::text FROM envelope_chunks c"
            " WHERE NOT EXISTS (SELECT 1 FROM envelopes e WHERE e.spool = c.spool)",
        )
        return sorted(str(r[0]) for r in rows)
    root = settings.envelopes_dir
    files = [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]
    if not settings.database_url.startswith("sqlite"):
        return sorted(files)  # PostgreSQL with a shared directory: files only
    # SQLite keeps a small share's envelopes as rows of its own file (gateway/store/sqlite/envelopes.py).
    conn = sqlite3.connect(settings.db_path)
    try:
        rows = conn.execute("SELECT share_id || '/' || name || '.age' FROM envelope_blobs").fetchall()
    finally:
        conn.close()
    return sorted(files + [str(r[0]) for r in rows])


def _db_counts(api: Api) -> tuple[int, int, int]:
    tables = ("shares", "share_recipients", "ledger")
    database = api.gateway.settings.database
    if database is not None and database.startswith("postgresql://"):
        return tuple(pg.query_sync(database, f"SELECT count(*) FROM {t}")[0][0] for t in tables)  # type: ignore[return-value]
    conn = sqlite3.connect(api.gateway.settings.db_path)
    try:
        return tuple(
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("shares", "share_recipients", "ledger")
        )  # type: ignore[return-value]
    finally:
        conn.close()


# -- health, auth -----------------------------------------------------------------------------------


def test_an_entry_is_sized_with_an_id_as_long_as_every_share_id() -> None:
    """A share's entry is measured against the ledger's size limit before the share has an ID: with a stand-in
    that must be exactly as long as every real one, or an entry at the limit would pass and then be refused."""
    ids = {new_share_id() for _ in range(200)}
    assert len(ids) == 200 and all(SHARE_ID_RE.match(i) for i in ids)
    assert SHARE_ID_RE.match(SIZING_SHARE_ID) and {len(i) for i in ids} == {len(SIZING_SHARE_ID)}


async def test_healthz_is_public_and_api_needs_a_token(api: Api) -> None:
    r = await api.client.get("/healthz")
    assert r.status == 200 and (await r.json())["status"] == "ok"
    r = await api.client.get("/api/v1/inbox")
    assert r.status == 401
    body = await r.json()
    assert body["error"] == "token_missing"
    assert "Bearer" in r.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    "make_token, code",
    [
        (lambda i: i.issue("pat", ["practitioner"], ttl=1, now=1_000_000), "token_expired"),
        (lambda i: "not.a.jwt", "token_malformed"),
        (
            lambda i: ".".join(
                [
                    base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("="),
                    base64.urlsafe_b64encode(b'{"sub":"pat","roles":["practitioner"]}').decode().rstrip("="),
                    "",
                ]
            ),
            "token_algorithm_not_allowed",
        ),
    ],
)
async def test_bad_tokens_are_refused_with_codes(api: Api, issuer: Any, make_token: Any, code: str) -> None:
    r = await api.client.get("/api/v1/policy", headers={"Authorization": f"Bearer {make_token(issuer)}"})
    assert r.status == 401
    assert (await r.json())["error"] == code


async def test_roles_are_enforced(api: Api, alice: Any) -> None:
    await _setup(api, alice)
    r = await api.client.get("/api/v1/ledger", headers=api.auth("pat", "practitioner"))
    assert r.status == 403 and (await r.json())["error"] == "forbidden"
    r = await api.client.get("/api/v1/inbox", headers=api.auth("audrey", "auditor"))
    assert r.status == 403
    r = await api.client.post("/api/v1/recipients", headers=api.auth("pat", "practitioner"), json={})
    assert r.status == 403
    r = await api.client.post("/api/v1/decisions", headers=api.auth("alice", "recipient"), json={})
    assert r.status == 403


# -- policy and validation -----------------------------------------------------------------------


async def test_policy_is_served_as_data(api: Api) -> None:
    r = await api.client.get("/api/v1/policy", headers=api.auth("pat", "practitioner"))
    assert r.status == 200
    doc = await r.json()
    assert doc["x-policy"]["id"] == "hmg-2018"
    digest = r.headers["X-SafeShare-Policy-Digest"]
    r2 = await api.client.get("/api/v1/policies/hmg-2018", headers=api.auth("pat", "practitioner"))
    assert await r2.json() == doc and r2.headers["X-SafeShare-Policy-Digest"] == digest
    r3 = await api.client.get("/api/v1/policies/no-such-policy", headers=api.auth("pat", "practitioner"))
    assert r3.status == 404 and (await r3.json())["error"] == "not_found"
    r4 = await api.client.get("/api/v1/policies", headers=api.auth("pat", "practitioner"))
    assert "hmg-2018" in [p["id"] for p in (await r4.json())["policies"]]


async def test_validate_reports_every_problem_and_records_nothing(
    api: Api, share_justification: dict[str, Any]
) -> None:
    h = api.auth("pat", "practitioner")
    r = await api.client.post("/api/v1/justifications/validate", json=share_justification, headers=h)
    assert r.status == 200
    assert (await r.json()) | {"policy": None} == {"valid": True, "problems": [], "policy": None, "safety_nets": []}
    draft = copy.deepcopy(share_justification)
    del draft["rules"]["6_necessary_proportionate"]["necessity"]
    draft["rules"]["5_safety_wellbeing"]["assessment"] = "   "
    r = await api.client.post("/api/v1/justifications/validate", json=draft, headers=h)
    body = await r.json()
    assert body["valid"] is False
    fields = {p["field"] for p in body["problems"]}
    assert "rules.6_necessary_proportionate.necessity" in fields
    assert "rules.5_safety_wellbeing.assessment" in fields
    assert {p["rule"] for p in body["problems"]} >= {5, 6}
    assert _db_counts(api)[2] == 0


# -- sharing and fetching ------------------------------------------------------------------------


async def test_share_fetch_and_record(api: Api, alice: Any, bob: Any, share_justification: dict[str, Any]) -> None:
    await _setup(api, alice, bob)
    r = await api.share(PAYLOAD, ["alice", "bob"], share_justification, max_downloads=3)
    assert r.status == 201, await r.text()
    share = await r.json()
    assert set(share) >= {"share_id", "ledger_index", "recipients", "expires_at"}
    assert share["notice_url"].endswith(f"/s/{share['share_id']}")
    assert [x["id"] for x in share["recipients"]] == ["alice", "bob"]

    # Each recipient sees it in their inbox, and only theirs.
    r = await api.client.get("/api/v1/inbox", headers=api.auth("alice", "recipient"))
    inbox = (await r.json())["shares"]
    assert [s["id"] for s in inbox] == [share["share_id"]]
    assert inbox[0]["purpose"]["code"] == "referral" and inbox[0]["from"]["sub"] == "pat"
    assert inbox[0]["size"] == len(PAYLOAD) and inbox[0]["state"] == "active"
    r = await api.client.get("/api/v1/inbox", headers=api.auth("carol", "recipient"))
    assert (await r.json())["shares"] == []

    # Each envelope decrypts with an independent age implementation, only with its own key.
    blobs = {}
    for rid, ident in (("alice", alice), ("bob", bob)):
        r = await api.client.get(f"/api/v1/shares/{share['share_id']}/envelope", headers=api.auth(rid, "recipient"))
        assert r.status == 200
        blobs[rid] = await r.read()
        assert pyrage.decrypt(blobs[rid], [ident]) == PAYLOAD
        sha = next(x["envelope_sha256"] for x in share["recipients"] if x["id"] == rid)
        assert hashlib.sha256(blobs[rid]).hexdigest() == sha == r.headers["X-SafeShare-Envelope-SHA256"]
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(blobs["alice"], [bob])

    # Someone else's envelope: 404, no existence leak.
    r = await api.client.get(f"/api/v1/shares/{share['share_id']}/envelope", headers=api.auth("carol", "recipient"))
    assert r.status == 404 and (await r.json())["error"] == "not_found"

    entries = await api.ledger()
    kinds = [e["kind"] for e in entries]
    assert kinds[:3] == ["fetch", "fetch", "share"]
    share_entry = entries[2]["entry"]
    assert share_entry["share_id"] == share["share_id"]
    assert share_entry["actor"]["sub"] == "pat" and share_entry["actor"]["role"] == "practitioner"
    assert share_entry["subjects"] == ["CASE-2026-0412"]
    assert share_entry["justification"] == share_justification
    assert share_entry["policy"]["id"] == "hmg-2018" and share_entry["policy"]["digest"].startswith("sha256:")
    assert share_entry["payload"]["size"] == len(PAYLOAD)
    assert len(share_entry["payload"]["hmac_sha256"]) == 64
    assert share_entry["payload"]["hmac_sha256"] != hashlib.sha256(PAYLOAD).hexdigest()
    assert {x["id"]: x["envelope_sha256"] for x in share_entry["recipients"]} == {
        rid: hashlib.sha256(b).hexdigest() for rid, b in blobs.items()
    }
    assert entries[0]["entry"]["share_index"] == share["ledger_index"]

    # No plaintext anywhere in the database (on PostgreSQL: a dump of it, bytea columns in hex).
    database = api.gateway.settings.database
    if database is not None and database.startswith("postgresql://"):
        dump = (
            await asyncio.to_thread(
                subprocess.run, ["pg_dump", "--data-only", database], check=True, capture_output=True
            )
        ).stdout
        assert b"bruising on the left arm" not in dump and b"bruising on the left arm".hex().encode() not in dump
        return
    raw = api.gateway.settings.db_path.read_bytes() + (
        api.gateway.settings.db_path.with_name("safeshare.sqlite3-wal").read_bytes()
        if api.gateway.settings.db_path.with_name("safeshare.sqlite3-wal").exists()
        else b""
    )
    assert b"bruising on the left arm" not in raw


async def test_sender_sees_own_shares_only(api: Api, alice: Any, share_justification: dict[str, Any]) -> None:
    await _setup(api, alice)
    share = await (await api.share(PAYLOAD, ["alice"], share_justification)).json()
    r = await api.client.get("/api/v1/shares", headers=api.auth("pat", "practitioner"))
    assert [s["id"] for s in (await r.json())["shares"]] == [share["share_id"]]
    r = await api.client.get("/api/v1/shares", headers=api.auth("sam", "practitioner"))
    assert (await r.json())["shares"] == []
    r = await api.client.get(f"/api/v1/shares/{share['share_id']}", headers=api.auth("sam", "practitioner"))
    assert r.status == 404
    r = await api.client.get(f"/api/v1/shares/{share['share_id']}", headers=api.auth("pat", "practitioner"))
    assert r.status == 200 and (await r.json())["recipients"][0]["id"] == "alice"


async def test_incomplete_justification_stores_nothing(
    api: Api, alice: Any, share_justification: dict[str, Any]
) -> None:
    await _setup(api, alice)
    before = _db_counts(api)
    draft = copy.deepcopy(share_justification)
    del draft["rules"]["6_necessary_proportionate"]["necessity"]
    del draft["rules"]["1_lawful_basis"]["article_9"]
    r = await api.share(PAYLOAD, ["alice"], draft)
    assert r.status == 422
    body = await r.json()
    assert body["error"] == "justification_incomplete"
    assert {(p["rule"], p["field"]) for p in body["problems"]} >= {
        (6, "rules.6_necessary_proportionate.necessity"),
        (1, "rules.1_lawful_basis.article_9"),
    }
    assert _db_counts(api) == before
    assert _envelope_files(api) == []


async def test_not_share_justification_cannot_carry_a_payload(
    api: Api, alice: Any, not_share_justification: dict[str, Any]
) -> None:
    await _setup(api, alice)
    r = await api.share(PAYLOAD, ["alice"], not_share_justification)
    assert r.status == 422 and (await r.json())["error"] == "decision_not_share"


async def test_unknown_and_disabled_recipients_are_named(
    api: Api, alice: Any, bob: Any, share_justification: dict[str, Any]
) -> None:
    await _setup(api, alice, bob)
    r = await api.client.post(
        "/api/v1/recipients/bob/disable", headers=api.auth("root", "admin", "Hereford Police PPU")
    )
    assert r.status == 200
    before = _db_counts(api)
    r = await api.share(PAYLOAD, ["alice", "bob", "zed"], share_justification)
    assert r.status == 422
    body = await r.json()
    assert body["error"] == "unknown_recipients"
    assert body["unknown"] == ["zed"] and body["disabled"] == ["bob"]
    assert _db_counts(api) == before and _envelope_files(api) == []


async def test_decisions_are_recorded(
    api: Api, not_share_justification: dict[str, Any], share_justification: dict[str, Any]
) -> None:
    h = api.auth("pat", "practitioner")
    r = await api.client.post("/api/v1/decisions", json=not_share_justification, headers=h)
    assert r.status == 201, await r.text()
    body = await r.json()
    assert body["decision"] == "not_share" and "share_id" not in body
    r = await api.client.post("/api/v1/decisions", json={"justification": not_share_justification}, headers=h)
    assert r.status == 201
    bad = copy.deepcopy(not_share_justification)
    del bad["rules"]["7_record"]["not_shared_reason"]
    r = await api.client.post("/api/v1/decisions", json=bad, headers=h)
    assert r.status == 422 and (await r.json())["problems"][0]["rule"] == 7
    entries = await api.ledger(decision="not_share")
    assert len(entries) == 2 and entries[0]["entry"]["justification"] == not_share_justification
    assert entries[0]["entry"]["actor"]["sub"] == "pat"


# -- revocation, download limits, expiry ---------------------------------------------------------


async def test_revoke_destroys_envelopes(api: Api, alice: Any, bob: Any, share_justification: dict[str, Any]) -> None:
    await _setup(api, alice, bob)
    share = await (await api.share(PAYLOAD, ["alice", "bob"], share_justification)).json()
    sid = share["share_id"]
    assert len(_envelope_files(api)) == 2
    r = await api.client.post(f"/api/v1/shares/{sid}/revoke", headers=api.auth("sam", "practitioner"))
    assert r.status == 404
    r = await api.client.post(f"/api/v1/shares/{sid}/revoke", headers=api.auth("alice", "recipient"))
    assert r.status == 403
    r = await api.client.post(
        f"/api/v1/shares/{sid}/revoke",
        headers=api.auth("pat", "practitioner"),
        json={"reason": "sent in error"},
    )
    assert r.status == 200, await r.text()
    assert _envelope_files(api) == []
    r = await api.client.get(f"/api/v1/shares/{sid}/envelope", headers=api.auth("alice", "recipient"))
    assert r.status == 410 and (await r.json())["error"] == "share_revoked"
    r = await api.client.post(f"/api/v1/shares/{sid}/revoke", headers=api.auth("pat", "practitioner"))
    assert r.status == 409
    revoke = (await api.ledger(kind="revoke"))[0]["entry"]
    assert revoke["share_id"] == sid and revoke["reason"] == "sent in error"
    assert revoke["subjects"] == ["CASE-2026-0412"]


async def test_max_downloads_shreds_the_envelope(api: Api, alice: Any, share_justification: dict[str, Any]) -> None:
    await _setup(api, alice)
    sid = (await (await api.share(PAYLOAD, ["alice"], share_justification, max_downloads=1)).json())["share_id"]
    r = await api.client.get(f"/api/v1/shares/{sid}/envelope", headers=api.auth("alice", "recipient"))
    assert r.status == 200 and pyrage.decrypt(await r.read(), [alice]) == PAYLOAD
    assert _envelope_files(api) == []
    r = await api.client.get(f"/api/v1/shares/{sid}/envelope", headers=api.auth("alice", "recipient"))
    assert r.status == 410 and (await r.json())["error"] == "download_limit_reached"
    expire = (await api.ledger(kind="expire"))[0]["entry"]
    assert expire["reason"] == "max_downloads" and expire["share_id"] == sid


async def test_expiry_shreds_and_is_recorded(api: Api, alice: Any, share_justification: dict[str, Any]) -> None:
    await _setup(api, alice)
    sid = (await (await api.share(PAYLOAD, ["alice"], share_justification, expires_in=60)).json())["share_id"]
    gw = api.gateway
    real_now = gw.now()
    gw._clock = lambda: real_now + timedelta(seconds=61)
    r = await api.client.get(f"/api/v1/shares/{sid}/envelope", headers=api.auth("alice", "recipient"))
    assert r.status == 410 and (await r.json())["error"] == "share_expired"
    expired = await gw.expire_due()
    assert [s.id for s in expired] == [sid]
    assert _envelope_files(api) == []
    entry = (await api.ledger(kind="expire"))[0]["entry"]
    assert entry["reason"] == "expired" and entry["actor"] is None
    assert await gw.expire_due() == []


# -- malformed input -------------------------------------------------------------------------------


def _form(parts: list[tuple[str, bytes, str]]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, data, ctype in parts:
        form.add_field(
            name,
            io.BytesIO(data) if name == "payload" else data.decode(),
            content_type=ctype,
            filename="payload" if name == "payload" else None,
        )
    return form


@pytest.mark.parametrize(
    "kind, status, code",
    [
        ("bad_json", 400, "invalid_json"),
        ("no_payload", 400, "missing_part"),
        ("payload_first", 400, "missing_part"),
        ("not_object", 400, "invalid_share"),
        ("unknown_field", 422, "invalid_share"),
        ("recipients_not_list", 422, "invalid_share"),
        ("bad_expiry", 422, "invalid_share"),
        ("bad_max_downloads", 422, "invalid_share"),
        ("bad_content_type", 422, "invalid_share"),
        ("empty_payload", 422, "payload_empty"),
        ("too_big", 413, "payload_too_large"),
        ("extra_part", 400, "unexpected_part"),
    ],
)
async def test_malformed_shares_get_structured_errors(
    api: Api, alice: Any, share_justification: dict[str, Any], kind: str, status: int, code: str
) -> None:
    await _setup(api, alice)
    before = _db_counts(api)
    meta: dict[str, Any] = {"recipients": ["alice"], "justification": share_justification}
    payload = PAYLOAD
    parts: list[tuple[str, bytes, str]]
    if kind == "unknown_field":
        meta["colour"] = "blue"
    if kind == "recipients_not_list":
        meta["recipients"] = "alice"
    if kind == "bad_expiry":
        meta["expires_in"] = "soon"
    if kind == "bad_max_downloads":
        meta["max_downloads"] = 0
    if kind == "bad_content_type":
        meta["payload_content_type"] = "not a type"
    if kind == "empty_payload":
        payload = b""
    if kind == "too_big":
        payload = b"x" * (api.gateway.settings.limits.max_payload_bytes + 1)
    share_part = ("share", json.dumps(meta).encode(), "application/json")
    parts = [share_part, ("payload", payload, "application/octet-stream")]
    if kind == "bad_json":
        parts[0] = ("share", b'{"recipients": [', "application/json")
    if kind == "not_object":
        parts[0] = ("share", b"[1, 2]", "application/json")
    if kind == "no_payload":
        parts = [share_part]
    if kind == "payload_first":
        parts = [parts[1], parts[0]]
    if kind == "extra_part":
        parts.append(("other", b"x", "text/plain"))
    r = await api.client.post("/api/v1/shares", data=_form(parts), headers=api.auth("pat", "practitioner"))
    assert r.status == status, await r.text()
    body = await r.json()
    assert body["error"] == code and body["message"]
    if status == 413:
        assert body["limit"] == api.gateway.settings.limits.max_payload_bytes
    assert _db_counts(api) == before
    assert _envelope_files(api) == []


async def test_wrong_content_types_and_bodies(api: Api) -> None:
    h = api.auth("pat", "practitioner")
    r = await api.client.post("/api/v1/shares", data=b"hello", headers={**h, "Content-Type": "text/plain"})
    assert r.status == 415 and (await r.json())["error"] == "unsupported_media_type"
    r = await api.client.post("/api/v1/decisions", data=b"{", headers={**h, "Content-Type": "application/json"})
    assert r.status == 400 and (await r.json())["error"] == "invalid_json"
    r = await api.client.post(
        "/api/v1/decisions", data=b"x" * (2 * 1024 * 1024), headers={**h, "Content-Type": "application/json"}
    )
    assert r.status == 413 and (await r.json())["error"] == "payload_too_large"
    r = await api.client.post("/api/v1/decisions", data=b"[]", headers={**h, "Content-Type": "application/json"})
    assert r.status == 422 and (await r.json())["error"] == "justification_incomplete"
    r = await api.client.post(
        "/api/v1/decisions", data=b'{"decision": "\\ud800"}', headers={**h, "Content-Type": "application/json"}
    )
    assert r.status == 400 and "surrogate" in (await r.json())["message"]
    r = await api.client.get("/api/v1/ledger", params={"q": "word " * 2000}, headers=api.auth("a", "auditor"))
    assert r.status == 400 and (await r.json())["field"] == "q"
    r = await api.client.get("/api/v1/ledger?limit=abc", headers=api.auth("a", "auditor"))
    assert r.status == 400 and (await r.json())["field"] == "limit"
    r = await api.client.get("/api/v1/ledger?from=yesterday", headers=api.auth("a", "auditor"))
    assert r.status == 400 and (await r.json())["field"] == "from"
    r = await api.client.get("/api/v1/nope", headers=h)
    assert r.status == 404 and (await r.json())["error"] == "not_found"
    r = await api.client.delete("/api/v1/inbox", headers=h)
    assert r.status == 405 and (await r.json())["error"] == "method_not_allowed"


async def test_recipient_admin_validation(api: Api, alice: Any) -> None:
    h = api.auth("root", "admin", "MASH")
    good = {
        "id": "alice",
        "name": "Alice",
        "org": "MASH",
        "email": "a@example.org",
        "age_recipient": str(alice.to_public()),
    }
    r = await api.client.post("/api/v1/recipients", json={**good, "age_recipient": "age1notakey"}, headers=h)
    assert r.status == 422 and (await r.json())["field"] == "age_recipient"
    r = await api.client.post("/api/v1/recipients", json={**good, "id": "Alice Smith"}, headers=h)
    assert r.status == 422 and (await r.json())["field"] == "id"
    r = await api.client.post("/api/v1/recipients", json=good, headers=h)
    assert r.status == 201
    r = await api.client.post("/api/v1/recipients", json=good, headers=h)
    assert r.status == 409 and (await r.json())["error"] == "recipient_exists"
    r = await api.client.get("/api/v1/recipients?q=ALI", headers=api.auth("pat", "practitioner"))
    assert [x["id"] for x in (await r.json())["recipients"]] == ["alice"]
    r = await api.client.get("/api/v1/recipients?q=zzz", headers=api.auth("pat", "practitioner"))
    assert (await r.json())["recipients"] == []
    added = (await api.ledger(kind="recipient_add"))[0]["entry"]
    assert added["recipients"][0]["id"] == "alice"


# -- atomicity and crash recovery ----------------------------------------------------------------


@pytest.mark.parametrize("size", ["small", "large"])
async def test_failure_while_placing_envelopes_leaves_nothing(
    api: Api, alice: Any, share_justification: dict[str, Any], monkeypatch: pytest.MonkeyPatch, size: str
) -> None:
    """Placing is renaming files into the share's directory, or (SQLite, a small share's envelopes) inserting their
    rows, or (PostgreSQL) inserting its `envelopes` rows: a failure there leaves no share, no file, no row."""
    await _setup(api, alice)
    before = _db_counts(api)
    in_database = api.gateway.settings.envelopes_in_database
    payload = PAYLOAD if size == "small" else os.urandom(INLINE_LIMIT + 1)

    def broken_place(self: Any, share_id: str, sync: bool = True) -> None:
        (self._root / share_id).mkdir()
        raise OSError("disk full")

    async def broken_pg_place(self: Any, conn: Any, share_id: str) -> None:
        raise OSError("disk full")

    def broken_rows(self: Any, share_id: str) -> list[tuple[str, str, bytes]]:
        raise OSError("disk full")

    if in_database:
        monkeypatch.setattr("gateway.store.postgres.envelopes.PgSpool.place", broken_pg_place)
    else:
        monkeypatch.setattr("gateway.store.files.Spool.place", broken_place)
        monkeypatch.setattr("gateway.store.sqlite.envelopes.BlobSpool.rows", broken_rows)
    r = await api.share(payload, ["alice"], share_justification)
    assert r.status == 500 and (await r.json())["error"] == "internal_error"
    assert _db_counts(api) == before
    assert _envelope_files(api) == []
    if not in_database:
        assert not [p for p in api.gateway.settings.envelopes_dir.iterdir() if p.name != ".tmp"]


async def test_startup_sweeps_orphans(
    aiohttp_client: Any, settings: Any, keys: Any, token: Any, alice: Any, share_justification: dict[str, Any]
) -> None:
    from gateway.app import create_app

    api = Api(await aiohttp_client(create_app(settings, keys)), token)
    await _setup(api, alice)
    sid = (await (await api.share(PAYLOAD, ["alice"], share_justification)).json())["share_id"]
    await api.client.close()
    if api.gateway.settings.envelopes_in_database:
        await _pg_debris(settings.database)
        api2 = Api(await aiohttp_client(create_app(settings, keys)), token)
        # The young envelope may be another node's share committed since the sweep read the live set: spared.
        assert _envelope_files(api2) == sorted([f"{sid}/alice.age", "sh_youngyoungyoungyoungyoung/alice.age"])
        return
    root = settings.envelopes_dir
    (root / ".tmp" / "half-written.age").write_bytes(b"age-encryption.org/v1\n")
    (root / "sh_orphanorphanorphanorphan").mkdir()
    (root / "sh_orphanorphanorphanorphan" / "alice.age").write_bytes(b"x")
    (root / "sh_youngyoungyoungyoungyoung").mkdir()
    (root / "sh_youngyoungyoungyoungyoung" / "alice.age").write_bytes(b"y")
    # Debris of a crash long ago; the young one may be another node's share in progress when nodes share the
    # database (and so this directory): only then is it spared (README, "Several nodes").
    old = time.time() - 2 * SHARED_SWEEP_GRACE_SECONDS
    for p in (root / ".tmp" / "half-written.age", root / "sh_orphanorphanorphanorphan" / "alice.age"):
        os.utime(p, (old, old))
    if pg.backend() != "postgres":
        # A row whose deletion was interrupted (the share was revoked, and the process stopped before `destroy`).
        conn = sqlite3.connect(settings.db_path)
        with conn:
            conn.execute("INSERT INTO envelope_blobs VALUES ('sh_revokedrevokedrevokedrevo', 'alice', x'00')")
        conn.close()
        assert "sh_revokedrevokedrevokedrevo/alice.age" in _envelope_files(api)
    api2 = Api(await aiohttp_client(create_app(settings, keys)), token)
    young = ["sh_youngyoungyoungyoungyoung/alice.age"] if pg.backend() == "postgres" else []
    assert _envelope_files(api2) == sorted([f"{sid}/alice.age", *young])


async def _pg_debris(dsn: str) -> None:
    """What a crash leaves in PostgreSQL: a spool that never became a share (old), an envelope of a share the
    database does not vouch for (old), and a young one (perhaps another node's share in progress)."""
    import asyncpg

    old = f"now() - interval '{int(2 * SHARED_SWEEP_GRACE_SECONDS)} seconds'"
    conn = await asyncpg.connect(dsn)
    try:
        for spool, share_id, when in (
            ("00000000-0000-4000-8000-000000000001", None, old),
            ("00000000-0000-4000-8000-000000000002", "sh_orphanorphanorphanorphan", old),
            ("00000000-0000-4000-8000-000000000003", "sh_youngyoungyoungyoungyoung", "now()"),
        ):
            await conn.execute(f"INSERT INTO envelope_spools (spool, created_at) VALUES ($1, {when})", spool)
            await conn.execute(
                "INSERT INTO envelope_chunks (spool, name, seq, data) VALUES ($1, 'alice', 0, $2)", spool, b"x"
            )
            if share_id is not None:
                await conn.execute(
                    "INSERT INTO envelopes (share_id, name, spool, sha256, size) VALUES ($1, 'alice', $2, '', 1)",
                    share_id,
                    spool,
                )
    finally:
        await conn.close()


async def test_ledger_rows_are_append_only(api: Api, not_share_justification: dict[str, Any]) -> None:
    if pg.backend() == "postgres":
        pytest.skip("the SQLite file's triggers; PostgreSQL's: tests/test_store_contract.py")
    await api.client.post("/api/v1/decisions", json=not_share_justification, headers=api.auth("p", "practitioner"))
    conn = sqlite3.connect(api.gateway.settings.db_path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE ledger SET kind = 'share'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM ledger")
    finally:
        conn.close()


# -- the ledger query ------------------------------------------------------------------------------


async def test_ledger_filters_and_paging(
    api: Api, alice: Any, share_justification: dict[str, Any], not_share_justification: dict[str, Any]
) -> None:
    await _setup(api, alice)
    for _ in range(3):
        assert (await api.share(PAYLOAD, ["alice"], share_justification)).status == 201
    await api.client.post("/api/v1/decisions", json=not_share_justification, headers=api.auth("sam", "practitioner"))
    everything = await api.ledger(limit="100")
    assert [e["index"] for e in everything] == list(range(len(everything) - 1, -1, -1))
    assert [e["kind"] for e in await api.ledger(subject="CASE-2026-0412")] == ["share"] * 3
    assert [e["kind"] for e in await api.ledger(subject="ADULT-88-1930")] == ["decision"]
    assert len(await api.ledger(practitioner="pat", kind="share")) == 3
    assert len(await api.ledger(recipient="alice", kind="share")) == 3
    assert await api.ledger(subject="NOBODY") == []
    assert len(await api.ledger(**{"from": "2000-01-01T00:00:00Z"})) == len(everything)
    assert await api.ledger(to="2000-01-01T00:00:00Z") == []
    # Cursor paging walks every entry once, newest first.
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        r = await api.client.get("/api/v1/ledger", params=params, headers=api.auth("a", "partnership_auditor"))
        body = await r.json()
        seen += [e["index"] for e in body["entries"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [e["index"] for e in everything]
    # Each entry's leaf hash is the RFC 6962 hash of its canonical bytes.
    e = everything[0]
    from gateway.ledger.entry import canonical

    assert base64.b64decode(e["leaf_hash"]) == hashlib.sha256(b"\x00" + canonical(e["entry"])).digest()


# -- logs --------------------------------------------------------------------------------------------


async def test_logs_carry_no_content_tokens_or_free_text(
    api: Api, alice: Any, share_justification: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await _setup(api, alice)
    tok = api.token("pat", "practitioner")
    r = await api.share(PAYLOAD, ["alice"], share_justification)
    sid = (await r.json())["share_id"]
    bad = copy.deepcopy(share_justification)
    bad["purpose"]["description"] = "SECRET-FREE-TEXT " * 300
    await api.share(PAYLOAD, ["alice"], bad)
    await api.client.get(f"/api/v1/shares/{sid}/envelope", headers=api.auth("alice", "recipient"))
    text = caplog.text
    assert "bruising" not in text
    assert "SECRET-FREE-TEXT" not in text
    assert share_justification["purpose"]["description"] not in text
    assert tok not in text


async def test_openapi_describes_every_route(api: Api) -> None:
    r = await api.client.get("/api/v1/openapi.json")
    assert r.status == 200
    doc = await r.json()
    assert doc["openapi"].startswith("3.1")
    described = {
        (path, method.upper())
        for path, ops in doc["paths"].items()
        for method in ops
        if method in {"get", "post", "put", "patch", "delete"}
    }
    actual = set()
    for route in api.client.app.router.routes():
        if route.method in {"HEAD", "OPTIONS"}:
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        actual.add((path, route.method))
    assert actual - described == set(), "routes missing from the OpenAPI document"
    assert described - actual == set(), "OpenAPI describes routes the app does not have"


async def test_cors_only_for_pinned_extension_origins(
    aiohttp_client: Any, settings: Any, keys: Any, token: Any
) -> None:
    import dataclasses

    from gateway.app import create_app

    pinned = "chrome-extension://abcdefghijklmnopabcdefghijklmnop"
    client = await aiohttp_client(create_app(dataclasses.replace(settings, cors_origins=(pinned,)), keys))
    pre = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    r = await client.options("/api/v1/shares", headers={"Origin": pinned, **pre})
    assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == pinned
    r = await client.options("/api/v1/shares", headers={"Origin": "https://evil.example", **pre})
    assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
    h = {"Authorization": f"Bearer {token('pat', 'practitioner')}"}
    r = await client.get("/api/v1/policy", headers={"Origin": "https://mail.google.com", **h})
    assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers
    r = await client.get("/api/v1/policy", headers={"Origin": pinned, **h})
    assert r.headers["Access-Control-Allow-Origin"] == pinned


async def test_external_oidc_issuer_through_the_app(
    aiohttp_client: Any, aiohttp_server: Any, settings: Any, keys: Any, share_justification: dict[str, Any]
) -> None:
    """An Entra-style issuer: RS256 tokens, keys from a real JWKS endpoint, app roles mapped to ours."""
    import dataclasses
    import time

    import jwt
    from aiohttp import web
    from cryptography.hazmat.primitives.asymmetric import rsa

    from gateway.app import create_app
    from gateway.auth import OIDCIssuerConfig

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="entra-1", use="sig", alg="RS256")
    jwks_app = web.Application()

    async def keys_route(request: web.Request) -> web.Response:
        return web.json_response({"keys": [jwk]})

    jwks_app.router.add_get("/keys", keys_route)
    jwks_server = await aiohttp_server(jwks_app)
    idp = OIDCIssuerConfig(
        issuer="https://login.example/tenant/v2.0",
        audience="api://safeshare",
        jwks_url=str(jwks_server.make_url("/keys")),
        algorithms=("RS256",),
        role_map={"SafeShare.Practitioner": "practitioner"},
        org_claim="tid",
    )
    client = await aiohttp_client(create_app(dataclasses.replace(settings, oidc=(idp,)), keys))

    def entra_token(roles: list[str], **over: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": idp.issuer,
            "aud": idp.audience,
            "sub": "oid-123",
            "tid": "hereford-council",
            "roles": roles,
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            **over,
        }
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "entra-1"})

    h = {"Authorization": f"Bearer {entra_token(['SafeShare.Practitioner'])}"}
    r = await client.post("/api/v1/justifications/validate", json=share_justification, headers=h)
    assert r.status == 200 and (await r.json())["valid"] is True
    r = await client.post(
        "/api/v1/justifications/validate",
        json=share_justification,
        headers={"Authorization": f"Bearer {entra_token(['admin'])}"},
    )
    assert r.status == 403  # an unmapped IdP role named "admin" grants nothing
    r = await client.get("/api/v1/policy", headers={"Authorization": f"Bearer {entra_token([], aud='other')}"})
    assert r.status == 401 and (await r.json())["error"] == "token_audience_invalid"
    # Clients learn how to sign in from a public route (public OAuth details only).
    r = await client.get("/api/v1/auth/config")
    conf = await r.json()
    assert r.status == 200 and conf["embedded_issuer"]["issuer"] == settings.issuer
    assert conf["oidc"][0]["issuer"] == idp.issuer and conf["oidc"][0]["scopes"] == ["openid", "profile", "email"]
    # The embedded issuer still works alongside.
    from gateway.auth import EmbeddedIssuer

    embedded = EmbeddedIssuer(keys.token_key, settings.issuer, settings.audience).issue("pat", ["practitioner"])
    r = await client.get("/api/v1/policy", headers={"Authorization": f"Bearer {embedded}"})
    assert r.status == 200


def test_a_version_1_database_is_upgraded_in_place(tmp_path: Any) -> None:
    from gateway.store.sqlite import ADDED_COLUMNS, SCHEMA_VERSION, create_schema

    db = tmp_path / "old.sqlite3"
    create_schema(db)
    conn = sqlite3.connect(db)
    for table, column, _ in ADDED_COLUMNS:
        conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    conn.execute("DROP TABLE schema_version")  # as a version 1 database was: its version in user_version only
    conn.execute("DROP TABLE store_probe")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    create_schema(db)
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        for table, column, _ in ADDED_COLUMNS:
            assert column in {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
    finally:
        conn.close()
