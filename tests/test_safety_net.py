"""Issue 17, the seed's safety net: a decision not to share about a child (or an adult at risk) facing
significant harm or immediate risk is challenged by the policy's data, flagged, listed for the DSL, counted
and marked in the subject report. Pure validator table first, then a real app on a real SQLite file."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.justification import Policy, PolicyRegistry, Problem
from tests.conftest import Api, example
from tests.test_cli import safeshare, serve

POLICY = PolicyRegistry.builtin().default
REASON = "rules.7_record.not_shared_reason"
NET = "rules.7_record.safety_net"
NEVER_ENOUGH = ["consent_refused", "no_agreement", "third_party_information", "no_lawful_basis"]
SIGNOFF = {
    "name": "Dana Lee",
    "role": "designated_safeguarding_lead",
    "reasoning": "The requester could not be verified; I will refer to children's social care myself today.",
    "at": "2026-12-03T09:30:00Z",
}
PROTECTED = {
    "by": "Northshire children's social care (MASH)",
    "at": "2026-12-02T16:00:00Z",
    "reference": "MASH-2026-118",
}


def refused_case(
    role: str = "child", risk: str = "significant_harm", reason: str = "no_lawful_basis"
) -> dict[str, Any]:
    """The issue's case: unexplained bruising, a disclosure of being hit, consent refused, 'so we will not refer'."""
    d = example("share")
    d["decision"] = "not_share"
    del d["data_categories"], d["rules"]["1_lawful_basis"], d["rules"]["6_necessary_proportionate"]
    d["subjects"][0]["role"] = role
    d["rules"]["2_openness"] = {"agreement_sought": True}
    d["rules"]["4_transparency"] = {"consent": "refused", "will_inform": "already"}
    d["rules"]["5_safety_wellbeing"]["risk_level"] = risk
    d["rules"]["7_record"] = {"rationale": "Parent refused consent, so we will not refer.", "not_shared_reason": reason}
    return d


def codes(problems: list[Problem]) -> list[tuple[int | None, str, str]]:
    return [(p.rule, p.field, p.code) for p in problems]


# -- the validator table ---------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", NEVER_ENOUGH)
@pytest.mark.parametrize("risk", ["immediate", "significant_harm"])
def test_reasons_never_enough_are_refused_for_a_child(reason: str, risk: str) -> None:
    problems = POLICY.validate(refused_case(risk=risk, reason=reason))
    assert codes(problems) == [
        (7, REASON, "reason_never_enough"),
        (7, NET, "not_share_despite_risk_needs_signoff"),
    ]
    message = next(p.message for p in problems if p.field == REASON)
    assert "should NEVER be used as an excuse for not sharing information" in message
    assert "reasonable cause to suspect that a child may be suffering" in message
    assert message.endswith("Share with children's social care instead.")
    assert "Parent refused" not in message  # never echoes what was typed


@pytest.mark.parametrize("reason", NEVER_ENOUGH)
def test_reasons_never_enough_are_refused_for_an_adult_at_risk_naming_adult_social_care(reason: str) -> None:
    problems = POLICY.validate(refused_case(role="adult_at_risk", reason=reason))
    assert (7, REASON, "reason_never_enough") in codes(problems)
    message = next(p.message for p in problems if p.field == REASON)
    assert message.endswith("Share with adult social care instead.")


@pytest.mark.parametrize("reason", NEVER_ENOUGH)
@pytest.mark.parametrize("release", ["senior_signoff", "already_protected"])
def test_such_a_reason_is_recorded_only_with_another_route_or_a_sign_off(reason: str, release: str) -> None:
    """Never enough on their own: with the release (another route, or a named senior who has seen it) the
    decision can be recorded — challenged and flagged, never just filed."""
    d = refused_case(reason=reason)
    assert (7, REASON, "reason_never_enough") in codes(POLICY.validate(d))
    d["rules"]["7_record"]["safety_net"] = {release: SIGNOFF if release == "senior_signoff" else PROTECTED}
    assert POLICY.validate(d) == []
    assert [n.id for n in POLICY.safety_nets_for(d)] == ["not_share_despite_risk"]


def test_accepted_when_already_protected_by_another_route() -> None:
    d = refused_case(reason="other_route")
    d["rules"]["7_record"]["rationale"] = "Children's social care already hold this and are acting."
    d["rules"]["7_record"]["safety_net"] = {"already_protected": PROTECTED}
    assert POLICY.validate(d) == []
    assert [n.id for n in POLICY.safety_nets_for(d)] == ["not_share_despite_risk"]


