"""The real Roundcube from Debian's packages, started for this module (see roundcube_real.py): log in, write an
email with an uploaded attachment, share it securely; the attachment is fetched back from Roundcube, the
recipient decrypts the email byte for byte, and what Roundcube itself keeps afterwards (the saved draft, read
back from Dovecot over IMAP, and its copy in the browser's localStorage) holds the notification only.

Both of Roundcube's editors: the plain-text textarea, and the HTML editor (TinyMCE 5 in an iframe, which the
content script can reach only through the DOM), including a switch from HTML to plain text while the share
panel is open."""

from __future__ import annotations

import email
import email.message
import email.policy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import example
from tests.e2e.conftest import Browser, Gateway, add_roundcube_origin, wait_until
from tests.e2e.panel import fill, open_panel, settle
from tests.e2e.roundcube_real import PACKAGES, Roundcube, missing, run_roundcube

#: What the practitioner wrote: none of it may be left in anything Roundcube keeps after the share.
SENSITIVE = ("care plan", "Urgent", "visit on", "ADULT-88-1930 is")
EDITOR = "#composebody_ifr"


def _started(browser: Browser, html_editor: bool) -> Iterator[Roundcube]:
    what = missing()
    if what is not None:
        if os.environ.get("CI"):
            pytest.fail(f"Roundcube is not installed ({what}); .ci/run should install {PACKAGES}")
        pytest.skip(f"Roundcube is not installed ({what}): apt-get install -y {PACKAGES}")
    with run_roundcube(html_editor=html_editor) as rc:
        add_roundcube_origin(browser, rc.origin)
        yield rc


@pytest.fixture(scope="module")
def real_roundcube(browser: Browser) -> Iterator[Roundcube]:
    """Roundcube whose users write in the plain-text editor (its default)."""
    yield from _started(browser, html_editor=False)


@pytest.fixture(scope="module")
def real_roundcube_html(browser: Browser) -> Iterator[Roundcube]:
    """Roundcube whose users write in the HTML editor ("Compose HTML messages: always")."""
    yield from _started(browser, html_editor=True)


def log_in_and_compose(page: Any, rc: Roundcube, subject: str) -> None:
    # Wide enough for TinyMCE's whole toolbar: its "More..." drawer takes focus back from the editor after it
    # slides open, which loses keystrokes typed meanwhile.
    page.set_viewport_size({"width": 1920, "height": 1000})
    page.goto(rc.url)
    if page.locator("#rcmloginuser").count():  # the module's browser keeps the session of an earlier test
        page.fill("#rcmloginuser", rc.user)
        page.fill("#rcmloginpwd", rc.password)
        page.click("#rcmloginsubmit")
    page.wait_for_url("**_task=mail**")
    page.goto(rc.url + "?_task=mail&_action=compose")
    page.locator("ul.recipient-input input").first.fill("Carol Example <carol@example.org>, ")
    page.fill("#compose-subject", subject)


def attach(page: Any, path: Path) -> None:
    page.locator("input[type=file]").first.set_input_files(str(path))
    page.locator("#attachment-list li[id^=rcmfile]").wait_for()


def write_formatted(page: Any) -> None:
    """Type in TinyMCE as a person would: a bold word with the keyboard, a bulleted list from the toolbar."""
    editor = page.frame_locator(EDITOR).locator("body#tinymce")
    editor.click()
    keys = page.keyboard
    keys.type("Dear Carol,", delay=10)
    keys.press("Enter")
    keys.press("Control+b")
    keys.type("Urgent:", delay=10)
    keys.press("Control+b")
    keys.type(" the care plan for ADULT-88-1930 is attached.", delay=10)
    keys.press("Enter")
    page.locator('button[aria-label="Bullet list"]').click()
    editor.locator("ul > li").wait_for()
    keys.type("first visit on Monday", delay=10)
    keys.press("Enter")
    keys.type("second visit on Friday", delay=10)
    keys.press("Enter")
    keys.press("Enter")
    keys.type("Pat", delay=10)
    html = editor.inner_html()
    assert "<strong>Urgent:</strong>" in html and "<li>second visit on Friday</li>" in html, html


def share(page: Any) -> str:
    """Share securely with a complete justification; the share's id."""
    panel = open_panel(page)
    fill(panel, example("share"))
    settle(panel)
    panel.get_by_role("button", name="Share", exact=True).click()
    panel.wait_for_selector("#result:not([hidden])")
    return panel.locator("#result-facts dd").first.text_content()


