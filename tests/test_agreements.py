"""The partnership's agreements against a real app and a real SQLite file: administration (versions, retirement,
documents by SHA-256, ledger entries), the rule-6 checks on every share (signatories, scope, review date,
retirement; refusal by default, override with a recorded reason where an organisation is configured for it), and
what is recorded (entry refs, the auditor's filter, statistics, the subject report)."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.config import AgreementSettings, Limits, Settings

from .conftest import Api, example

PDF = b"%PDF-1.4\n% example partnership protocol (test)\n%%EOF\n"
DEA = b"Example children's data exchange agreement (test document)\n"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Practitioners of 'override-org' may override agreement problems with a reason; everyone else is refused."""
    return Settings(
        home=tmp_path / "home",
        expiry_sweep_seconds=3600.0,
        limits=Limits(max_payload_bytes=1024 * 1024),
        agreements=AgreementSettings(organisations=(("Override Org", "override"),)),
    )


async def add_agreement(
    api: Api, document: bytes = DEA, filename: str = "dea.txt", status: int = 201, **fields: Any
) -> dict[str, Any]:
    form = aiohttp.FormData()
    form.add_field("agreement", json.dumps(fields), content_type="application/json")
    form.add_field("document", document, filename=filename, content_type="application/octet-stream")
    r = await api.client.post("/api/v1/agreements", data=form, headers=api.auth("root", "partnership_admin"))
    body = await r.json()
    assert r.status == status, body
    return body  # type: ignore[no-any-return]


CHILDREN_DEA = {
    "id": "children-dea",
    "title": "Children's Data Exchange Agreement",
    "kind": "data_exchange",
    "scope": "children",
    "signatories": ["Test Org", "Hereford MASH"],
    "purposes": ["referral", "s47_enquiry"],
    "categories": ["identity", "health", "safeguarding_concern"],
    "review_date": "2099-03-31",
}


@pytest.fixture
async def partnership(api: Api, alice: Any, bob: Any) -> Api:
    """alice at Hereford MASH (a signatory), bob at Elsewhere Trust (not a signatory); one agreement."""
    await api.add_recipient("alice", alice, org="Hereford MASH")
    await api.add_recipient("bob", bob, org="Elsewhere Trust")
    await add_agreement(api, **CHILDREN_DEA)
    return api


def under(*ids: str) -> dict[str, Any]:
    j = copy.deepcopy(example("share"))
    j["agreements"] = list(ids)
    return j


async def entries(api: Api, **params: str) -> list[dict[str, Any]]:
    """The ledger entries the auditor's query returns, newest first."""
    return [e["entry"] for e in await api.ledger(**params)]


async def ledger_size(api: Api) -> int:
    return len(await entries(api, limit="500"))


