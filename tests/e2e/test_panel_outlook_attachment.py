"""Outlook on the web with an attachment SafeShare cannot read from the page (real OWA's cards carry no download
link), in headless Chromium (issue 13): the panel still opens, asks for that file, checks what the practitioner
adds against the card's name and size, and the recipient decrypts it byte for byte — or the practitioner
chooses, knowingly, to share without it, and it leaves the email too."""

from __future__ import annotations

import base64
import email
import email.policy
from pathlib import Path
from typing import Any

from tests.conftest import example
from tests.e2e.conftest import Gateway
from tests.e2e.open_page import assert_accessible, axe_source
from tests.e2e.panel import fill, open_panel, settle
from tests.e2e.test_webmail_share import attachments_of, result_facts
from tests.e2e.webmail import Webmail

NAME = "strategy-notes.docx"
CARD = '[aria-label="Attachments"] [role="option"]'
DROP = """([name, b64]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const dt = new DataTransfer();
  dt.items.add(new File([bytes], name));
  const drop = new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true });
  document.querySelector('.missing').dispatchEvent(drop);
}"""


def unreadable_card(page: Any, webmail: Webmail) -> bytes:
    """Make the fixture's card look like real OWA's: no link to the file; its size as OWA rounds it."""
    page.goto(webmail.outlook_url())
    page.locator(CARD).wait_for()
    page.evaluate(
        """() => { const card = document.querySelector('[aria-label="Attachments"] [role="option"]');
                   card.querySelector('a').remove(); card.querySelector('span').textContent = '2 KB';
                   card.setAttribute('aria-label', 'strategy-notes.docx, 2 KB'); }"""
    )
    data = webmail.attachments["outlook:AAMkAD1"].data
    assert 1000 < len(data) < 3072  # "2 KB" as the card shows it
    return data


def test_outlook_file_added_in_panel_is_shared_byte_for_byte(
    page: Any, webmail: Webmail, gateway: Gateway, tmp_path: Path
) -> None:
    data = unreadable_card(page, webmail)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    panel = open_panel(page)
    box = panel.locator(".missing")
    assert f"{NAME} (2 KB) is not included yet" in box.get_by_role("heading").text_content()
    assert "could not read this attachment from Outlook" in box.text_content()
    fill(panel, example("share"))
    settle(panel)
    share = panel.get_by_role("button", name="Share", exact=True)
    assert share.is_disabled()
    assert "an attachment is not included yet" in panel.get_by_role("status").text_content()
    assert_accessible(panel, axe_source(), "attachment missing")

    # The wrong file is refused in words, next to the picker.
    picker = panel.get_by_label(f"Choose {NAME}")
    picker.set_input_files({"name": "minutes.docx", "mimeType": "application/octet-stream", "buffer": data})
    problem = box.locator(".problem")
    problem.wait_for()
    assert "the attachment in your email is “strategy-notes.docx”" in problem.text_content()
    assert share.is_disabled()

    # The same file: listed with the other attachments (its SHA-256), and Share is possible.
    picker.set_input_files({"name": NAME, "mimeType": "application/octet-stream", "buffer": data})
    panel.locator("#email-attachments li", has_text=NAME).wait_for()
    assert panel.locator(".missing").count() == 0
    settle(panel)
    share.click()
    share_id = result_facts(panel)["Share reference"]
    assert page.locator(CARD).count() == 0
    message = email.message_from_bytes(gateway.fetch(share_id, "bob"), policy=email.policy.default)
    got = attachments_of(message)
    assert got[NAME][1] == data  # byte for byte
    assert dialogs == []  # no alert() anywhere


def test_outlook_share_without_the_unreadable_file(page: Any, webmail: Webmail, gateway: Gateway) -> None:
    data = unreadable_card(page, webmail)
    panel = open_panel(page)
    # Dropped onto the box: a file of the same name but another size is another version, refused.
    panel.evaluate(DROP, [NAME, base64.b64encode(b"short").decode()])
    problem = panel.locator(".missing .problem")
    problem.wait_for()
    assert "is 5 bytes, but the attachment in your email is 2 KB" in problem.text_content()
    fill(panel, example("share"))
    settle(panel)
    share = panel.get_by_role("button", name="Share", exact=True)
    assert share.is_disabled()
    panel.get_by_label(f"Share without {NAME}").check()
    settle(panel)
    assert share.is_enabled()
    share.click()
    share_id = result_facts(panel)["Share reference"]
    # Not shared, and not left in the email either.
    assert page.locator(CARD).count() == 0
    message = email.message_from_bytes(gateway.fetch(share_id, "bob"), policy=email.policy.default)
    assert attachments_of(message) == {}
    assert data  # the file exists in the webmail only; SafeShare never read it


def test_no_alert_in_the_extension() -> None:
    """Messages appear in the page in plain words: alert() may be suppressed by a managed browser."""
    root = Path(__file__).resolve().parents[2] / "extension"
    for sub in ("adapters", "content", "lib", "options", "panel", "recipient"):
        for f in (root / sub).rglob("*.js"):
            assert "alert(" not in f.read_text().replace("showAlert(", ""), f
    assert "alert(" not in (root / "background.js").read_text()
