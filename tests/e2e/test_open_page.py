"""The recipient web page `/open/` in real headless Chromium with NO extension installed, against a real
`safeshare serve`: a returning recipient signs in with a pasted token, makes a key in the page (locked with a
passphrase, kept in the origin's IndexedDB, only its public half enrolled), is approved with the CLI, opens a
share (decrypted in the page, sanitised view in a sandboxed frame, justification and handling beside it),
downloads attachments (HTML and SVG ones download as application/octet-stream, never render), acknowledges
(the sender sees it); a later visit unlocks the kept key (wrong passphrase refused); the notification link
hands off to the page; axe-core finds no WCAG 2.2 A/AA violation in any state; the same path works by
keyboard alone; no Content-Security-Policy violation or integrity failure happens anywhere."""

from __future__ import annotations

import json
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pyrage
import pytest

from tests.e2e.oidc_idp import IdP, serve_idp
from tests.e2e.open_page import (
    Browsers,
    Person,
    assert_accessible,
    axe_source,
    error_summary,
    plain_chromium,
    tab_to,
    wait_status,
)
from tests.e2e.recipient_fixtures import PASSPHRASE, RecipientGateway, recipient_gateway
from tests.test_cli import call, serve

HTML_ATTACHMENT = b"<!doctype html><script>document.title='ran'</script><h1>not rendered</h1>"
SVG_ATTACHMENT = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><circle r="4"/></svg>'
PDF_ATTACHMENT = b"%PDF-1.4\n" + bytes(range(256)) * 8


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecipientGateway]:
    with recipient_gateway(tmp_path_factory.mktemp("open-page-gateway")) as g:
        yield g


@pytest.fixture(scope="module")
def browsers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browsers]:
    with plain_chromium(tmp_path_factory) as b:
        yield b


@pytest.fixture(scope="module")
def axe() -> str:
    return axe_source()


