"""Starting a routine referral from the answers the partnership agreed (issue 13), in headless Chromium with the
extension, against a real `safeshare serve` of its own whose data exchange agreement an administrator loaded with
`safeshare agreement add --standard-answers`: the panel offers the agreed answers under the agreement, fills the
legal questions from them, asks the practitioner to confirm each rule they filled before Share is allowed, and
the share is recorded with the whole justification and the agreement. The same referral's work is measured as in
test_panel_measure.py (the Keystroke-Level Model), and must be well under the issue's three minutes."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyrage
import pytest

from tests.conftest import example
from tests.e2e.conftest import RECIPIENTS, Browser, Gateway
from tests.e2e.open_page import assert_accessible, axe_source
from tests.e2e.panel import Action, fill, open_panel, settle
from tests.e2e.test_panel_measure import TARGET_SECONDS, klm_estimate, measure
from tests.e2e.test_webmail_share import result_facts
from tests.e2e.webmail import Webmail
from tests.test_cli import safeshare, serve

#: Today's estimate for an average typist (126.9 s) plus about 5%.
CEILING_SECONDS = 133.0
TITLE = "Referral to children's social care after a disclosure"
#: The rules whose answers the partnership agreed for this kind of referral; the rest are each case's own.
AGREED_RULES = ("1_lawful_basis", "2_openness", "4_transparency", "6_necessary_proportionate", "7_record")


def agreed_answers() -> dict[str, Any]:
    """The example referral's legal answers, as a partnership's agreement would state them (no urgency: each case's)."""
    rules = {k: copy.deepcopy(v) for k, v in recorded()["rules"].items() if k in AGREED_RULES}
    del rules["6_necessary_proportionate"]["urgency"]
    return {"purpose": {"code": "referral"}, "rules": rules}


def recorded() -> dict[str, Any]:
    """The example referral as the panel records it: without the reason for not telling the person, a question
    the form asks only when they will not be told (here they are told afterwards)."""
    j = example("share")
    del j["rules"]["4_transparency"]["reason"]
    return j


def own_answers() -> dict[str, Any]:
    """What the practitioner still answers for this child: who, the decision, what happened, advice, risk, urgency."""
    j = example("share")
    return {
        "subjects": j["subjects"],
        "decision": j["decision"],
        "purpose": {"description": j["purpose"]["description"]},
        "data_categories": j["data_categories"],
        "rules": {
            "3_advice": j["rules"]["3_advice"],
            "5_safety_wellbeing": j["rules"]["5_safety_wellbeing"],
            "6_necessary_proportionate": {"urgency": j["rules"]["6_necessary_proportionate"]["urgency"]},
        },
    }


@pytest.fixture(scope="module")
def partnership(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway of this module's own (the session's gateway's agreements are other tests' to count)."""
    tmp = tmp_path_factory.mktemp("partnership")
    home = tmp / "home"
    with serve(home, tmp / "server.log") as url:
        alice = pyrage.x25519.Identity.generate()
        name, org, email = RECIPIENTS["alice"]
        safeshare(
            home, "recipient", "add", "alice", "--name", name, "--org", org, "--email", email,
            "--age-recipient", str(alice.to_public()),
        )  # fmt: skip
        doc = tmp / "dea.txt"
        doc.write_text("E2E children's data exchange agreement - a test document, not any real partnership's.\n")
        sets = tmp / "standard.json"
        sets.write_text(json.dumps([{"title": TITLE, "policy": "hmg-2018", "answers": agreed_answers()}]))
        safeshare(
            home, "agreement", "add", "e2e-children-dea", "--title", "E2E Children's DEA", "--kind", "data_exchange",
            "--scope", "children", "--signatory", org, "--signatory", "e2e", "--review-date", "2099-12-31",
            "--document", str(doc), "--standard-answers", str(sets),
        )  # fmt: skip
        gw = Gateway(home, url, {"alice": alice}, {})
        gw.tokens = {"practitioner": gw.token("pat", "practitioner"), "auditor": gw.token("audrey", "auditor")}
        yield gw


@pytest.fixture
def signed_in(browser: Browser, partnership: Gateway, gateway: Gateway) -> Iterator[Gateway]:
    browser.storage("local", {"gatewayUrl": partnership.url})
    browser.sign_in(partnership.tokens["practitioner"])
    try:
        yield partnership
    finally:  # the module's browser goes back to the session's gateway
        browser.storage("local", {"gatewayUrl": gateway.url})
        browser.sign_in(gateway.tokens["practitioner"])


def start_from_agreed(panel: Any) -> None:
    use = panel.get_by_role("button", name=f"Start from the agreed answers: {TITLE}")
    use.wait_for()
    use.click()


def test_a_referral_from_the_agreed_answers_is_confirmed_rule_by_rule_and_recorded_whole(
    page: Any, webmail: Webmail, signed_in: Gateway
) -> None:
    page.goto(webmail.gmail_url())  # a draft to alice@example.org (Hereford MASH, a signatory)
    panel = open_panel(page)
    panel.get_by_role("button", name=f"Start from the agreed answers: {TITLE}").wait_for()
    assert_accessible(panel, axe_source(), "agreed answers offered")
    # By keyboard: Enter on the offer, and the focus goes to the first question still to answer (the decision).
    panel.get_by_role("button", name=f"Start from the agreed answers: {TITLE}").focus()
    panel.page.keyboard.press("Enter")
    panel.wait_for_function("() => !!document.querySelector('[data-confirm-rule]')")
    focused = panel.evaluate("() => [document.activeElement.dataset.path, document.activeElement.checked]")
    assert focused == ["decision", False], focused
    assert_accessible(panel, axe_source(), "agreed answers awaiting confirmation")
    # The agreed answers are in the form, the agreement is ticked, and the status says what happened.
    assert panel.locator('input[data-path="agreements"]').input_value() == "e2e-children-dea"
    assert panel.locator('[data-path="rules.7_record.rationale"]').input_value().startswith("Reasonable cause")
    assert "are in the form" in panel.locator(".standard-answers-used").inner_text()
    # Only the rules the set answered ask for a confirmation: advice and risk are the practitioner's own.
    boxes = panel.locator("[data-confirm-rule]")
    assert sorted(boxes.evaluate_all("l => l.map(b => b.dataset.confirmRule)")) == ["1", "2", "4", "6", "7"]

    fill(panel, own_answers())
    settle(panel)
    share = panel.get_by_role("button", name="Share", exact=True)
    assert share.is_disabled(), "the agreed answers must be confirmed before sharing"

    for i in range(boxes.count() - 1):
        boxes.nth(i).check()
    settle(panel)
    assert share.is_disabled() and "still to confirm" in panel.locator("#status").inner_text()
    # Closed and opened again, the answers are back and so is what is still to be confirmed: carried-over
    # answers do not become answers taken as checked.
    panel.wait_for_timeout(600)  # the answers are kept a moment after the last change
    page.keyboard.press("Escape")
    page.locator("iframe.safeshare-panel-frame").wait_for(state="detached")
    panel = open_panel(page)
    boxes = panel.locator("[data-confirm-rule]")
    states = boxes.evaluate_all("l => l.map(b => [b.dataset.confirmRule, b.checked])")
    assert states == [["1", True], ["2", True], ["4", True], ["6", True], ["7", False]], states
    settle(panel)
    share = panel.get_by_role("button", name="Share", exact=True)
    assert share.is_disabled() and "still to confirm" in panel.locator("#status").inner_text()
    boxes.nth(boxes.count() - 1).check()
    settle(panel)
    share.click()
    share_id = result_facts(panel)["Share reference"]

    entries = signed_in.get("/api/v1/ledger?kind=share")["entries"]
    [entry] = [e["entry"] for e in entries if e["entry"]["share_id"] == share_id]
    assert [a["id"] for a in entry["agreements"]] == ["e2e-children-dea"]
    # Where the answers came from is recorded with them: the set, the rules confirmed, nothing changed.
    assert entry["started_from"] == {
        "agreement": "e2e-children-dea",
        "version": 1,
        "set": TITLE,
        "confirmed_rules": [1, 2, 4, 6, 7],
        "changed": [],
    }
    expected = recorded()
    assert entry["justification"]["rules"] == expected["rules"]  # agreed and own answers together, in full
    assert entry["justification"]["purpose"] == expected["purpose"]


def test_the_routine_referral_from_agreed_answers_is_well_under_three_minutes(
    page: Any, webmail: Webmail, signed_in: Gateway
) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(webmail.gmail_url())
    panel = open_panel(page)
    actions: list[Action] = []
    start_from_agreed(panel)
    actions.append(("choose", 0))
    settle(panel)
    fill(panel, own_answers(), log=actions)
    boxes = panel.locator("[data-confirm-rule]")
    for i in range(boxes.count()):
        boxes.nth(i).check()
        actions.append(("tick", 0))
    settle(panel)
    filled = measure(panel)
    panel.get_by_role("button", name="Share", exact=True).click()
    assert result_facts(panel)["Share reference"]
    typist = klm_estimate(actions)
    figures = {
        "referral_from_agreed_answers": {
            "answers": len(actions),
            "characters_typed": sum(chars for _, chars in actions),
            "klm_seconds": {
                "average_typist": typist["seconds"],
                "skilled_typist": klm_estimate(actions, "K_skilled")["seconds"],
            },
            "filled_in": filled,
            "klm_operators": {k: v for k, v in typist.items() if k.endswith("_count")},
        }
    }
    print(json.dumps(figures))
    if out := os.environ.get("SAFESHARE_MEASURE"):
        Path(out).with_name(Path(out).stem + "-agreed.json").write_text(json.dumps(figures, indent=2))
    # Well under the 3 minutes (the same referral typed from scratch is about 256 s), and a ceiling just
    # above today's estimate (127 s) so that a form that grows fails here.
    assert typist["seconds"] < CEILING_SECONDS < TARGET_SECONDS * 0.75, figures