async def refused(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    body = await resp.json()
    assert resp.status == 422, body
    assert body["error"] == "agreement_problems"
    return body  # type: ignore[no-any-return]


async def test_a_share_to_a_signatory_is_recorded_with_the_agreement_id_version_and_document_digest(
    partnership: Api,
) -> None:
    api = partnership
    r = await api.share(b"notes", ["alice"], under("children-dea"))
    assert r.status == 201, await r.text()
    answer = await r.json()
    share_id = answer["share_id"]
    assert [(a["id"], a["version"]) for a in answer["agreements"]] == [("children-dea", 1)]
    [entry] = await entries(api, kind="share")
    ref = entry["agreements"][0]
    assert ref["id"] == "children-dea" and ref["version"] == 1
    assert ref["document_sha256"] == hashlib.sha256(DEA).hexdigest()
    assert share_id in json.dumps(entry)

    # The document is served, publicly and exactly, at the address the agreement gives.
    r = await api.client.get("/api/v1/agreements/children-dea", headers=api.auth("pat", "practitioner"))
    url = (await r.json())["current"]["document"]["url"]
    r = await api.client.get(url)
    assert r.status == 200 and await r.read() == DEA
    assert r.headers["Content-Type"].startswith("text/plain") and "sandbox" in r.headers["Content-Security-Policy"]
    assert (await api.client.get("/agreements/documents/" + "0" * 64)).status == 404


async def test_a_non_signatory_recipient_is_refused_naming_the_agreement_and_the_organisation(
    partnership: Api,
) -> None:
    api = partnership
    before = await ledger_size(api)
    body = await refused(await api.share(b"notes", ["alice", "bob"], under("children-dea")))
    [p] = body["problems"]
    assert p["rule"] == 6 and p["code"] == "recipient_not_signatory" and p["field"] == "recipients.1"
    assert "Elsewhere Trust" in p["message"] and "children-dea" in p["message"]
    assert body["not_signatories"] == ["Elsewhere Trust"] and body["overridable"] is False
    assert await ledger_size(api) == before  # nothing shared or recorded


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        (lambda j: j["purpose"].update(code="crime_prevention"), "agreement_purpose_out_of_scope", "purpose.code"),
        (lambda j: j["data_categories"].append("financial"), "agreement_category_out_of_scope", "data_categories.3"),
        # An adult at risk meets the three tests of DPA 2018 Sch 1 para 18(3) (issue 19), so only the scope is at fault.
        (
            lambda j: j["subjects"][0].update(
                role="adult_at_risk",
                adult_at_risk_tests=dict.fromkeys(
                    ("care_and_support_needs", "experiencing_or_at_risk_of_harm", "unable_to_protect_self"), True
                ),
            ),
            "agreement_scope_mismatch",
            "agreements.0",
        ),
    ],
)
async def test_a_purpose_category_or_subject_outside_the_agreements_scope_is_refused(
    partnership: Api, change: Any, code: str, field: str
) -> None:
    j = under("children-dea")
    change(j)
    body = await refused(await partnership.share(b"notes", ["alice"], j))
    codes = {(p["code"], p["field"]) for p in body["problems"]}
    assert (code, field) in codes, body
    assert all(p["rule"] == 6 and "children-dea" in p["message"] for p in body["problems"] if p["code"] == code)


async def test_a_retired_or_overdue_agreement_no_longer_covers_a_share(partnership: Api) -> None:
    api = partnership
    await add_agreement(api, **{**CHILDREN_DEA, "id": "old-dea", "review_date": "2020-01-31"})
    body = await refused(await api.share(b"notes", ["alice"], under("old-dea")))
    assert [p["code"] for p in body["problems"]] == ["agreement_overdue", "recipient_not_signatory"]
    assert "2020-01-31" in body["problems"][0]["message"]

    r = await api.client.post(
        "/api/v1/agreements/children-dea/retire",
        json={"reason": "replaced"},
        headers=api.auth("root", "partnership_admin"),
    )
    assert r.status == 200, await r.text()
    assert (await r.json())["agreement"]["status"] == "retired"
    body = await refused(await api.share(b"notes", ["alice"], under("children-dea")))
    assert body["problems"][0]["code"] == "agreement_retired" and body["problems"][0]["field"] == "agreements.0"
    r = await api.client.post(
        "/api/v1/agreements/children-dea/retire",
        json={"reason": "again"},
        headers=api.auth("root", "partnership_admin"),
    )
    assert r.status == 409
    [retired] = await entries(api, kind="agreement_retire")
    assert retired["agreements"][0]["id"] == "children-dea"


async def test_an_organisation_configured_for_it_overrides_with_a_recorded_reason_others_cannot(
    partnership: Api,
) -> None:
    api = partnership
    j = under("children-dea")
    # Not configured: refused, even with a reason.
    body = await refused(await api.share(b"notes", ["bob"], j, agreement_override="urgent"))
    assert body["overridable"] is False
    # Configured: refused without a reason, told it may override...
    form_sender = "olive"

    async def share_as_override_org(**extra: Any) -> aiohttp.ClientResponse:
        form = aiohttp.FormData()
        meta = {"recipients": ["bob"], "justification": j, "payload_content_type": "text/plain", **extra}
        form.add_field("share", json.dumps(meta), content_type="application/json")
        form.add_field("payload", b"notes", filename="payload", content_type="application/octet-stream")
        return await api.client.post(
            "/api/v1/shares", data=form, headers=api.auth(form_sender, "practitioner", org="Override Org")
        )

    body = await refused(await share_as_override_org())
    assert body["overridable"] is True
    # ...and with one, shared, the reason and the problems it overrode recorded.
    r = await share_as_override_org(agreement_override="Bob's trust holds the child's placement; DPO agreed.")
    assert r.status == 201, await r.text()
    [entry] = await entries(api, kind="share")
    assert entry["agreement_override"]["reason"].startswith("Bob's trust")
    assert entry["agreement_override"]["problems"][0]["code"] == "recipient_not_signatory"
    assert entry["agreements"][0]["id"] == "children-dea"