def mail(subject: str, body: str, html: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["To"] = "recipient@example.org"
    msg["From"] = "Pat Practitioner <pat@council.example>"
    msg["Subject"] = subject
    msg.set_content(body)
    if html:
        msg.add_alternative(html, subtype="html")
    msg.add_attachment(PDF_ATTACHMENT, maintype="application", subtype="pdf", filename="referral.pdf")
    msg.add_attachment(HTML_ATTACHMENT, maintype="text", subtype="html", filename="report.html")
    msg.add_attachment(SVG_ATTACHMENT, maintype="image", subtype="svg+xml", filename="body-map.svg")
    return msg.as_bytes()


def assert_marked_in_error(page: Any, field: str, control: str) -> None:
    """The GOV.UK error pattern, as govuk-frontend styles it: the summary has the focus and links to the field;
    the field's group has the red bar, the control its red border, and the message starts with a hidden
    "Error:" that the field is described by."""
    assert page.evaluate("() => document.activeElement.id") == "error-summary"
    assert page.locator(f'#error-list a[href="#{field}"]').count() == 1
    assert "govuk-form-group--error" in (page.locator(f"#{field}-group").get_attribute("class") or "").split()
    assert f"{control}--error" in (page.locator(f"#{field}").get_attribute("class") or "").split()
    assert f"{field}-error" in (page.locator(f"#{field}").get_attribute("aria-describedby") or "").split()
    assert page.locator(f"#{field}-error .govuk-visually-hidden").inner_text().strip() == "Error:"
    # govuk-frontend's stylesheet is in force: the group's bar is the Design System's error colour.
    colours = page.evaluate(
        "f => [getComputedStyle(document.getElementById(f + '-group')).borderLeftColor,"
        " getComputedStyle(document.getElementById(f)).borderTopColor]",
        field,
    )
    assert colours == ["rgb(202, 53, 53)", "rgb(202, 53, 53)"], colours


def sign_in_with_token(page: Any, token: str) -> None:
    page.get_by_label("Sign-in token").fill(token)
    page.get_by_role("button", name="Sign in with the token").click()
    page.wait_for_selector("#view-home:not([hidden])", timeout=30000)


def downloads(person: Person, page: Any) -> dict[str, bytes]:
    """Every attachment link, downloaded as the recipient would: name → bytes."""
    out: dict[str, bytes] = {}
    links = page.locator("#attachments a")
    for i in range(links.count()):
        with page.expect_download() as info:
            links.nth(i).click()
        d = info.value
        out[d.suggested_filename] = Path(d.path()).read_bytes()
    return out


def navigating_downloads(person: Person, href: str) -> bytes:
    """Going to an attachment's address itself (not the link) still downloads it: the browser is never asked
    to render it, whatever its real type (the blob is application/octet-stream)."""
    from playwright.sync_api import Error

    tab = person.new_page()
    try:
        with tab.expect_download() as info:
            try:
                tab.goto(href)
            except Error as e:
                assert "Download is starting" in str(e)
        return Path(info.value.path()).read_bytes()
    finally:
        tab.close()


def test_returning_recipient_makes_a_key_opens_a_share_and_acknowledges(
    gw: RecipientGateway, browsers: Browsers, axe: str, tmp_path: Path
) -> None:
    alice = browsers.person(gw.url)
    page = alice.page
    page.goto("/open/")
    page.wait_for_selector("#main[aria-busy=false]")
    assert page.locator("#view-start").is_visible()
    assert "only as trustworthy as that gateway" in page.locator(".govuk-phase-banner").inner_text()
    assert_accessible(page, axe, "start")

    # A malformed token is refused beside the field, with the error summary on top.
    page.get_by_label("Sign-in token").fill("not a token")
    page.get_by_role("button", name="Sign in with the token").click()
    assert "That is not a sign-in token" in error_summary(page)
    assert page.locator("#token").get_attribute("aria-invalid") == "true"
    assert_marked_in_error(page, "token", "govuk-textarea")
    assert_accessible(page, axe, "start with an error")

    # A practitioner's token is not a recipient's sign-in: refused, still signed out.
    page.get_by_label("Sign-in token").fill(gw.tokens["practitioner"])
    page.get_by_role("button", name="Sign in with the token").click()
    assert "This token is not a recipient's sign-in" in error_summary(page)
    assert page.locator("#view-home").is_hidden()
    assert page.evaluate("() => sessionStorage.getItem('safeshare-open-token')") is None

    sign_in_with_token(page, gw.recipient_token("alice"))
    assert "Signed in as Alice (alice), alice@example.org" in page.locator("#who").inner_text()
    # The error state went with the error (the summary, the red bar, the field's red border).
    assert page.locator(".govuk-form-group--error, .govuk-textarea--error, #error-summary:not([hidden])").count() == 0
    page.wait_for_selector("#view-home[aria-busy=false]")  # the name shows at once; the key state once looked up
    assert page.locator("#key-state").get_attribute("data-state") == "none"
    assert_accessible(page, axe, "signed in, no key")

    # Too short a passphrase, then two that differ: refused, nothing stored, nothing enrolled.
    page.get_by_label("Choose a passphrase").fill("short")
    page.get_by_label("Type the passphrase again").fill("short")
    page.get_by_role("button", name="Create my key").click()
    assert "too short" in error_summary(page)
    page.get_by_label("Choose a passphrase").fill(PASSPHRASE)
    page.get_by_label("Type the passphrase again").fill(PASSPHRASE + "!")
    page.get_by_role("button", name="Create my key").click()
    assert "The two passphrases are different" in error_summary(page)
    assert_marked_in_error(page, "new-pass2", "govuk-input")
    assert "govuk-form-group--error" not in (page.locator("#new-pass-group").get_attribute("class") or "")
    assert_accessible(page, axe, "key form with an error")
    assert gw.get("/api/v1/recipients/me", gw.recipient_token("alice"))["enrolments"] == []

    page.get_by_label("Type the passphrase again").fill(PASSPHRASE)
    page.get_by_role("button", name="Create my key").click()
    page.wait_for_selector('#key-state[data-state="pending"]', timeout=120000)
    assert "Waiting for approval" in page.locator("#key-state").inner_text()
    assert_accessible(page, axe, "key pending approval")

    # Only the locked age file and the public key are in the origin's IndexedDB; only the public key was sent.
    stored = page.evaluate(
        """() => new Promise((ok, ko) => { const r = indexedDB.open('safeshare-open');
             r.onsuccess = () => { const g = r.result.transaction('keyrings').objectStore('keyrings').get('alice');
               g.onsuccess = () => ok(g.result); g.onerror = () => ko(g.error); }; r.onerror = () => ko(r.error); })"""
    )
    assert stored["armored"].startswith("-----BEGIN AGE ENCRYPTED FILE-----")
    assert "AGE-SECRET-KEY" not in json.dumps(stored)
    [key] = stored["keys"]
    assert key["recipient"] in gw.cli("recipient", "pending")

    # The backup download is the locked file, an ordinary age passphrase file.
    with page.expect_download() as info:
        page.get_by_role("link", name="Download a backup of my key").click()
    backup = Path(info.value.path()).read_bytes()
    identity = pyrage.passphrase.decrypt(backup, PASSPHRASE).decode()
    assert f"# public key: {key['recipient']}" in identity

    gw.cli("recipient", "approve", "alice")
    page.get_by_role("button", name="Check approval again").click()
    page.wait_for_selector('#key-state[data-state="active"]', timeout=30000)
    assert_accessible(page, axe, "key active, inbox empty")

    html = "<p>Strategy meeting <b>Thursday</b>.</p><img src='https://tracker.example/p.gif'>"
    share_id = gw.share(["alice"], mail("Referral", "Strategy meeting Thursday.", html))
    page.get_by_role("button", name="Refresh").click()
    row = page.locator(f'tr[data-share="{share_id}"]')
    row.wait_for()
    assert "New: ready to open" in row.inner_text()
    assert_accessible(page, axe, "inbox with a share")
    row.get_by_role("link", name="Open").click()
    page.wait_for_selector("#message:not([hidden])", timeout=120000)
    page.wait_for_selector("#message-body[data-loaded]", timeout=15000)
    frame = page.frame_locator("#message-body")
    assert "Strategy meeting Thursday." in frame.locator("body").inner_text()
    assert frame.locator("img[src]").count() == 0  # the remote image was removed
    assert page.locator("#message-body").get_attribute("sandbox") == ""
    assert "Referral" in page.locator("#message-facts").inner_text()
    assert "Why you have it" in page.locator("#why").inner_text()
    assert "identified by reference only" in page.locator("#handling").inner_text()
    assert_accessible(page, axe, "share open")

    got = downloads(alice, page)
    assert got == {"referral.pdf": PDF_ATTACHMENT, "report.html": HTML_ATTACHMENT, "body-map.svg": SVG_ATTACHMENT}
    for name, data in (("report.html", HTML_ATTACHMENT), ("body-map.svg", SVG_ATTACHMENT)):
        href = page.locator(f'#attachments a[download="{name}"]').get_attribute("href")
        assert href.startswith(f"blob:{gw.url}/")
        assert navigating_downloads(alice, href) == data
    assert page.title().startswith("SafeShare")  # the HTML attachment did not run or replace the page
    assert len(alice.context.pages) == 1  # nothing opened in a new tab

    page.get_by_role("button", name="Mark received and actioned").click()
    assert "Write a short note" in error_summary(page)
    assert_accessible(page, axe, "acknowledgement with an error")
    page.get_by_label("Note for the sender").fill("Strategy meeting booked for Thursday.")
    page.get_by_role("button", name="Mark received and actioned").click()
    wait_status(page, "Recorded: the sender can see")
    sent = gw.get("/api/v1/shares", gw.tokens["practitioner"])["shares"]
    mine = next(s for s in sent if s["id"] == share_id)
    [r] = mine["recipients"]
    assert r["acknowledgement"] == "Strategy meeting booked for Thursday." and r["acknowledged_at"]
    assert_accessible(page, axe, "share acknowledged")

    # Another visit (a new tab: the sign-in lives in one tab only): the key is kept locked; a wrong
    # passphrase is refused, the right one opens the share again through the notification link's hand-off.
    later = alice.new_page()
    later.goto(f"/s/{share_id}")
    later.get_by_role("link", name="Open it in this browser").click()
    later.wait_for_selector("#view-start:not([hidden])")
    assert share_id in later.locator("#start-ref").inner_text()
    later.wait_for_selector("#main[aria-busy=false]")
    assert_accessible(later, axe, "share link landing")
    sign_in_with_token(later, gw.recipient_token("alice"))
    later.wait_for_selector('#key-state[data-state="locked"]')
    later.get_by_label("Your key's passphrase").fill("not my passphrase at all")
    later.get_by_role("button", name="Unlock my key").click()
    assert "does not unlock your key" in error_summary(later)
    assert_accessible(later, axe, "unlock with an error")
    later.get_by_label("Your key's passphrase").fill(PASSPHRASE)
    later.get_by_role("button", name="Unlock my key").click()
    later.wait_for_selector("#message:not([hidden])", timeout=120000)
    assert later.url.endswith(f"#/share/{share_id}")
    later.wait_for_selector("#message-body[data-loaded]", timeout=15000)
    assert "Strategy meeting Thursday." in later.frame_locator("#message-body").locator("body").inner_text()
    assert "received and actioned" in later.locator("#ack-done").inner_text()

    assert alice.problems == []


def test_keyboard_only(gw: RecipientGateway, browsers: Browsers, axe: str) -> None:
    """Sign in, make a key, open a share, download an attachment and acknowledge, with the keyboard alone."""
    bob = browsers.person(gw.url)
    page = bob.page
    page.goto("/open/")
    page.wait_for_selector("#main[aria-busy=false]")
    tab_to(page, "#skip")
    page.keyboard.press("Enter")
    tab_to(page, "#token")
    page.keyboard.insert_text(gw.recipient_token("bob"))
    tab_to(page, "#token-go")
    page.keyboard.press("Enter")
    page.wait_for_selector("#view-home:not([hidden])", timeout=30000)
    tab_to(page, "#new-pass")
    page.keyboard.type(PASSPHRASE)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSPHRASE)
    page.keyboard.press("Enter")  # submits the form
    page.wait_for_selector('#key-state[data-state="pending"]', timeout=120000)
    gw.cli("recipient", "approve", "bob")
    tab_to(page, "#check-again")
    page.keyboard.press("Enter")
    page.wait_for_selector('#key-state[data-state="active"]', timeout=30000)
    share_id = gw.share(["bob"], mail("For Bob", "Keyboard only."))
    tab_to(page, "#inbox-reload")
    page.keyboard.press("Enter")
    page.locator(f'tr[data-share="{share_id}"]').wait_for()
    tab_to(page, f'tr[data-share="{share_id}"] a')
    page.keyboard.press("Enter")
    page.wait_for_selector("#message:not([hidden])", timeout=120000)
    tab_to(page, '#attachments a[download="referral.pdf"]')
    with page.expect_download() as info:
        page.keyboard.press("Enter")
    assert Path(info.value.path()).read_bytes() == PDF_ATTACHMENT
    tab_to(page, "#ack-note")
    page.keyboard.type("Read and filed.")
    tab_to(page, "#ack-go")
    # The focus is visible: the focused button turns yellow (the GOV.UK focus state).
    assert page.evaluate("() => getComputedStyle(document.activeElement).backgroundColor") == "rgb(255, 221, 0)"
    page.keyboard.press("Enter")
    wait_status(page, "Recorded: the sender can see")
    assert_accessible(page, axe, "after keyboard-only acknowledgement")
    assert bob.problems == []


