"""Recipients without a SafeShare key (issue 10), in the share panel: real headless Chromium with the extension, a
Gmail compose addressed to someone the directory does not know, against a real `safeshare serve` whose mail goes
to a real SMTP server (aiosmtpd) on loopback.

- the address is shown as "no SafeShare key yet" and Share stays disabled until the practitioner chooses;
- "Send a link": the share is accepted and held for the address; the code e-mail arrives at the SMTP server;
- "Passphrase": a short one is flagged in the panel, a weak one is refused by the gateway in plain words (nothing
  shared, draft untouched), the suggested one is accepted and the envelope opens with pyrage and it; the
  passphrase is nowhere in the webmail page or the extension's storage;
- axe-core finds no WCAG 2.2 A/AA violation in the new panel states."""

from __future__ import annotations

import email
import email.policy
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
from tests.e2e.panel import fill, open_panel, settle
from tests.e2e.test_open_page_claims import smtp_sink
from tests.e2e.test_webmail_share import GMAIL_BODY, decrypted, result_facts
from tests.e2e.webmail import Webmail
from tests.smtp_sink import Sink, code_in
from tests.test_cli import call, safeshare, serve

VERIFY = "Send a link: they prove the address with a code and make a key"
PASSPHRASE = "Protect with a passphrase I will tell them by phone"
NEW_ADDRESS = "jo.head@school.example"
GP_ADDRESS = "reception@gp-practice.example"


@pytest.fixture(scope="module")
def mail() -> Iterator[tuple[Sink, str]]:
    with smtp_sink() as s:
        yield s


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, mail: tuple[Sink, str]) -> Iterator[Gateway]:
    """This module's own gateway (it overrides the suite's): the same directory, with an SMTP relay."""
    tmp = tmp_path_factory.mktemp("gateway-unenrolled")
    home = tmp / "home"
    home.mkdir()
    before = os.environ.get("SAFESHARE_SMTP_URL")
    os.environ["SAFESHARE_SMTP_URL"] = mail[1]  # `serve` reads it at start
    try:
        with serve(home, tmp / "server.log") as url:
            identities = {}
            for rid, (name, org, addr) in RECIPIENTS.items():
                identities[rid] = pyrage.x25519.Identity.generate()
                safeshare(
                    home, "recipient", "add", rid, "--name", name, "--org", org, "--email", addr,
                    "--age-recipient", str(identities[rid].to_public()),
                )  # fmt: skip
            gw = Gateway(home, url, identities, {})
            gw.tokens = {
                "practitioner": gw.token("pat", "practitioner"),
                "auditor": gw.token("audrey", "partnership_auditor"),
                **{rid: gw.token(rid, "recipient") for rid in RECIPIENTS},
            }
            yield gw
    finally:
        if before is None:
            os.environ.pop("SAFESHARE_SMTP_URL", None)
        else:
            os.environ["SAFESHARE_SMTP_URL"] = before


@pytest.fixture(scope="module")
def axe() -> str:
    return axe_source()


def compose_to(page: Any, webmail: Webmail, *cc: str) -> None:
    page.goto(webmail.gmail_url())
    for address in cc:
        page.evaluate(
            """a => document.querySelector('[role=listbox][aria-label="CC recipients"]').insertAdjacentHTML('beforeend',
                 `<div class="afV" role="option" data-hovercard-id="${a}">${a}</div>`)""",
            address,
        )


def sent(gateway: Gateway) -> list[dict[str, Any]]:
    status, body = call(gateway.url + "/api/v1/shares", gateway.tokens["practitioner"])
    assert status == 200, body
    return list(json.loads(body)["shares"])


def ready_panel(page: Any) -> Any:
    panel = open_panel(page)
    fill(panel, example("share"))
    settle(panel)
    return panel


