"""Answers known already are offered, not typed again (issue 13): in headless Chromium on the Gmail fixture, the
question "Which organisation asked?" (a policy property marked `x-offer: recipient-organisations`) and each
person's organisation under "Shared another way" offer the organisations of the e-mail's recipients, as found in
the SafeShare directory. Nothing is filled in until the practitioner chooses; the answer stays in the ordinary
field, where it can be changed, and it is what the ledger records. axe-core finds no WCAG 2.2 A/AA violation."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from tests.conftest import example
from tests.e2e.conftest import RECIPIENTS, Gateway
from tests.e2e.open_page import assert_accessible, axe_source
from tests.e2e.panel import fill, open_panel, problems, settle
from tests.e2e.test_webmail_share import result_facts
from tests.e2e.webmail import Webmail

FIELD = '[data-path="request.organisation"]'
OFFERS = '.suggestions[data-for="f-request-organisation"]'


def recipient_orgs(panel: Any) -> list[str]:
    """The organisations of the recipients the panel found in the directory, in the e-mail's order."""
    panel.locator("#recipient-list li").first.wait_for()
    orgs: list[str] = []
    for line in panel.locator("#recipient-list li").all_inner_texts():
        m = re.search(r" — .+?, (.+) \(in the SafeShare directory\)$", line)
        if m and m.group(1) not in orgs:
            orgs.append(m.group(1))
    return orgs


def test_recipients_organisations_offered_never_filled_silently(page: Any, webmail: Webmail, gateway: Gateway) -> None:
    page.goto(webmail.gmail_url())
    panel = open_panel(page)
    orgs = recipient_orgs(panel)
    assert orgs and set(orgs) <= {org for _, org, _ in RECIPIENTS.values()}
    fill(panel, example("share"))
    settle(panel)
    field = panel.locator(FIELD)
    offers = panel.locator(OFFERS)
    offers.wait_for(state="attached")
    # Offered, one button per organisation, and nothing filled in by itself.
    assert offers.get_by_role("button").all_inner_texts() == [f"Use {org}" for org in orgs]
    assert field.input_value() == ""
    assert offers.get_attribute("aria-label") == "Suggested answers for “Which organisation asked?”"

    # Answering a request: the organisation is one click; the page says what it filled in.
    field.wait_for(state="visible")
    offers.get_by_role("button", name=f"Use {orgs[0]}").click()
    assert field.input_value() == orgs[0]
    assert offers.locator(".suggestion-note").inner_text() == f"Filled in “{orgs[0]}”. You can change it."
    assert panel.evaluate("() => document.activeElement?.dataset.path") == "request.organisation"
    assert_accessible(panel, axe_source(), "recipients' organisations offered, one chosen")
    # It stays an ordinary answer: the practitioner can change it.
    field.fill(f"{orgs[0]} (duty desk)")
    field.blur()
    request = {"name": "Sam Reed", "position": "Duty manager", "received_on": "2026-11-24"}
    for key, value in request.items():
        path = f"request.{key}"
        panel.locator(f'[data-path="{path}"]').fill(value)
        panel.locator(f'[data-path="{path}"]').blur()
    settle(panel)
    assert problems(panel) == {}
    panel.get_by_role("button", name="Share", exact=True).click()
    share_id = result_facts(panel)["Share reference"]
    q = urllib.parse.urlencode({"kind": "share", "limit": "200"})
    entries = gateway.get(f"/api/v1/ledger?{q}")["entries"]
    entry = next(e["entry"] for e in entries if e["entry"]["share_id"] == share_id)
    assert entry["justification"]["request"]["organisation"] == f"{orgs[0]} (duty desk)"


def test_shared_another_way_offers_the_recipients_organisations(page: Any, webmail: Webmail, gateway: Gateway) -> None:
    page.goto(webmail.gmail_url())
    panel = open_panel(page)
    orgs = recipient_orgs(panel)
    panel.get_by_role("button", name="I shared this another way (phone, meeting…)").click()
    first = panel.locator('[data-dpath="disclosure.with.0.organisation"]')
    offers = panel.locator('.suggestions[data-for="f-disclosure-with-0-organisation"]')
    offers.wait_for()
    assert first.input_value() == ""
    offers.get_by_role("button", name=f"Use {orgs[-1]}").click()
    assert first.input_value() == orgs[-1]
    # A person added later gets the same offers.
    panel.get_by_role("button", name="Add another person").click()
    panel.locator('.suggestions[data-for="f-disclosure-with-1-organisation"]').wait_for()
    assert panel.locator('[data-dpath="disclosure.with.1.organisation"]').input_value() == ""
    assert_accessible(panel, axe_source(), "shared another way, organisations offered")