async def test_agreements_required_by_configuration(api: Api, alice: Any, tmp_path: Path) -> None:
    """Off by default (the shared examples carry no agreement); when on, name one or say why none applies."""
    await api.add_recipient("alice", alice)
    assert (await api.share(b"x", ["alice"], example("share"))).status == 201
    gw = api.gateway
    required = Settings(home=gw.settings.home, agreements=AgreementSettings(required=True))
    gw.settings = gw.agreements.settings = required  # the agreements' use cases hold their own settings
    body = await refused(await api.share(b"x", ["alice"], example("share")))
    assert body["problems"][0]["code"] == "agreements_required" and body["problems"][0]["field"] == "agreements"
    j = example("share")
    j["no_agreement"] = {"reason": "outside_partnership", "explanation": "A one-off referral out of area."}
    assert (await api.share(b"x", ["alice"], j)).status == 201
    [latest, *_] = await entries(api, kind="share")
    assert latest["justification"]["no_agreement"]["reason"] == "outside_partnership"
    assert "agreements" not in latest


async def test_a_new_version_leaves_earlier_entries_under_the_version_they_were_made_under(
    partnership: Api,
) -> None:
    api = partnership
    assert (await api.share(b"one", ["alice"], under("children-dea"))).status == 201
    v2 = await add_agreement(api, document=PDF, filename="dea-v2.pdf", **{**CHILDREN_DEA, "title": "DEA (2027)"})
    assert v2["agreement"]["version"] == 2 and v2["agreement"]["document"]["content_type"] == "application/pdf"
    assert (await api.share(b"two", ["alice"], under("children-dea"))).status == 201

    shares = await entries(api, kind="share")
    refs = sorted((e["agreements"][0]["version"], e["agreements"][0]["document_sha256"]) for e in shares)
    assert refs == [(1, hashlib.sha256(DEA).hexdigest()), (2, hashlib.sha256(PDF).hexdigest())]
    # Both versions stay readable, and the first is marked superseded, never edited.
    r = await api.client.get("/api/v1/agreements/children-dea", headers=api.auth("audrey", "auditor"))
    versions = (await r.json())["versions"]
    assert [(v["version"], v["status"], v["title"]) for v in versions] == [
        (1, "superseded", CHILDREN_DEA["title"]),
        (2, "active", "DEA (2027)"),
    ]
    assert (await api.client.get(versions[0]["document"]["url"])).status == 200

    # The auditor filters by agreement: both shares and both versions' administrative entries.
    kinds = sorted(e["kind"] for e in await entries(api, agreement="children-dea"))
    assert kinds == ["agreement_add", "agreement_add", "share", "share"]
    assert await entries(api, agreement="no-such") == []

    # Statistics: shares per agreement and version, overrides, shares under none.
    assert (await api.share(b"three", ["alice"], example("share"))).status == 201
    r = await api.client.get("/api/v1/ledger/stats", headers=api.auth("audrey", "auditor"))
    stats = (await r.json())["totals"]["agreements"]
    assert stats["per_agreement"]["children-dea"] == {"shares": 2, "overrides": 0, "versions": {"1": 1, "2": 1}}
    assert stats["overrides"] == 0 and stats["shares_without_agreement"] == 1

    # The subject report names the agreements in plain words, with the version and digest.
    r = await api.client.get(
        "/api/v1/ledger/report", params={"subject": "CASE-2026-0412"}, headers=api.auth("audrey", "auditor")
    )
    page = await r.text()
    assert r.status == 200
    assert "Made under the partnership&#x27;s agreements" in page
    assert (
        "Children&#x27;s Data Exchange Agreement (data exchange agreement &#x27;children-dea&#x27;, version 1)" in page
    )
    assert "DEA (2027) (data exchange agreement &#x27;children-dea&#x27;, version 2)" in page
    assert hashlib.sha256(PDF).hexdigest() in page and "DEA (2027)" in page


