"""The recipient's side of the extension in a real Firefox (Debian's firefox-esr, headless), over WebDriver BiDi.

As a recipient would, in one browser: the add-on loaded as a temporary add-on; the gateway address and a
recipient's token (carrying organisation and e-mail) entered on its options page; *Set up receiving* on the Keys
page with a passphrase typed twice (the key is made and locked in Firefox, only the public key is sent); the
administrator approves it with the CLI; a practitioner shares an e-mail (text and HTML bodies and an
attachment, as MIME built by the extension's own `lib/mime.js`) over the gateway's HTTP API; the recipient
opens the inbox, types a wrong passphrase first (refused in plain words), then the right one, opens the share:
the body is shown in the sandboxed frame beside the justification, and the attachment is downloaded through
Firefox's own download manager into a download folder set in the profile, then compared byte for byte with
what was sent. The acknowledgement note reaches the practitioner (checked over the API), and the
notification link `<gateway>/s/ID` opened in a tab lands on the extension's share view.

What differs from Chromium and is exercised here: `moz-extension://` pages and `browser.*`, age's scrypt and
X25519 on Firefox's WebCrypto, `storage.session` for the token, a blob: download from an extension page, a
sandboxed `srcdoc` frame (opaque origin: read through BiDi, in the frame's own realm), a content script
registered at run time on a pattern without a port, and `tabs.update` to a `moz-extension://` address asked
for by that content script.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import time
import uuid
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool
from tests.e2e.bidi import Tab, launch
from tests.e2e.conftest import EXTENSION
from tests.e2e.firefox_addon import ADDON_ID, options_sign_in
from tests.e2e.open_page import assert_accessible_bidi, axe_source
from tests.e2e.recipient_fixtures import (
    PASSPHRASE,
    READ_KEYRING_JS,
    SENDER_NAME,
    RecipientGateway,
    recipient_gateway,
)
from tests.extension_build import ensure_built

RECIPIENT = "rita"
NOTE = "Strategy meeting booked for Thursday."
ATTACHMENT_NAME = "body-map – école.pdf"
ATTACHMENT = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
TEXT_BODY = "Dear Rita,\n\nPlain part: bruising seen at 09:10 — école.\n"
HTML_BODY = (
    "<div>Dear Rita,</div><p>HTML part: <strong id=seen>bruising seen at 09:10 — école</strong>.</p>"
    "<script>document.title = 'scripts ran'</script>"
)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with recipient_gateway(tmp_path_factory.mktemp("ff-recipient-gateway")) as g:
        yield g


def mime_from_extension(draft: dict[str, Any]) -> bytes:
    """The e-mail as the practitioner's extension packages it: `buildMime` from extension/lib/mime.js, run in
    Node (the same module the service worker uses), attachments given as base64."""
    node = require_tool("node")
    script = (
        "import('./lib/mime.js').then(({buildMime}) => { let s = ''; process.stdin.on('data', d => s += d);"
        "process.stdin.on('end', () => { const d = JSON.parse(s);"
        "d.attachments = d.attachments.map(a => ({...a, data: new Uint8Array(Buffer.from(a.data, 'base64'))}));"
        "process.stdout.write(buildMime(d)); }); })"
    )
    out = subprocess.run(
        [node, "--input-type=module", "-e", script],
        input=json.dumps(draft).encode(),
        capture_output=True,
        cwd=EXTENSION,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout


def profile_prefs(internal_uuid: str, downloads: Path) -> dict[str, Any]:
    """A fixed internal UUID (so the add-on's pages have known addresses), and downloads saved straight into
    `downloads` without a dialog, as a user who chose "always save to this folder"."""
    return {
        "extensions.webextensions.uuids": json.dumps({ADDON_ID: internal_uuid}),
        "browser.download.dir": str(downloads),
        "browser.download.folderList": 2,
        "browser.download.useDownloadDir": True,
        "browser.download.always_ask_before_handling_new_types": False,
        "browser.helperApps.neverAsk.saveToDisk": "application/pdf,application/octet-stream",
        "browser.download.open_pdf_attachments_inline": False,
        "browser.download.start_downloads_in_tmp_dir": False,
    }


async def page_ready(tab: Tab, url: str) -> None:
    await tab.navigate(url)
    await tab.wait_for("() => document.querySelector('#main')?.getAttribute('aria-busy') === 'false'", what=url)


async def alert_text(tab: Tab) -> str:
    return str(
        await tab.call("() => { const a = document.querySelector('#alert'); return a.hidden ? '' : a.textContent; }")
    )


async def state_of(tab: Tab) -> tuple[str, str]:
    got = await tab.call(
        "() => { const s = document.querySelector('#state'); return [s.dataset.state, s.textContent]; }"
    )
    return str(got[0]), str(got[1])


async def unlock_with(inbox: Tab, passphrase: str) -> None:
    await inbox.fill("#unlock-pass", passphrase)
    await inbox.keys("\ue007")  # Enter submits the form


def downloaded(folder: Path, name: str, within: float = 20.0) -> bytes:
    """The file Firefox saved in `folder`, once complete (no .part file left beside it)."""
    deadline = time.monotonic() + within
    while True:
        files = sorted(p.name for p in folder.iterdir())
        if name in files and not any(f.endswith(".part") for f in files):
            return (folder / name).read_bytes()
        if time.monotonic() > deadline:
            raise AssertionError(f"no complete download of {name!r} in {folder} (it holds {files})")
        time.sleep(0.1)


async def test_recipient_sets_up_opens_downloads_and_acknowledges_in_firefox(
    firefox_exe: str, gw: RecipientGateway, tmp_path: Path
) -> None:
    started = time.monotonic()
    ensure_built()  # the bundled age, MIME and sanitising libraries (extension/vendor/) the recipient pages load
    internal_uuid = str(uuid.uuid4())
    base = f"moz-extension://{internal_uuid}"
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    token = gw.recipient_token(RECIPIENT)

    async with launch(firefox_exe, tmp_path / "firefox-profile", profile_prefs(internal_uuid, downloads)) as ff:
        try:
            assert await ff.install_extension(EXTENSION) == ADDON_ID
            tab = await ff.tab()

            # (1) Signed in with the recipient sign-in the organisation gave them (organisation and e-mail in it).
            signed_in = await options_sign_in(tab, base, gw.url, token)
            assert "(recipient, Hereford MASH)" in signed_in, signed_in
            assert await tab.call("() => browser.storage.session.get(null)") == {"token": token}

            # (2) Set up receiving: the passphrase typed twice; the key is made and locked in Firefox.
            await page_ready(tab, f"{base}/recipient/keys.html")
            assert await tab.call("() => document.querySelector('#who').textContent") == (
                f"{RECIPIENT} · {RECIPIENT}@example.org · Hereford MASH"
            )
            assert await tab.call("() => !document.querySelector('#setup').hidden")
            await tab.fill("#setup-pass", PASSPHRASE)
            await tab.fill("#setup-pass2", PASSPHRASE)
            await tab.click("#setup-go")
            await tab.wait_for(
                "() => document.querySelector('#state').dataset.state === 'pending' "
                "|| (!document.querySelector('#alert').hidden "
                "&& 'ALERT: ' + document.querySelector('#alert').textContent)",
                within=45,
                what="the key to be made and sent for approval",
            )
            assert await alert_text(tab) == ""
            assert "Waiting for approval" in (await state_of(tab))[1]
            # Kept in the extension origin's IndexedDB, not in storage.local (which content scripts can read).
            assert await tab.call("() => browser.storage.local.get('keyring').then(r => r.keyring ?? null)") is None
            stored = await tab.call(READ_KEYRING_JS)
            assert stored["armored"].startswith("-----BEGIN AGE ENCRYPTED FILE-----")
            assert "AGE-SECRET-KEY" not in json.dumps(stored)
            [key] = stored["keys"]
            me = gw.get("/api/v1/recipients/me", token)
            assert me["enrolments"][0]["age_recipient"] == key["recipient"]

            # (3) The administrator approves it; "Check approval again" shows it active.
            gw.cli("recipient", "approve", RECIPIENT)
            await tab.click("#refresh")
            await tab.wait_for("() => document.querySelector('#state').dataset.state === 'active'", what="approval")
            assert "Active" in (await state_of(tab))[1]
            await assert_accessible_bidi(tab, axe_source(), "keys page: an approved key")

            # (4) A practitioner shares an e-mail with text and HTML bodies and an attachment.
            payload = mime_from_extension(
                {
                    "to": [f"{RECIPIENT}@example.org"],
                    "from": "pat@example.org",
                    "subject": "Referral: CASE-2026-0412 — injury disclosed at school",
                    "text": TEXT_BODY,
                    "html": HTML_BODY,
                    "attachments": [
                        {
                            "name": ATTACHMENT_NAME,
                            "type": "application/pdf",
                            "data": base64.b64encode(ATTACHMENT).decode(),
                        }
                    ],
                }
            )
            parsed = message_from_bytes(payload, policy=policy.default)
            assert parsed.get_content_type() == "multipart/mixed"
            assert [p.get_filename() for p in parsed.iter_attachments()] == [ATTACHMENT_NAME]
            share_id = gw.share([RECIPIENT], payload)

            # (5) The inbox lists it; a wrong passphrase first is refused in plain words, then the right one.
            inbox = tab
            await page_ready(inbox, f"{base}/recipient/inbox.html")
            row = f'tr[data-share="{share_id}"]'
            cells = await inbox.wait_for(
                "row => [...(document.querySelector(row)?.querySelectorAll('td') ?? [])].map(td => td.innerText)",
                row,
                what="the share in the inbox",
            )
            assert cells[0] == SENDER_NAME and cells[6] == "New: ready to open", cells
            assert await inbox.call("() => document.querySelector('#error-summary').hidden") is True
            await unlock_with(inbox, "not the passphrase at all")
            # The GOV.UK error summary, focused, its link to the field; the message beside the field.
            links = await inbox.wait_for(
                "() => !document.querySelector('#error-summary').hidden && [...document.querySelectorAll("
                "'#error-summary-list a')].map(a => [a.textContent, a.getAttribute('href')])",
                within=30,
                what="the wrong passphrase to be refused",
            )
            wrong = "That passphrase does not unlock your keys. Check it and try again."
            assert links == [[wrong, "#unlock-pass"]], links
            assert await inbox.call("() => document.activeElement.id") == "error-summary"
            assert await inbox.call("() => document.querySelector('#unlock-pass-error').textContent") == (
                f"Error: {wrong}"
            )
            assert (
                await inbox.call("() => document.querySelector('#unlock-pass').getAttribute('aria-invalid')") == "true"
            )
            assert await inbox.call("() => document.querySelector('#unlocked').hidden") is True
            await assert_accessible_bidi(inbox, axe_source(), "inbox: wrong passphrase refused")
            await inbox.click("#error-summary-list a")
            assert await inbox.call("() => document.activeElement.id") == "unlock-pass"
            await unlock_with(inbox, PASSPHRASE)
            await inbox.wait_for("() => !document.querySelector('#unlocked').hidden", within=30, what="the unlock")
            assert await alert_text(inbox) == ""
            assert await inbox.call(
                "() => document.querySelector('#error-summary').hidden"
                " && !document.querySelector('#unlock-pass').hasAttribute('aria-invalid')"
            )

            await inbox.click(f"{row} button")
            opened = await inbox.wait_for(
                "() => document.querySelector('#message-body').dataset.loaded || "
                "(!document.querySelector('#share-problem').hidden && 'PROBLEM: ' + "
                "document.querySelector('#share-problem').textContent)",
                within=30,
                what="the share to open",
            )
            assert opened == share_id, opened
            assert await inbox.url() == f"{base}/recipient/inbox.html#share={share_id}"
            # The body, read inside the sandboxed frame (its own opaque origin: the page itself cannot reach in).
            assert await inbox.call("() => document.querySelector('#message-body').getAttribute('sandbox')") == ""
            frame = await inbox.frame("about:srcdoc")
            shown = await frame.call("() => document.body.innerText")
            assert "HTML part: bruising seen at 09:10 — école" in shown, shown  # the HTML alternative is shown
            assert await frame.call("() => document.querySelector('#seen')?.tagName") == "STRONG"
            assert await frame.call("() => document.querySelectorAll('script').length") == 0
            assert await frame.call("() => document.title") != "scripts ran"
            facts = await inbox.call("() => document.querySelector('#message-facts').innerText")
            assert "Referral: CASE-2026-0412 — injury disclosed at school" in facts
            # The justification beside it.
            why = await inbox.call("() => document.querySelector('.share-why').innerText")
            assert "Public task" in why and "Children Act 1989 s47" in why, why
            await assert_accessible_bidi(inbox, axe_source(), "a share open beside its justification")
            # The attachment, downloaded by Firefox into the download folder: the very bytes that were sent.
            links = await inbox.call(
                "() => [...document.querySelectorAll('#attachments a')].map(a => [a.textContent, a.download])"
            )
            assert links == [[ATTACHMENT_NAME, ATTACHMENT_NAME]], links
            await inbox.click("#attachments a")
            assert await asyncio.to_thread(downloaded, downloads, ATTACHMENT_NAME) == ATTACHMENT

            # (6) Received and actioned, with a note the practitioner sees.
            await inbox.click("#ack-note")
            await inbox.type(NOTE)
            await inbox.click("#ack-go")
            done = await inbox.wait_for(
                "() => { const d = document.querySelector('#ack-done'); return !d.hidden && d.textContent; }",
                what="the acknowledgement",
            )
            assert done.startswith("You marked this received and actioned on") and NOTE in done, done
            sent = gw.get("/api/v1/shares", gw.tokens["practitioner"])["shares"]
            [mine] = next(s for s in sent if s["id"] == share_id)["recipients"]
            assert mine["acknowledgement"] == NOTE and mine["acknowledged_at"], mine

            # (7) The notification link opened in a tab lands on the extension's share view.
            link = await ff.tab()
            await link.navigate(f"{gw.url}/s/{share_id}", wait="none")
            target = f"{base}/recipient/inbox.html#share={share_id}"
            await link.wait_for_url(target, within=15)
            await link.wait_for(
                "() => !document.querySelector('#share-problem').hidden && "
                "document.querySelector('#share-problem').textContent",
                what="the share view to ask for the passphrase",
            )
            assert await link.call("() => document.querySelector('#share-problem').textContent") == (
                "Unlock your keys to open this share."
            )
            assert await link.call("() => document.querySelector('#share-h').textContent") == f"Share {share_id}"
        except BaseException:
            print("Firefox log (tail):\n" + ff.log_tail())
            raise
    assert time.monotonic() - started < 90, "the Firefox recipient test should stay under a minute and a half"
