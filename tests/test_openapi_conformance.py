"""The OpenAPI document agrees with the gateway (issue 9, defect 8).

Every response of every test that uses `aiohttp_client` is already checked against gateway/openapi.json (see
tests/conftest.py and tests/openapi_conformance.py). These tests make sure that check has teeth, that every
ledger kind the gateway writes is described and actually produced through the API, and that times echoed
back are RFC 3339 date-times.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pyrage
import pytest

from gateway.api.common import GATEWAY
from gateway.config import Settings
from gateway.ledger.entry import KINDS
from tests.conftest import example
from tests.openapi_conformance import ResponseChecker
from tests.smtp_sink import code_in, smtp  # noqa: F401 - the fixture
from tests.test_tenants import CALLERS, World, make_world, share_form

ENTRY = {
    "index": 0,
    "time": "2026-11-25T09:00:00.000Z",
    "kind": "acknowledge",
    "leaf_hash": "AAAA",
    "entry": {
        "v": 1,
        "index": 0,
        "kind": "acknowledge",
        "time": "2026-11-25T09:00:00.000Z",
        "actor": {"sub": "rita", "role": "recipient", "org": "X", "iss": "i"},
        "share_id": "sh_" + "a" * 24,
        "share_index": 0,
        "subjects": [],
        "recipients": [{"id": "rita", "org": "X"}],
        "note": "done",
    },
}


def _page(*entries: dict[str, Any]) -> bytes:
    return json.dumps({"entries": list(entries), "next_cursor": None, "people": {}}).encode()


def test_the_checker_catches_drift() -> None:
    """A response that disagrees with the document is reported, naming the operation and the place."""
    checker = ResponseChecker()
    assert checker.check("GET", "/api/v1/ledger", 200, "application/json", _page(ENTRY)) == []
    bad_kind = {**ENTRY, "entry": {**ENTRY["entry"], "kind": "teleport"}}
    assert checker.check("GET", "/api/v1/ledger", 200, "application/json", _page(bad_kind))
    bad_time = {**ENTRY, "time": "474-08-12T13:33:16.000Z"}
    (problem,) = checker.check("GET", "/api/v1/ledger", 200, "application/json", _page(bad_time))
    assert "GET /api/v1/ledger -> 200" in problem and "/entries/0/time" in problem
    assert checker.check("GET", "/api/v1/ledger", 299, "application/json", b"{}")  # undocumented status
    assert checker.check("GET", "/api/v1/ledger", 200, "text/html", b"")  # undocumented content type
    stats = {"from": "474-08-12T13:33:16.000Z", "to": None, "totals": {}, "months": []}
    assert checker.check("GET", "/api/v1/ledger/stats", 200, "application/json", json.dumps(stats).encode())
    # Concrete paths find their templates; literal segments win over parameters.
    assert checker.operation("GET", "/api/v1/recipients/me") is not None
    assert checker.operation("GET", "/api/v1/recipients/me")[0] == "/api/v1/recipients/me"  # type: ignore[index]
    assert checker.operation("GET", "/api/v1/shares/sh_x/envelope")[0] == "/api/v1/shares/{share_id}/envelope"  # type: ignore[index]


def test_every_ledger_kind_is_in_the_discriminator() -> None:
    doc = ResponseChecker().doc
    body = doc["components"]["schemas"]["LedgerEntryBody"]
    mapping = body["discriminator"]["mapping"]
    assert set(mapping) == set(KINDS)
    assert {m["$ref"] for m in body["oneOf"]} == set(mapping.values())


@pytest.fixture
async def world(aiohttp_client: Any, settings: Settings, tmp_path: Path, smtp: Any) -> World:  # noqa: F811 - the fixture
    """The tenancy tests' world, with a real SMTP server on loopback for the e-mail claim codes."""
    _, url = smtp
    return await make_world(aiohttp_client, dataclasses.replace(settings, smtp_url=url), tmp_path / "world")


