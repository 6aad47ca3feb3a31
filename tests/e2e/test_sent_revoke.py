"""Recall from the extension's Sent tab (issue 13), in Debian's headless Chromium against a real `safeshare serve`:
each recipient shown as opened (when) or not, and *Revoke this share* with a required reason that the gateway
records in the ledger, after which the recipient's download is refused."""

from __future__ import annotations

from collections.abc import Iterator

import pyrage
import pytest

from tests.e2e.open_page import assert_accessible, axe_source
from tests.e2e.recipient_fixtures import (
    Profile,
    RecipientGateway,
    error_signs,
    field_error,
    focused_id,
    follow_summary_link,
    playwright_profiles,
    recipient_gateway,
    summary_links,
)
from tests.e2e.webmail import Webmail
from tests.test_cli import call


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecipientGateway]:
    with recipient_gateway(tmp_path_factory.mktemp("sent-revoke-gateway")) as g:
        yield g


@pytest.fixture(scope="module")
def practitioner(webmail: Webmail, gw: RecipientGateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Profile]:
    with playwright_profiles(tmp_path_factory, webmail.host_rules()) as profiles:
        pat = profiles.new("practitioner")
        pat.use(gw, gw.tokens["practitioner"])
        yield pat


def test_sent_tab_shows_who_opened_it_and_revokes_with_a_reason(gw: RecipientGateway, practitioner: Profile) -> None:
    key = pyrage.x25519.Identity.generate()
    gw.cli("recipient", "add", "ivy", "--name", "Ivy", "--org", "MASH", "--email", "ivy@example.org",
           "--age-recipient", str(key.to_public()))  # fmt: skip
    gw.cli("recipient", "add", "jon", "--name", "Jon", "--org", "MASH", "--email", "jon@example.org",
           "--age-recipient", str(pyrage.x25519.Identity.generate().to_public()))  # fmt: skip
    sid = gw.share(["ivy", "jon"], b"Referral notes", "text/plain")
    ivy = gw.recipient_token("ivy")
    status, blob = call(f"{gw.url}/api/v1/shares/{sid}/envelope", ivy)
    assert status == 200 and pyrage.decrypt(blob, [key]) == b"Referral notes"

    page = practitioner.open("recipient/inbox.html")
    item = page.locator(f'.sent li[data-share="{sid}"]')
    item.wait_for(timeout=15000)
    # Each recipient by name and organisation (the directory), with whether and when they opened it (issue 13).
    ivy_line = item.locator('li[data-recipient="ivy"]').inner_text()
    assert ivy_line.startswith("Ivy (MASH): opened ") and " UTC;" in ivy_line, ivy_line
    assert item.locator('li[data-recipient="jon"]').inner_text().startswith("Jon (MASH): not opened yet;")
    # The share's case reference and its own reference tell it apart from the practitioner's other shares.
    assert "CASE-2026-0412" in item.inner_text() and sid in item.inner_text()

    # No reason: refused in words the GOV.UK way (the error summary, focused, linking to the reason; the
    # message beside it), nothing revoked; nothing red before that.
    item.get_by_text("Revoke (recall) this share").click()
    assert error_signs(page) == []
    item.get_by_role("button", name="Revoke this share").click()
    field = f"revoke-reason-{sid}"
    message = "Say why you are revoking this share: the reason is recorded with the revocation."
    assert summary_links(page) == [(message, field)] and focused_id(page) == "error-summary"
    assert field_error(page, field) == message
    assert gw.get("/api/v1/shares/" + sid, gw.tokens["practitioner"])["state"] == "active"
    assert_accessible(page, axe_source(), "Sent tab, revoke form open with its error")
    # The link opens the details again if they were closed, and moves the focus to the reason.
    item.get_by_text("Revoke (recall) this share").click()
    assert follow_summary_link(page, "Say why you are revoking") == field

    reason = "Sent to the wrong Jon: meant for the duty team."
    page.keyboard.type(reason)
    assert error_signs(page) == []
    item.get_by_role("button", name="Revoke this share").click()
    page.get_by_text(f"Share {sid} revoked").wait_for(timeout=15000)
    entries = [e["entry"] for e in gw.get("/api/v1/ledger?kind=revoke", gw.tokens["auditor"])["entries"]]
    assert [e["reason"] for e in entries if e["share_id"] == sid] == [reason]
    status, _ = call(f"{gw.url}/api/v1/shares/{sid}/envelope", gw.recipient_token("jon"))
    assert status == 410
    # The list is reloaded: the share is no longer offered for revocation.
    page.locator(f'.sent li[data-share="{sid}"] details.revoke').wait_for(state="detached", timeout=15000)
