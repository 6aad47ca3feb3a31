"""Issue 14, refusals explained and reconsidered (DfE 2024 rule 7): a decision not to share records what whoever
asked was told; "reconsider" records a new decision linked to the earlier one with the new information; the
subject report shows the chain. A real app on a real SQLite file, every response checked against the OpenAPI
document."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from tests.conftest import Api, example

EXPLAINED = {"to": "Duty officer, Northshire Police", "explanation": "We could not verify the request; call our DSL."}
DISCLOSURE = {
    "channel": "phone",
    "with": [{"name": "Sam Okafor", "role": "Duty social worker", "organisation": "Northshire MASH"}],
    "summary": "Told the MASH about the new disclosure and the earlier concern.",
    "at": "2026-12-03T10:00:00Z",
}


#: DPA 2018 Schedule 1 paragraph 18(3)'s three tests for an adult at risk.
ADULT_TESTS = ("care_and_support_needs", "experiencing_or_at_risk_of_harm", "unable_to_protect_self")


def refusal() -> dict[str, Any]:
    return example("not-share")


def shared_about_the_same_person() -> dict[str, Any]:
    d = example("share")
    d["subjects"] = copy.deepcopy(refusal()["subjects"])
    d["rules"]["5_safety_wellbeing"]["at_risk"] = [d["subjects"][0]["ref"]]
    for subject in d["subjects"]:  # the share's lawful basis (Sch 1 para 18) needs para 18(3)'s tests for an adult
        if subject.get("role") == "adult_at_risk":
            subject.setdefault("adult_at_risk_tests", dict.fromkeys(ADULT_TESTS, True))
    return d


async def _refuse(api: Api, sender: str = "pat", org: str = "test-org") -> int:
    body = {"justification": refusal(), "explanation": EXPLAINED}
    r = await api.client.post("/api/v1/decisions", json=body, headers=api.auth(sender, "practitioner", org))
    assert r.status == 201, await r.text()
    return int((await r.json())["ledger_index"])


async def test_a_refusal_records_the_explanation_given(api: Api) -> None:
    index = await _refuse(api)
    [entry] = await api.ledger(kind="decision")
    assert entry["index"] == index and entry["entry"]["explanation"] == EXPLAINED
    r = await api.client.get("/api/v1/decisions", headers=api.auth("pat", "practitioner"))
    [view] = (await r.json())["decisions"]
    assert view["explanation"] == EXPLAINED

    # Only with a refusal, and complete.
    share = {"justification": example("share"), "disclosure": DISCLOSURE, "explanation": EXPLAINED}
    r = await api.client.post("/api/v1/decisions", json=share, headers=api.auth("pat", "practitioner"))
    assert r.status == 422
    assert [p["code"] for p in (await r.json())["problems"]] == ["explanation_not_allowed"]
    blank = {"justification": refusal(), "explanation": {"to": " ", "explanation": "x"}}
    r = await api.client.post("/api/v1/decisions", json=blank, headers=api.auth("pat", "practitioner"))
    assert r.status == 422 and [p["field"] for p in (await r.json())["problems"]] == ["explanation.to"]
    # The panel learns the same before recording.
    r = await api.client.post("/api/v1/justifications/validate", json=blank, headers=api.auth("pat", "practitioner"))
    assert [p["field"] for p in (await r.json())["problems"]] == ["explanation.to"]


async def test_reconsidered_on_new_information_as_a_linked_decision_shown_in_the_report(api: Api) -> None:
    first = await _refuse(api)
    url = f"/api/v1/decisions/{first}/reconsider"
    # Still no: a refusal again, explained again, linked to the first.
    again = {
        "justification": refusal(),
        "new_information": "The police sent a verified request from their safeguarding unit.",
        "explanation": {
            "to": "Safeguarding unit, Northshire Police",
            "explanation": "Not necessary: MASH already has it.",
        },
    }
    r = await api.client.post(url, json=again, headers=api.auth("pat", "practitioner"))
    assert r.status == 201, await r.text()
    second = (await r.json())["ledger_index"]
    assert (await r.json())["reconsiders"] == first
    # A colleague in the same organisation reconsiders the second on a disclosure: shared by phone.
    shared = {
        "justification": shared_about_the_same_person(),
        "new_information": "The child disclosed being hit at home this morning.",
        "disclosure": DISCLOSURE,
    }
    r = await api.client.post(
        f"/api/v1/decisions/{second}/reconsider", json=shared, headers=api.auth("kim", "practitioner")
    )
    assert r.status == 201, await r.text()
    third = (await r.json())["ledger_index"]

    entries = {e["index"]: e["entry"] for e in await api.ledger(kind="decision")}
    assert entries[second]["reconsiders"] == {"index": first, "new_information": again["new_information"]}
    assert entries[third]["reconsiders"]["index"] == second and entries[third]["decision"] == "share"

    subject = refusal()["subjects"][0]["ref"]
    r = await api.client.get(
        "/api/v1/ledger/report",
        params={"subject": subject, "format": "json"},
        headers=api.auth("audrey", "partnership_auditor"),
    )
    assert r.status == 200, await r.text()
    report = await r.json()
    [chain] = report["reconsiderations"]
    assert [c["index"] for c in chain] == [first, second, third]
    assert [c["decision"] for c in chain] == ["not_share", "not_share", "share"]
    assert chain[1]["new_information"] == again["new_information"] and chain[0]["explanation"] == EXPLAINED
    r = await api.client.get(
        "/api/v1/ledger/report", params={"subject": subject}, headers=api.auth("audrey", "partnership_auditor")
    )
    page = await r.text()
    assert "Refusals reconsidered" in page and f"the decision not to share in ledger entry {first}" in page
    assert "The child disclosed being hit at home this morning." in page


async def test_who_may_reconsider_and_what(api: Api) -> None:
    first = await _refuse(api)
    body = {"justification": refusal(), "new_information": "A new request arrived."}
    # Another organisation's practitioner: as if there were no such decision.
    r = await api.client.post(
        f"/api/v1/decisions/{first}/reconsider", json=body, headers=api.auth("oz", "practitioner", "other-org")
    )
    assert r.status == 404
    # No such entry; not a number.
    for index in ("999", "abc"):
        r = await api.client.post(
            f"/api/v1/decisions/{index}/reconsider", json=body, headers=api.auth("pat", "practitioner")
        )
        assert r.status == 404
    # No new information.
    r = await api.client.post(
        f"/api/v1/decisions/{first}/reconsider",
        json={**body, "new_information": " "},
        headers=api.auth("pat", "practitioner"),
    )
    assert r.status == 422 and (await r.json())["field"] == "new_information"
    # About other people.
    other = copy.deepcopy(body)
    for s in other["justification"]["subjects"]:
        s["ref"] = "CASE-OTHER-1"
    other["justification"]["rules"]["5_safety_wellbeing"]["at_risk"] = []
    r = await api.client.post(
        f"/api/v1/decisions/{first}/reconsider", json=other, headers=api.auth("pat", "practitioner")
    )
    assert r.status == 422 and (await r.json())["error"] == "reconsider_subjects_differ"
    # A decision to share is not a refusal.
    r = await api.client.post(
        "/api/v1/decisions",
        json={"justification": example("share"), "disclosure": DISCLOSURE},
        headers=api.auth("pat", "practitioner"),
    )
    shared = (await r.json())["ledger_index"]
    r = await api.client.post(
        f"/api/v1/decisions/{shared}/reconsider", json=body, headers=api.auth("pat", "practitioner")
    )
    assert r.status == 409 and (await r.json())["error"] == "not_a_refusal"


async def test_statistics_read_across_editions(api: Api) -> None:
    """Issue 14: the statistics count decisions per edition and carry the rule map between editions."""
    await _refuse(api)
    dfe = json.loads((Path(__file__).parent / "fixtures/justifications/dfe-2024-not-share.json").read_text())
    r = await api.client.post("/api/v1/decisions", json=dfe, headers=api.auth("pat", "practitioner"))
    assert r.status == 201, await r.text()
    r = await api.client.get("/api/v1/ledger/stats", headers=api.auth("audrey", "partnership_auditor"))
    body = await r.json()
    assert body["totals"]["policy"] == {"dfe-2024": 1, "hmg-2018": 1}
    lawful = next(t for t in body["themes"] if t["rule"] == 1)
    assert lawful["policy"] == "hmg-2018" and lawful["editions"] == {"hmg-2018": [1], "dfe-2024": [1, 3]}