def local_copies(page: Any) -> str:
    """Roundcube's copies of the compose form in localStorage (kept in case the browser closes), as text."""
    return page.evaluate(
        "() => Object.keys(localStorage).filter(k => /compose\\.(?!index)/.test(k))"
        ".map(k => localStorage.getItem(k)).join('\\n')"
    )


def neutral(share_id: str) -> str:
    """The subject the draft carries after a share (issue 13): the case's subject would travel in the clear."""
    return f"Information shared with you securely (SafeShare {share_id})"


def save_draft(page: Any, rc: Roundcube, subject: str) -> email.message.EmailMessage:
    """Save the draft with Roundcube's own Save button and read it back from Dovecot (by its subject, which
    after a share is the neutral one)."""
    page.locator("#rcmbtn107").click()  # "Save" in the compose toolbar
    found: list[email.message.EmailMessage] = []

    def saved() -> bool:
        found[:] = [m for m in rc.drafts() if m["Subject"] == subject]
        return bool(found)

    wait_until(saved, timeout=15, what="the draft saved in Dovecot")
    assert len(found) == 1
    return found[0]


def parts_text(message: email.message.EmailMessage) -> str:
    return "\n".join(p.get_content() for p in message.walk() if p.get_content_maintype() == "text")


def assert_only_notification(text: str, share_id: str) -> None:
    assert share_id in text, text
    for words in SENSITIVE:
        assert words not in text, (words, text)


def test_share_from_real_roundcube(page: Any, real_roundcube: Roundcube, gateway: Gateway, tmp_path: Path) -> None:
    subject = "Section 42 enquiry: ADULT-88-1930"
    data = b"%PDF-1.4\n" + os.urandom(3000)
    attachment = tmp_path / "care-plan.pdf"
    attachment.write_bytes(data)
    log_in_and_compose(page, real_roundcube, subject)
    page.fill("#composebody", "Dear Carol,\n\nThe care plan is attached.\n\nPat")
    attach(page, attachment)
    button = page.get_by_role("button", name="Share securely", exact=True)
    button.wait_for()
    assert button.count() == 1
    share_id = share(page)
    assert_only_notification(page.locator("#composebody").input_value(), share_id)
    page.wait_for_function("() => !document.querySelector('#attachment-list li[id^=rcmfile]')")
    message = email.message_from_bytes(gateway.fetch(share_id, "carol"), policy=email.policy.default)
    assert message["To"] == "carol@example.org"
    assert message["Subject"] == subject
    assert message.get_body(("plain",)).get_content().startswith("Dear Carol,")
    assert {p.get_filename(): p.get_payload(decode=True) for p in message.iter_attachments()} == {"care-plan.pdf": data}
    draft = save_draft(page, real_roundcube, neutral(share_id))
    assert all(m["Subject"] != subject for m in real_roundcube.drafts())
    assert draft.get_content_type() == "text/plain"
    assert_only_notification(draft.get_content(), share_id)


