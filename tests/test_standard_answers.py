"""An agreement's standard answers (issue 13): what a set may hold (the pure check, against the real policies),
how an administrator records them (API and CLI, with the ledger entry), how a practitioner's panel gets them (the
offers), and that a share started from them is an ordinary, complete justification."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.justification import PolicyRegistry
from gateway.standard_answers import MAX_SETS, StandardAnswersError, check_standard_answers

from .conftest import Api, example
from .test_agreements import CHILDREN_DEA, add_agreement, entries
from .test_cli import safeshare

POLICIES = {p.id: p for p in PolicyRegistry.builtin().all()}
#: The rules whose answers are the same for every referral of this kind; rules 3 and 5 are each case's own.
STANDARD_RULES = ("1_lawful_basis", "2_openness", "4_transparency", "6_necessary_proportionate", "7_record")


def referral_set(title: str = "Referral after a disclosure") -> dict[str, Any]:
    j = example("share")
    rules = {k: copy.deepcopy(v) for k, v in j["rules"].items() if k in STANDARD_RULES}
    del rules["6_necessary_proportionate"]["urgency"]  # how urgent is each case's own
    return {"title": title, "policy": "hmg-2018", "answers": {"purpose": {"code": "referral"}, "rules": rules}}


def test_a_set_of_the_legal_answers_is_accepted_as_given() -> None:
    [checked] = check_standard_answers([referral_set("  Referral   after a disclosure ")], POLICIES)
    assert checked["title"] == "Referral after a disclosure"  # spaces tidied, as agreements' titles are
    assert checked["answers"] == referral_set()["answers"]
    assert check_standard_answers(None, POLICIES) == () and check_standard_answers([], POLICIES) == ()


def _with(path: str, value: Any) -> dict[str, Any]:
    s = referral_set()
    node = s["answers"]
    *parents, last = path.split(".")
    for k in parents:
        node = node.setdefault(k, {})
    node[last] = value
    return s


@pytest.mark.parametrize(
    ("item", "field"),
    [
        (_with("subjects", [{"ref": "CASE-1", "role": "child"}]), "standard_answers.0.answers.subjects"),
        (_with("decision", "share"), "standard_answers.0.answers.decision"),
        (_with("agreements", ["children-dea"]), "standard_answers.0.answers.agreements"),
        (
            _with("rules.5_safety_wellbeing.at_risk", ["CASE-2026-0412"]),
            "standard_answers.0.answers.rules.5_safety_wellbeing.at_risk.0",
        ),
        (
            _with("rules.1_lawful_basis.article_6", "because_we_can"),
            "standard_answers.0.answers.rules.1_lawful_basis.article_6",
        ),
        (_with("rules.9_extra", {"x": "y"}), "standard_answers.0.answers.rules.9_extra"),
        (_with("purpose.description", "   "), "standard_answers.0.answers.purpose.description"),
        ({**referral_set(), "policy": "no-such-policy"}, "standard_answers.0.policy"),
        ({**referral_set(), "title": ""}, "standard_answers.0.title"),
        ({**referral_set(), "answers": {}}, "standard_answers.0.answers"),
        ({**referral_set(), "extra": 1}, "standard_answers.0"),
    ],
)
def test_a_set_that_names_a_person_decides_or_breaks_the_policy_is_refused_with_the_field(
    item: dict[str, Any], field: str
) -> None:
    with pytest.raises(StandardAnswersError) as caught:
        check_standard_answers([item], POLICIES)
    assert caught.value.field == field
    assert "CASE-2026-0412" not in caught.value.message  # the message never quotes a value


def test_titles_are_unique_and_sets_are_bounded() -> None:
    with pytest.raises(StandardAnswersError) as caught:
        check_standard_answers([referral_set("A"), referral_set("a")], POLICIES)
    assert caught.value.field == "standard_answers.1.title"
    with pytest.raises(StandardAnswersError) as caught:
        check_standard_answers([referral_set(f"S{i}") for i in range(MAX_SETS + 1)], POLICIES)
    assert caught.value.field == "standard_answers"
    # Within the count, but too much text in all for the agreement's one ledger entry.
    big = [_with("rules.7_record.rationale", "x" * 3900) for _ in range(MAX_SETS)]
    for i, s in enumerate(big):
        s["title"] = f"S{i}"
        s["answers"]["rules"]["2_openness"]["explanation"] = "y" * 3900
    with pytest.raises(StandardAnswersError) as caught:
        check_standard_answers(big, POLICIES)
    assert caught.value.field == "standard_answers"


async def test_an_administrator_records_them_and_the_panel_is_offered_them(api: Api, alice: Any) -> None:
    await api.add_recipient("alice", alice, org="Hereford MASH")
    body = await add_agreement(api, **CHILDREN_DEA, standard_answers=[referral_set()])
    assert body["agreement"]["standard_answers"] == [referral_set()]
    [entry] = await entries(api, kind="agreement_add")
    assert entry["agreement"]["standard_answers"] == [referral_set()]  # what was agreed, in the ledger
    params = {"recipients": "alice", "purpose": "referral", "categories": "identity", "roles": "child"}
    r = await api.client.get("/api/v1/agreements/offers", params=params, headers=api.auth("pat", "practitioner"))
    [offer] = (await r.json())["agreements"]
    assert offer["standard_answers"] == [referral_set()]

    # A share whose justification started from them: the case's own answers added, the agreement named.
    answers = referral_set()["answers"]
    own = example("share")
    j = {**own, "rules": {**own["rules"], **copy.deepcopy(answers["rules"])}, "agreements": ["children-dea"]}
    j["rules"]["6_necessary_proportionate"]["urgency"] = "within_24h"
    r = await api.share(b"disclosure notes", ["alice"], j)
    assert r.status == 201, await r.text()
    [shared] = await entries(api, kind="share")
    assert shared["agreements"][0]["id"] == "children-dea"
    assert shared["justification"]["rules"]["1_lawful_basis"] == answers["rules"]["1_lawful_basis"]

    # A version without standard answers has none, and its entry does not mention them.
    body = await add_agreement(api, **{**CHILDREN_DEA, "review_date": "2099-04-30"})
    assert body["agreement"]["version"] == 2 and body["agreement"]["standard_answers"] == []
    newest = (await entries(api, kind="agreement_add"))[0]
    assert newest["agreement"]["version"] == 2 and "standard_answers" not in newest["agreement"]


async def test_a_bad_set_is_refused_and_nothing_is_recorded(api: Api) -> None:
    bad = _with("rules.5_safety_wellbeing.at_risk", ["CASE-2026-0412"])
    body = await add_agreement(api, status=422, **CHILDREN_DEA, standard_answers=[bad])
    assert body["error"] == "invalid_agreement"
    assert body["field"] == "standard_answers.0.answers.rules.5_safety_wellbeing.at_risk.0"
    assert "CASE-2026-0412" not in json.dumps(body)
    assert await entries(api, kind="agreement_add") == []
    r = await api.client.get("/api/v1/agreements/children-dea", headers=api.auth("pat", "practitioner"))
    assert r.status == 404


def test_the_cli_adds_them_from_a_file_and_lists_them(tmp_path: Path) -> None:
    home = tmp_path / "home"
    safeshare(home, "init")
    doc = tmp_path / "dea.txt"
    doc.write_text("Children's data exchange agreement\n")
    answers = tmp_path / "standard.json"
    answers.write_text(json.dumps([referral_set()]))
    base = (
        "agreement", "add", "children-dea", "--title", "Children DEA", "--kind", "data_exchange", "--scope",
        "children", "--signatory", "County Council", "--review-date", "2099-06-30", "--document", str(doc),
    )  # fmt: skip
    safeshare(home, *base, "--standard-answers", str(answers))
    [listed] = json.loads(safeshare(home, "agreement", "list", "--json").stdout)
    assert listed["standard_answers"] == [referral_set()]
    assert "standard answers: Referral after a disclosure (hmg-2018)" in safeshare(home, "agreement", "list").stdout
    answers.write_text(json.dumps([_with("subjects", [{"ref": "CASE-1"}])]))
    r = safeshare(home, *base, "--standard-answers", str(answers), check=False)
    assert r.returncode != 0 and "standard_answers.0.answers.subjects" in r.stderr
    r = safeshare(home, *base, "--standard-answers", str(tmp_path / "missing.json"), check=False)
    assert r.returncode == 2 and "cannot read the standard answers" in r.stderr
    shown = json.loads(safeshare(home, "agreement", "show", "children-dea", "--json").stdout)
    assert [a["version"] for a in shown["versions"]] == [1]  # neither refusal added a version


def from_agreed(**changes: Any) -> dict[str, Any]:
    """The example share's justification, started from `referral_set()` under the children's agreement."""
    own = example("share")
    j = {**own, "rules": {**own["rules"], **copy.deepcopy(referral_set()["answers"]["rules"])}}
    j["rules"]["6_necessary_proportionate"]["urgency"] = "within_24h"
    j["agreements"] = ["children-dea"]
    for path, value in changes.items():
        node = j
        *parents, last = path.split(".")
        for k in parents:
            node = node[k]
        node[last] = value
    return j


STARTED = {
    "agreement": "children-dea",
    "version": 1,
    "set": "Referral after a disclosure",
    "confirmed_rules": [1, 2, 4, 6, 7],
}


async def test_a_share_records_the_agreed_answers_it_started_from_and_which_it_changed(api: Api, alice: Any) -> None:
    await api.add_recipient("alice", alice, org="Hereford MASH")
    await add_agreement(api, **CHILDREN_DEA, standard_answers=[referral_set()])
    r = await api.share(b"notes", ["alice"], from_agreed(), started_from=STARTED)
    assert r.status == 201, await r.text()
    # One agreed answer reworded: the record names it (computed by the gateway, not taken from the client).
    reworded = from_agreed(**{"rules.7_record.rationale": "Our own words for this child."})
    r = await api.share(b"notes", ["alice"], reworded, started_from=STARTED)
    assert r.status == 201, await r.text()
    first, second = reversed(await entries(api, kind="share"))
    assert first["started_from"] == {**STARTED, "changed": []}
    assert second["started_from"] == {**STARTED, "changed": ["rules.7_record.rationale"]}
    # The auditor's subject report says so in words: which set, which rules were confirmed, what was changed.
    r = await api.client.get(
        "/api/v1/ledger/report", params={"subject": "CASE-2026-0412"}, headers=api.auth("audrey", "auditor")
    )
    page = await r.text()
    assert r.status == 200 and page.count("Started from the partnership&#x27;s agreed answers") == 2
    assert "confirmed rules 1, 2, 4, 6, 7 for this case" in page
    assert "Every agreed answer was kept as agreed." in page
    assert "Agreed answers changed or left out: rules.7_record.rationale." in page
    # A share that did not start from a set says nothing about one.
    r = await api.share(b"notes", ["alice"], from_agreed())
    assert r.status == 201 and "started_from" not in (await entries(api, kind="share"))[0]


@pytest.mark.parametrize(
    ("started", "justification", "field"),
    [
        ({**STARTED, "confirmed_rules": [1, 2, 4, 6]}, None, "share.started_from.confirmed_rules"),
        ({**STARTED, "set": "Something else"}, None, "share.started_from.set"),
        ({**STARTED, "version": 2}, None, "share.started_from.agreement"),
        (STARTED, {"agreements": []}, "share.started_from.agreement"),
        ({**STARTED, "extra": True}, None, "share.started_from"),
        ("children-dea", None, "share.started_from"),
    ],
)
async def test_a_starting_point_not_confirmed_or_not_named_is_refused_and_nothing_is_shared(
    api: Api, alice: Any, started: Any, justification: dict[str, Any] | None, field: str
) -> None:
    await api.add_recipient("alice", alice, org="Hereford MASH")
    await add_agreement(api, **CHILDREN_DEA, standard_answers=[referral_set()])
    j = from_agreed()
    if justification is not None:
        j.update(justification)
        if not j["agreements"]:
            del j["agreements"]
    r = await api.share(b"notes", ["alice"], j, started_from=started)
    body = await r.json()
    assert r.status == 422 and body["error"] == "invalid_started_from" and body["field"] == field, body
    assert await entries(api, kind="share") == []


async def test_a_decision_not_to_share_records_its_starting_point_too(api: Api) -> None:
    not_share = example("not-share")
    declined = {
        "title": "A request with no safeguarding purpose",
        "policy": "hmg-2018",
        "answers": {"rules": {k: not_share["rules"][k] for k in ("2_openness", "4_transparency")}},
    }
    await add_agreement(api, **CHILDREN_DEA, standard_answers=[referral_set(), declined])
    started = {"agreement": "children-dea", "version": 1, "set": declined["title"], "confirmed_rules": [2, 4]}
    r = await api.client.post(
        "/api/v1/decisions",
        json={"justification": {**not_share, "agreements": ["children-dea"]}, "started_from": started},
        headers=api.auth("pat", "practitioner"),
    )
    body = await r.json()
    assert r.status == 201, body
    [entry] = await entries(api, kind="decision")
    assert entry["started_from"] == {**started, "changed": []}
    r = await api.client.post(
        "/api/v1/decisions",
        json={
            "justification": {**not_share, "agreements": ["children-dea"]},
            "started_from": {**started, "confirmed_rules": [2]},
        },
        headers=api.auth("pat", "practitioner"),
    )
    body = await r.json()
    assert r.status == 422 and body["field"] == "started_from.confirmed_rules", body
