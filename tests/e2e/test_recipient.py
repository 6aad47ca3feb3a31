"""The recipient's side in a real browser (Debian's Chromium, the extension loaded unpacked) against a real
`safeshare serve`: set up receiving (key made and locked in the browser, only the public key enrolled),
approval with the CLI, a share from the practitioner's extension in another profile opened and decrypted in
the recipient's, wrong passphrase, backup and restore into a fresh profile, team inboxes, escrow, key rotation,
the notification link and acknowledgements. Each recipient is a separate browser profile."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pyrage
import pytest

from tests.conftest import example, require_tool
from tests.e2e.open_page import assert_accessible, axe_source
from tests.e2e.panel import fill, open_panel, settle
from tests.e2e.recipient_fixtures import (
    PASSPHRASE,
    SENDER_NAME,
    SENDER_ORG_NAME,
    Profile,
    Profiles,
    RecipientGateway,
    attachments,
    check_state,
    error_signs,
    field_error,
    focused_id,
    follow_summary_link,
    message_text,
    open_share,
    playwright_profiles,
    recipient_gateway,
    set_up_receiving,
    summary_links,
    unlock,
)
from tests.e2e.webmail import Webmail
from tests.test_cli import call


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecipientGateway]:
    with recipient_gateway(tmp_path_factory.mktemp("recipient-gateway")) as g:
        yield g


@pytest.fixture(scope="module")
def profiles(webmail: Webmail, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Profiles]:
    with playwright_profiles(tmp_path_factory, webmail.host_rules()) as p:
        yield p


@pytest.fixture(scope="module")
def enrolled(gw: RecipientGateway, profiles: Profiles) -> Callable[[str], Profile]:
    """A recipient's own browser profile with receiving set up there and approved by the administrator."""
    made: dict[str, Profile] = {}

    def get(name: str) -> Profile:
        if name not in made:
            profile = profiles.new(name)
            profile.use(gw, gw.recipient_token(name))
            page = set_up_receiving(profile)
            gw.cli("recipient", "approve", name)
            assert "Active" in check_state(page, "active")
            page.close()
            made[name] = profile
        return made[name]

    return get


@pytest.fixture(scope="module")
def practitioner(gw: RecipientGateway, profiles: Profiles) -> Profile:
    """The practitioner's own browser profile (Share securely in webmail; the Sent tab)."""
    pat = profiles.new("practitioner")
    pat.use(gw, gw.tokens["practitioner"])
    return pat


def mail(subject: str, body: str, files: dict[str, bytes]) -> bytes:
    msg = EmailMessage()
    msg["To"] = "recipient@example.org"
    msg["Subject"] = subject
    msg.set_content(body)
    for name, data in files.items():
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return msg.as_bytes()


