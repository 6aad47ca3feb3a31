"""The share panel in headless Chromium against a real `safeshare serve`: the safety net (issue 17) shown the
moment "Do not share" meets significant harm, its quick route to a referral, a senior's sign-off recorded and
flagged; and "I shared this another way" (issue 18) recorded with whom, what and when."""

from __future__ import annotations

import copy
from typing import Any

from tests.conftest import example
from tests.e2e.conftest import Browser, Gateway
from tests.e2e.panel import fill, open_panel, problems, settle
from tests.e2e.webmail import Webmail
from tests.test_safety_net import SIGNOFF, refused_case

GMAIL_BODY = '[aria-label="Message Body"]'


def result_facts(panel: Any) -> dict[str, str]:
    panel.wait_for_selector("#result:not([hidden])")
    return dict(
        zip(
            panel.locator("#result-facts dt").all_text_contents(),
            panel.locator("#result-facts dd").all_text_contents(),
            strict=True,
        )
    )


def test_the_principle_appears_when_not_sharing_despite_significant_harm(
    page: Any, webmail: Webmail, gateway: Gateway
) -> None:
    page.goto(webmail.gmail_url())
    panel = open_panel(page)
    settle(panel)
    net = panel.locator("#safety-net")
    release = panel.locator('[data-field="rules.7_record.safety_net"]')
    assert net.count() == 0 and release.is_hidden()

    case = refused_case()
    # First an adult at risk with no risk identified: nothing to say.
    calm = copy.deepcopy(case)
    calm["rules"]["5_safety_wellbeing"]["risk_level"] = "none_identified"
    fill(panel, calm)
    settle(panel)
    assert net.count() == 0 and release.is_hidden()

    # Significant harm to a child, and "Do not share": the principle, in plain words, where the risk is chosen.
    panel.locator('[data-path="rules.5_safety_wellbeing.risk_level"]').select_option("significant_harm")
    settle(panel)
    net.wait_for()
    assert panel.get_by_role("heading", name="Stop: share with children's social care").is_visible()
    text = net.text_content()
    assert "should always share information with children’s social care" in text
    assert "should NEVER be used as an excuse for not sharing information" in text
    assert panel.locator('[data-field="rules.5_safety_wellbeing.risk_level"] + #safety-net').count() == 1
    shown = problems(panel)
    assert "never enough on its own" in shown["rules.7_record.not_shared_reason"]
    assert "Share with children's social care instead." in shown["rules.7_record.not_shared_reason"]
    assert "designated safeguarding lead or manager" in shown["rules.7_record.safety_net"]
    assert release.is_visible()
    assert panel.get_by_role("button", name="Record decision not to share").is_disabled()
    assert "A safeguarding principle applies: read it under Risk level." in panel.get_by_role("status").text_content()

    # A sign-off begun, then the quick route: the form becomes a referral, keeping the subject, the risk and the
    # assessment; the sign-off (which a share cannot carry) is cleared with its section.
    signoff = "rules.7_record.safety_net.senior_signoff"
    panel.locator(f'[data-path="{signoff}.name"]').fill("Dana Lee")
    panel.locator(f'[data-path="{signoff}.role"][value="manager"]').check()
    panel.get_by_role("button", name="Share with children's social care instead").click()
    settle(panel)
    assert "rules.7_record.safety_net" not in problems(panel)
    assert panel.locator(f'[data-path="{signoff}.name"]').input_value() == ""
    assert not panel.locator(f'[data-path="{signoff}.role"][value="manager"]').is_checked()
    assert panel.locator('[data-path="decision"][value="share"]').is_checked()
    assert panel.locator('[data-path="purpose.code"]').input_value() == "referral"
    assert (
        panel.locator('[data-path="purpose.description"]')
        .input_value()
        .startswith("Referral to children's social care")
    )
    assert panel.locator('[data-path="rules.7_record.not_shared_reason"]').input_value() == ""
    assert panel.locator('[data-path="subjects.0.ref"]').input_value() == "CASE-2026-0412"
    assert panel.locator('[data-path="rules.5_safety_wellbeing.risk_level"]').input_value() == "significant_harm"
    assert net.count() == 0 and release.is_hidden()
    panel.get_by_role("button", name="Share", exact=True).click(force=True)  # problems show once Share is pressed
    assert "rules.1_lawful_basis" in problems(panel)  # now a share: its own rules apply


