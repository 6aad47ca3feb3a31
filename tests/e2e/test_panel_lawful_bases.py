"""The share panel in headless Chromium asks issue 19's questions only where they apply: which duty, only for legal
obligation; the three adult-at-risk tests, only for an adult at risk; a child's own views, only for a child; the
caveat on the information, only when its accuracy cannot be confirmed. A routine referral (the domain example) is
entered without meeting any of them, and raises no problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Browser, Gateway, wait_until
from tests.e2e.panel import fill, open_panel, problems, settle
from tests.e2e.webmail import Webmail

SHARE = json.loads((Path(__file__).parents[1] / "fixtures" / "justifications" / "justification-share.json").read_text())


def reveal(panel: Any) -> None:
    """Press Share on an incomplete justification: problems show only after interaction (issue 13), and Share
    then shows every one of them instead of sharing."""
    settle(panel)
    # aria-disabled (not disabled): the button stays focusable and answers with the error summary.
    panel.get_by_role("button", name="Share", exact=True).click(force=True)


def shown(panel: Any, path: str) -> bool:
    return bool(panel.locator(f'[data-field="{path}"]').first.is_visible())


def test_the_panel_asks_the_lawful_basis_questions_only_where_they_apply(
    page: Any, browser: Browser, webmail: Webmail, gateway: Gateway
) -> None:
    browser.sign_in(gateway.tokens["practitioner"])
    page.goto(webmail.gmail_url())
    panel = open_panel(page)
    settle(panel)

    # The routine referral: none of the situation-specific questions is on screen, and the example is valid.
    fill(panel, SHARE)
    settle(panel)
    assert problems(panel) == {}
    for path in (
        "rules.1_lawful_basis.legal_duty",
        "rules.1_lawful_basis.professional",
        "rules.1_lawful_basis.p10_consent_would_prejudice",
        "rules.6_necessary_proportionate.information_quality",
        "subjects.0.adult_at_risk_tests",
        "subjects.0.economic_risk",
    ):
        assert not shown(panel, path), path
    # Asked of everyone: this person's own agreement (optional), and for a child, their views.
    assert shown(panel, "subjects.0.consent")
    assert shown(panel, "subjects.0.consent.childs_views")

    # Legal obligation: the duty is asked; back to public task, the question (and its answer) goes away.
    basis = '[data-path="rules.1_lawful_basis.article_6"]'
    panel.locator(basis).select_option("legal_obligation")
    wait_until(lambda: shown(panel, "rules.1_lawful_basis.legal_duty"), what="the duty question")
    reveal(panel)
    settle(panel)
    assert "rules.1_lawful_basis.legal_duty" in problems(panel)
    duty = panel.locator('[data-path="rules.1_lawful_basis.legal_duty"]')
    duty.select_option("court_order")
    wait_until(lambda: shown(panel, "rules.1_lawful_basis.legal_duty_detail"), what="the court order's name")
    panel.locator(basis).select_option("public_task")
    wait_until(lambda: not shown(panel, "rules.1_lawful_basis.legal_duty"), what="the duty question to go")
    # What was typed stays on screen, hidden, should the question apply again; it is not part of the answer
    # (panel.js readState skips questions that do not apply), so the justification below has no problem.
    settle(panel)
    assert problems(panel) == {}

    # An adult at risk: the three tests of paragraph 18(3) appear for that person; a child's views do not.
    panel.locator('[data-path="subjects.0.role"]').select_option("adult_at_risk")
    wait_until(lambda: shown(panel, "subjects.0.adult_at_risk_tests"), what="the 18(3) tests")
    assert not shown(panel, "subjects.0.consent.childs_views")
    reveal(panel)
    settle(panel)
    assert "subjects.0.adult_at_risk_tests" in problems(panel)
    for test in ("care_and_support_needs", "experiencing_or_at_risk_of_harm", "unable_to_protect_self"):
        panel.locator(f'input[data-path="subjects.0.adult_at_risk_tests.{test}"][value="true"]').check()
    settle(panel)
    assert problems(panel) == {}

    # Accuracy not confirmed: how far the information can be relied on is asked.
    panel.locator('input[data-path="rules.6_necessary_proportionate.accurate_and_current"][value="false"]').check()
    wait_until(lambda: shown(panel, "rules.6_necessary_proportionate.information_quality"), what="the caveat questions")
    reveal(panel)
    settle(panel)
    assert "rules.6_necessary_proportionate.information_quality" in problems(panel)