async def test_decisions_record_the_agreements_they_name(partnership: Api) -> None:
    api = partnership
    j = example("not-share")
    j["agreements"] = ["children-dea"]
    r = await api.client.post("/api/v1/decisions", json=j, headers=api.auth("pat", "practitioner"))
    assert r.status == 201, await r.text()
    [entry] = await entries(api, kind="decision")
    assert entry["agreements"][0]["id"] == "children-dea"
    j["agreements"] = ["unknown-one"]
    r = await api.client.post("/api/v1/decisions", json=j, headers=api.auth("pat", "practitioner"))
    assert r.status == 422 and (await r.json())["problems"][0]["code"] == "agreement_unknown"


async def test_offers_name_the_agreements_covering_a_draft_and_explain_non_signatories(partnership: Api) -> None:
    api = partnership
    await add_agreement(
        api,
        id="protocol",
        title="Overarching protocol",
        kind="protocol",
        scope="both",
        signatories=["Hereford MASH", "Elsewhere Trust"],
        review_date="2099-01-01",
    )
    params = {"recipients": "alice,bob", "purpose": "referral", "categories": "identity,health", "roles": "child"}
    r = await api.client.get("/api/v1/agreements/offers", params=params, headers=api.auth("pat", "practitioner"))
    body = await r.json()
    assert r.status == 200, body
    offered = {a["id"]: a for a in body["agreements"]}
    assert set(offered) == {"children-dea", "protocol"}
    assert offered["protocol"]["covers_all_recipients"] is True
    assert offered["children-dea"]["not_signatories"] == ["Elsewhere Trust"]
    assert (
        "Elsewhere Trust is not a signatory of Children's Data Exchange Agreement"
        in offered["children-dea"]["explanation"]
    )
    # Outside the children's agreement's scope: only the protocol is offered.
    params["categories"] = "financial"
    r = await api.client.get("/api/v1/agreements/offers", params=params, headers=api.auth("pat", "practitioner"))
    assert [a["id"] for a in (await r.json())["agreements"]] == ["protocol"]
    r = await api.client.get(
        "/api/v1/agreements/offers", params={"purpose": "nonsense"}, headers=api.auth("pat", "practitioner")
    )
    assert r.status == 400 and (await r.json())["field"] == "purpose"


@pytest.mark.parametrize(
    ("fields", "filename", "document", "field"),
    [
        ({"kind": "treaty"}, "a.txt", DEA, "kind"),
        ({"scope": "everyone"}, "a.txt", DEA, "scope"),
        ({"signatories": []}, "a.txt", DEA, "signatories"),
        ({"review_date": "31/03/2099"}, "a.txt", DEA, "review_date"),
        ({"purposes": ["gossip"]}, "a.txt", DEA, "purposes"),
        ({"id": "Bad ID"}, "a.txt", DEA, "id"),
        ({"id": "offers"}, "a.txt", DEA, "id"),
        ({}, "a.html", b"<script>alert(1)</script>", "document"),
        ({}, "a.pdf", b"not a pdf", "document"),
    ],
)
async def test_bad_agreements_are_refused_with_the_field(
    api: Api, fields: dict[str, Any], filename: str, document: bytes, field: str
) -> None:
    body = await add_agreement(api, document=document, filename=filename, status=422, **{**CHILDREN_DEA, **fields})
    assert body["error"] == "invalid_agreement" and body["field"] == field
    assert await entries(api, kind="agreement_add") == []


async def test_only_administrators_change_agreements(api: Api) -> None:
    form = aiohttp.FormData()
    form.add_field("agreement", json.dumps(CHILDREN_DEA), content_type="application/json")
    form.add_field("document", DEA, filename="a.txt")
    r = await api.client.post("/api/v1/agreements", data=form, headers=api.auth("pat", "practitioner"))
    assert r.status == 403
    r = await api.client.post(
        "/api/v1/agreements/x/retire", json={"reason": "r"}, headers=api.auth("pat", "practitioner")
    )
    assert r.status == 403
    r = await api.client.post(
        "/api/v1/agreements/nope/retire", json={"reason": "r"}, headers=api.auth("a", "partnership_admin")
    )
    assert r.status == 404
    r = await api.client.get("/api/v1/agreements", headers=api.auth("r", "recipient"))
    assert r.status == 403


