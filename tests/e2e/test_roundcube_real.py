"""The real Roundcube from Debian's packages, started for this module (see roundcube_real.py): log in, write an
email with an uploaded attachment, share it securely; the attachment is fetched back from Roundcube, the
recipient decrypts the email byte for byte, and Roundcube's own draft is left with the notification only."""

from __future__ import annotations

import email
import email.policy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import example
from tests.e2e.conftest import Browser, Gateway, add_roundcube_origin
from tests.e2e.panel import fill, open_panel, settle
from tests.e2e.roundcube_real import PACKAGES, Roundcube, missing, run_roundcube


@pytest.fixture(scope="module")
def real_roundcube(browser: Browser) -> Iterator[Roundcube]:
    what = missing()
    if what is not None:
        if os.environ.get("CI"):
            pytest.fail(f"Roundcube is not installed ({what}); .ci/run should install {PACKAGES}")
        pytest.skip(f"Roundcube is not installed ({what}): apt-get install -y {PACKAGES}")
    with run_roundcube() as rc:
        add_roundcube_origin(browser, rc.origin)
        yield rc


def compose(page: Any, rc: Roundcube, attachment: Path) -> None:
    page.goto(rc.url)
    page.fill("#rcmloginuser", rc.user)
    page.fill("#rcmloginpwd", rc.password)
    page.click("#rcmloginsubmit")
    page.wait_for_url("**_task=mail**")
    page.goto(rc.url + "?_task=mail&_action=compose")
    page.locator("ul.recipient-input input").first.fill("Carol Example <carol@example.org>, ")
    page.fill("#compose-subject", "Section 42 enquiry: ADULT-88-1930")
    page.fill("#composebody", "Dear Carol,\n\nThe care plan is attached.\n\nPat")
    page.locator("input[type=file]").first.set_input_files(str(attachment))
    page.locator("#attachment-list li[id^=rcmfile]").wait_for()


def test_share_from_real_roundcube(page: Any, real_roundcube: Roundcube, gateway: Gateway, tmp_path: Path) -> None:
    data = b"%PDF-1.4\n" + os.urandom(3000)
    attachment = tmp_path / "care-plan.pdf"
    attachment.write_bytes(data)
    compose(page, real_roundcube, attachment)
    button = page.get_by_role("button", name="Share securely", exact=True)
    button.wait_for()
    assert button.count() == 1
    panel = open_panel(page)
    fill(panel, example("share"))
    settle(panel)
    panel.get_by_role("button", name="Share", exact=True).click()
    panel.wait_for_selector("#result:not([hidden])")
    share_id = panel.locator("#result-facts dd").first.text_content()
    body = page.locator("#composebody").input_value()
    assert share_id in body and "care plan" not in body
    page.wait_for_function("() => !document.querySelector('#attachment-list li[id^=rcmfile]')")
    message = email.message_from_bytes(gateway.fetch(share_id, "carol"), policy=email.policy.default)
    assert message["To"] == "carol@example.org"
    assert message["Subject"] == "Section 42 enquiry: ADULT-88-1930"
    assert message.get_body(("plain",)).get_content().startswith("Dear Carol,")
    assert {p.get_filename(): p.get_payload(decode=True) for p in message.iter_attachments()} == {"care-plan.pdf": data}