async def _held_share_kinds(world: World, sink: Any) -> None:
    """Shares to e-mail addresses without a key: a claim refused, accepted and re-wrapped on enrolment; a claim
    locked by wrong codes; a held share left unclaimed until it expires."""
    c, h = world.client, world.headers

    async def held(address: str, **extra: Any) -> str:
        form = share_form(recipients=[address], unenrolled="verify", **extra)
        r = await c.post("/api/v1/shares", data=form, headers=h("owner"))
        assert r.status == 201, await r.text()
        return str((await r.json())["share_id"])

    async def code_for(share_id: str, address: str) -> str:
        r = await c.post("/api/v1/claims/start", json={"share_id": share_id, "email": address})
        assert r.status == 202
        return code_in(await sink.arrival(address))

    async def verify(share_id: str, address: str, code: str) -> Any:
        return await c.post("/api/v1/claims/verify", json={"share_id": share_id, "email": address, "code": code})

    def wrong(code: str) -> str:
        return f"{(int(code) + 1) % 10**6:06d}"

    jo = "jo@school.example.org"
    claimed = await held(jo)
    code = await code_for(claimed, jo)
    assert (await verify(claimed, jo, wrong(code))).status == 400
    r = await verify(claimed, jo, code)
    assert r.status == 200, await r.text()
    auth = {"Authorization": f"Bearer {(await r.json())['token']}"}
    key = str(pyrage.x25519.Identity.generate().to_public())
    assert (await c.post("/api/v1/recipients/enrol", json={"age_recipient": key}, headers=auth)).status == 202

    kim = "kim@school.example.org"
    locked = await held(kim)
    code = await code_for(locked, kim)
    statuses = [(await verify(locked, kim, wrong(code))).status for _ in range(5)]
    assert statuses == [400, 400, 400, 400, 423]

    gw = c.app[GATEWAY]
    await held("lee@school.example.org", expires_in=60)
    later = gw.now() + timedelta(seconds=61)
    gw._clock = lambda: later
    await gw.expire_due()


async def _practice_kinds(world: World) -> None:
    """Issue 14: an emergency share completed, a question for advice answered, a share held and approved."""
    c, h = world.client, world.headers
    org = CALLERS["owner"][2]
    urgent = example("share")
    urgent["rules"] = {
        "1_lawful_basis": urgent["rules"]["1_lawful_basis"],
        "5_safety_wellbeing": {"risk_level": "immediate", "assessment": "Threat of violence tonight."},
    }
    del urgent["data_categories"]
    r = await c.post("/api/v1/shares", data=share_form(justification=urgent), headers=h("owner"))
    assert r.status == 201, await r.text()
    full = example("share")
    full["rules"]["5_safety_wellbeing"]["risk_level"] = "immediate"
    r = await c.post(f"/api/v1/shares/{(await r.json())['share_id']}/justification", json=full, headers=h("owner"))
    assert r.status == 201, await r.text()
    question = {"to": "dsl", "purpose": {"code": "referral", "description": "Refer?"}, "data_categories": ["health"]}
    r = await c.post("/api/v1/advice", json=question, headers=h("owner"))
    assert r.status == 201, await r.text()
    dsl = {"Authorization": f"Bearer {world.issuer.issue('dee', ['dsl'], org=org)}"}
    r = await c.post(f"/api/v1/advice/{(await r.json())['advice_id']}/answer", json={"answer": "Yes."}, headers=dsl)
    assert r.status == 201, await r.text()
    gw = c.app[GATEWAY]
    rule = (org, ("referral",), (), ("dsl",))
    # dual control's use cases hold their own settings (composed, like the agreements')
    gw.settings = gw.dual_control.settings = dataclasses.replace(
        gw.settings, policies=dataclasses.replace(gw.settings.policies, dual_control=(rule,))
    )
    r = await c.post("/api/v1/shares", data=share_form(), headers=h("owner"))
    assert r.status == 201, await r.text()
    assert (await c.get("/api/v1/approvals", headers=dsl)).status == 200
    r = await c.post(f"/api/v1/shares/{(await r.json())['share_id']}/approve", headers=dsl)
    assert r.status == 201, await r.text()
    await gw.retention.retention_review()
    assert (await c.get("/api/v1/retention/schedule", headers=h("admin"))).status == 200