@pytest.mark.parametrize("role", ["child", "adult_at_risk"])
@pytest.mark.parametrize("reason", ["unverified_requester", "not_held", "risk_to_third_party", "other_route"])
def test_accepted_with_a_named_seniors_sign_off(role: str, reason: str) -> None:
    d = refused_case(role=role, reason=reason)
    d["rules"]["7_record"]["safety_net"] = {"senior_signoff": SIGNOFF}
    assert POLICY.validate(d) == []


@pytest.mark.parametrize("reason", ["unverified_requester", "not_held", "other_route"])
def test_other_reasons_still_need_another_route_or_a_sign_off(reason: str) -> None:
    assert codes(POLICY.validate(refused_case(reason=reason))) == [(7, NET, "not_share_despite_risk_needs_signoff")]


@pytest.mark.parametrize("risk", ["risk_of_harm", "welfare_need", "none_identified"])
@pytest.mark.parametrize("reason", NEVER_ENOUGH)
def test_lower_risk_levels_are_unaffected(risk: str, reason: str) -> None:
    d = refused_case(risk=risk, reason=reason)
    assert POLICY.validate(d) == []
    assert POLICY.safety_nets_for(d) == [] and POLICY.notices(d) == []


@pytest.mark.parametrize("role", ["carer", "alleged_perpetrator", "third_party"])
def test_only_children_and_adults_at_risk_trigger_it(role: str) -> None:
    d = refused_case(role=role)
    assert POLICY.validate(d) == []


def test_the_domain_examples_stay_valid_and_unflagged() -> None:
    for name in ("share", "not-share"):
        assert POLICY.validate(example(name)) == []
        assert POLICY.safety_nets_for(example(name)) == []


def test_a_share_decision_is_never_challenged() -> None:
    d = example("share")
    d["rules"]["5_safety_wellbeing"]["risk_level"] = "immediate"
    assert POLICY.validate(d) == [] and POLICY.notices(d) == []
    d["rules"]["7_record"]["safety_net"] = {"senior_signoff": SIGNOFF}
    assert codes(POLICY.validate(d)) == [(7, NET, "share_has_safety_net")]


@pytest.mark.parametrize(
    ("net", "expected"),
    [
        ({}, [(7, NET, "safety_net_empty")]),
        ({"senior_signoff": {**SIGNOFF, "role": "colleague"}}, [(7, f"{NET}.senior_signoff.role", "enum")]),
        ({"senior_signoff": {**SIGNOFF, "at": "yesterday"}}, [(7, f"{NET}.senior_signoff.at", "invalid_time")]),
        (
            {"senior_signoff": {**SIGNOFF, "at": "2026-12-03T09:30:00"}},
            [(7, f"{NET}.senior_signoff.at", "invalid_time")],
        ),
        ({"senior_signoff": {**SIGNOFF, "reasoning": "  "}}, [(7, f"{NET}.senior_signoff.reasoning", "blank")]),
        (
            {"senior_signoff": {k: v for k, v in SIGNOFF.items() if k != "name"}},
            [(7, f"{NET}.senior_signoff.name", "required")],
        ),
        (
            {"already_protected": {**PROTECTED, "reference": "x" * 201}},
            [(7, f"{NET}.already_protected.reference", "too_long")],
        ),
        (
            {"already_protected": {"by": "MASH"}},
            [(7, f"{NET}.already_protected.at", "required"), (7, f"{NET}.already_protected.reference", "required")],
        ),
    ],
)
def test_the_release_is_checked_field_by_field(net: dict[str, Any], expected: list[tuple[int, str, str]]) -> None:
    d = refused_case(reason="unverified_requester")
    d["rules"]["7_record"]["safety_net"] = net
    assert codes(POLICY.validate(d)) == expected


def test_the_notice_gives_the_principle_and_the_quick_route() -> None:
    [notice] = POLICY.notices(refused_case())
    assert notice["id"] == "not_share_despite_risk" and notice["share_with"] == ["children's social care"]
    assert "should always share information with children’s social care" in notice["principle"]
    assert notice["instead"]["label"] == "Share with children's social care instead"
    assert notice["instead"]["set"]["decision"] == "share"
    assert notice["instead"]["set"]["purpose.code"] == "referral"
    assert notice["instead"]["set"][REASON] is None
    assert notice["release_field"] == NET


# -- the rule is data: another edition gets it by data, and a broken block is refused ------------------


def _edition(change: Any) -> Policy:
    document = copy.deepcopy(POLICY.schema)
    document["x-policy"] = {**document["x-policy"], "id": "test-edition", "version": "1"}
    change(document)
    return Policy.from_document(document)


