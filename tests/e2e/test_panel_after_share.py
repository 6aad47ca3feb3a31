"""After a share (issue 13), in each webmail in headless Chromium: nothing about the case is left in the clear
(the draft's subject is replaced by a neutral one, while the recipients still receive the original subject
inside the encrypted email), Close and Escape close the panel, and the panel re-opened on the shared draft
shows the share's result instead of an empty form."""

from __future__ import annotations

import email
import email.policy
from typing import Any

import pytest

from tests.conftest import example
from tests.e2e.conftest import Gateway
from tests.e2e.open_page import assert_accessible, axe_source
from tests.e2e.panel import fill, open_panel, settle
from tests.e2e.test_webmail_share import result_facts
from tests.e2e.webmail import Webmail

CASES = {
    # webmail: (subject field, recipient who decrypts, the original subject)
    "gmail": ('input[name="subjectbox"]', "alice", "Referral: CASE-2026-0412 — injury disclosed at school"),
    "outlook": ('input[aria-label="Add a subject"]', "bob", "Strategy discussion notes — ADULT-77"),
    "roundcube": ('input[name="_subject"]', "carol", None),
}


def url_for(webmail: Webmail, name: str, request: pytest.FixtureRequest) -> str:
    if name == "gmail":
        return webmail.gmail_url()
    if name == "outlook":
        return webmail.outlook_url()
    request.getfixturevalue("roundcube")
    return webmail.roundcube_url()


@pytest.mark.parametrize("name", list(CASES))
def test_subject_is_neutral_and_panel_closes_and_reopens_on_the_result(
    page: Any, webmail: Webmail, gateway: Gateway, name: str, request: pytest.FixtureRequest
) -> None:
    field, rid, original = CASES[name]
    page.goto(url_for(webmail, name, request))
    before = page.locator(field).input_value()
    assert original is None or before == original
    panel = open_panel(page)
    # Before sharing, the practitioner is told exactly what the email will still show.
    assert "will carry only the recipients' addresses and names" in panel.locator("#in-clear").text_content()
    fill(panel, example("share"))
    settle(panel)
    panel.get_by_role("button", name="Share", exact=True).click()
    facts = result_facts(panel)
    share_id = facts["Share reference"]

    # Nothing about the case stays in the clear: the subject names only SafeShare and the reference.
    subject = page.locator(field).input_value()
    assert subject == f"Information shared with you securely (SafeShare {share_id})"
    assert before not in subject
    assert_accessible(panel, axe_source(), f"shared ({name})")
    note = panel.locator("#result-note").text_content()
    assert f"under the subject “{subject}”" in note
    # The recipient still gets the original subject, inside the encrypted email.
    message = email.message_from_bytes(gateway.fetch(share_id, rid), policy=email.policy.default)
    assert message["Subject"] == before

    # Escape closes the panel after a share (it used to do nothing), focus back on the button.
    frame = page.locator("iframe.safeshare-panel-frame")
    page.keyboard.press("Escape")
    frame.wait_for(state="detached")
    assert page.evaluate("() => document.activeElement.textContent") == "Share securely"

    # Re-opened on the shared draft: the share's result, not an empty form; Close closes it.
    again = open_panel(page)
    assert again.get_by_role("heading", name="Shared securely").is_visible()
    assert result_facts(again)["Share reference"] == share_id
    assert again.locator("#form").is_hidden()
    assert_accessible(again, axe_source(), f"re-opened on the shared draft ({name})")
    assert again.get_by_role("button", name="Share", exact=True).is_hidden()
    # By keyboard, with Space: a button acts on Space's release, so the panel's out-of-process iframe goes only
    # after the whole key press was delivered (as Escape, which the panel handles on keyup). A pointer click, or
    # Enter (which acts on key down), removes the frame while Playwright still waits on it for the rest of the
    # input: the click timed out in CI ("performing click action"), and Enter hung a worker for 5 minutes. Space
    # has hung too, once (2026-12-05: `keyboard.press` never returned after the frame went; the e2e watchdog killed
    # the browser and the retry passed). A way to close by keyboard that no input event outlives is still wanted.
    again.get_by_role("button", name="Close").focus()
    page.keyboard.press("Space")
    frame.wait_for(state="detached")


def test_notification_names_the_sender_by_name(page: Any, browser: Any, webmail: Webmail, gateway: Gateway) -> None:
    """ "Sent by Pat Jones (e2e)", from the token's name claim, instead of the bare identifier."""
    from tests.test_cli import safeshare

    token = safeshare(
        gateway.home, "token", "issue", "--sub", "pat", "--role", "practitioner", "--org", "e2e", "--name", "Pat Jones"
    ).stdout.split()[-1]
    browser.sign_in(token)
    page.goto(webmail.gmail_url())
    panel = open_panel(page)
    fill(panel, example("share"))
    settle(panel)
    panel.get_by_role("button", name="Share", exact=True).click()
    result_facts(panel)
    body = page.locator('[aria-label="Message Body"]').inner_text()
    assert "Sent by Pat Jones (e2e)." in body