def test_enrol_approve_share_from_webmail_and_open(
    gw: RecipientGateway, profiles: Profiles, practitioner: Profile, webmail: Webmail
) -> None:
    alice = profiles.new("alice")
    alice.use(gw, gw.recipient_token("alice"))
    keys = alice.open("recipient/keys.html")
    assert "the key never leaves this browser" in keys.locator("#setup-explain").inner_text()
    assert "you lose access to every share" in keys.locator("#setup-explain").inner_text()
    # Passphrases, the GOV.UK way (issue 13): nothing red before she does anything, not even after tabbing
    # through the boxes; a box she typed in is checked when she leaves it, beside it only.
    assert error_signs(keys) == []
    keys.get_by_label("Choose a passphrase").focus()
    keys.keyboard.press("Tab")
    keys.keyboard.press("Tab")
    assert error_signs(keys) == []
    assert_accessible(keys, axe_source(), "keys page: set-up form, nothing typed")
    keys.get_by_label("Choose a passphrase").fill("short")
    assert error_signs(keys) == []  # typing is not leaving
    keys.get_by_label("Type the passphrase again").focus()
    assert field_error(keys, "setup-pass").startswith("The passphrase is too short")
    assert keys.locator("#error-summary").is_hidden()
    assert_accessible(keys, axe_source(), "keys page: a field left with a problem")
    # Submitted: the error summary at the top, focused, each problem a link that moves focus to its field.
    keys.get_by_label("Type the passphrase again").fill("short")
    keys.get_by_role("button", name="Create my key and ask for approval").click()
    assert [target for _, target in summary_links(keys)] == ["setup-pass"]
    assert summary_links(keys)[0][0].startswith("The passphrase is too short")
    assert focused_id(keys) == "error-summary"
    assert keys.locator("#error-summary [role=alert] h2").inner_text() == "There is a problem"
    assert keys.locator("#alert").is_hidden()  # nothing that is not about a field
    assert_accessible(keys, axe_source(), "keys page: set-up form with a refused passphrase")
    assert follow_summary_link(keys, "The passphrase is too short") == "setup-pass"
    # Fixed: the message goes as soon as the field is right, and the summary with it; nothing was stored.
    keys.get_by_label("Choose a passphrase").fill(PASSPHRASE)
    assert error_signs(keys) == []
    assert_accessible(keys, axe_source(), "keys page: the refused passphrase fixed")
    assert alice.keyring() is None
    # The second box (typed differently; then left empty): beside that box, linked from the summary.
    keys.get_by_label("Type the passphrase again").fill(PASSPHRASE + " ")
    keys.get_by_role("button", name="Create my key and ask for approval").click()
    assert summary_links(keys) == [
        ("The two passphrases are different. Type the same passphrase in both boxes.", "setup-pass2")
    ]
    assert field_error(keys, "setup-pass") == ""
    assert field_error(keys, "setup-pass2").startswith("The two passphrases are different")
    assert follow_summary_link(keys, "The two passphrases") == "setup-pass2"
    assert alice.keyring() is None
    keys.get_by_label("Type the passphrase again").fill(PASSPHRASE)
    assert error_signs(keys) == []
    keys.get_by_role("button", name="Create my key and ask for approval").click()
    keys.wait_for_selector('#state[data-state="pending"]', timeout=30000)
    assert "Waiting for approval" in keys.locator("#state").inner_text()
    assert_accessible(keys, axe_source(), "keys page: waiting for approval")

    # Only the locked file and the public key are stored; only the public key reached the gateway.
    stored = alice.keyring()
    assert stored["armored"].startswith("-----BEGIN AGE ENCRYPTED FILE-----")
    assert "AGE-SECRET-KEY" not in str(stored)
    [key] = stored["keys"]
    pending = gw.cli("recipient", "pending")
    assert "alice" in pending and key["recipient"] in pending
    me = gw.get("/api/v1/recipients/me", gw.recipient_token("alice"))
    assert me["enrolments"][0]["age_recipient"] == key["recipient"] and me["enrolments"][0]["org"] == "Hereford MASH"
    gw.cli("recipient", "approve", "alice")
    assert "Active" in check_state(keys, "active")

    # The practitioner shares from Gmail with the extension in their own browser profile.
    compose = practitioner.context.new_page()
    compose.goto(webmail.gmail_url())
    panel = open_panel(compose)
    fill(panel, example("share"))
    settle(panel)
    panel.get_by_role("button", name="Share", exact=True).click()
    panel.wait_for_selector("#result:not([hidden])", timeout=30000)
    facts = dict(
        zip(
            panel.locator("#result-facts dt").all_text_contents(), panel.locator("#result-facts dd").all_text_contents()
        )
    )
    share_id = facts["Share reference"]

    # The recipient's inbox lists it in words; opening it asks for the passphrase, then decrypts here.
    inbox = alice.open("recipient/inbox.html")
    row = inbox.locator(f'tr[data-share="{share_id}"]')
    cells = row.locator("td").all_inner_texts()
    # Names, not identifiers; the case and share references tell rows apart (issue 13).
    assert cells[0] == SENDER_NAME and cells[1] == SENDER_ORG_NAME
    assert cells[2].startswith("Referral")
    assert cells[3] == "Identity, Health (special category), Safeguarding concern"
    assert cells[6] == "New: ready to open"
    assert cells[7] == "CASE-2026-0412" and cells[8] == share_id
    assert_accessible(inbox, axe_source(), "inbox: locked, one share listed")
    row.get_by_role("button", name="Open").click()
    inbox.get_by_text("Unlock your keys to open this share.").wait_for()
    unlock(inbox)
    inbox.wait_for_selector("#message:not([hidden])", timeout=30000)
    body = message_text(inbox)
    assert "Dear Alice," in body and "bruising seen at 09:10 — école" in body
    assert "Referral: CASE-2026-0412 — injury disclosed at school" in inbox.locator("#message-facts").inner_text()
    served = {a.name: a.data for k, a in webmail.attachments.items() if k.startswith("gmail:")}
    assert attachments(inbox) == served
    # The justification beside it: why they have it and how to handle it.
    why = inbox.locator(".share-why").inner_text()
    assert "Public task" in why and "Children Act 1989 s47" in why
    assert "Urgency: Within 24 hours." in why and "Do not contact them" in why
    # The HTML body is shown sandboxed: no scripts, no same origin.
    assert inbox.locator("#message-body").get_attribute("sandbox") == ""
    srcdoc = inbox.locator("#message-body").get_attribute("srcdoc")
    assert "default-src 'none'" in srcdoc and "<script" not in srcdoc.lower()
    assert f"{SENDER_NAME} ({SENDER_ORG_NAME})" in inbox.locator("#share-facts").inner_text()
    assert_accessible(inbox, axe_source(), "a share open beside its justification")
    # Escrow is off by default: the share's ledger entry says so.
    assert gw.ledger_share_entry(share_id)["escrow"] is None
    # Back in the inbox, the share she has opened is no longer "New".
    inbox = alice.open("recipient/inbox.html")
    state = inbox.locator(f'tr[data-share="{share_id}"] td.state')
    state.wait_for(timeout=15000)
    assert state.inner_text() == "Opened, not yet acknowledged"