def test_another_edition_brings_its_own_rule_as_data() -> None:
    def change(doc: dict[str, Any]) -> None:
        net = doc["x-safety-nets"][0]
        net["refuse"]["values"] = ["consent_refused"]
        net["share_with"] = [{"service": "the local authority's front door"}]

    edition = _edition(change)
    assert codes(edition.validate(refused_case(reason="no_lawful_basis"))) == [
        (7, NET, "not_share_despite_risk_needs_signoff")
    ]
    problems = edition.validate(refused_case(reason="consent_refused"))
    assert any(p.message.endswith("Share with the local authority's front door instead.") for p in problems)
    without = _edition(lambda doc: doc.pop("x-safety-nets"))
    assert without.validate(refused_case()) == []


@pytest.mark.parametrize(
    "breakage",
    [
        lambda doc: doc.__setitem__("x-safety-nets", {}),
        lambda doc: doc["x-safety-nets"][0].pop("refuse"),
        lambda doc: doc["x-safety-nets"][0].__setitem__("when", {"type": 12}),
        lambda doc: doc["x-safety-nets"][0].__setitem__("share_with", []),
        lambda doc: doc["x-safety-nets"][0]["refuse"].__setitem__("values", "consent_refused"),
    ],
)
def test_a_malformed_safety_net_block_is_refused_at_load(breakage: Any) -> None:
    with pytest.raises(ValueError):
        _edition(breakage)


# -- through the API, the ledger, the DSL's list, the statistics and the subject report -------------------


async def test_the_issue_case_is_refused_then_recorded_with_a_sign_off_and_flagged(api: Api) -> None:
    h = api.auth("pat", "practitioner", "Northshire Primary")
    r = await api.client.post("/api/v1/decisions", json=refused_case(), headers=h)
    assert r.status == 422
    body = await r.json()
    assert body["error"] == "justification_incomplete"
    assert {(p["rule"], p["field"], p["code"]) for p in body["problems"]} == {
        (7, REASON, "reason_never_enough"),
        (7, NET, "not_share_despite_risk_needs_signoff"),
    }
    for reason in ("third_party_information", "no_agreement"):
        r = await api.client.post("/api/v1/decisions", json=refused_case(reason=reason), headers=h)
        assert r.status == 422 and REASON in {p["field"] for p in (await r.json())["problems"]}
    assert await api.ledger() == []  # nothing recorded

    signed = refused_case(reason="unverified_requester")
    signed["rules"]["7_record"]["safety_net"] = {"senior_signoff": SIGNOFF}
    r = await api.client.post("/api/v1/decisions", json=signed, headers=h)
    assert r.status == 201, await r.text()
    assert (await r.json())["flags"] == ["not_share_despite_risk"]
    protected = refused_case(role="adult_at_risk", reason="other_route")
    protected["subjects"][0]["ref"] = "ADULT-7"
    protected["rules"]["5_safety_wellbeing"]["at_risk"] = ["ADULT-7"]
    protected["rules"]["7_record"]["safety_net"] = {"already_protected": PROTECTED}
    r = await api.client.post(
        "/api/v1/decisions", json={"justification": protected}, headers=api.auth("sam", "practitioner", "Leominster GP")
    )
    assert r.status == 201, await r.text()
    # An unflagged decision not to share, for contrast.
    r = await api.client.post("/api/v1/decisions", json=example("not-share"), headers=h)
    assert r.status == 201 and "flags" not in await r.json()

    entries = await api.ledger(kind="decision")
    assert [e["entry"].get("flags") for e in entries] == [None, ["not_share_despite_risk"], ["not_share_despite_risk"]]
    assert entries[2]["entry"]["justification"]["rules"]["7_record"]["safety_net"]["senior_signoff"] == SIGNOFF
    assert entries[1]["entry"]["justification"]["rules"]["7_record"]["safety_net"]["already_protected"] == PROTECTED

    # The DSL's list: auditors only; newest first; by organisation. An organisation's auditor sees its own
    # organisation's decisions only (tenancy); the partnership's auditor sees every organisation's.
    path = "/api/v1/decisions/not-shared-despite-risk"
    assert (await api.client.get(path, headers=h)).status == 403
    own = api.auth("olga", "auditor", "Northshire Primary")
    assert [d["actor"]["sub"] for d in (await (await api.client.get(path, headers=own)).json())["decisions"]] == ["pat"]
    r = await api.client.get(path, params={"org": "Leominster GP"}, headers=own)
    assert (await r.json())["decisions"] == []
    auditor = api.auth("audrey", "partnership_auditor", "Northshire Primary")
    listed = (await (await api.client.get(path, headers=auditor)).json())["decisions"]
    assert [d["subjects"] for d in listed] == [["ADULT-7"], ["CASE-2026-0412"]]
    assert listed[1]["safety_net"] == {"senior_signoff": SIGNOFF} and listed[1]["risk_level"] == "significant_harm"
    assert listed[1]["not_shared_reason"] == "unverified_requester" and listed[1]["actor"]["sub"] == "pat"
    mine = (await (await api.client.get(path, params={"org": "Northshire Primary"}, headers=auditor)).json())[
        "decisions"
    ]
    assert [d["actor"]["sub"] for d in mine] == ["pat"]
    page = await (await api.client.get(path, params={"limit": "1"}, headers=auditor)).json()
    rest = await (await api.client.get(path, params={"cursor": page["next_cursor"]}, headers=auditor)).json()
    assert [d["index"] for d in page["decisions"] + rest["decisions"]] == [d["index"] for d in listed]
    r = await api.client.get(path, params={"from": "not a time"}, headers=auditor)
    assert r.status == 400 and (await r.json())["field"] == "from"

    # Statistics: counted per month, apart from other decisions not to share.
    stats = await (await api.client.get("/api/v1/ledger/stats", headers=auditor)).json()
    assert stats["totals"]["not_shared_despite_risk"] == 2
    assert stats["totals"]["decisions_not_to_share"] == 3
    [month] = stats["months"]
    assert month["not_shared_despite_risk"] == 2 and month["decisions_not_to_share"] == 3

    # The subject report marks the flagged decision.
    r = await api.client.get(
        "/api/v1/ledger/report", params={"subject": "CASE-2026-0412", "format": "json"}, headers=auditor
    )
    report = await r.json()
    flagged = [e for e in report["events"] if e.get("flags")]
    assert [e["flags"] for e in flagged] == [["not_share_despite_risk"]]
    assert report["not_shared_despite_risk"] == [flagged[0]["index"]]
    html = await (
        await api.client.get("/api/v1/ledger/report", params={"subject": "CASE-2026-0412"}, headers=auditor)
    ).text()
    assert "Decision not to share despite risk of significant harm or immediate risk" in html
    assert "Dana Lee" in html and "Designated safeguarding lead" in html  # the policy's label, not its code


