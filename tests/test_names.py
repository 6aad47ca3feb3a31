"""Names, not identifiers (issue 13): the sender's and organisation's names kept with each share (token claims,
else the directory), shown in the recipient's inbox and share view; each recipient named (directory) in the
sender's Sent view, with when they opened it; the case and share references that tell inbox rows apart. Runs
on PostgreSQL too (SAFESHARE_TEST_BACKEND=postgres), and every response is checked against openapi.json."""

from __future__ import annotations

import asyncio
import copy
import csv
import io
import json
from typing import Any

import aiohttp
import pyrage

from gateway.auth import EmbeddedIssuer
from tests.conftest import Api, example

PAYLOAD = b"Referral notes for the MASH."


def bearer(issuer: EmbeddedIssuer, sub: str, role: str, **claims: str) -> dict[str, str]:
    org = claims.pop("org", "hereford-primary")
    return {"Authorization": f"Bearer {issuer.issue(sub, [role], org=org, ttl=600, **claims)}"}


async def share_as(api: Api, headers: dict[str, str], recipients: list[str], justification: dict[str, Any]) -> str:
    form = aiohttp.FormData()
    meta = {"recipients": recipients, "justification": justification, "payload_content_type": "text/plain"}
    form.add_field("share", json.dumps(meta), content_type="application/json")
    form.add_field("payload", PAYLOAD, filename="payload", content_type="application/octet-stream")
    r = await api.client.post("/api/v1/shares", data=form, headers=headers)
    assert r.status == 201, await r.text()
    return str((await r.json())["share_id"])


