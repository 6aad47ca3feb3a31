"""Issue 14, emergency share: a child at immediate risk is shared with at once on the policy's minimum answers;
the rest is owed within the deadline, flagged in the ledger, listed for the practitioner, counted when overdue
in the statistics, and completed as a new ledger entry linked to the share. Pure rules first, then a real app
on a real SQLite file (every response checked against gateway/openapi.json)."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway import emergency
from gateway.app import create_app
from gateway.config import PolicySettings, Settings, load_settings
from gateway.home import HomeKeys
from gateway.justification import PolicyRegistry
from tests.conftest import Api, example

REGISTRY = PolicyRegistry.builtin()
CHILD = "CASE-2026-0412"


def minimal(policy: str = "hmg-2018") -> dict[str, Any]:
    """What a practitioner can answer in a minute: purpose, who, the risk and the lawful basis."""
    return {
        "policy": policy,
        "decision": "share",
        "purpose": {"code": "emergency", "description": "Child says she cannot go home tonight; police called."},
        "subjects": [{"ref": CHILD, "role": "child"}],
        "rules": {
            "1_lawful_basis": {"article_6": "vital_interests"},
            "5_safety_wellbeing": {"risk_level": "immediate", "assessment": "Disclosed threat of violence tonight."},
        },
    }


def complete(policy: str = "hmg-2018") -> dict[str, Any]:
    d = (
        example("share")
        if policy == "hmg-2018"
        else json.loads((Path(__file__).parent / "fixtures/justifications/dfe-2024-share.json").read_text())
    )
    d["subjects"] = [{"ref": CHILD, "role": "child", "age_band": "12-17"}]
    d["rules"]["5_safety_wellbeing"]["risk_level"] = "immediate"
    d["rules"]["5_safety_wellbeing"]["at_risk"] = [CHILD]
    return d


# -- the policy's rule, as data ------------------------------------------------------------------------------


@pytest.mark.parametrize("policy_id", ["hmg-2018", "dfe-2024"])
def test_both_editions_declare_the_minimum_and_the_deadline(policy_id: str) -> None:
    policy = REGISTRY.get(policy_id)
    rule = emergency.rule_of(policy)
    assert rule is not None and rule.complete_within_hours == 24
    assert "purpose" in rule.minimum and "rules.1_lawful_basis" in rule.minimum
    draft = minimal(policy_id)
    problems = policy.validate(draft)
    assert problems, "the minimum alone is not a complete justification"
    owed = emergency.deferred_problems(policy, draft, problems)
    assert owed is not None and {p.field for p in owed} >= {"data_categories", "rules.2_openness", "rules.7_record"}


def test_a_missing_minimum_answer_a_wrong_value_or_a_lower_risk_is_not_an_emergency() -> None:
    policy = REGISTRY.get("hmg-2018")
    no_basis = minimal()
    del no_basis["rules"]["1_lawful_basis"]
    blank_risk = minimal()
    blank_risk["rules"]["5_safety_wellbeing"]["assessment"] = " "
    wrong = minimal()
    wrong["rules"]["2_openness"] = {"agreement_sought": "perhaps"}
    lower = minimal()
    lower["rules"]["5_safety_wellbeing"]["risk_level"] = "significant_harm"
    not_share = minimal()
    not_share["decision"] = "not_share"
    for draft in (no_basis, blank_risk, wrong, lower, not_share):
        assert emergency.deferred_problems(policy, draft, policy.validate(draft)) is None


def test_optional_details_left_blank_never_block_it() -> None:
    policy = REGISTRY.get("hmg-2018")
    draft = minimal()
    draft["rules"]["2_openness"] = {"agreement_sought": False, "explanation": ""}
    draft["data_categories"] = []
    assert emergency.deferred_problems(policy, draft, policy.validate(draft)) is not None


# -- end to end on the API -----------------------------------------------------------------------------------


async def _shared(api: Api, alice: Any, justification: dict[str, Any]) -> dict[str, Any]:
    await api.add_recipient("alice", alice)
    r = await api.share(b"urgent note", ["alice"], justification)
    assert r.status == 201, await r.text()
    return dict(await r.json())


async def test_emergency_share_goes_at_once_flagged_and_owing(api: Api, alice: Any) -> None:
    before = api.gateway.now()
    body = await _shared(api, alice, minimal())
    due = body["emergency"]["complete_by"]
    assert due.startswith((before + timedelta(hours=24)).strftime("%Y-%m-%dT%H"))
    assert {o["field"] for o in body["emergency"]["owed"]} >= {"rules.7_record", "data_categories"}
    [entry] = await api.ledger(kind="share")
    assert entry["entry"]["flags"] == ["emergency_share"]
    assert entry["entry"]["emergency"]["complete_by"] == due

    # The practitioner's reminder: listed on their decisions view, not overdue yet.
    r = await api.client.get("/api/v1/decisions", headers=api.auth("pat", "practitioner"))
    [owed] = (await r.json())["awaiting_justification"]
    assert owed["share_id"] == body["share_id"] and owed["overdue"] is False and owed["complete_by"] == due
    r = await api.client.get("/api/v1/decisions", headers=api.auth("sam", "practitioner"))
    assert (await r.json())["awaiting_justification"] == []  # someone else's share is not their reminder

    stats = await _stats(api)
    assert (stats["emergency_justifications_open"], stats["emergency_justifications_overdue"]) == (1, 0)


async def _stats(api: Api) -> dict[str, Any]:
    r = await api.client.get("/api/v1/ledger/stats", headers=api.auth("audrey", "partnership_auditor"))
    assert r.status == 200, await r.text()
    return dict((await r.json())["totals"])


async def test_overdue_is_counted_then_completion_is_a_linked_entry(api: Api, alice: Any) -> None:
    body = await _shared(api, alice, minimal())
    sid = body["share_id"]
    later = api.gateway.now() + timedelta(hours=25)
    api.gateway._clock = lambda: later
    r = await api.client.get("/api/v1/decisions", headers=api.auth("pat", "practitioner"))
    [owed] = (await r.json())["awaiting_justification"]
    assert owed["overdue"] is True
    stats = await _stats(api)
    assert (stats["emergency_justifications_open"], stats["emergency_justifications_overdue"]) == (1, 1)

    url = f"/api/v1/shares/{sid}/justification"
    pat = api.auth("pat", "practitioner")
    # Still incomplete: refused with the rules' problems, nothing recorded.
    r = await api.client.post(url, json=minimal(), headers=pat)
    assert r.status == 422 and (await r.json())["error"] == "justification_incomplete"
    # About someone else: refused.
    other = complete()
    other["subjects"][0]["ref"] = "CASE-2026-9999"
    other["rules"]["5_safety_wellbeing"]["at_risk"] = ["CASE-2026-9999"]
    r = await api.client.post(url, json=other, headers=pat)
    assert r.status == 422 and (await r.json())["field"] == "justification.subjects"
    # Not the sender: as if there were no such share.
    r = await api.client.post(url, json=complete(), headers=api.auth("sam", "practitioner"))
    assert r.status == 404

    r = await api.client.post(url, json={"justification": complete()}, headers=pat)
    assert r.status == 201, await r.text()
    done = await r.json()
    assert done["share_index"] == body["ledger_index"]
    [entry] = await api.ledger(kind="emergency_completed")
    assert entry["index"] == done["ledger_index"]
    assert entry["entry"]["share_id"] == sid and entry["entry"]["completes"]["share_index"] == body["ledger_index"]
    assert entry["entry"]["completes"]["late"] is True
    assert "decision" not in entry["entry"]  # the share was counted once, when it was made

    r = await api.client.post(url, json=complete(), headers=pat)
    assert r.status == 409 and (await r.json())["error"] == "emergency_already_completed"
    r = await api.client.get("/api/v1/decisions", headers=pat)
    assert (await r.json())["awaiting_justification"] == []
    stats = await _stats(api)
    assert (stats["emergency_justifications_open"], stats["emergency_justifications_overdue"]) == (0, 0)
    assert stats["shares"] == 1 and stats["decisions"] == 1


async def test_a_complete_share_has_nothing_to_complete(api: Api, alice: Any) -> None:
    body = await _shared(api, alice, complete())
    assert "emergency" not in body
    r = await api.client.post(
        f"/api/v1/shares/{body['share_id']}/justification", json=complete(), headers=api.auth("pat", "practitioner")
    )
    assert r.status == 409 and (await r.json())["error"] == "not_emergency_share"


async def test_not_immediate_still_needs_every_answer(api: Api, alice: Any) -> None:
    await api.add_recipient("alice", alice)
    draft = minimal()
    draft["rules"]["5_safety_wellbeing"]["risk_level"] = "significant_harm"
    r = await api.share(b"x", ["alice"], draft)
    assert r.status == 422 and (await r.json())["error"] == "justification_incomplete"


async def test_the_panel_is_told_it_may_share_at_once(api: Api) -> None:
    r = await api.client.post(
        "/api/v1/justifications/validate", json=minimal("dfe-2024"), headers=api.auth("pat", "practitioner")
    )
    body = await r.json()
    assert body["valid"] is False and body["emergency"]["allowed"] is True
    assert body["emergency"]["complete_within_hours"] == 24 and body["emergency"]["owed"]
    r = await api.client.post(
        "/api/v1/justifications/validate", json=complete(), headers=api.auth("pat", "practitioner")
    )
    preview = (await r.json())["emergency"]
    assert preview["allowed"] is True and preview["owed"] == []  # complete: nothing owed


async def test_an_organisation_sets_its_own_deadline(
    aiohttp_client: Any, settings: Settings, keys: HomeKeys, token: Any, alice: Any, tmp_path: Path
) -> None:
    (tmp_path / "safeshare.toml").write_text('[policies]\nemergency_complete_within_hours = { "test-org" = 4 }\n')
    assert load_settings(tmp_path).policies.emergency_hours == (("test-org", 4),)
    own = dataclasses.replace(settings, policies=PolicySettings(emergency_hours=(("test-org", 4),)))
    api = Api(await aiohttp_client(create_app(own, keys)), token)
    start = api.gateway.now()
    body = await _shared(api, alice, minimal())
    assert body["emergency"]["complete_by"].startswith((start + timedelta(hours=4)).strftime("%Y-%m-%dT%H"))
    (tmp_path / "safeshare.toml").write_text('[policies]\nemergency_complete_within_hours = { "test-org" = 0 }\n')
    with pytest.raises(ValueError, match="emergency_complete_within_hours"):
        load_settings(tmp_path)
