"""The same extension in a real Firefox (Debian's firefox-esr, headless), driven over WebDriver BiDi.

As a practitioner would: the add-on is loaded as a temporary add-on (about:debugging's *Load Temporary
Add-on*), the gateway address and a pasted token are entered on its options page, then in Gmail (served
locally on https://mail.google.com) **Share securely** opens the panel, the golden-rules form is filled in
with real clicks and keystrokes, and Share sends the email through a real `safeshare serve`. The recipient
decrypts the very email and attachments, the ledger holds the justification as entered, and the draft holds
only the notification. A second test adds a Roundcube address on the options page and shares from it.

What differs from Chromium and is exercised here: `background.scripts` (an event page, not a service worker),
the `browser.*` namespace, `moz-extension://` pages, the content script's own `fetch` for the attachments (in
Firefox MV3 it is made as the page, cookies included), `permissions.request` only inside the user's click,
match patterns without ports, and MV3 host permissions, which Firefox (127+) lists in the install prompt and
grants on install — a temporary add-on gets them the same way, so no prompt is clicked here.
"""

from __future__ import annotations

import contextlib
import email
import email.message
import email.policy
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tests.conftest import example
from tests.e2e.bidi import Firefox, Tab, launch
from tests.e2e.conftest import EXTENSION, Gateway
from tests.e2e.firefox_addon import ADDON_ID, options_sign_in
from tests.e2e.webmail import GMAIL, OUTLOOK, Webmail

GMAIL_BODY = '[aria-label="Message Body"]'


def firefox_prefs(webmail: Webmail, internal_uuid: str) -> dict[str, Any]:
    """The webmail hostnames resolve to loopback and port 443 goes to the local HTTPS stand-in (Firefox's
    counterpart of Chromium's --host-resolver-rules); the add-on's internal UUID is fixed, so its pages'
    addresses are known in advance (Firefox reuses a UUID already recorded for an add-on ID)."""
    return {
        "network.dns.localDomains": ",".join([GMAIL, *OUTLOOK]),
        "network.socket.forcePort": f"443={webmail.https_port}",
        "extensions.webextensions.uuids": json.dumps({ADDON_ID: internal_uuid}),
    }


PROBLEMS = """() => Object.fromEntries([...document.querySelectorAll('[data-field]')]
    .map(b => [b.dataset.field, b.querySelector(':scope > .problem, :scope > fieldset > .problem')])
    .filter(([, p]) => p && !p.hidden).map(([f, p]) => [f, p.textContent]))"""


async def text_of(tab: Tab, css: str) -> str:
    return str(await tab.call("css => document.querySelector(css)?.innerText ?? ''", css))


FIELD_STATE = """sel => {
    const all = [...document.querySelectorAll(sel)];
    const e = all[0];
    if (e.type === 'radio') return all.filter(i => i.checked).map(i => i.value)[0] ?? null;
    if (e.type === 'checkbox') return all.filter(i => i.checked).map(i => i.value);
    return e.value;
}"""


async def set_field(panel: Tab, path: str, value: Any) -> None:
    """One field of the panel's form, the way a practitioner sets it: clicks and typing (a <select> is set
    by script, because its drop-down list is drawn by the browser, outside the page). The live validation moves
    the form about as its answers arrive, so a click can land beside its target: each field is checked, and
    set again if it did not take."""
    sel = f'[data-path="{path}"]'
    # A question the form does not ask for the answers so far (issue 13: only questions that apply) is left out.
    if await panel.call("sel => !!document.querySelector(sel)?.closest('[data-cond][hidden]')", sel):
        return
    kind = await panel.call(
        "sel => { const e = document.querySelector(sel); return e.tagName + ':' + (e.type || ''); }", sel
    )
    if kind == "INPUT:radio":
        want: Any = str(value).lower()
    elif kind == "INPUT:checkbox":
        want = list(value)
    else:
        want = ", ".join(value) if isinstance(value, list) else str(value)
    for _ in range(3):
        got = await panel.call(FIELD_STATE, sel)
        if kind == "INPUT:checkbox":
            for v in set(want) ^ set(got):  # missing ones, and any a stray click ticked
                await panel.click(f'input{sel}[value="{v}"]')
        elif got == want:
            return
        elif kind == "INPUT:radio":
            await panel.click(f'input{sel}[value="{want}"]')
        elif kind.startswith("SELECT"):
            await panel.call(
                """(sel, v) => { const s = document.querySelector(sel); s.focus(); s.value = v;
                     s.dispatchEvent(new Event('input', {bubbles: true}));
                     s.dispatchEvent(new Event('change', {bubbles: true})); }""",
                sel,
                want,
            )
        else:
            await panel.fill(sel, want)
        got = await panel.call(FIELD_STATE, sel)
        if got == want or (kind == "INPUT:checkbox" and sorted(got) == sorted(want)):
            return
    raise AssertionError(f"could not set {path} to {want!r} (it shows {got!r})")


