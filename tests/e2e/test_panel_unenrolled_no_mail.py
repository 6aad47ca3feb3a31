"""Recipients without a key (issue 10) in the share panel, against the suite's gateway, which has NO mail relay:
"Send a link" is refused by the gateway (`mail_not_configured`) and the panel says so in plain words; nothing is
shared and the draft is untouched. (Kept apart from test_panel_unenrolled.py, whose gateway has a relay.)"""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Gateway
from tests.e2e.test_panel_unenrolled import NEW_ADDRESS, VERIFY, compose_to, ready_panel, sent
from tests.e2e.test_webmail_share import GMAIL_BODY
from tests.e2e.webmail import Webmail


def test_verify_without_a_mail_relay_is_refused_in_plain_words(page: Any, webmail: Webmail, gateway: Gateway) -> None:
    compose_to(page, webmail, NEW_ADDRESS)
    before = (page.locator(GMAIL_BODY).inner_text(), page.locator('a[href*="attid="]').count())
    shares_before = len(sent(gateway))
    panel = ready_panel(page)
    panel.get_by_role("radio", name=VERIFY).check()
    panel.wait_for_function("() => !document.getElementById('share').disabled")
    panel.get_by_role("button", name="Share", exact=True).click()
    alert = panel.locator("#alert")
    alert.wait_for()
    text = alert.text_content()
    assert "cannot send email" in text and "passphrase instead" in text and "Nothing was shared" in text
    assert panel.get_by_role("status").text_content() == "Nothing was shared."
    assert len(sent(gateway)) == shares_before
    assert (page.locator(GMAIL_BODY).inner_text(), page.locator('a[href*="attid="]').count()) == before
