"""Seek advice first (issue 14) in headless Chromium against a real `safeshare serve`: the practitioner asks from
the share panel (only the purpose and data categories travel), the designated safeguarding lead answers on the
extension's page, and the practitioner cites the answer in the share; the share's ledger entry records it."""

from __future__ import annotations

import secrets
from typing import Any

from tests.conftest import example
from tests.e2e.conftest import Browser, Gateway
from tests.e2e.open_page import assert_accessible, axe_source
from tests.e2e.panel import fill, open_panel, settle
from tests.e2e.recipient_fixtures import error_signs, field_error, focused_id, follow_summary_link, summary_links
from tests.e2e.test_panel_safety_net import result_facts
from tests.e2e.webmail import Webmail


def test_ask_answer_and_cite(page: Any, webmail: Webmail, gateway: Gateway, browser: Browser) -> None:
    practitioner = gateway.token(f"pia-{secrets.token_hex(4)}", "practitioner")
    browser.sign_in(practitioner)
    page.goto(webmail.gmail_url())
    panel = open_panel(page)
    draft = example("share")
    del draft["policy"]
    fill(panel, draft)
    settle(panel)
    panel.get_by_text("Ask for advice (without naming anyone)").click()
    panel.get_by_label("Who should advise you?").select_option("dsl")
    panel.get_by_role("button", name="Ask for advice").click()
    panel.get_by_text("Asked (adv_").wait_for()
    advice_id = panel.locator("#advice-status").text_content().split("(")[1].split(")")[0]
    assert "not answered yet" in panel.locator(f'#advice-list li[data-advice="{advice_id}"]').inner_text().lower()
    [question] = [e["entry"] for e in gateway.get("/api/v1/ledger?kind=advice_question")["entries"]
                  if e["entry"]["advice"]["id"] == advice_id]  # fmt: skip
    assert question["subjects"] == [] and "CASE-2026-0412" not in str(question)

    # The designated safeguarding lead of the same organisation answers on the extension's page.
    browser.sign_in(gateway.token("dee", "dsl"))
    adviser = browser.context.new_page()
    try:
        adviser.goto(f"chrome-extension://{browser.extension_id}/recipient/inbox.html")
        item = adviser.locator(f'#advice-list li[data-advice="{advice_id}"]')
        item.wait_for(timeout=15000)
        assert "referral" in item.inner_text()
        assert_accessible(adviser, axe_source(), "adviser's questions")
        # Sent empty: the GOV.UK error summary links to the answer, which shows its own message (issue 13).
        item.get_by_role("button", name="Send answer").click()
        field = f"advice-answer-{advice_id}"
        assert summary_links(adviser) == [("Write your advice before sending it.", field)]
        assert (
            focused_id(adviser) == "error-summary"
            and field_error(adviser, field) == "Write your advice before sending it."
        )
        assert_accessible(adviser, axe_source(), "adviser's questions: an answer sent empty")
        assert follow_summary_link(adviser, "Write your advice") == field
        item.get_by_label("Your advice (recorded)").fill("Threshold met: refer to the MASH today.")
        assert error_signs(adviser) == []
        item.get_by_role("button", name="Send answer").click()
        adviser.get_by_text("Your advice was sent and recorded.").wait_for(timeout=15000)
    finally:
        adviser.close()

    # Back to the practitioner: the answer is there to cite, and the share records it.
    browser.sign_in(practitioner)
    panel.get_by_role("button", name="Check for answers").click()
    cite = panel.locator(f'#advice-list li[data-advice="{advice_id}"]')
    cite.get_by_text("Threshold met: refer to the MASH today.").wait_for()
    cite.get_by_label("Cite this advice in my justification").check()
    panel.get_by_role("button", name="Share", exact=True).click()
    facts = result_facts(panel)
    sid = facts["Share reference"]
    [entry] = [e["entry"] for e in gateway.get("/api/v1/ledger?kind=share")["entries"] if e["entry"]["share_id"] == sid]
    assert entry["advice"][0]["id"] == advice_id and entry["advice"][0]["answered_by"]["role"] == "dsl"
    assert entry["advice"][0]["answer"] == "Threshold met: refer to the MASH today."