async def fill(panel: Tab, doc: dict[str, Any], prefix: str = "") -> None:
    """Enter a justification document into the rendered form, field by field (as tests/e2e/panel.py)."""
    for key, value in doc.items():
        if not prefix and key == "policy":
            continue
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            await fill(panel, value, path + ".")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for i, row in enumerate(value):
                if not await panel.call("sel => !!document.querySelector(sel)", f'[data-field="{path}.{i}"]'):
                    await panel.click(f'[data-field="{path}"] > fieldset > .row-actions > button')
                await fill(panel, row, f"{path}.{i}.")
        else:
            await set_field(panel, path, value)


async def options_signed_in(ff_tab: Tab, base: str, gateway: Gateway) -> None:
    """Signed in on the options page with a pasted practitioner token, kept where it should be."""
    signed_in = await options_sign_in(ff_tab, base, gateway.url, gateway.tokens["practitioner"])
    assert signed_in.startswith("Signed in as pat (practitioner, e2e)"), signed_in
    assert await ff_tab.call("() => document.querySelector('#token').value") == ""

    # Where the extension keeps them: the address in storage.local, the token in storage.session only.
    local = await ff_tab.call("() => browser.storage.local.get(null)")
    session = await ff_tab.call("() => browser.storage.session.get(null)")
    assert local["gatewayUrl"] == gateway.url
    assert session == {"token": gateway.tokens["practitioner"]}
    assert gateway.tokens["practitioner"] not in json.dumps(local)


@contextlib.asynccontextmanager
async def firefox_with_safeshare(
    exe: str, gateway: Gateway, webmail: Webmail, tmp_path: Path
) -> AsyncIterator[tuple[Firefox, str]]:
    """Firefox with the add-on loaded as a temporary add-on and set up on its options page (gateway address,
    pasted token); yields the browser and the add-on's base address. Firefox is stopped whatever happens, and
    its log is printed when the test fails."""
    internal_uuid = str(uuid.uuid4())
    base = f"moz-extension://{internal_uuid}"
    async with launch(exe, tmp_path / "firefox-profile", firefox_prefs(webmail, internal_uuid)) as ff:
        try:
            assert await ff.install_extension(EXTENSION) == ADDON_ID
            await options_signed_in(await ff.tab(), base, gateway)
            yield ff, base
        except BaseException:
            print("Firefox log (tail):\n" + ff.log_tail())
            raise


async def open_panel(mail: Tab, base: str) -> Tab:
    """Share securely (a real click), then the panel's frame once its form is on screen, without an alert."""
    await mail.wait_for("() => !!document.querySelector('.safeshare-button')", what="the Share securely button")
    await mail.click(".safeshare-button")
    # The content script reads the draft (attachments fetched back from the webmail) and opens the panel; if it
    # cannot, it says why on the button.
    src = await mail.wait_for(
        "() => document.querySelector('iframe.safeshare-panel-frame')?.src || "
        "document.querySelector('.safeshare-button').getAttribute('aria-description')",
        what="the panel's frame",
    )
    assert src == f"{base}/panel/panel.html", src  # no session in the address: a one-time ticket is posted in
    panel = await mail.frame("/panel/panel.html")
    await panel.wait_for("() => document.querySelector('#main')?.getAttribute('aria-busy') === 'false'")
    alert = await panel.call(
        "() => { const a = document.querySelector('#alert'); return a.hidden ? '' : a.textContent; }"
    )
    assert alert == "", alert
    return panel