async def test_validate_shows_the_principle_while_the_draft_is_still_open(api: Api) -> None:
    h = api.auth("pat", "practitioner")
    r = await api.client.post("/api/v1/justifications/validate", json=refused_case(), headers=h)
    body = await r.json()
    assert body["valid"] is False
    [notice] = body["safety_nets"]
    assert notice["instead"]["label"] == "Share with children's social care instead"
    assert json.dumps(notice).find("Parent refused") == -1
    r = await api.client.post("/api/v1/justifications/validate", json=example("not-share"), headers=h)
    assert (await r.json())["safety_nets"] == []


# -- the CLI, against a real `safeshare serve` -------------------------------------------------------------


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    home = tmp_path / "home"
    with serve(home, tmp_path / "server.log") as url:
        yield home, url


def test_cli_decide_and_the_dsls_list(running: tuple[Path, str], tmp_path: Path) -> None:
    home, url = running
    pt = safeshare(home, "token", "issue", "--sub", "pat", "--role", "practitioner", "--org", "Northshire Primary")
    dsl = safeshare(home, "token", "issue", "--sub", "dana", "--role", "auditor", "--org", "Northshire Primary")
    refused = tmp_path / "refused.json"
    refused.write_text(json.dumps(refused_case()))
    r = safeshare(
        home, "decide", "--gateway", url, "--token", pt.stdout.strip(), "--justification", str(refused), check=False
    )
    assert r.returncode == 1 and "reason_never_enough" not in r.stdout
    assert "rule 7" in r.stderr and "children's social care" in r.stderr
    signed = refused_case(reason="not_held")
    signed["rules"]["7_record"]["safety_net"] = {"senior_signoff": SIGNOFF}
    ok = tmp_path / "signed.json"
    ok.write_text(json.dumps(signed))
    r = safeshare(home, "decide", "--gateway", url, "--token", pt.stdout.strip(), "--justification", str(ok))
    assert json.loads(r.stdout)["flags"] == ["not_share_despite_risk"]

    listed = ["not-shared-despite-risk", "--gateway", url, "--token", dsl.stdout.strip()]
    r = safeshare(home, *listed)
    assert "pat (Northshire Primary) subjects CASE-2026-0412: significant_harm, reason not_held" in r.stdout
    assert "signed off by Dana Lee (designated_safeguarding_lead) at 2026-12-03T09:30:00Z" in r.stdout
    assert "1 decision(s) not to share despite risk" in r.stderr
    assert len(json.loads(safeshare(home, *listed, "--json", "--org", "Northshire Primary").stdout)) == 1
    assert json.loads(safeshare(home, *listed, "--json", "--org", "Elsewhere").stdout) == []
    r = safeshare(home, "not-shared-despite-risk", "--gateway", url, "--token", pt.stdout.strip(), check=False)
    assert r.returncode == 1 and "forbidden" in r.stderr
