"""The practitioner's flow in each webmail, in headless Chromium with the extension loaded, against a real
`safeshare serve`: the Share securely button, live golden-rules problems, a complete share that the recipient
fetches and decrypts (the email and every attachment, byte for byte), the draft replaced by a notification."""

from __future__ import annotations

import email
import email.policy
import time
from typing import Any

import pytest

from gateway.auth import EmbeddedIssuer
from gateway.config import Settings
from gateway.home import init_home
from tests.conftest import example
from tests.e2e.conftest import Browser, Gateway
from tests.e2e.open_page import assert_accessible, axe_source
from tests.e2e.panel import fill, open_panel, panel_frame, problems, settle
from tests.e2e.webmail import OUTLOOK, Webmail
from tests.test_cli import safeshare

GMAIL_BODY = '[aria-label="Message Body"]'
OUTLOOK_BODY = '[aria-label^="Message body"]'


def result_facts(panel: Any) -> dict[str, str]:
    panel.wait_for_selector("#result:not([hidden])")
    return dict(
        zip(
            panel.locator("#result-facts dt").all_text_contents(),
            panel.locator("#result-facts dd").all_text_contents(),
            strict=True,
        )
    )


def decrypted(gateway: Gateway, share_id: str, recipient: str) -> email.message.EmailMessage:
    return email.message_from_bytes(gateway.fetch(share_id, recipient), policy=email.policy.default)


def attachments_of(message: email.message.EmailMessage) -> dict[str, tuple[str, bytes]]:
    return {p.get_filename(): (p.get_content_type(), p.get_payload(decode=True)) for p in message.iter_attachments()}


def served(webmail: Webmail, prefix: str) -> dict[str, tuple[str, bytes]]:
    return {a.name: (a.content_type, a.data) for k, a in webmail.attachments.items() if k.startswith(prefix)}


def draft_state(page: Any, body: str, attachment: str) -> tuple[str, int]:
    return page.locator(body).first.inner_text(), page.locator(attachment).count()


@pytest.mark.parametrize("host", ["gmail", *OUTLOOK, "roundcube"])
def test_button_appears_in_each_webmail(page: Any, webmail: Webmail, host: str, request: pytest.FixtureRequest) -> None:
    if host == "gmail":
        url = webmail.gmail_url()
    elif host == "roundcube":
        request.getfixturevalue("roundcube")
        url = webmail.roundcube_url()
    else:
        url = webmail.outlook_url(host)
    page.goto(url)
    button = page.get_by_role("button", name="Share securely", exact=True)
    button.wait_for()
    assert button.count() == 1
    # Keyboard operable: Enter opens the panel (an extension page in an iframe) with focus at its top, Tab
    # moves through it, Escape closes it and gives focus back to the button.
    button.focus()
    page.keyboard.press("Enter")
    frame = page.locator("iframe.safeshare-panel-frame")
    frame.wait_for()
    assert frame.get_attribute("src").startswith("chrome-extension://")
    panel = panel_frame(page)
    panel.wait_for_function("() => document.activeElement?.tagName === 'H1'")
    page.keyboard.press("Tab")
    assert panel.evaluate("() => document.activeElement.textContent") == "Close"
    page.keyboard.press("Escape")
    frame.wait_for(state="detached")
    assert page.evaluate("() => document.activeElement.textContent") == "Share securely"