def test_share_from_real_roundcube_html_editor(
    page: Any, real_roundcube_html: Roundcube, gateway: Gateway, tmp_path: Path
) -> None:
    rc = real_roundcube_html
    subject = "Section 42 enquiry (HTML): ADULT-88-1930"
    data = b"%PDF-1.4\n" + os.urandom(3000)
    attachment = tmp_path / "care-plan.pdf"
    attachment.write_bytes(data)
    log_in_and_compose(page, rc, subject)
    assert page.locator('input[name="_is_html"]').input_value() == "1"
    attach(page, attachment)
    write_formatted(page)
    # Roundcube keeps a copy of what is typed in localStorage (every 5 s while typing): it holds the content now.
    wait_until(lambda: "care plan" in local_copies(page), timeout=15, what="Roundcube's localStorage copy")

    share_id = share(page)

    # The recipient gets the formatting (HTML part), a text version and the attachment, byte for byte.
    message = email.message_from_bytes(gateway.fetch(share_id, "carol"), policy=email.policy.default)
    assert message["To"] == "carol@example.org"
    assert message["Subject"] == subject
    html = message.get_body(("html",)).get_content()
    assert "<strong>Urgent:</strong> the care plan for ADULT-88-1930 is attached." in html
    assert "<ul><li>first visit on Monday</li><li>second visit on Friday</li></ul>" in html
    assert "data-mce" not in html
    text = message.get_body(("plain",)).get_content()
    assert text.startswith("Dear Carol,\n\nUrgent: the care plan for ADULT-88-1930 is attached.\n\n")
    assert "- first visit on Monday\n- second visit on Friday\n\nPat" in text
    assert {p.get_filename(): p.get_payload(decode=True) for p in message.iter_attachments()} == {"care-plan.pdf": data}

    # The editor now shows the notification only, and the attachment is gone.
    editor = page.frame_locator(EDITOR).locator("body#tinymce")
    assert_only_notification(editor.inner_text(), share_id)
    assert editor.locator("a").first.get_attribute("href").endswith(f"/s/{share_id}")
    page.wait_for_function("() => !document.querySelector('#attachment-list li[id^=rcmfile]')")
    # TinyMCE still holds the email in its undo history (out of the content script's reach): Undo, from the
    # keyboard or the toolbar, is refused rather than bringing it back into the draft.
    assert page.evaluate("() => tinymce.activeEditor.undoManager.hasUndo()")
    page.frame_locator("iframe.safeshare-panel-frame").get_by_role("button", name="Close").click()
    editor.click()
    page.keyboard.press("Control+z")
    undo = page.locator('.tox-tinymce button[aria-label="Undo"]')
    if not undo.is_visible():
        page.locator('.tox-tinymce button[aria-label="More..."]').click()
        undo.wait_for()
    undo.click()
    assert_only_notification(editor.inner_text(), share_id)
    # TinyMCE itself serialises the notification (what Roundcube submits comes from it), and Roundcube's
    # localStorage copy is overwritten within its 5 s save interval.
    assert_only_notification(page.evaluate("() => tinymce.activeEditor.getContent()"), share_id)
    wait_until(lambda: share_id in local_copies(page), timeout=15, what="Roundcube's localStorage copy to be rewritten")
    assert_only_notification(local_copies(page), share_id)

    # What Roundcube stores when the draft is saved: the notification, in both the HTML and the text part.
    draft = save_draft(page, rc, neutral(share_id))
    assert all(m["Subject"] != subject for m in rc.drafts())
    assert draft.get_body(("html",)) is not None
    assert_only_notification(draft.get_body(("html",)).get_content(), share_id)
    assert_only_notification(parts_text(draft), share_id)
    assert list(draft.iter_attachments()) == []


def test_switch_from_html_to_plain_while_the_panel_is_open(
    page: Any, real_roundcube_html: Roundcube, gateway: Gateway
) -> None:
    """The panel read the email from the HTML editor; the practitioner then switches to plain text (Roundcube
    asks to confirm, converts, and removes TinyMCE) and shares: the notification goes into the editor in use."""
    rc = real_roundcube_html
    subject = "Section 42 enquiry (switched): ADULT-88-1930"
    log_in_and_compose(page, rc, subject)
    write_formatted(page)
    panel = open_panel(page)
    dialogs: list[str] = []

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.locator('button[aria-label="Plain text"]').click()
    page.wait_for_function(
        "() => document.querySelector('[name=_is_html]').value === '0' && !document.querySelector('#composebody_ifr')"
    )
    assert dialogs, "Roundcube asks before losing the formatting"
    page.wait_for_function("() => document.querySelector('#composebody').value.includes('care plan')")

    fill(panel, example("share"))
    # The compose window changed under the open panel (its formatted version is gone): the panel says so, and
    # Share waits for the practitioner's choice — here, to share what the panel shows (the formatted email).
    panel.locator("#changed").wait_for(state="visible", timeout=10000)
    assert "the body" in panel.locator("#changed-text").text_content()
    assert panel.get_by_role("button", name="Share", exact=True).is_disabled()
    panel.get_by_role("button", name="Share what is shown").click()
    settle(panel)
    panel.get_by_role("button", name="Share", exact=True).click()
    panel.wait_for_selector("#result:not([hidden])")
    share_id = panel.locator("#result-facts dd").first.text_content()

    message = email.message_from_bytes(gateway.fetch(share_id, "carol"), policy=email.policy.default)
    assert "<strong>Urgent:</strong>" in message.get_body(("html",)).get_content()
    assert_only_notification(page.locator("#composebody").input_value(), share_id)
    draft = save_draft(page, rc, neutral(share_id))
    assert all(m["Subject"] != subject for m in rc.drafts())
    assert draft.get_content_type() == "text/plain"
    assert_only_notification(draft.get_content(), share_id)
