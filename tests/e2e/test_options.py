"""The options page: gateway address, signing in by pasting a token (kept in storage.session only), and what
the panel says when nobody is signed in."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Browser, Gateway
from tests.e2e.panel import open_panel
from tests.e2e.webmail import Webmail


def test_sign_in_with_a_pasted_token(page: Any, browser: Browser, gateway: Gateway, webmail: Webmail) -> None:
    browser.sign_in(None)
    page.goto(f"chrome-extension://{browser.extension_id}/options/options.html")
    status = page.locator("#signed-in")
    status.get_by_text("Not signed in.").wait_for()

    page.get_by_label("Gateway address").fill(gateway.url + "/some/path")
    page.get_by_label("Default number of days a share stays available").fill("14")
    page.get_by_role("button", name="Save settings").click()
    page.get_by_text("Settings saved.").wait_for()
    stored = browser.worker.evaluate("() => chrome.storage.local.get(null)")
    assert stored["gatewayUrl"] == gateway.url and stored["defaultExpiryDays"] == 14

    page.get_by_label("Token", exact=True).fill("not a token")
    page.get_by_role("button", name="Sign in").click()
    assert "does not look like a SafeShare token" in page.get_by_role("alert").text_content()

    page.get_by_label("Token", exact=True).fill(gateway.tokens["practitioner"])
    page.get_by_role("button", name="Sign in").click()
    status.get_by_text("Signed in as pat (practitioner, e2e)").wait_for()
    assert page.get_by_label("Token", exact=True).input_value() == ""
    # The token lives in session storage, out of reach of content scripts, and nowhere else.
    session = browser.worker.evaluate("() => chrome.storage.session.get(null)")
    assert session == {"token": gateway.tokens["practitioner"]}
    assert gateway.tokens["practitioner"] not in str(browser.worker.evaluate("() => chrome.storage.local.get(null)"))

    mail = browser.context.new_page()
    try:
        mail.goto(webmail.gmail_url())
        panel = open_panel(mail)
        assert panel.locator("#expiry option:checked").text_content() == "14 days"
        assert panel.get_by_role("radio", name="Share", exact=True).count() == 1
    finally:
        mail.close()

    # Closing the webmail tab drops the draft the panel held.
    browser.worker.evaluate(
        """() => new Promise((resolve, reject) => {
            const deadline = Date.now() + 5000;
            const check = async () => {
                const keys = Object.keys(await chrome.storage.session.get(null));
                if (!keys.some(k => k.startsWith('draft:'))) return resolve();
                if (Date.now() > deadline) return reject(new Error('draft kept: ' + keys));
                setTimeout(check, 50);
            };
            check();
        })"""
    )
    page.get_by_role("button", name="Sign out").click()
    status.get_by_text("Not signed in.").wait_for()
    assert browser.worker.evaluate("() => chrome.storage.session.get(null)") == {}
    mail = browser.context.new_page()
    try:
        mail.goto(webmail.gmail_url())
        before = mail.locator('[aria-label="Message Body"]').inner_text()
        panel = open_panel(mail)
        alert = panel.get_by_role("alert")
        alert.wait_for()
        assert "You are not signed in to SafeShare" in alert.text_content()
        assert mail.locator('[aria-label="Message Body"]').inner_text() == before
    finally:
        mail.close()
    browser.storage("local", {"defaultExpiryDays": 7})


def test_a_permission_request_the_browser_refuses_is_reported(page: Any, browser: Browser, gateway: Gateway) -> None:
    """When the browser refuses to even ask for the host permissions (Firefox does when it no longer counts the
    click as the user's), Save says so in the page instead of doing nothing. The refusal is made in the page by
    replacing `permissions.request` with one that throws as Firefox's does."""
    page.goto(f"chrome-extension://{browser.extension_id}/options/options.html")
    page.locator("#signed-in").get_by_text("Signed in as pat").wait_for()  # loaded (the fixture signed in)
    page.evaluate(
        """() => { chrome.permissions.request = () =>
            Promise.reject(new Error('permissions.request may only be called from a user input handler')); }"""
    )
    page.get_by_label("Gateway address").fill(gateway.url)
    page.get_by_role("button", name="Save settings").click()
    alert = page.get_by_role("alert")
    alert.get_by_text("could not ask for permission").wait_for()
    assert "user input handler" in alert.text_content() and "Nothing was saved" in alert.text_content()
    assert page.locator("#saved").text_content() == ""