def test_gmail_incomplete_then_complete_share(page: Any, webmail: Webmail, gateway: Gateway) -> None:
    page.goto(webmail.gmail_url())
    original = page.locator(GMAIL_BODY).inner_text()
    panel = open_panel(page)
    settle(panel)
    share = panel.get_by_role("button", name="Share", exact=True)
    assert share.is_disabled()

    # Nothing entered yet: no error is shown, however incomplete the form (issue 13).
    assert problems(panel) == {}
    assert panel.locator(".problem:not([hidden]):not(:empty)").count() == 0

    # Partly filled: a problem shows only once its field is left; the others wait.
    panel.get_by_role("radio", name="Share", exact=True).check()
    panel.get_by_label("Describe the purpose in a sentence or two.").fill("Referral")
    ref = panel.get_by_label("What is their case or pseudonymous reference (not their name)?")
    ref.fill("Jane Smith")
    settle(panel)
    assert "subjects.0.ref" not in problems(panel)  # still being typed
    ref.press("Tab")
    settle(panel)
    shown = problems(panel)
    assert "not a name" in shown["subjects.0.ref"]
    assert "rules.1_lawful_basis" not in shown and "rules.2_openness.agreement_sought" not in shown
    assert panel.locator("#error-summary").is_hidden()
    assert share.is_disabled()  # announced as unavailable (aria-disabled), yet pressable
    assert "answers still needed" in panel.get_by_role("status").text_content()

    # Share pressed: every problem beside its field, counted per rule, and the GOV.UK error summary at the top,
    # focused, linking to each field.
    share.click(force=True)
    summary = panel.locator("#error-summary")
    summary.wait_for()
    assert panel.evaluate("() => document.activeElement.id") == "error-summary"
    shown = problems(panel)
    assert "must be filled in when sharing" in shown["rules.1_lawful_basis"]
    assert "must be filled in" in shown["rules.2_openness.agreement_sought"]
    assert "must be filled in" in shown["rules.6_necessary_proportionate"]
    assert panel.locator('[data-count-for="rules.1_lawful_basis"]').text_content() == "(1 problem)"
    assert panel.locator('[data-path="subjects.0.ref"]').get_attribute("aria-invalid") == "true"
    assert "problems to resolve" in panel.get_by_role("status").text_content()
    assert_accessible(panel, axe_source(), "error summary after Share")
    link = summary.get_by_role("link", name="What is their case or pseudonymous reference (not their name)?")
    link.click()
    assert panel.evaluate("() => document.activeElement.dataset.path") == "subjects.0.ref"

    fill(panel, example("share"))
    settle(panel)
    assert problems(panel) == {}
    assert panel.get_by_role("status").text_content() == "Ready to share."
    share.click()
    facts = result_facts(panel)
    share_id = facts["Share reference"]
    assert facts["Ledger entry"].isdigit() and facts["Available until"]

    # The draft now holds only the notification, without attachments.
    body = page.locator(GMAIL_BODY).inner_text()
    assert "Information has been shared with you securely" in body and share_id in body
    assert "bruising" not in body and body != original
    assert f"{gateway.url}/s/{share_id}" in body  # the gateway's landing page, which reveals nothing
    assert page.locator('a[href*="attid="]').count() == 0

    # The recipient decrypts the very email that was written, every attachment byte for byte.
    message = decrypted(gateway, share_id, "alice")
    assert message.get_content_type() == "multipart/mixed"
    assert message["To"] == "alice@example.org"
    assert message["Subject"] == "Referral: CASE-2026-0412 — injury disclosed at school"
    assert "bruising seen at 09:10 — école" in message.get_body(("plain",)).get_content()
    assert "<div>Dear Alice,</div>" in message.get_body(("html",)).get_content()
    assert attachments_of(message) == served(webmail, "gmail:")
    info = gateway.get(f"/api/v1/shares/{share_id}", "alice")
    assert info["payload_content_type"] == "message/rfc822"
    assert info["ledger_index"] == int(facts["Ledger entry"])


def test_outlook_share_to_and_cc(page: Any, webmail: Webmail, gateway: Gateway) -> None:
    page.goto(webmail.outlook_url("outlook.office365.com"))
    panel = open_panel(page)
    assert "bob@example.org" in panel.locator("#recipient-list").text_content()
    fill(panel, example("share"))
    settle(panel)
    panel.get_by_role("button", name="Share", exact=True).click()
    share_id = result_facts(panel)["Share reference"]
    body = page.locator(OUTLOOK_BODY).inner_text()
    assert share_id in body and "strategy discussion" not in body
    assert page.locator('[aria-label="Attachments"] [role="option"]').count() == 0
    for rid in ("bob", "alice"):
        message = decrypted(gateway, share_id, rid)
        assert message["Subject"] == "Strategy discussion notes — ADULT-77"
        assert message["Cc"] == "alice@example.org"
        assert "Notes from today's strategy discussion" in message.get_body(("plain",)).get_content()
        assert attachments_of(message) == served(webmail, "outlook:")


def test_roundcube_share(page: Any, webmail: Webmail, gateway: Gateway, roundcube: str) -> None:
    page.goto(webmail.roundcube_url())
    panel = open_panel(page)
    fill(panel, example("share"))
    settle(panel)
    panel.get_by_role("button", name="Share", exact=True).click()
    share_id = result_facts(panel)["Share reference"]
    assert share_id in page.locator("#composebody").input_value()
    assert page.locator("#attachment-list li").count() == 0
    message = decrypted(gateway, share_id, "carol")
    assert message["To"] == "carol@example.org"
    assert message.get_body(("plain",)).get_content().startswith("Dear Carol,")
    assert message.get_body(("html",)) is None  # a plain-text email stays plain
    assert attachments_of(message) == served(webmail, "roundcube:")


def test_gateway_down_leaves_the_draft_untouched(
    page: Any, browser: Browser, webmail: Webmail, gateway: Gateway
) -> None:
    page.goto(webmail.gmail_url())
    before = draft_state(page, GMAIL_BODY, 'a[href*="attid="]')
    panel = open_panel(page)
    fill(panel, example("share"))
    settle(panel)
    # The gateway goes away between filling in the form and choosing Share.
    from tests.test_cli import free_port

    browser.storage("local", {"gatewayUrl": f"http://127.0.0.1:{free_port()}"})
    panel.get_by_role("button", name="Share", exact=True).click()
    alert = panel.get_by_role("alert")
    alert.wait_for()
    assert "could not be reached" in alert.text_content()
    assert "Nothing was shared and your email has not been changed." in alert.text_content()
    assert draft_state(page, GMAIL_BODY, 'a[href*="attid="]') == before
    assert panel.get_by_role("button", name="Share", exact=True).is_disabled()


