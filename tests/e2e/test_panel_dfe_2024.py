"""The share panel in headless Chromium renders whichever policy the practitioner's organisation works to: for an
organisation configured on DfE 2024 (`[policies] org_default`), the 2024 rules in their order, rule 5 (protect
identities) included, checked live with that edition's rule numbers (issue 14)."""

from __future__ import annotations

import copy
from typing import Any

from tests.e2e.conftest import DFE_ORG, Browser, Gateway
from tests.e2e.panel import fill, open_panel, problems, settle
from tests.e2e.webmail import Webmail
from tests.test_policy_editions import dfe


def test_the_panel_renders_dfe_2024_for_an_organisation_on_it(
    page: Any, browser: Browser, webmail: Webmail, gateway: Gateway
) -> None:
    browser.sign_in(gateway.token("dana", "practitioner", org=DFE_ORG))
    page.goto(webmail.gmail_url())
    panel = open_panel(page)
    settle(panel)
    assert "2024" in panel.locator("#policy-title").text_content()
    legends = [t.strip() for t in panel.locator("fieldset.rule > legend > span:first-child").all_text_contents()]
    assert legends[0] == "Rule 1 — Protection comes first"
    assert "Rule 5 — Protect identities" in legends
    numbers = [int(t.split()[1]) for t in legends if t.startswith("Rule ")]
    assert numbers == sorted(numbers) and set(numbers) == set(range(1, 8))
    question = panel.locator('[data-field="rules.5_protect_identities.identities_at_risk"]').text_content()
    assert "Could anyone be harmed" in question

    # A complete 2024 justification raises no problem; without the handling instruction, rule 5 asks for it.
    draft = dfe("share")
    incomplete = copy.deepcopy(draft)
    del incomplete["rules"]["5_protect_identities"]["instruction"]
    fill(panel, incomplete)
    settle(panel)
    panel.get_by_role("button", name="Share", exact=True).click(force=True)  # problems show once Share is pressed
    shown = problems(panel)
    assert list(shown) == ["rules.5_protect_identities.instruction"], shown
    assert (
        "must be filled in when someone's identity or whereabouts must be protected"
        in shown["rules.5_protect_identities.instruction"]
    )
    panel.locator('[data-path="rules.5_protect_identities.instruction"]').fill(
        draft["rules"]["5_protect_identities"]["instruction"]
    )
    settle(panel)
    assert problems(panel) == {}
    browser.sign_in(gateway.tokens["practitioner"])
