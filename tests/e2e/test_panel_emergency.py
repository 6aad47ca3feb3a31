"""Emergency share (issue 14) in headless Chromium against a real `safeshare serve`: a child at immediate risk is
shared with at once on the minimum answers (purpose, who, the risk, the lawful basis); the result says by when
the rest is owed; the Sent tab and the panel remind the practitioner; the justification completed from the panel
is recorded as a new ledger entry linked to the share, and the reminder goes."""

from __future__ import annotations

import json
import secrets
from typing import Any

from tests.conftest import example
from tests.e2e.conftest import Browser, Gateway
from tests.e2e.open_page import assert_accessible, axe_source
from tests.e2e.panel import fill, open_panel, problems, settle
from tests.e2e.test_panel_safety_net import result_facts
from tests.e2e.webmail import Webmail
from tests.test_cli import call
from tests.test_emergency import CHILD, minimal


def _owed(gateway: Gateway, token: str) -> list[dict[str, Any]]:
    status, body = call(gateway.url + "/api/v1/decisions?limit=1", token)
    assert status == 200, body
    return list(json.loads(body)["awaiting_justification"])


def test_shared_at_once_reminded_then_completed(
    page: Any, webmail: Webmail, gateway: Gateway, browser: Browser
) -> None:
    # A practitioner of their own, so that the reminder is theirs alone whatever else ran on this gateway.
    token = gateway.token(f"erin-{secrets.token_hex(4)}", "practitioner")
    browser.sign_in(token)
    page.goto(webmail.gmail_url())
    panel = open_panel(page)
    draft = minimal()
    del draft["policy"]
    fill(panel, draft)
    settle(panel)
    notice = panel.locator("#emergency")
    notice.wait_for()
    assert "You can share now." in notice.text_content()
    assert panel.get_by_role("status").text_content().startswith("Emergency share: you can share now;")
    share = panel.get_by_role("button", name="Share", exact=True)
    assert share.is_enabled()
    assert_accessible(panel, axe_source(), "panel with the emergency notice")

    share.click()
    facts = result_facts(panel)
    sid = facts["Share reference"]
    assert "Complete the justification by" in facts and int(facts["Answers still owed"]) > 0
    [(share_index, entry)] = [
        (e["index"], e["entry"])
        for e in gateway.get("/api/v1/ledger?kind=share")["entries"]
        if e["entry"]["share_id"] == sid
    ]
    assert entry["flags"] == ["emergency_share"] and entry["emergency"]["owed"]

    # The reminder, in the extension's Sent tab: the share, due (not yet overdue), and a count on the tab.
    sent = browser.context.new_page()
    try:
        sent.goto(f"chrome-extension://{browser.extension_id}/recipient/inbox.html")
        item = sent.locator(f'#owed-list li[data-share="{sid}"]')
        item.wait_for(timeout=15000)
        assert "due by" in item.inner_text()
        assert sent.locator("#owed-badge").inner_text() == "1 to complete"
        assert_accessible(sent, axe_source(), "Sent tab with a justification to complete")
    finally:
        sent.close()
    assert [o["share_id"] for o in _owed(gateway, token)] == [sid]

    # Complete it now, from the same form: the answers given are kept; the rest is filled in.
    panel.get_by_role("button", name="Complete the justification now").click()
    full = example("share")
    del full["policy"], full["subjects"], full["purpose"], full["decision"]
    full["rules"]["5_safety_wellbeing"] = {"at_risk": [CHILD]}
    del full["rules"]["1_lawful_basis"]
    full["rules"]["1_lawful_basis"] = {"article_9": "substantial_public_interest", "dpa_schedule_1": "p18_safeguarding"}
    fill(panel, full)
    settle(panel)
    record = panel.get_by_role("button", name="Record the completed justification")
    assert record.is_enabled(), (panel.get_by_role("status").text_content(), problems(panel))
    record.click()
    panel.wait_for_selector("#result:not([hidden]), #alert:not([hidden])")
    assert panel.locator("#alert").is_hidden(), panel.locator("#alert").text_content()
    facts = result_facts(panel)
    index = int(facts["Ledger entry"])
    assert int(facts["Completes ledger entry"]) == share_index
    [done] = [e for e in gateway.get("/api/v1/ledger?kind=emergency_completed")["entries"] if e["index"] == index]
    assert done["entry"]["share_id"] == sid and done["entry"]["completes"]["late"] is False
    assert _owed(gateway, token) == []