async def share(panel: Tab) -> dict[str, str]:
    """Fill in the golden rules for a share, check the panel is ready, choose Share; the result's facts."""
    share_disabled = "() => document.querySelector('#share').disabled"
    # Before any answer, Share is unavailable: disabled while the panel's own checks settle, then announced as
    # unavailable (aria-disabled: a press shows the problems) until the answers are complete.
    unavailable = (
        "() => { const b = document.querySelector('#share');"
        " return b.disabled || b.getAttribute('aria-disabled') == 'true' }"
    )
    assert await panel.call(unavailable) is True
    await fill(panel, example("share"))
    await fill(panel, example("share"))  # a second pass only reads back, and puts right what a stray click changed
    status = await panel.wait_for(
        "() => window.__pending === false && document.querySelector('#status').textContent",
        what="the live validation",
    )
    assert status == "Ready to share.", (status, await panel.call(PROBLEMS))
    assert await panel.call(share_disabled) is False and await panel.call(unavailable) is False
    await panel.click("#share")
    # Firefox has no IntersectionObserver v2, so Share asks for a deliberate confirmation, usable after a moment.
    await panel.wait_for("() => !document.querySelector('#confirm').hidden", what="the confirmation step")
    assert "Share with" in await text_of(panel, "#confirm-text")
    await panel.wait_for("() => !document.querySelector('#confirm-yes').disabled", what="the confirmation's dwell")
    await panel.click("#confirm-yes")
    await panel.wait_for("() => !document.querySelector('#result').hidden", within=30, what="the result")
    assert "now contains only a notification" in await text_of(panel, "#result-note")
    facts = await panel.call(
        "() => [...document.querySelectorAll('#result-facts dt')]"
        ".map(dt => [dt.textContent, dt.nextElementSibling.textContent])"
    )
    return dict(facts)


def decrypted(gateway: Gateway, share_id: str, recipient: str) -> email.message.EmailMessage:
    return email.message_from_bytes(gateway.fetch(share_id, recipient), policy=email.policy.default)


def attachments_of(message: email.message.EmailMessage) -> dict[str, tuple[str, bytes]]:
    return {p.get_filename(): (p.get_content_type(), p.get_payload(decode=True)) for p in message.iter_attachments()}


def served(webmail: Webmail, prefix: str) -> dict[str, tuple[str, bytes]]:
    return {a.name: (a.content_type, a.data) for k, a in webmail.attachments.items() if k.startswith(prefix)}


async def test_share_from_gmail_in_firefox(
    firefox_exe: str, gateway: Gateway, webmail: Webmail, tmp_path: Path
) -> None:
    started = time.monotonic()
    async with firefox_with_safeshare(firefox_exe, gateway, webmail, tmp_path) as (ff, base):
        mail = await ff.tab()
        await mail.navigate(webmail.gmail_url())
        assert await mail.url() == webmail.gmail_url()  # the real hostname, over HTTPS
        await mail.wait_for("() => !!document.querySelector('.safeshare-button')", what="the Share securely button")
        buttons = await mail.call(
            "() => [...document.querySelectorAll('button')].filter(b => b.textContent === 'Share securely')"
            ".map(b => b.previousElementSibling?.getAttribute('data-tooltip') ?? '')"
        )
        assert len(buttons) == 1 and buttons[0].startswith("Send"), buttons  # one button, right after Send
        original = await text_of(mail, GMAIL_BODY)

        panel = await open_panel(mail, base)
        # The policy came from the gateway, the recipient was found in its directory, and the attachments were
        # read back from the webmail by the content script.
        assert "The questions below come from your organisation's SafeShare gateway." in await text_of(
            panel, "#policy-title"
        )
        assert "alice@example.org — Alice Example, Hereford MASH" in await text_of(panel, "#recipient-list")
        listed = await text_of(panel, "#email-attachments")
        for name, (ctype, _) in served(webmail, "gmail:").items():
            assert f"{name} — {ctype}, " in listed, listed

        facts = await share(panel)
        share_id = facts["Share reference"]
        assert facts["Ledger entry"].isdigit() and facts["Available until"]

        # The draft now holds only the notification, without attachments.
        body = await text_of(mail, GMAIL_BODY)
        assert "Information has been shared with you securely" in body and share_id in body
        assert "bruising" not in body and body != original
        assert f"{gateway.url}/s/{share_id}" in body
        assert await mail.call("() => document.querySelectorAll('a[href*=\"attid=\"]').length") == 0

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
    # The ledger records exactly the justification that was entered with clicks and keystrokes.
    entries = gateway.get("/api/v1/ledger?subject=CASE-2026-0412")["entries"]
    (entry,) = [e["entry"] for e in entries if e["index"] == info["ledger_index"]]
    expected = example("share")
    # The panel asks only the questions that apply (issue 13): the reason for not telling the person is asked
    # only when they will not be told, and here they will be told afterwards.
    del expected["rules"]["4_transparency"]["reason"]
    assert {k: entry["justification"].get(k) for k in expected} == expected
    assert time.monotonic() - started < 90, "the Firefox test should stay well under a minute and a half"