def test_wrong_passphrase_is_refused_then_the_right_one_opens(gw: RecipientGateway, enrolled: Any) -> None:
    bea = enrolled("bea")
    sid = gw.share(["bea"], mail("For Bea", "Body for Bea: home visit notes.", {}))
    before = bea.keyring()
    # Opened straight from a link to the share: it asks for the passphrase first.
    inbox = bea.open(f"recipient/inbox.html#share={sid}")
    inbox.get_by_text("Unlock your keys to open this share.").wait_for()
    assert error_signs(inbox) == []
    # Unlock with the box empty: the GOV.UK error summary, focused, linking to the box.
    inbox.get_by_role("button", name="Unlock", exact=True).click()
    assert summary_links(inbox) == [("Enter your passphrase.", "unlock-pass")]
    assert focused_id(inbox) == "error-summary" and field_error(inbox, "unlock-pass") == "Enter your passphrase."
    assert_accessible(inbox, axe_source(), "inbox: unlock with no passphrase")
    assert follow_summary_link(inbox, "Enter your passphrase.") == "unlock-pass"
    inbox.keyboard.type("not the passphrase at all")
    assert error_signs(inbox) == []  # typed: no longer empty, so that message goes
    inbox.get_by_role("button", name="Unlock", exact=True).click()
    # A wrong passphrase is only found out by trying it: shown the same way, and kept until the next try.
    wrong = "That passphrase does not unlock your keys. Check it and try again."
    assert summary_links(inbox) == [(wrong, "unlock-pass")]
    assert focused_id(inbox) == "error-summary" and field_error(inbox, "unlock-pass") == wrong
    assert inbox.locator("#error-summary [role=alert]").is_visible() and inbox.locator("#alert").is_hidden()
    assert inbox.locator("#message").is_hidden() and inbox.locator("#unlocked").is_hidden()
    assert_accessible(inbox, axe_source(), "inbox: wrong passphrase refused")
    assert bea.keyring() == before  # nothing changed
    inbox.get_by_label("Passphrase", exact=True).fill("still typing")
    assert field_error(inbox, "unlock-pass") == wrong
    unlock(inbox)
    inbox.wait_for_selector("#message:not([hidden])", timeout=30000)
    assert message_text(inbox).strip() == "Body for Bea: home visit notes."
    assert error_signs(inbox) == []