def test_verify_link_for_a_new_address(
    page: Any, webmail: Webmail, gateway: Gateway, mail: tuple[Sink, str], axe: str
) -> None:
    sink = mail[0]
    compose_to(page, webmail, NEW_ADDRESS)
    panel = ready_panel(page)
    flagged = panel.locator("#recipient-list .unknown")
    assert NEW_ADDRESS in flagged.text_content() and "no SafeShare key yet" in flagged.text_content()
    # Summed up beside Share as well: the address without a key gets the content too.
    assert panel.locator("#share-to").text_content().endswith(f"And 1 address without a SafeShare key: {NEW_ADDRESS}.")
    share = panel.get_by_role("button", name="Share", exact=True)
    assert share.is_disabled()  # no choice yet
    assert "recipients need attention" in panel.get_by_role("status").text_content()
    assert_accessible(panel, axe, "address without a key, no choice yet")

    panel.get_by_role("radio", name=VERIFY).check()
    panel.wait_for_function("() => !document.getElementById('share').disabled")
    assert panel.locator("#passphrase-box").is_hidden()
    assert panel.get_by_role("status").text_content() == "Ready to share."
    share.click()
    facts = result_facts(panel)
    share_id = facts["Share reference"]
    assert "prove the address with a code" in facts[NEW_ADDRESS]
    assert f"{gateway.url}/s/{share_id}" in facts[NEW_ADDRESS]
    assert facts["Alice Example (Hereford MASH)"] == f"Their SafeShare key. Link: {gateway.url}/s/{share_id}"
    body = page.locator(GMAIL_BODY).inner_text()
    assert share_id in body and "bruising" not in body

    # Held for the address (the sender's view), and Alice has hers as before.
    mine = next(s for s in sent(gateway) if s["id"] == share_id)
    assert [(h["recipient"], h["mode"], h["state"]) for h in mine["held"]] == [(NEW_ADDRESS, "held", "held")]
    message = decrypted(gateway, share_id, "alice")
    assert message["Cc"] == NEW_ADDRESS and "bruising" in message.get_body(preferencelist=("plain",)).get_content()
    # The recipient asks for a code: it arrives at the real SMTP server.
    status, answer = call(
        gateway.url + "/api/v1/claims/start",
        None,
        json.dumps({"share_id": share_id, "email": NEW_ADDRESS}).encode(),
        "application/json",
    )
    assert status == 202, answer
    msg = sink.wait_for(NEW_ADDRESS)
    assert msg["Subject"] == "Your SafeShare code"
    assert len(code_in(msg)) == 6


def test_passphrase_weak_refused_then_suggested_one_shared(
    page: Any, webmail: Webmail, gateway: Gateway, browser: Browser, axe: str, tmp_path: Path
) -> None:
    compose_to(page, webmail, GP_ADDRESS)
    before = (page.locator(GMAIL_BODY).inner_text(), page.locator('a[href*="attid="]').count())
    shares_before = len(sent(gateway))
    panel = ready_panel(page)
    share = panel.get_by_role("button", name="Share", exact=True)
    panel.get_by_role("radio", name=PASSPHRASE).check()
    field = panel.get_by_label("Passphrase", exact=True)
    field.wait_for()
    assert field.get_attribute("type") == "password"
    assert share.is_disabled()  # a passphrase is needed
    field.fill("too short")
    panel.locator("#passphrase-problem:not([hidden])").wait_for()
    assert "at least 12 characters" in panel.locator("#passphrase-problem").text_content()
    assert field.get_attribute("aria-invalid") == "true"
    assert share.is_disabled()
    assert_accessible(panel, axe, "passphrase too short")

    # Long enough for the panel, too easy to guess for the gateway: refused in plain words, nothing shared.
    field.fill("password1234")
    panel.wait_for_function("() => !document.getElementById('share').disabled")
    share.click()
    alert = panel.locator("#alert")
    alert.wait_for()
    assert "refused the passphrase" in alert.text_content() and "Nothing was shared" in alert.text_content()
    assert "password1234" not in alert.text_content()
    assert len(sent(gateway)) == shares_before
    assert (page.locator(GMAIL_BODY).inner_text(), page.locator('a[href*="attid="]').count()) == before
    assert_accessible(panel, axe, "passphrase refused")

    # Show/hide, then the suggested passphrase (shown, to be read out on the phone).
    panel.get_by_role("button", name="Show passphrase").click()
    assert field.get_attribute("type") == "text"
    panel.get_by_role("button", name="Hide passphrase").click()
    assert field.get_attribute("type") == "password"
    panel.get_by_role("button", name="Suggest a strong passphrase").click()
    assert field.get_attribute("type") == "text"
    passphrase = field.input_value()
    assert len(passphrase) == 24
    assert_accessible(panel, axe, "passphrase suggested")
    panel.wait_for_function("() => !document.getElementById('share').disabled")
    share.click()
    facts = result_facts(panel)
    share_id = facts["Share reference"]
    assert "Tell them the passphrase by phone, not by email" in facts[GP_ADDRESS]
    assert f"{gateway.url}/s/{share_id}" in facts[GP_ADDRESS]
    assert_accessible(panel, axe, "shared with a passphrase")

    # Never in the webmail page or the extension's storage.
    assert passphrase not in page.content()
    stored = browser.worker.evaluate(
        "async () => JSON.stringify([await chrome.storage.local.get(null), await chrome.storage.session.get(null)])"
    )
    assert passphrase not in stored
    # The envelope opens with pyrage and that passphrase.
    status, env = call(f"{gateway.url}/api/v1/open/{share_id}/envelope")
    assert status == 200, env
    message = email.message_from_bytes(pyrage.passphrase.decrypt(env, passphrase), policy=email.policy.default)
    assert message["Cc"] == GP_ADDRESS and "bruising" in message.get_body(preferencelist=("plain",)).get_content()