def test_typing_while_the_inbox_loads_keeps_the_focus(gw: RecipientGateway, browsers: Browsers) -> None:
    """The home view shows before its inbox arrives. Someone who tabs into the passphrase field and types in
    that moment keeps the focus and what they typed: the page moves the focus only if they have not moved it.
    The inbox answer is held (the real gateway's, let through later) so the moment is certain, not raced."""
    quinn = browsers.person(gw.url)
    page = quinn.page
    held: list[Any] = []
    release = False

    def hold(route: Any) -> None:
        if release:
            route.continue_()
        else:
            held.append(route)

    page.route("**/api/v1/inbox*", hold)
    page.goto("/open/")
    page.wait_for_selector("#main[aria-busy=false]")
    page.get_by_label("Sign-in token").fill(gw.recipient_token("quinn"))
    page.get_by_role("button", name="Sign in with the token").click()
    page.wait_for_selector("#view-home:not([hidden])", timeout=30000)
    page.wait_for_function("() => document.getElementById('view-home').getAttribute('aria-busy') === 'true'")
    while not held:
        page.wait_for_timeout(50)
    tab_to(page, "#new-pass")
    page.keyboard.type(PASSPHRASE)
    release = True
    for route in held:
        route.continue_()
    page.wait_for_selector("#view-home[aria-busy=false]", timeout=30000)
    assert page.evaluate("() => document.activeElement.id") == "new-pass"
    assert page.input_value("#new-pass") == PASSPHRASE
    assert quinn.problems == []