def test_backup_restore_in_a_fresh_profile_and_age_interop(
    gw: RecipientGateway, profiles: Profiles, enrolled: Any, tmp_path: Path
) -> None:
    bea = enrolled("bea")
    files = {"chronology.pdf": b"%PDF-1.4\n" + os.urandom(3000)}
    payload = mail("Chronology", "Chronology attached.", files)
    sid = gw.share(["bea"], payload)
    keys = bea.open("recipient/keys.html")
    with keys.expect_download() as info:
        keys.get_by_role("button", name="Download backup").click()
    download = info.value
    assert download.suggested_filename == "safeshare-keys-bea.age"
    backup = tmp_path / download.suggested_filename
    download.save_as(backup)
    assert backup.read_text().startswith("-----BEGIN AGE ENCRYPTED FILE-----")

    # Interop: the backup is an ordinary passphrase-encrypted age file holding a standard identity file.
    identity_file = pyrage.passphrase.decrypt(backup.read_bytes(), PASSPHRASE).decode()
    [stored] = bea.keyring()["keys"]
    assert f"# public key: {stored['recipient']}" in identity_file and "AGE-SECRET-KEY-1" in identity_file
    (tmp_path / "bea.key").write_text(identity_file)
    status, envelope = call(f"{gw.url}/api/v1/shares/{sid}/envelope", gw.recipient_token("bea"))
    assert status == 200
    (tmp_path / "envelope.age").write_bytes(envelope)
    age = require_tool("age")
    out = subprocess.run(
        [age, "-d", "-i", str(tmp_path / "bea.key"), str(tmp_path / "envelope.age")], capture_output=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == payload

    # Restore in a fresh browser profile (another computer, say): wrong passphrase first, then the right one.
    fresh = profiles.new("bea-restored")
    fresh.use(gw, gw.recipient_token("bea"))
    page = fresh.open("recipient/keys.html")
    assert page.locator("#setup").is_visible() and fresh.keyring() is None
    assert error_signs(page) == []
    # Restore with nothing chosen: both fields in the summary, in the page's order (this browser's passphrase
    # is not asked for: there are no keys here yet).
    page.get_by_role("button", name="Restore keys").click()
    assert summary_links(page) == [
        ("Choose the backup file (safeshare-keys-….age).", "restore-file"),
        ("Enter the passphrase the backup was made with.", "restore-pass"),
    ]
    assert focused_id(page) == "error-summary"
    assert field_error(page, "restore-file") == "Choose the backup file (safeshare-keys-….age)."
    assert_accessible(page, axe_source(), "keys page: restore with nothing chosen")
    assert follow_summary_link(page, "Choose the backup file") == "restore-file"
    page.get_by_label("Backup file").set_input_files(str(backup))
    assert field_error(page, "restore-file") == "" and [t for _, t in summary_links(page)] == ["restore-pass"]
    page.get_by_label("The backup's passphrase").fill("a wrong passphrase!")
    assert error_signs(page) == []
    page.get_by_role("button", name="Restore keys").click()
    wrong = "That passphrase does not open this backup. Nothing was changed."
    assert summary_links(page) == [(wrong, "restore-pass")]
    assert field_error(page, "restore-pass") == wrong and focused_id(page) == "error-summary"
    assert fresh.keyring() is None
    page.get_by_label("The backup's passphrase").fill(PASSPHRASE)
    page.get_by_role("button", name="Restore keys").click()
    page.get_by_text("Restored 1 key from the backup.").wait_for(timeout=30000)
    assert error_signs(page) == []
    assert fresh.keyring()["keys"] == bea.keyring()["keys"]
    page.wait_for_selector('#state[data-state="active"]', timeout=15000)

    inbox = fresh.open("recipient/inbox.html")
    unlock(inbox)
    open_share(inbox, sid)
    assert message_text(inbox).strip() == "Chronology attached."
    assert attachments(inbox) == files


def test_team_share_opened_by_two_members(gw: RecipientGateway, enrolled: Any) -> None:
    dana, eli = enrolled("dana"), enrolled("eli")
    gw.cli("team", "add", "duty", "--name", "MASH duty", "--org", "Hereford MASH", "--email", "duty@example.org")
    for m in ("dana", "eli"):
        gw.cli("team", "member-add", "duty", m)
    files = {"strategy.docx": os.urandom(2500)}
    sid = gw.share(["duty"], mail("Strategy meeting", "Strategy meeting on Thursday, 10:00.", files))
    for member in (dana, eli):
        inbox = member.open("recipient/inbox.html")
        assert "(to team duty)" in inbox.locator(f'tr[data-share="{sid}"] td.state').inner_text()
        unlock(inbox)
        open_share(inbox, sid)
        assert message_text(inbox).strip() == "Strategy meeting on Thursday, 10:00."
        assert attachments(inbox) == files
        assert "duty" in inbox.locator("#share-facts").inner_text()
        inbox.close()


def test_a_removed_member_cannot_open_later_shares(gw: RecipientGateway, enrolled: Any) -> None:
    dana, eli = enrolled("dana"), enrolled("eli")
    gw.cli("team", "add", "night", "--name", "Night duty", "--org", "Hereford MASH", "--email", "night@example.org")
    for m in ("dana", "eli"):
        gw.cli("team", "member-add", "night", m)
    before = gw.share(["night"], mail("Before", "Sent while Eli was a member.", {}))
    gw.cli("team", "member-remove", "night", "eli")
    after = gw.share(["night"], mail("After", "Sent after Eli left.", {}))

    inbox = eli.open("recipient/inbox.html")
    assert inbox.locator(f'tr[data-share="{before}"]').count() == 1
    assert inbox.locator(f'tr[data-share="{after}"]').count() == 0  # not listed
    unlock(inbox)
    # Following a link to it anyway: a clear refusal, nothing decrypted.
    inbox.evaluate("id => { location.hash = 'share=' + id; }", after)
    problem = inbox.locator("#share-problem")
    problem.wait_for(timeout=15000)
    assert problem.inner_text().startswith("This share is not addressed to you, or it does not exist.")
    assert inbox.locator("#message").is_hidden()

    inbox = dana.open("recipient/inbox.html")
    unlock(inbox)
    open_share(inbox, after)
    assert message_text(inbox).strip() == "Sent after Eli left."


def test_escrow_on_the_share_still_opens_and_the_ledger_says_so(
    profiles: Profiles, tmp_path_factory: pytest.TempPathFactory
) -> None:
    records = pyrage.x25519.Identity.generate()
    with recipient_gateway(tmp_path_factory.mktemp("escrow-gateway"), str(records.to_public())) as egw:
        fay = profiles.new("fay")
        fay.use(egw, egw.recipient_token("fay"))
        keys = set_up_receiving(fay)
        egw.cli("recipient", "approve", "fay")
        check_state(keys, "active")
        payload = mail("Escrowed", "Shared while organisational recovery is on.", {})
        sid = egw.share(["fay"], payload)
        inbox = fay.open(f"recipient/inbox.html#share={sid}")
        unlock(inbox)
        inbox.wait_for_selector("#message:not([hidden])", timeout=30000)
        assert message_text(inbox).strip() == "Shared while organisational recovery is on."
        entry = egw.ledger_share_entry(sid)
        assert entry["escrow"]["age_recipient"] == str(records.to_public())
        # The records team opens its own, separate envelope with a recorded reason.
        admin = egw.token("root", "admin")
        status, blob = call(
            f"{egw.url}/api/v1/shares/{sid}/escrow", admin, b'{"reason": "Court order 2026/7"}', "application/json"
        )
        assert status == 200 and pyrage.decrypt(blob, [records]) == payload


@dataclass
class Rotated:
    profile: Profile
    first_backup: Path
    keys: list[dict[str, Any]]
    old: str
    new: str


@pytest.fixture(scope="module")
def rotated(gw: RecipientGateway, enrolled: Any, tmp_path_factory: pytest.TempPathFactory) -> Rotated:
    """Gina rotates her key on the Keys page (a wrong passphrase first); one share before, one after approval."""
    gina = enrolled("gina")
    old = gw.share(["gina"], mail("Old", "Encrypted to the first key.", {}))
    keys = gina.open("recipient/keys.html")
    with keys.expect_download() as info:
        keys.get_by_role("button", name="Download backup").click()
    first_backup = tmp_path_factory.mktemp("gina") / "first.age"
    info.value.save_as(first_backup)
    [first] = gina.keyring()["keys"]

    keys.get_by_label("Your passphrase").fill("not my passphrase!!")
    keys.get_by_role("button", name="Make a new key").click()
    wrong = "That passphrase does not unlock your keys. Nothing was changed."
    assert summary_links(keys) == [(wrong, "rotate-pass")]
    assert field_error(keys, "rotate-pass") == wrong
    assert len(gina.keyring()["keys"]) == 1
    keys.get_by_label("Your passphrase").fill(PASSPHRASE)
    keys.get_by_role("button", name="Make a new key").click()
    keys.wait_for_selector('#state[data-state="pending"]', timeout=30000)
    assert "new shares keep using your current key" in keys.locator("#state").inner_text()
    stored = gina.keyring()["keys"]
    assert len(stored) == 2 and stored[0] == first
    gw.cli("recipient", "approve", "gina")
    check_state(keys, "active")
    me = gw.get("/api/v1/recipients/me", gw.recipient_token("gina"))
    assert {k["age_recipient"]: k["status"] for k in me["keys"]} == {
        stored[1]["recipient"]: "active",
        first["recipient"]: "retired",
    }
    new = gw.share(["gina"], mail("New", "Encrypted to the second key.", {}))
    keys.close()
    return Rotated(gina, first_backup, stored, old, new)


def test_key_rotation_old_and_new_shares_both_open(rotated: Rotated) -> None:
    inbox = rotated.profile.open("recipient/inbox.html")
    unlock(inbox)
    open_share(inbox, rotated.old)
    assert message_text(inbox).strip() == "Encrypted to the first key."
    inbox.get_by_role("button", name="Back to the inbox").click()
    open_share(inbox, rotated.new)
    assert message_text(inbox).strip() == "Encrypted to the second key."
    # That the new share really is encrypted to the new key (not the old one) is shown by the next test: a
    # browser holding only the old key cannot open it.


def test_a_browser_without_the_key_says_so_and_a_restore_adds_it(
    gw: RecipientGateway, profiles: Profiles, rotated: Rotated, tmp_path: Path
) -> None:
    # A browser holding only the first key (restored from the old backup) says so in plain words.
    other = profiles.new("gina-old-backup")
    other.use(gw, gw.recipient_token("gina"))
    page = other.open("recipient/keys.html")
    page.get_by_label("Backup file").set_input_files(str(rotated.first_backup))
    page.get_by_label("The backup's passphrase").fill(PASSPHRASE)
    page.get_by_role("button", name="Restore keys").click()
    page.wait_for_selector('#state[data-state="elsewhere"]', timeout=30000)
    inbox = other.open(f"recipient/inbox.html#share={rotated.new}")
    unlock(inbox)
    problem = inbox.locator("#share-problem")
    problem.wait_for(timeout=30000)
    assert "this share was encrypted to a key this browser does not hold" in problem.inner_text().lower()
    assert problem.get_attribute("role") == "alert"

    # The current backup restored there (with this browser's passphrase) adds the new key to the old one.
    keys = rotated.profile.open("recipient/keys.html")
    with keys.expect_download() as info:
        keys.get_by_role("button", name="Download backup").click()
    current = tmp_path / "current.age"
    info.value.save_as(current)
    page.get_by_label("Backup file").set_input_files(str(current))
    page.get_by_label("The backup's passphrase").fill(PASSPHRASE)
    page.get_by_label("This browser's passphrase").fill(PASSPHRASE)
    page.get_by_role("button", name="Restore keys").click()
    page.get_by_text("Restored 2 keys from the backup.").wait_for(timeout=30000)
    assert sorted(k["recipient"] for k in other.keyring()["keys"]) == sorted(k["recipient"] for k in rotated.keys)
    page.wait_for_selector('#state[data-state="active"]', timeout=15000)
    inbox = other.open(f"recipient/inbox.html#share={rotated.new}")
    unlock(inbox)
    assert message_text(inbox).strip() == "Encrypted to the second key."


def test_notification_link_opens_the_share_and_the_acknowledgement_reaches_the_sender(
    gw: RecipientGateway, enrolled: Any, practitioner: Profile, webmail: Webmail
) -> None:
    hal = enrolled("hal")
    status, resp = call(gw.url + "/api/v1/shares", gw.tokens["practitioner"])  # warm-up: the sender's list works
    assert status == 200
    sid = gw.share(["hal"], mail("Notice", "Opened from the notification link.", {}))
    notice_url = f"{gw.url}/s/{sid}"
    page = hal.context.new_page()
    page.goto(notice_url)
    page.wait_for_url(f"chrome-extension://{hal.extension_id}/recipient/inbox.html#share={sid}", timeout=15000)
    page.wait_for_selector("#main[aria-busy=false]")
    page.get_by_text("Unlock your keys to open this share.").wait_for()
    unlock(page)
    page.wait_for_selector("#message:not([hidden])", timeout=30000)
    assert message_text(page).strip() == "Opened from the notification link."

    # Another site on the same host (another port) with an /s/ path is left alone.
    other = hal.context.new_page()
    other.goto(f"{webmail.roundcube_origin}/s/{sid}")
    other.wait_for_timeout(1000)
    assert other.url == f"{webmail.roundcube_origin}/s/{sid}"
    other.close()

    page.get_by_label("Note for the sender").fill("Visit arranged for Thursday.")
    page.get_by_role("button", name="Mark received and actioned").click()
    page.get_by_text("You marked this received and actioned on").wait_for(timeout=15000)
    assert "Visit arranged for Thursday." in page.locator("#ack-done").inner_text()
    sent = gw.get("/api/v1/shares", gw.tokens["practitioner"])["shares"]
    mine = next(s for s in sent if s["id"] == sid)["recipients"][0]
    assert mine["acknowledgement"] == "Visit arranged for Thursday." and mine["acknowledged_at"]
    entry = [e["entry"] for e in gw.get("/api/v1/ledger?kind=acknowledge", gw.tokens["auditor"])["entries"]]
    assert any(e["share_id"] == sid and e["note"] == "Visit arranged for Thursday." for e in entry)
    # The inbox shows it as acknowledged, and the sender's "Sent" tab shows the note.
    page.get_by_role("button", name="Back to the inbox").click()
    page.get_by_role("button", name="Refresh").click()
    page.wait_for_function(
        "id => document.querySelector(`tr[data-share='${id}']`)?.dataset.state === 'acknowledged'", arg=sid
    )
    sender = practitioner.open("recipient/inbox.html")
    assert sender.get_by_role("tab", name="Sent").get_attribute("aria-selected") == "true"
    item = sender.locator(f'.sent li[data-share="{sid}"]')
    item.wait_for(timeout=15000)
    assert "Received and actioned" in item.inner_text() and "Visit arranged for Thursday." in item.inner_text()


def test_revoked_share_and_gateway_down_in_plain_words(gw: RecipientGateway, enrolled: Any) -> None:
    hal = enrolled("hal")
    sid = gw.share(["hal"], mail("To revoke", "This will be revoked.", {}))
    status, body = call(f"{gw.url}/api/v1/shares/{sid}/revoke", gw.tokens["practitioner"], b"", None, "POST")
    assert status == 200, body
    inbox = hal.open("recipient/inbox.html")
    row = inbox.locator(f'tr[data-share="{sid}"]')
    assert row.locator("td.state").inner_text() == "Revoked by the sender"
    row.get_by_role("button", name="Open").click()
    problem = inbox.locator("#share-problem")
    problem.wait_for()
    assert problem.inner_text().startswith("The sender revoked this share")
    assert inbox.locator("#message").is_hidden()
    # The gateway goes away: the inbox says so.
    from tests.test_cli import free_port

    hal.worker.evaluate("v => chrome.storage.local.set(v)", {"gatewayUrl": f"http://127.0.0.1:{free_port()}"})
    try:
        inbox.get_by_role("button", name="Back to the inbox").click()
        inbox.get_by_role("button", name="Refresh").click()
        alert = inbox.locator("#alert")
        alert.wait_for(state="visible", timeout=15000)
        assert "could not be reached" in alert.inner_text()
        # Not about a field: in the error summary, in words, with no link and no field marked.
        assert inbox.locator("#error-summary").is_visible() and inbox.locator("#error-summary-list a").count() == 0
        assert [s for s in error_signs(inbox) if not s.startswith("summary: ")] == []
        assert_accessible(inbox, axe_source(), "inbox: the gateway could not be reached")
    finally:
        hal.worker.evaluate("v => chrome.storage.local.set(v)", {"gatewayUrl": gw.url})


UNNAMED = """() => [...document.querySelectorAll('input, select, textarea, button, a, iframe')]
    .filter(e => e.getClientRects().length > 0)
    .filter(e => {
      const named = ['aria-label', 'aria-labelledby', 'title'].some(a => (e.getAttribute(a) || '').trim());
      if (named) return false;
      if (['INPUT', 'SELECT', 'TEXTAREA'].includes(e.tagName)) return !(e.labels && e.labels.length);
      return !e.textContent.trim();
    })
    .map(e => e.outerHTML.slice(0, 120))"""


def tab_to(page: Any, test: str, limit: int = 60) -> None:
    """Press Tab until the focused element passes `test` (a JS predicate on document.activeElement)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"() => {{ const e = document.activeElement; return !!({test}); }}"):
            return
    raise AssertionError(f"Tab never reached {test}")


def test_pages_are_labelled_and_keyboard_operable(gw: RecipientGateway, enrolled: Any, profiles: Profiles) -> None:
    hal = enrolled("hal")
    sid = gw.share(["hal"], mail("Keyboard", "Opened with the keyboard alone.", {"k.txt": b"keyboard"}))
    keys = hal.open("recipient/keys.html")
    assert keys.evaluate(UNNAMED) == []
    fresh = profiles.new("nobody").open("recipient/keys.html")  # the set-up form, not signed in
    assert fresh.locator("#setup").is_visible() and "Not signed in" in fresh.locator("#who").inner_text()
    assert fresh.evaluate(UNNAMED) == []
    assert_accessible(fresh, axe_source(), "keys page: not signed in")
    assert_accessible(keys, axe_source(), "keys page: an approved key")
    options = hal.context.new_page()
    options.goto(hal.url("options/options.html"))
    options.get_by_role("link", name="Set up receiving").click()
    options.wait_for_url(hal.url("recipient/keys.html"))

    page = hal.open("recipient/inbox.html")
    assert page.locator("#status").get_attribute("aria-live") == "polite"
    assert page.locator("#error-summary > div").get_attribute("role") == "alert"
    assert page.locator("#alert").evaluate("a => a.closest('#error-summary') !== null")
    tab_to(page, "e.id === 'unlock-pass'")
    page.keyboard.type(PASSPHRASE)
    page.keyboard.press("Enter")
    page.wait_for_selector("#unlocked:not([hidden])", timeout=30000)
    assert page.locator("#status").inner_text().startswith("Your keys are unlocked")
    tab_to(page, f"e.closest('tr')?.dataset.share === '{sid}' && e.textContent === 'Open'")
    page.keyboard.press("Enter")
    page.wait_for_selector("#message:not([hidden])", timeout=30000)
    assert page.evaluate("() => document.activeElement.id") == "share"  # focus moves to the share
    assert message_text(page).strip() == "Opened with the keyboard alone."
    assert page.evaluate(UNNAMED) == []
    # Marked received with no note, by keyboard: the summary takes the focus, its link takes it to the note.
    tab_to(page, "e.id === 'ack-go'")
    page.keyboard.press("Enter")
    note = "Write a short note for the sender about what you have done or will do."
    assert summary_links(page) == [(note, "ack-note")] and focused_id(page) == "error-summary"
    assert field_error(page, "ack-note") == note
    assert_accessible(page, axe_source(), "a share: marked received with no note")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert focused_id(page) == "ack-note"
    page.keyboard.type("Read with the keyboard.")
    assert error_signs(page) == []
    tab_to(page, "e.id === 'ack-go'")
    page.keyboard.press("Enter")
    page.get_by_text("You marked this received and actioned on").wait_for(timeout=15000)
    assert_accessible(page, axe_source(), "a share acknowledged")

    # Received / Sent: govuk-frontend's Tabs — one Tab stop, the arrow keys move between the tabs.
    page.get_by_role("button", name="Back to the inbox").click()
    tab_to(page, "e.id === 'tab-inbox'")
    tabs_state = """() => [...document.querySelectorAll('#tabs [role=tab]')].map(t =>
        [t.id, t.getAttribute('aria-selected'), t.tabIndex,
         document.getElementById(t.getAttribute('aria-controls')).hidden])"""
    assert page.evaluate(tabs_state) == [["tab-inbox", "true", 0, False], ["tab-sent", "false", -1, True]]
    assert page.locator("#tabs > ul").get_attribute("role") == "tablist"
    assert page.locator("#inbox").get_attribute("role") == "tabpanel"
    page.keyboard.press("ArrowRight")
    assert focused_id(page) == "tab-sent"
    assert page.evaluate(tabs_state) == [["tab-inbox", "false", -1, True], ["tab-sent", "true", 0, False]]
    page.locator("#sent-note").get_by_text("signed in as a practitioner").wait_for()
    assert page.locator("#inbox-table").is_hidden()
    assert_accessible(page, axe_source(), "inbox: the Sent tab chosen by keyboard")
    page.keyboard.press("ArrowRight")  # the last tab: stays, as govuk-frontend's does
    assert focused_id(page) == "tab-sent"
    page.keyboard.press("ArrowLeft")
    assert focused_id(page) == "tab-inbox"
    assert page.evaluate(tabs_state)[0] == ["tab-inbox", "true", 0, False]
    page.keyboard.press("Tab")  # one tab stop: Tab leaves the tab list for the panel
    assert page.evaluate("() => document.getElementById('inbox').contains(document.activeElement)")


def test_only_a_recipient_sign_in_sets_up_and_a_rejection_is_shown(gw: RecipientGateway, profiles: Profiles) -> None:
    ivy = profiles.new("ivy")
    ivy.use(gw, gw.tokens["practitioner"])
    page = ivy.open("recipient/keys.html")
    page.get_by_label("Choose a passphrase").fill(PASSPHRASE)
    page.get_by_label("Type the passphrase again").fill(PASSPHRASE)
    page.get_by_role("button", name="Create my key and ask for approval").click()
    alert = page.locator("#alert")
    alert.wait_for(state="visible", timeout=15000)
    assert "not a recipient's sign-in" in alert.inner_text() and alert.inner_text().endswith("No key was made.")
    assert page.locator("#error-summary-list a").count() == 0  # the gateway's refusal: no field to link to
    assert_accessible(page, axe_source(), "keys page: the gateway refused the sign-in")
    assert ivy.keyring() is None
    page.close()

    ivy.use(gw, gw.recipient_token("ivy"))
    page = set_up_receiving(ivy)
    gw.cli("recipient", "reject", "ivy", "--reason", "Not on the MASH rota")
    assert "rejected this key" in check_state(page, "rejected")
    assert page.get_by_role("button", name="Send my key for approval").is_visible()
    # Sent again (say, after talking to the administrator), then approved.
    page.get_by_role("button", name="Send my key for approval").click()
    page.wait_for_selector('#state[data-state="pending"]', timeout=15000)
    gw.cli("recipient", "approve", "ivy")
    check_state(page, "active")


def test_a_dfe_2024_share_shows_its_identity_protection_instruction_beside_the_content(
    gw: RecipientGateway, enrolled: Any
) -> None:
    """DfE 2024 rule 5 travels to the recipient: whose identity to protect and how, first among the handling notes."""
    from tests.test_policy_editions import dfe

    dana = enrolled("dana")
    sid = gw.share(["dana"], mail("Referral", "Disclosure this morning.", {}), justification=dfe("share"))
    assert gw.ledger_share_entry(sid)["handling"]["rule"] == 5
    inbox = dana.open("recipient/inbox.html")
    unlock(inbox)
    open_share(inbox, sid)
    assert message_text(inbox).strip() == "Disclosure this morning."
    first = inbox.locator("#handling li").first.inner_text()
    assert first.startswith("Rule 5 — Protect identities: protect the person who raised the concern")
    assert "Do not tell the father who raised the concern" in first
    inbox.close()