@pytest.mark.parametrize(
    ("no_agreement", "field", "code"),
    [
        ({"reason": "emergency", "explanation": "  "}, "no_agreement.explanation", "blank"),
        ({"reason": "because", "explanation": "x"}, "no_agreement.reason", "enum"),
        ({"reason": "emergency"}, "no_agreement.explanation", "required"),
    ],
)
async def test_no_agreement_must_say_why_in_the_policys_terms(
    api: Api, no_agreement: dict[str, Any], field: str, code: str
) -> None:
    j = example("share")
    j["no_agreement"] = no_agreement
    r = await api.client.post("/api/v1/justifications/validate", json=j, headers=api.auth("pat", "practitioner"))
    body = await r.json()
    assert r.status == 200 and body["valid"] is False, body
    assert [(p["field"], p["code"], p["rule"]) for p in body["problems"]] == [(field, code, 6)]
    j = example("share")
    j["agreements"] = ["Not An ID"]
    r = await api.client.post("/api/v1/justifications/validate", json=j, headers=api.auth("pat", "practitioner"))
    assert [(p["field"], p["rule"]) for p in (await r.json())["problems"]] == [("agreements.0", 6)]


async def test_a_team_share_is_checked_against_each_members_organisation(partnership: Api) -> None:
    """A team is an address; the people it reaches are the recipients whose organisations must have signed."""
    api = partnership
    admin = api.auth("root", "partnership_admin")
    team = {"id": "duty", "name": "Duty team", "org": "Hereford MASH", "email": "duty@example.org"}
    assert (await api.client.post("/api/v1/teams", json=team, headers=admin)).status == 201
    for member in ("alice", "bob"):
        r = await api.client.post("/api/v1/teams/duty/members", json={"member": member}, headers=admin)
        assert r.status in (200, 201), await r.text()
    body = await refused(await api.share(b"notes", ["duty"], under("children-dea")))
    assert [p["code"] for p in body["problems"]] == ["recipient_not_signatory"]
    assert "Elsewhere Trust (recipient bob)" in body["problems"][0]["message"]
    params = {"recipients": "duty", "purpose": "referral"}
    r = await api.client.get("/api/v1/agreements/offers", params=params, headers=api.auth("pat", "practitioner"))
    [offer] = (await r.json())["agreements"]
    assert offer["not_signatories"] == ["Elsewhere Trust"]


async def test_live_validation_reports_the_agreement_problems_it_can_see_without_recipients(
    partnership: Api, tmp_path: Path
) -> None:
    """POST /api/v1/justifications/validate (what the panel calls as the practitioner types) shows rule-6 problems
    with the agreements named: scope, review date, unknown IDs; the recipients' organisations wait for the share."""
    api = partnership
    await add_agreement(api, **{**CHILDREN_DEA, "id": "old-dea", "review_date": "2020-01-31"})

    async def validate(body: Any) -> dict[str, Any]:
        r = await api.client.post("/api/v1/justifications/validate", json=body, headers=api.auth("pat", "practitioner"))
        assert r.status == 200, await r.text()
        return await r.json()  # type: ignore[no-any-return]

    assert (await validate(under("children-dea")))["valid"] is True
    j = under("children-dea", "old-dea", "no-such-dea")
    j["data_categories"].append("financial")
    answer = await validate(j)
    assert answer["valid"] is False
    found = {(p["code"], p["field"]) for p in answer["problems"] if p["rule"] == 6}
    assert found == {
        ("agreement_category_out_of_scope", "data_categories.3"),
        ("agreement_overdue", "agreements.1"),
        ("agreement_unknown", "agreements.2"),
    }, answer["problems"]
    # The wrapped form ({"justification": …}) is checked the same way.
    assert {p["code"] for p in (await validate({"justification": j}))["problems"]} >= {"agreement_unknown"}

    # A decision not to share is refused only for an unknown agreement, so only that is reported for it.
    n = example("not-share")
    n["agreements"] = ["old-dea", "no-such-dea"]
    assert [(p["code"], p["field"]) for p in (await validate(n))["problems"]] == [("agreement_unknown", "agreements.1")]

    # Where the gateway requires an agreement, a share draft naming none is told so while it is written.
    assert (await validate(example("share")))["valid"] is True
    gw = api.gateway
    required = Settings(home=gw.settings.home, agreements=AgreementSettings(required=True))
    gw.settings = gw.agreements.settings = required  # the agreements' use cases hold their own settings
    answer = await validate(example("share"))
    assert [(p["code"], p["field"]) for p in answer["problems"]] == [("agreements_required", "agreements")]
    assert (await validate(example("not-share")))["valid"] is True