@pytest.fixture(scope="module")
def oidc_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RecipientGateway, IdP]]:
    """A gateway that trusts a real (tiny) OpenID provider on loopback, which lets the gateway's page call its
    token endpoint (CORS, as an identity provider does for a single-page-app client)."""
    tmp = tmp_path_factory.mktemp("open-page-oidc")
    home = tmp / "home"
    home.mkdir()
    with serve_idp() as idp:
        (home / "safeshare.toml").write_text(idp.toml())
        with serve(home, tmp / "server.log") as url:
            gw = RecipientGateway(home, url)
            gw.tokens = {
                "practitioner": gw.token("pat", "practitioner"),
                "auditor": gw.token("audrey", "partnership_auditor"),
            }
            idp.cors_origin = url
            yield gw, idp


def test_sign_in_with_the_organisation_and_restore_a_key_backup(
    oidc_gw: tuple[RecipientGateway, IdP], browsers: Browsers, axe: str, tmp_path: Path
) -> None:
    """Flow (c) with the organisation's identity provider (authorization code + PKCE, the page's own redirect),
    following the notification link; the key comes from a backup made elsewhere (an age passphrase file)."""
    gw, idp = oidc_gw
    idp.sub, idp.roles = "olive", ("SafeShare.Recipient",)
    identity = pyrage.x25519.Identity.generate()
    gw.cli("recipient", "add", "olive", "--name", "Olive", "--org", "GP practice", "--email", "olive@example.org",
           "--age-recipient", str(identity.to_public()))  # fmt: skip
    backup = tmp_path / "safeshare-keys-olive.age"
    backup.write_bytes(
        pyrage.passphrase.encrypt(f"# public key: {identity.to_public()}\n{identity}\n".encode(), PASSPHRASE)
    )
    share_id = gw.share(["olive"], mail("For Olive", "Opened after signing in with the organisation."))

    olive = browsers.person(gw.url)
    page = olive.page
    page.goto(f"/open/#/s/{share_id}")
    page.wait_for_selector("#main[aria-busy=false]")
    host = idp.url.split("//")[1]
    page.get_by_role("button", name=f"Sign in with {host}").click()
    page.wait_for_selector("#view-home:not([hidden])", timeout=30000)
    assert "?code=" not in page.url  # the code left the address bar at once
    [authorize] = idp.authorize_requests[-1:]
    assert authorize["redirect_uri"] == f"{gw.url}/open/" and authorize["code_challenge_method"] == "S256"
    assert idp.token_requests[-1]["code_verifier"] and "client_secret" not in idp.token_requests[-1]
    assert "Signed in as olive" in page.locator("#who").inner_text()
    assert_accessible(page, axe, "signed in with OIDC, no key here")

    page.get_by_text("I have a key backup from before").click()
    page.get_by_label("Key backup file (.age)").set_input_files(str(backup))
    page.get_by_label("Passphrase of the backup").fill("the wrong passphrase here")
    page.get_by_role("button", name="Restore my key").click()
    assert "does not open this backup" in error_summary(page)
    assert_accessible(page, axe, "restore with an error")
    page.get_by_label("Passphrase of the backup").fill(PASSPHRASE)
    page.get_by_role("button", name="Restore my key").click()
    # The key is the active one already, so the share the link was for opens at once.
    page.wait_for_selector("#message:not([hidden])", timeout=120000)
    assert page.url.endswith(f"#/share/{share_id}")
    page.wait_for_selector("#message-body[data-loaded]", timeout=15000)
    assert "Opened after signing in" in page.frame_locator("#message-body").locator("body").inner_text()
    assert olive.problems == []