async def test_roundcube_origin_added_and_shared_in_firefox(
    firefox_exe: str, gateway: Gateway, webmail: Webmail, tmp_path: Path
) -> None:
    """A self-hosted Roundcube (on a loopback port) added on the options page: its content script is registered
    at run time, and a plain-text email is shared from it."""
    async with firefox_with_safeshare(firefox_exe, gateway, webmail, tmp_path) as (ff, base):
        options = await ff.tab()
        await options.navigate(f"{base}/options/options.html")
        await options.wait_for("() => document.querySelector('#gateway-url').value !== ''", what="the options")
        await options.click("#origins")
        await options.type(webmail.roundcube_origin)
        await options.click("#save")
        saved = await options.wait_for(
            "() => document.querySelector('#saved').textContent || (!document.querySelector('#alert').hidden "
            "&& 'ALERT: ' + document.querySelector('#alert').textContent)",
            what="the settings to be saved",
        )
        assert saved == f"Settings saved. SafeShare now works on {webmail.roundcube_origin}/*.", saved

        mail = await ff.tab()
        await mail.navigate(webmail.roundcube_url())
        panel = await open_panel(mail, base)
        assert "carol@example.org — Carol Example, Adult Social Care" in await text_of(panel, "#recipient-list")
        share_id = (await share(panel))["Share reference"]
        assert share_id in await mail.call("() => document.querySelector('#composebody').value")
        assert await mail.call("() => document.querySelectorAll('#attachment-list li').length") == 0

    message = decrypted(gateway, share_id, "carol")
    assert message["To"] == "carol@example.org"
    assert message.get_body(("plain",)).get_content().startswith("Dear Carol,")
    assert attachments_of(message) == served(webmail, "roundcube:")


HOSTILE = Path(__file__).resolve().parents[2] / "extension" / "test" / "fixtures" / "hostile"
ATTACK = """src => { (0, eval)(src);
    document.dispatchEvent(new Event('DOMContentLoaded', {bubbles: true})); return true; }"""


async def test_hostile_gmail_page_in_firefox(
    firefox_exe: str, gateway: Gateway, webmail: Webmail, tmp_path: Path
) -> None:
    """Issue 20's attacks where Firefox has the same means (the attack scripts of test_hostile_page.py, run in the
    page's own world): a scripted click opens nothing, the body swapped at the click is pointed out and not
    shared, hidden recipients are not read, the panel's address holds nothing, and Share needs the confirmation
    (Firefox has no IntersectionObserver v2)."""
    async with firefox_with_safeshare(firefox_exe, gateway, webmail, tmp_path) as (ff, base):
        mail = await ff.tab()
        await mail.navigate(webmail.gmail_url())
        await mail.wait_for("() => !!document.querySelector('.safeshare-button')", what="the Share securely button")
        for script in ("swap-body.js", "hidden-recipients.js"):
            assert await mail.call(ATTACK, (HOSTILE / script).read_text()) is True
        fetched = len(webmail.fetched)
        await mail.call("() => { document.querySelector('.safeshare-button').click(); }")
        await mail.call("() => new Promise(r => setTimeout(r, 1500))")
        assert await mail.call("() => document.querySelectorAll('iframe.safeshare-panel-frame').length") == 0
        assert len(webmail.fetched) == fetched
        assert await mail.call("() => window.__swapped ?? 0") == 1  # the page's listener ran; SafeShare did not act

        panel = await open_panel(mail, base)
        assert "the body changed while SafeShare was reading it" in await text_of(panel, "#unsteady")
        body = await panel.call("() => document.querySelector('#email-body').textContent")
        html = await panel.call("() => document.querySelector('#email-html').srcdoc")
        assert "bruising seen at 09:10" in html and "SWAPPED" not in html
        assert "bruising seen at 09:10" in body and "SWAPPED" not in body
        listed = await text_of(panel, "#recipient-list")
        assert "alice@example.org" in listed and "bob@" not in listed and "carol@" not in listed
        share_id = (await share(panel))["Share reference"]
    message = decrypted(gateway, share_id, "alice")
    assert message["To"] == "alice@example.org"
    text = message.get_body(("plain",)).get_content()
    assert "bruising seen at 09:10" in text and "SWAPPED" not in text