async def csv_export(api: Api, headers: dict[str, str], wanted: set[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    """The subject's CSV export by (kind, share ID), once the signed checkpoint it stops at covers `wanted`."""
    for _ in range(200):
        r = await api.client.get("/api/v1/ledger?subject=CASE-2026-0412&format=csv", headers=headers)
        assert r.status == 200, await r.text()
        table = list(csv.reader(io.StringIO((await r.read()).decode(), newline="")))
        rows = {(row["kind"], row["share_id"]): row for row in (dict(zip(table[0], x, strict=True)) for x in table[1:])}
        if wanted <= set(rows):
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError("no checkpoint covered the entries within 10 s")


async def inbox(api: Api, rid: str) -> list[dict[str, Any]]:
    r = await api.client.get("/api/v1/inbox", headers=api.auth(rid, "recipient"))
    assert r.status == 200
    return list((await r.json())["shares"])


async def test_names_from_the_token_reach_the_inbox_and_the_sent_view(
    api: Api, issuer: EmbeddedIssuer, alice: Any, bob: Any, share_justification: dict[str, Any]
) -> None:
    await api.add_recipient("alice", alice)
    await api.add_recipient("bob", bob, org="West Mercia Police")
    pat = bearer(issuer, "pat", "practitioner", name="Pat Jones", org_name="Hereford Primary School")
    first = await share_as(api, pat, ["alice", "bob"], share_justification)
    other = copy.deepcopy(share_justification)
    other["subjects"][0]["ref"] = other["rules"]["5_safety_wellbeing"]["at_risk"][0] = "CASE-2026-0999"
    second = await share_as(api, pat, ["alice"], other)

    rows = await inbox(api, "alice")
    assert [r["id"] for r in rows] == [second, first]  # the share reference tells them apart ...
    assert [r["subjects"] for r in rows] == [["CASE-2026-0999"], ["CASE-2026-0412"]]  # ... and the case reference
    for row in rows:
        assert row["from"] == {
            "sub": "pat",
            "org": "hereford-primary",
            "name": "Pat Jones",
            "org_name": "Hereford Primary School",
        }
        assert row["downloads"] == 0
        assert "recipients" not in row  # the other recipients are not disclosed to a recipient

    # Alice opens the first: her inbox counts the download (the extension then no longer says "New").
    r = await api.client.get(f"/api/v1/shares/{first}/envelope", headers=api.auth("alice", "recipient"))
    assert r.status == 200 and pyrage.decrypt(await r.read(), [alice]) == PAYLOAD
    rows = {r["id"]: r for r in await inbox(api, "alice")}
    assert rows[first]["downloads"] == 1 and rows[second]["downloads"] == 0
    r = await api.client.get(f"/api/v1/shares/{first}", headers=api.auth("alice", "recipient"))
    assert (await r.json())["from"]["name"] == "Pat Jones"

    # The Sent view names each recipient (directory) and their organisation, and says when they opened it.
    r = await api.client.get("/api/v1/shares", headers=pat)
    sent = {s["id"]: s for s in (await r.json())["shares"]}
    people = {p["id"]: p for p in sent[first]["recipients"]}
    assert (people["alice"]["name"], people["alice"]["org"]) == ("Alice", "Hereford MASH")
    assert (people["bob"]["name"], people["bob"]["org"]) == ("Bob", "West Mercia Police")
    assert people["alice"]["first_downloaded_at"] is not None and people["bob"]["first_downloaded_at"] is None
    r = await api.client.get(f"/api/v1/shares/{first}", headers=pat)
    assert [p["name"] for p in (await r.json())["recipients"]] == ["Alice", "Bob"]


async def test_names_from_the_directory_then_the_identifiers(
    api: Api, issuer: EmbeddedIssuer, alice: Any, bob: Any, share_justification: dict[str, Any]
) -> None:
    await api.add_recipient("alice", alice)
    # A practitioner who also receives: the directory names them when the token does not.
    await api.add_recipient("sam", bob, org="Hereford Children's Services")
    sam = await share_as(api, bearer(issuer, "sam", "practitioner"), ["alice"], share_justification)
    # Only the name in the token: the organisation's name still comes from the directory.
    samira = bearer(issuer, "sam", "practitioner", name="Samira Khan")
    named = await share_as(api, samira, ["alice"], share_justification)
    # Neither the token nor the directory: the identifiers, never nothing.
    kim = await share_as(api, bearer(issuer, "kim", "practitioner"), ["alice"], share_justification)
    rows = {r["id"]: r["from"] for r in await inbox(api, "alice")}
    assert rows[sam] == {
        "sub": "sam",
        "org": "hereford-primary",
        "name": "Sam",
        "org_name": "Hereford Children's Services",
    }
    assert (rows[named]["name"], rows[named]["org_name"]) == ("Samira Khan", "Hereford Children's Services")
    assert rows[kim] == {"sub": "kim", "org": "hereford-primary", "name": "kim", "org_name": "hereford-primary"}
    # A recipient the directory no longer has a name for is shown by ID, not dropped.
    r = await api.client.get("/api/v1/shares", headers=bearer(issuer, "kim", "practitioner"))
    [only] = (await r.json())["shares"]
    assert [(p["id"], p["name"]) for p in only["recipients"]] == [("alice", "Alice")]


async def test_token_claims_org_name(issuer: EmbeddedIssuer) -> None:
    from gateway.auth import TokenVerifier

    verifier = TokenVerifier(issuer)
    p = await verifier.verify(issuer.issue("pat", ["practitioner"], org="hp", name="Pat", org_name=" Hereford School "))
    assert (p.name, p.org, p.org_name) == ("Pat", "hp", "Hereford School")
    p = await verifier.verify(issuer.issue("pat", ["practitioner"], org="hp"))
    assert p.org_name is None


async def test_the_auditors_search_and_subject_report_name_people_beside_their_ids(
    api: Api, issuer: EmbeddedIssuer, alice: Any, bob: Any, share_justification: dict[str, Any]
) -> None:
    """The ledger's entries hold IDs ("pat", "alice") and cannot change; the search page and the subject report
    name them beside the IDs (issue 13), from the share's kept sender names and the directory."""
    await api.add_recipient("alice", alice)
    await api.add_recipient("bob", bob, org="West Mercia Police")
    pat = bearer(issuer, "pat", "practitioner", name="Pat Jones", org_name="Hereford Primary School")
    sid = await share_as(api, pat, ["alice", "bob"], share_justification)
    kim = await share_as(api, bearer(issuer, "kim", "practitioner"), ["alice"], share_justification)
    r = await api.client.get(f"/api/v1/shares/{sid}/envelope", headers=api.auth("alice", "recipient"))
    assert r.status == 200
    auditor = bearer(issuer, "aud", "partnership_auditor")

    r = await api.client.get("/api/v1/ledger?subject=CASE-2026-0412", headers=auditor)
    assert r.status == 200, await r.text()
    page = await r.json()
    assert {e["kind"] for e in page["entries"]} >= {"share", "fetch"}
    assert page["people"]["pat"] == {"name": "Pat Jones", "org_name": "Hereford Primary School"}
    assert page["people"]["alice"] == {"name": "Alice", "org_name": "Hereford MASH"}
    assert page["people"]["bob"] == {"name": "Bob", "org_name": "West Mercia Police"}
    assert "kim" not in page["people"]  # no name anywhere: the reader shows the ID
    assert kim in {e["entry"].get("share_id") for e in page["entries"]}

    # The CSV export: the IDs kept (the stable key), each with a name column beside it; the ID when none is known.
    by_share = await csv_export(api, auditor, {("share", sid), ("share", kim), ("fetch", sid)})
    pat_row, kim_row = by_share[("share", sid)], by_share[("share", kim)]
    assert (pat_row["actor_sub"], pat_row["actor_name"]) == ("pat", "Pat Jones")
    assert (pat_row["actor_org"], pat_row["actor_org_name"]) == ("hereford-primary", "Hereford Primary School")
    assert pat_row["recipients"] == "alice (Hereford MASH); bob (West Mercia Police)"
    assert pat_row["recipient_names"] == "Alice (Hereford MASH); Bob (West Mercia Police)"
    assert (kim_row["actor_sub"], kim_row["actor_name"], kim_row["actor_org_name"]) == (
        "kim",
        "kim",
        "hereford-primary",
    )
    fetch_row = by_share[("fetch", sid)]
    assert (fetch_row["actor_sub"], fetch_row["actor_name"], fetch_row["actor_org_name"]) == (
        "alice",
        "Alice",
        "Hereford MASH",
    )

    r = await api.client.get("/api/v1/ledger/report?subject=CASE-2026-0412&format=json", headers=auditor)
    report = await r.json()
    share_event = next(e for e in report["events"] if e["kind"] == "share" and e["share_id"] == sid)
    assert share_event["actor"]["name"] == "Pat Jones"
    assert share_event["actor"]["org_name"] == "Hereford Primary School"
    assert [(x["id"], x["name"]) for x in share_event["recipients"]] == [("alice", "Alice"), ("bob", "Bob")]
    fetch = next(e for e in report["events"] if e["kind"] == "fetch")
    assert (fetch["actor"]["sub"], fetch["actor"]["name"]) == ("alice", "Alice")
    # The entry itself records the names the sharer's token carried (who decided, rule 7), as it was hashed.
    assert share_event["entry"]["actor"]["org_name"] == "Hereford Primary School"

    r = await api.client.get("/api/v1/ledger/report?subject=CASE-2026-0412&format=html", headers=auditor)
    html = await r.text()
    assert "Pat Jones (practitioner, Hereford Primary School; ID pat)" in html
    assert "Alice (Hereford MASH; ID alice)" in html and "Bob (West Mercia Police; ID bob)" in html
    assert "Alice (ID alice) (1 time)" in html
    assert "kim (practitioner, hereford-primary)" in html


async def test_an_organisation_that_only_decided_not_to_share_is_named(api: Api, issuer: EmbeddedIssuer) -> None:
    """An organisation whose practitioners never shared (no share row keeps its name) and that has no directory
    entry is named from its practitioner's decision entry, which records the token's `org_name` claim: in the
    auditor's people list, the search page's names and the CSV export; an organisation whose tokens carry no
    `org_name` stays its ID."""
    dora = bearer(issuer, "dora", "practitioner", org="leominster-gp", name="Dr Dora Ng", org_name="Leominster GP")
    r = await api.client.post("/api/v1/decisions", json=example("not-share"), headers=dora)
    assert r.status == 201, await r.text()
    index = (await r.json())["ledger_index"]
    r = await api.client.post(
        "/api/v1/decisions", json=example("not-share"), headers=bearer(issuer, "ian", "practitioner", org="bare-org")
    )
    assert r.status == 201, await r.text()

    auditor = bearer(issuer, "aud", "partnership_auditor")
    r = await api.client.get("/api/v1/ledger/people", headers=auditor)
    assert r.status == 200, await r.text()
    body = await r.json()
    assert {"id": "leominster-gp", "name": "Leominster GP"} in body["organisations"]
    assert {"id": "bare-org"} in body["organisations"]
    dora_entry = next(p for p in body["practitioners"] if p["id"] == "dora")
    assert dora_entry == {"id": "dora", "org": "leominster-gp", "name": "Dr Dora Ng", "org_name": "Leominster GP"}

    r = await api.client.get("/api/v1/ledger?kind=decision", headers=auditor)
    assert r.status == 200, await r.text()
    page = await r.json()
    entry = next(e for e in page["entries"] if e["index"] == index)
    assert entry["entry"]["actor"]["org_name"] == "Leominster GP"
    assert page["people"]["dora"] == {"name": "Dr Dora Ng", "org_name": "Leominster GP"}
    assert "org_name" not in page["people"].get("ian", {})

    for _ in range(200):  # the export stops at the signed checkpoint: wait until it covers the decision
        r = await api.client.get("/api/v1/ledger?kind=decision&format=csv", headers=auditor)
        assert r.status == 200, await r.text()
        table = list(csv.reader(io.StringIO((await r.read()).decode(), newline="")))
        rows = {row["actor_sub"]: row for row in (dict(zip(table[0], x, strict=True)) for x in table[1:])}
        if {"dora", "ian"} <= set(rows):
            break
        await asyncio.sleep(0.05)
    assert (rows["dora"]["actor_org"], rows["dora"]["actor_org_name"]) == ("leominster-gp", "Leominster GP")
    assert rows["ian"]["actor_org_name"] == "bare-org"


async def _advice_answered_by(api: Api, issuer: EmbeddedIssuer, pat: dict[str, str], answer: str) -> str:
    """A question from `pat` answered by their designated safeguarding lead, Dee Dawson (name in her token)."""
    question = {
        "to": "dsl",
        "purpose": {"code": "referral", "description": "Possible referral after a disclosure."},
        "data_categories": ["health"],
    }
    r = await api.client.post("/api/v1/advice", json=question, headers=pat)
    assert r.status == 201, await r.text()
    aid = str((await r.json())["advice_id"])
    dee = bearer(issuer, "dee", "dsl", name="Dee Dawson")
    r = await api.client.post(f"/api/v1/advice/{aid}/answer", json={"answer": answer}, headers=dee)
    assert r.status == 201, await r.text()
    return aid


async def test_the_subject_report_names_downloads_acknowledgements_advice_and_the_organisation(
    api: Api, issuer: EmbeddedIssuer, alice: Any, bob: Any, share_justification: dict[str, Any]
) -> None:
    """Issue 13: the report's Downloads and Acknowledged columns, the advice line, the copies destroyed on a
    revocation and the cover's organisation read as names, each with the ID beside it (the stable key)."""
    await api.add_recipient("alice", alice)
    await api.add_recipient("bob", bob, org="West Mercia Police")
    pat = bearer(issuer, "pat", "practitioner", name="Pat Jones", org_name="Hereford Primary School")
    aid = await _advice_answered_by(api, issuer, pat, "Refer today.")
    form = aiohttp.FormData()
    meta = {"recipients": ["alice", "bob"], "justification": share_justification, "advice": [aid],
            "payload_content_type": "text/plain"}  # fmt: skip
    form.add_field("share", json.dumps(meta), content_type="application/json")
    form.add_field("payload", PAYLOAD, filename="payload", content_type="application/octet-stream")
    r = await api.client.post("/api/v1/shares", data=form, headers=pat)
    assert r.status == 201, await r.text()
    sid = (await r.json())["share_id"]
    for _ in range(2):
        r = await api.client.get(f"/api/v1/shares/{sid}/envelope", headers=api.auth("alice", "recipient"))
        assert r.status == 200
    r = await api.client.post(f"/api/v1/shares/{sid}/acknowledge", json={"note": "Seen."},
                              headers=api.auth("alice", "recipient"))  # fmt: skip
    assert r.status in (200, 201), await r.text()
    r = await api.client.post(f"/api/v1/shares/{sid}/revoke", json={"reason": "Done with"}, headers=pat)
    assert r.status == 200, await r.text()
    # The adviser's name is recorded with her answer and with the advice the share cites.
    [cited] = (await api.ledger(kind="share"))[0]["entry"]["advice"]
    assert cited["answered_by"] == {"sub": "dee", "role": "dsl", "org": "hereford-primary", "name": "Dee Dawson"}

    subject = share_justification["subjects"][0]["ref"]
    everyone = bearer(issuer, "aud", "partnership_auditor")
    r = await api.client.get("/api/v1/ledger/report", params={"subject": subject, "format": "json"}, headers=everyone)
    report = await r.json()
    [line] = report["shares"]
    assert [(f["recipient"], f.get("name")) for f in line["fetches"]] == [("alice", "Alice")] * 2
    assert [(a["recipient"], a.get("name")) for a in line["acknowledged"]] == [("alice", "Alice")]
    r = await api.client.get("/api/v1/ledger/report", params={"subject": subject}, headers=everyone)
    html = await r.text()
    shares_table = html[html.index("<h2>Shares: who received what</h2>") : html.index("<h2>Timeline</h2>")]
    # Downloads and Acknowledged by name; the Recipients column beside them has each one's organisation and ID.
    assert "<td>Alice: 2 times, first" in shares_table and "<td>Alice, " in shares_table
    assert "Alice (Hereford MASH; ID alice), Bob (West Mercia Police; ID bob)" in shares_table
    assert "<td>alice" not in shares_table and ">alice:" not in shares_table
    assert "Designated safeguarding lead: Dee Dawson (designated safeguarding lead, hereford-primary; ID dee)" in html
    assert "Alice (Hereford MASH; ID alice); Bob (West Mercia Police; ID bob)" in html  # copies destroyed for

    # The auditor's own organisation by name on the cover (the token's org_name), its ID beside it.
    olive = bearer(issuer, "olive", "auditor", org="hereford-primary", org_name="Hereford Primary School")
    r = await api.client.get("/api/v1/ledger/report", params={"subject": subject}, headers=olive)
    html = await r.text()
    assert "<dd>Hereford Primary School (ID hereford-primary)</dd>" in html
    assert "that Hereford Primary School took part in" in html
    r = await api.client.get("/api/v1/ledger/report", params={"subject": subject, "format": "json"}, headers=olive)
    scope = (await r.json())["scope"]
    assert scope == {"organisation": "hereford-primary", "organisation_name": "Hereford Primary School"}


async def test_the_people_an_auditor_may_pick_by_name_stay_within_their_organisation(
    api: Api, issuer: EmbeddedIssuer, alice: Any, bob: Any, share_justification: dict[str, Any]
) -> None:
    """`GET /api/v1/ledger/people` (the console's search form, issue 13): practitioners, recipients and teams,
    and organisations by name with their IDs; an organisation's auditor is offered none from another
    organisation, even one that shared with theirs."""
    await api.add_recipient("alice", alice, org="hereford-primary")
    await api.add_recipient("bob", bob, org="far-away")
    pat = bearer(issuer, "pat", "practitioner", name="Pat Jones", org_name="Hereford Primary School")
    await share_as(api, pat, ["alice"], share_justification)
    # Named only in a decision's own entry (token claim), no share kept: still offered by name.
    sam = bearer(issuer, "sam", "practitioner", name="Sam Shah")
    r = await api.client.post("/api/v1/decisions", json=example("not-share"), headers=sam)
    assert r.status == 201, await r.text()
    await share_as(api, bearer(issuer, "kim", "practitioner"), ["alice"], share_justification)
    # Another organisation's practitioner shares with this one's recipient: their name is still not offered.
    zed = bearer(issuer, "zed", "practitioner", org="far-away", name="Zara Secret", org_name="Far Away Council")
    await share_as(api, zed, ["alice", "bob"], share_justification)

    olive = bearer(issuer, "olive", "auditor", org="hereford-primary", org_name="Hereford Primary School")
    r = await api.client.get("/api/v1/ledger/people", headers=olive)
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["scope"] == {"organisation": "hereford-primary"} and body["capped"] is False
    assert body["practitioners"] == [
        {"id": "kim", "org": "hereford-primary", "org_name": "Hereford Primary School"},  # no name: the ID
        {"id": "pat", "org": "hereford-primary", "name": "Pat Jones", "org_name": "Hereford Primary School"},
        {"id": "sam", "org": "hereford-primary", "name": "Sam Shah", "org_name": "Hereford Primary School"},
    ]
    assert body["recipients"] == [{"id": "alice", "name": "Alice", "org": "hereford-primary", "kind": "person"}]
    assert body["organisations"] == [{"id": "hereford-primary", "name": "Hereford Primary School"}]
    text = json.dumps(body)
    for outside in ("zed", "Zara Secret", "Far Away Council", "far-away", "Bob"):
        assert outside not in text, outside
    # The other organisation's auditor sees its own people only.
    r = await api.client.get("/api/v1/ledger/people", headers=bearer(issuer, "ola", "auditor", org="far-away"))
    body = await r.json()
    assert [p["id"] for p in body["practitioners"]] == ["zed"] and [x["id"] for x in body["recipients"]] == ["bob"]
    assert body["organisations"] == [{"id": "far-away"}]  # no org_name in this token: the ID alone
    assert "Pat Jones" not in json.dumps(body) and "Alice" not in json.dumps(body)
    # The partnership-wide auditor: everyone, each organisation named where a name is known.
    r = await api.client.get("/api/v1/ledger/people", headers=bearer(issuer, "aud", "partnership_auditor"))
    body = await r.json()
    assert [p["id"] for p in body["practitioners"]] == ["kim", "pat", "sam", "zed"]
    assert body["organisations"] == [
        {"id": "far-away", "name": "Far Away Council"},
        {"id": "hereford-primary", "name": "Hereford Primary School"},
    ]
    # The list is kept by the gateway and read again only from where it stopped: a practitioner who decides
    # after it was first built is offered at once, and a newer decision's name replaces the older one's.
    newcomer = bearer(issuer, "nia", "practitioner", name="Nia Patel", org_name="Hereford Primary School")
    await share_as(api, newcomer, ["alice"], share_justification)
    kim = bearer(issuer, "kim", "practitioner", name="Kim Lee", org_name="Hereford Primary School")
    r = await api.client.post("/api/v1/decisions", json=example("not-share"), headers=kim)
    assert r.status == 201, await r.text()
    r = await api.client.get("/api/v1/ledger/people", headers=olive)
    named = {p["id"]: p.get("name") for p in (await r.json())["practitioners"]}
    assert named == {"kim": "Kim Lee", "nia": "Nia Patel", "pat": "Pat Jones", "sam": "Sam Shah"}