@pytest.mark.parametrize("victim", ["vendor/purify.js", "app.js"])
def test_a_changed_module_is_refused_by_subresource_integrity(
    victim: str, browsers: Browsers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway serving a page whose module (imported or the entry script) differs from the hash in the page:
    the browser refuses it and the page does not start: the import map's integrity covers imported modules too."""
    import shutil

    copy = tmp_path / "src"
    shutil.copytree(Path(__file__).resolve().parents[2] / "gateway", copy / "gateway")
    target = copy / "gateway" / "web" / "open" / victim
    target.write_bytes(target.read_bytes() + b"\n// changed after the page was made\n")
    monkeypatch.setenv("PYTHONPATH", str(copy))
    monkeypatch.chdir(copy)  # `python -m` puts the working directory first on the import path
    with serve(tmp_path / "home", tmp_path / "server.log") as url:
        status, served = call(f"{url}/open/{victim}")
        assert status == 200 and served == target.read_bytes()  # the changed copy is what is served
        person = browsers.person(url)
        page = person.page
        page.goto("/open/")
        page.wait_for_timeout(1500)
        assert page.locator("#main").get_attribute("aria-busy") == "true"  # the app never ran
        assert page.locator("#view-start").is_hidden()
        assert any("integrity" in p.lower() for p in person.problems), person.problems