async def test_every_kind_the_gateway_writes_reads_back_as_documented(world: World, smtp: Any) -> None:  # noqa: F811
    """Drive the API until the ledger holds every kind; every page and receipt is checked by the fixture."""
    c, h = world.client, world.headers
    sid = world.share_id
    assert (await c.get(f"/api/v1/shares/{sid}/envelope", headers=h("recipient"))).status == 200
    r = await c.post(f"/api/v1/shares/{sid}/acknowledge", json={"note": "seen"}, headers=h("recipient"))
    assert r.status == 200
    assert (await c.post(f"/api/v1/shares/{sid}/escrow", json={"reason": "order"}, headers=h("admin"))).status == 200
    assert (await c.post("/api/v1/recipients/newbie/approve", headers=h("admin"))).status == 200
    newbie = world.issuer.issue("newbie", ["recipient"], org=CALLERS["admin"][2], email="n@example.org")
    key = str(pyrage.x25519.Identity.generate().to_public())
    r = await c.post(
        "/api/v1/recipients/enrol", json={"age_recipient": key}, headers={"Authorization": f"Bearer {newbie}"}
    )
    assert r.status == 202
    assert (await c.post("/api/v1/recipients/newbie/reject", headers=h("admin"))).status == 200
    assert (await c.post("/api/v1/teams/duty/members/rita/remove", headers=h("admin"))).status == 200
    assert (await c.post(f"/api/v1/shares/{sid}/revoke", headers=h("owner"))).status == 200
    # A one-time share: its single fetch is followed by an `expire` entry (reason max_downloads).
    r = await c.post("/api/v1/shares", data=share_form(max_downloads=1), headers=h("owner"))
    assert r.status == 201, await r.text()
    one_time = (await r.json())["share_id"]
    assert (await c.get(f"/api/v1/shares/{one_time}/envelope", headers=h("recipient"))).status == 200
    await _held_share_kinds(world, smtp[0])
    # The partnership's agreements: recorded, then retired.
    form = aiohttp.FormData()
    agreement = {
        "id": "test-dea",
        "title": "Test data exchange agreement",
        "kind": "data_exchange",
        "scope": "both",
        "signatories": ["Hereford Council"],
        "review_date": "2099-03-31",
    }
    form.add_field("agreement", json.dumps(agreement), content_type="application/json")
    form.add_field("document", b"Test agreement text.", filename="dea.txt", content_type="application/octet-stream")
    r = await c.post("/api/v1/agreements", data=form, headers=h("partnership_admin"))
    assert r.status == 201, await r.text()
    r = await c.post("/api/v1/agreements/test-dea/retire", json={"reason": "replaced"}, headers=h("partnership_admin"))
    assert r.status == 200, await r.text()
    await _practice_kinds(world)

    r = await c.get("/api/v1/ledger", params={"limit": "500"}, headers=h("partnership_auditor"))
    entries = (await r.json())["entries"]
    assert {e["kind"] for e in entries} == set(KINDS)
    for e in entries:  # and each receipt, as its maker or an auditor reads it
        r = await c.get(f"/api/v1/ledger/entries/{e['index']}", headers=h("partnership_auditor"))
        assert r.status == 200
    r = await c.get("/api/v1/ledger", params={"format": "jsonl"}, headers=h("partnership_auditor"))
    checker = ResponseChecker()
    for line in (await r.text()).splitlines()[1:]:
        row = json.loads(line)
        page = _page({k: row[k] for k in ("index", "time", "kind", "leaf_hash", "entry")})
        assert checker.check("GET", "/api/v1/ledger", 200, "application/json", page) == [], row["kind"]


@pytest.mark.parametrize(
    ("given", "echoed"),
    [
        ("0474-08-12T13:33:16Z", "0474-08-12T13:33:16.000Z"),
        ("0001-01-01T00:30:00+01:00", "0001-01-01T00:00:00.000Z"),  # before UTC can hold: the first instant
        ("9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59.999Z"),
        ("2026-11-25t09:00:00.1234567z", "2026-11-25T09:00:00.123Z"),
    ],
)
async def test_stats_echo_a_valid_date_time(world: World, given: str, echoed: str) -> None:
    r = await world.client.get("/api/v1/ledger/stats", params={"from": given}, headers=world.headers("auditor"))
    assert r.status == 200 and (await r.json())["from"] == echoed


@pytest.mark.parametrize(
    "given",
    ["474-08-12T13:33:16Z", "0000-01-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-11-25T09:00:00", "20261125T090000Z"],
)
async def test_times_that_are_not_rfc3339_are_refused(world: World, given: str) -> None:
    for path in ("/api/v1/ledger/stats", "/api/v1/ledger"):
        r = await world.client.get(path, params={"from": given}, headers=world.headers("auditor"))
        assert r.status == 400 and (await r.json())["field"] == "from"