def test_a_seniors_sign_off_records_the_decision_flagged_for_the_dsl(
    page: Any, webmail: Webmail, gateway: Gateway
) -> None:
    page.goto(webmail.gmail_url())
    before = page.locator(GMAIL_BODY).first.inner_text()
    panel = open_panel(page)
    case = refused_case(reason="unverified_requester")
    fill(panel, case)
    settle(panel)
    record = panel.get_by_role("button", name="Record decision not to share")
    assert record.is_disabled()
    fill(panel, {"senior_signoff": SIGNOFF}, "rules.7_record.safety_net.")
    settle(panel)
    assert problems(panel) == {}
    record.click()
    facts = result_facts(panel)
    assert "flagged for your designated safeguarding lead" in panel.locator("#result-note").text_content()
    index = int(facts["Ledger entry"])
    listed = gateway.get("/api/v1/decisions/not-shared-despite-risk")["decisions"]
    mine = [d for d in listed if d["index"] == index]
    assert len(mine) == 1 and mine[0]["safety_net"]["senior_signoff"]["name"] == "Dana Lee"
    assert page.locator(GMAIL_BODY).first.inner_text() == before


def test_i_shared_this_another_way(page: Any, webmail: Webmail, gateway: Gateway, browser: Browser) -> None:
    page.goto(webmail.gmail_url())
    before = page.locator(GMAIL_BODY).first.inner_text()
    panel = open_panel(page)
    fill(panel, example("share"))
    settle(panel)
    toggle = panel.get_by_role("button", name="I shared this another way (phone, meeting…)")
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    settle(panel)
    record = panel.get_by_role("button", name="Record that I shared it another way")
    assert record.is_visible() and record.is_disabled()
    assert panel.get_by_role("button", name="Share", exact=True).is_disabled()
    box = panel.locator("#elsewhere")
    assert (
        "How it was shared must be one of" in box.locator('[data-dfield="disclosure.channel"] .problem').text_content()
    )
    assert "What was shared must be" in box.locator('[data-dfield="disclosure.summary"] .problem').text_content()

    panel.get_by_label("By phone", exact=True).check()
    panel.get_by_label("Their name", exact=True).fill("Sam Okafor")
    panel.get_by_label("Their role", exact=True).fill("Duty social worker")
    panel.get_by_label("Their organisation", exact=True).fill("Northshire MASH")
    panel.get_by_label("What did you share? A sentence or two.").fill("Told the MASH duty line about the bruising.")
    settle(panel)
    assert problems(panel) == {}
    assert box.locator(".problem:not([hidden])").count() == 0
    assert panel.get_by_role("status").text_content() == "Ready to record that you shared this another way."
    record.click()
    facts = result_facts(panel)
    assert facts["Shared"].startswith("by phone to Sam Okafor (Duty social worker, Northshire MASH) at ")
    index = int(facts["Ledger entry"])
    [entry] = [
        e["entry"] for e in gateway.get("/api/v1/ledger?kind=decision&decision=share")["entries"] if e["index"] == index
    ]
    assert entry["disclosure"]["channel"] == "phone"
    assert entry["disclosure"]["with"] == [
        {"name": "Sam Okafor", "role": "Duty social worker", "organisation": "Northshire MASH"}
    ]
    assert entry["actor"]["sub"] == "pat" and "payload" not in entry
    # Nothing went through SafeShare, and the draft is as it was.
    assert page.locator(GMAIL_BODY).first.inner_text() == before

    # The sender's view: the extension's Sent tab lists it, in words, beside the shares made through SafeShare.
    sent = browser.context.new_page()
    try:
        sent.goto(f"chrome-extension://{browser.extension_id}/recipient/inbox.html")
        sent.get_by_role("tab", name="Sent").click()
        item = sent.locator(f'#elsewhere-list li[data-entry="{index}"]')
        item.wait_for(timeout=15000)
        assert "Shared by phone to Sam Okafor (Duty social worker, Northshire MASH)" in item.inner_text()
    finally:
        sent.close()