def test_expired_token_leaves_the_draft_untouched(
    page: Any, browser: Browser, webmail: Webmail, gateway: Gateway
) -> None:
    settings = Settings(home=gateway.home)
    keys = init_home(settings)
    expired = EmbeddedIssuer(keys.token_key, settings.issuer, settings.audience).issue(
        "pat", ["practitioner"], org="e2e", ttl=60, now=int(time.time()) - 3600
    )
    page.goto(webmail.outlook_url())
    before = draft_state(page, OUTLOOK_BODY, '[aria-label="Attachments"] [role="option"]')
    panel = open_panel(page)
    fill(panel, example("share"))
    settle(panel)
    browser.sign_in(expired)
    panel.get_by_role("button", name="Share", exact=True).click()
    alert = panel.get_by_role("alert")
    alert.wait_for()
    assert "sign-in has expired" in alert.text_content()
    assert draft_state(page, OUTLOOK_BODY, '[aria-label="Attachments"] [role="option"]') == before


def test_unknown_recipient_is_flagged_and_nothing_is_shared(page: Any, webmail: Webmail, gateway: Gateway) -> None:
    page.goto(webmail.gmail_url())
    # The practitioner also addressed someone the directory does not know.
    page.evaluate(
        """() => document.querySelector('[role=listbox][aria-label="CC recipients"]').insertAdjacentHTML('beforeend',
             '<div class="afV" role="option" data-hovercard-id="stranger@example.net">Stranger</div>')"""
    )
    before = draft_state(page, GMAIL_BODY, 'a[href*="attid="]')
    panel = open_panel(page)
    flagged = panel.locator("#recipient-list .unknown")
    assert "stranger@example.net" in flagged.text_content()
    assert "not in the SafeShare directory" in flagged.text_content()
    fill(panel, example("share"))
    settle(panel)
    assert problems(panel) == {}
    assert panel.get_by_role("button", name="Share", exact=True).is_disabled()
    assert "recipients need attention" in panel.get_by_role("status").text_content()
    assert draft_state(page, GMAIL_BODY, 'a[href*="attid="]') == before


def test_recipient_disabled_before_share_is_refused_in_words(
    page: Any, webmail: Webmail, gateway: Gateway, roundcube: str
) -> None:
    import pyrage

    dave = pyrage.x25519.Identity.generate()
    safeshare(
        gateway.home, "recipient", "add", "dave", "--name", "Dave", "--org", "Housing", "--email", "dave@example.org",
        "--age-recipient", str(dave.to_public()),
    )  # fmt: skip
    page.goto(webmail.roundcube_url())
    # The recipient as Roundcube shows it (its widget's chip; the hidden #_to field behind it is never read).
    page.evaluate(
        """() => { document.querySelector('#_to').value = 'Dave <dave@example.org>';
                   document.querySelector('ul.recipient-input li.recipient').innerHTML =
                     '<span class="name">Dave</span><span class="email">,dave@example.org</span>'; }"""
    )
    before = (page.locator("#composebody").input_value(), page.locator("#attachment-list li").count())
    panel = open_panel(page)
    fill(panel, example("share"))
    settle(panel)
    safeshare(gateway.home, "recipient", "disable", "dave")
    panel.get_by_role("button", name="Share", exact=True).click()
    alert = panel.get_by_role("alert")
    alert.wait_for()
    assert "not in the SafeShare directory or can no longer receive shares: dave" in alert.text_content()
    assert (page.locator("#composebody").input_value(), page.locator("#attachment-list li").count()) == before


def test_decision_not_to_share_is_recorded(page: Any, webmail: Webmail, gateway: Gateway, roundcube: str) -> None:
    page.goto(webmail.roundcube_url())
    before = (page.locator("#composebody").input_value(), page.locator("#attachment-list li").count())
    panel = open_panel(page)
    record = panel.get_by_role("button", name="Record decision not to share")
    assert record.is_disabled()
    fill(panel, example("not-share"))
    settle(panel)
    assert panel.get_by_role("button", name="Share", exact=True).is_disabled()
    record.click()
    facts = result_facts(panel)
    index = int(facts["Ledger entry"])
    entries = gateway.get("/api/v1/ledger?decision=not_share&subject=ADULT-88-1930")["entries"]
    mine = [e for e in entries if e["index"] == index]
    assert len(mine) == 1
    entry = mine[0]["entry"]
    assert entry["justification"]["decision"] == "not_share"
    assert entry["justification"]["rules"]["7_record"]["not_shared_reason"] == "no_lawful_basis"
    assert entry["actor"]["sub"] == "pat"
    assert (page.locator("#composebody").input_value(), page.locator("#attachment-list li").count()) == before
