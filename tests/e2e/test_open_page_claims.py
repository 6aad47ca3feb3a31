"""Recipients without a key, on the recipient page `/open/` in real headless Chromium with NO extension, against a
real `safeshare serve` that sends mail through a real SMTP server (aiosmtpd) on loopback:

- a passphrase share opens with the right passphrase and refuses a wrong one (checked against the header in
  the page, no download counted), and the same envelope opens with pyrage and `age -d`;
- a share held for a new address is claimed end to end: the link, the code read from the e-mail the SMTP
  server received, a key made in the page, the share re-wrapped and opened, attachment bytes identical, the
  acknowledgement seen by the sender; a second browser cannot use the same code;
- too many wrong codes lock the claim;
- axe-core finds no WCAG 2.2 A/AA violation in any of these states."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage
import pytest

from tests.conftest import example, require_tool
from tests.e2e.open_page import (
    Browsers,
    assert_accessible,
    axe_source,
    error_summary,
    plain_chromium,
    tab_to,
    wait_status,
)
from tests.e2e.recipient_fixtures import PASSPHRASE, RecipientGateway
from tests.e2e.test_open_page import HTML_ATTACHMENT, PDF_ATTACHMENT, SVG_ATTACHMENT, downloads, mail
from tests.smtp_sink import Sink, code_in
from tests.test_cli import call, multipart, serve

SHARE_PASSPHRASE = "kettle ninety lantern orchard"


@dataclass
class MailGateway:
    gw: RecipientGateway
    sink: Sink

    def share(self, address: str, payload: bytes, **extra: Any) -> str:
        meta = {
            "recipients": [address],
            "justification": example("share"),
            "payload_content_type": "message/rfc822",
            **extra,
        }
        body, ctype = multipart(meta, payload)
        status, resp = call(self.gw.url + "/api/v1/shares", self.gw.tokens["practitioner"], body, ctype)
        assert status == 201, resp
        return str(json.loads(resp)["share_id"])

    def ledger(self, kind: str) -> list[dict[str, Any]]:
        entries = self.gw.get(f"/api/v1/ledger?kind={kind}&limit=200", self.gw.tokens["auditor"])["entries"]
        return [e["entry"] for e in entries]


@contextmanager
def smtp_sink() -> Iterator[tuple[Sink, str]]:
    from aiosmtpd.controller import Controller

    sink = Sink()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


@contextmanager
def mail_gateway(tmp: Path, toml: str = "") -> Iterator[MailGateway]:
    """A real `safeshare serve` whose mail goes to a real SMTP server on loopback (SAFESHARE_SMTP_URL)."""
    home = tmp / "home"
    home.mkdir()
    if toml:
        (home / "safeshare.toml").write_text(toml)
    with smtp_sink() as (sink, smtp_url):
        before = os.environ.get("SAFESHARE_SMTP_URL")
        os.environ["SAFESHARE_SMTP_URL"] = smtp_url  # `serve` reads it at start
        try:
            with serve(home, tmp / "server.log") as url:
                gw = RecipientGateway(home, url)
                gw.tokens = {
                    "practitioner": gw.token("pat", "practitioner"),
                    "auditor": gw.token("audrey", "partnership_auditor"),
                }
                yield MailGateway(gw, sink)
        finally:
            if before is None:
                os.environ.pop("SAFESHARE_SMTP_URL", None)
            else:
                os.environ["SAFESHARE_SMTP_URL"] = before


@pytest.fixture(scope="module")
def mgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailGateway]:
    with mail_gateway(tmp_path_factory.mktemp("open-page-claims")) as m:
        yield m


@pytest.fixture(scope="module")
def browsers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browsers]:
    with plain_chromium(tmp_path_factory) as b:
        yield b


@pytest.fixture(scope="module")
def axe() -> str:
    return axe_source()


def test_passphrase_share_opens_with_the_right_passphrase_only(
    mgw: MailGateway, browsers: Browsers, axe: str, tmp_path: Path
) -> None:
    payload = mail("By passphrase", "Opened with the passphrase given by phone.")
    share_id = mgw.share("gp.surgery@practice.example", payload, unenrolled="passphrase", passphrase=SHARE_PASSPHRASE,
                         max_downloads=3)  # fmt: skip
    gp = browsers.person(mgw.gw.url)
    page = gp.page
    page.goto(f"/s/{share_id}")
    page.get_by_role("link", name="Open it in this browser").click()
    page.wait_for_selector("#pass-section:not([hidden])", timeout=30000)
    assert page.locator("#claim-section").is_hidden()
    assert_accessible(page, axe, "passphrase form")

    page.get_by_label("Passphrase for this share").fill("kettle ninety lantern orchards")
    page.get_by_role("button", name="Open the share").click()
    assert "That passphrase does not open this share" in error_summary(page)
    assert page.locator("#pass").get_attribute("aria-invalid") == "true"
    assert_accessible(page, axe, "passphrase refused")
    assert mgw.ledger("fetch") == []  # checking against the header downloaded nothing and recorded nothing

    page.get_by_label("Passphrase for this share").fill(SHARE_PASSPHRASE)
    page.get_by_role("button", name="Open the share").click()
    page.wait_for_selector("#message:not([hidden])", timeout=120000)
    page.wait_for_selector("#message-body[data-loaded]", timeout=15000)
    assert "Opened with the passphrase" in page.frame_locator("#message-body").locator("body").inner_text()
    assert downloads(gp, page) == {
        "referral.pdf": PDF_ATTACHMENT,
        "report.html": HTML_ATTACHMENT,
        "body-map.svg": SVG_ATTACHMENT,
    }
    wait_status(page, "The share is open")
    assert_accessible(page, axe, "passphrase share open")
    [fetch] = mgw.ledger("fetch")
    assert fetch["share_id"] == share_id and fetch["mode"] == "passphrase"

    # The very same envelope opens with other age implementations and the passphrase.
    status, env = call(f"{mgw.gw.url}/api/v1/open/{share_id}/envelope")
    assert status == 200
    assert pyrage.passphrase.decrypt(env, SHARE_PASSPHRASE) == payload
    age = require_tool("age")
    from tests.age_tty import age_with_passphrase

    (tmp_path / "share.age").write_bytes(env)
    rc, err = age_with_passphrase([age, "-d", "-o", str(tmp_path / "out"), str(tmp_path / "share.age")],
                                  SHARE_PASSPHRASE)  # fmt: skip
    assert rc == 0, err
    assert (tmp_path / "out").read_bytes() == payload
    assert gp.problems == []


def claim_start(page: Any, address: str) -> None:
    page.get_by_label("Your e-mail address", exact=True).fill(address)
    page.get_by_role("button", name="Send me a code").click()
    page.wait_for_selector("#code-form:not([hidden])", timeout=30000)


def enter_code(page: Any, code: str) -> None:
    page.get_by_label("Code from the e-mail").fill(code)
    page.get_by_role("button", name="Continue").click()


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def test_held_share_claimed_end_to_end_and_the_code_works_once(mgw: MailGateway, browsers: Browsers, axe: str) -> None:
    address = "duty.social.worker@county.example"
    payload = mail("Held for you", "Claimed with a code, opened with a key made in this browser.")
    share_id = mgw.share(address, payload, unenrolled="verify")

    sam = browsers.person(mgw.gw.url)
    page = sam.page
    page.goto(f"/s/{share_id}")
    page.get_by_role("link", name="Open it in this browser").click()
    page.wait_for_selector("#claim-section:not([hidden])", timeout=30000)
    page.wait_for_selector("#main[aria-busy=false]")
    assert_accessible(page, axe, "claim: e-mail form")
    page.get_by_label("Your e-mail address", exact=True).fill("not an address")
    page.get_by_role("button", name="Send me a code").click()
    assert "Enter an e-mail address in the right format" in error_summary(page)
    assert_accessible(page, axe, "claim: e-mail refused")

    earlier = len(mgw.sink.sent_to(address))  # the sink is the module's: a rerun finds the first run's code there
    claim_start(page, address.upper())  # addresses are compared case-insensitively
    msg = mgw.sink.wait_for(address, count=earlier + 1)
    code = code_in(msg)
    assert code not in msg["Subject"]
    assert f"/open/#/s/{share_id}" in msg.get_body(preferencelist=("plain",)).get_content()
    assert_accessible(page, axe, "claim: code form")
    enter_code(page, wrong(code))
    assert "That code is not right" in error_summary(page) and "tries left" in error_summary(page)
    assert_accessible(page, axe, "claim: code refused")
    enter_code(page, code)
    page.wait_for_selector("#view-home:not([hidden])", timeout=30000)
    assert address in page.locator("#who").inner_text()
    page.wait_for_selector("#view-home[aria-busy=false]")  # the name shows at once; the key state once looked up
    assert page.locator("#key-state").get_attribute("data-state") == "none"
    assert_accessible(page, axe, "claimed: make a key")

    # Another browser with the same address and the same (now used) code gets nowhere.
    eve = browsers.person(mgw.gw.url)
    other = eve.page
    other.goto(f"/open/#/s/{share_id}")
    other.wait_for_selector("#claim-section:not([hidden])", timeout=30000)
    claim_start(other, address)
    enter_code(other, code)
    assert "That code is not right, has been used, or has expired" in error_summary(other)
    assert other.locator("#view-home").is_hidden()

    # The key made here is enrolled with the claim, approved at once (the default for claimed keys), the held
    # envelope re-wrapped to it, and the share the link was for opens.
    page.get_by_label("Choose a passphrase").fill(PASSPHRASE)
    page.get_by_label("Type the passphrase again").fill(PASSPHRASE)
    page.get_by_role("button", name="Create my key").click()
    page.wait_for_selector("#message:not([hidden])", timeout=120000)
    assert page.url.endswith(f"#/share/{share_id}")
    page.wait_for_selector("#message-body[data-loaded]", timeout=15000)
    assert "Claimed with a code" in page.frame_locator("#message-body").locator("body").inner_text()
    assert downloads(sam, page) == {
        "referral.pdf": PDF_ATTACHMENT,
        "report.html": HTML_ATTACHMENT,
        "body-map.svg": SVG_ATTACHMENT,
    }
    assert "Why you have it" in page.locator("#why").inner_text()
    assert_accessible(page, axe, "claimed share open")
    [rewrapped] = mgw.ledger("rewrapped")
    assert rewrapped["share_id"] == share_id
    page.get_by_label("Note for the sender").fill("Received; visiting tomorrow.")
    page.get_by_role("button", name="Mark received and actioned").click()
    wait_status(page, "Recorded: the sender can see")
    sent = mgw.gw.get("/api/v1/shares", mgw.gw.tokens["practitioner"])["shares"]
    [r] = next(s for s in sent if s["id"] == share_id)["recipients"]
    assert r["acknowledgement"] == "Received; visiting tomorrow." and r["acknowledged_at"]
    assert sam.problems == []


def test_the_claim_form_shows_only_once_it_works(mgw: MailGateway, browsers: Browsers) -> None:
    """Whether a share opens with a passphrase or a code is known only once its header is read. Until then neither
    form is shown (the page says it is busy): one shown before its handler was sent by the browser itself, which
    reloaded the page with the address in its URL (a flake under load, and the address in the history). The
    header's answer (the real gateway's) is held so that moment is certain; a native submission would also be
    refused by the page's `form-action 'none'`."""
    address = "early.typist@county.example"
    share_id = mgw.share(address, mail("Held", "Claimed after the page was ready."), unenrolled="verify")
    eve = browsers.person(mgw.gw.url)
    page = eve.page
    held: list[Any] = []
    page.route("**/api/v1/open/*/header", lambda route: route.continue_() if len(held) else held.append(route))
    page.goto(f"/open/#/s/{share_id}")
    page.wait_for_function("() => document.getElementById('view-start').getAttribute('aria-busy') === 'true'")
    while not held:
        page.wait_for_timeout(50)
    assert page.locator("#claim-section").is_hidden() and page.locator("#pass-section").is_hidden()
    held[0].continue_()  # later header requests go straight through
    page.wait_for_selector("#claim-section:not([hidden])", timeout=30000)
    assert page.get_attribute("#view-start", "aria-busy") == "false"
    claim_start(page, address)
    assert "email=" not in page.url and address not in page.url
    assert code_in(mgw.sink.wait_for(address))
    assert eve.problems == []


def test_too_many_wrong_codes_lock_the_claim(mgw: MailGateway, browsers: Browsers, axe: str) -> None:
    address = "school.dsl@academy.example"
    share_id = mgw.share(address, mail("Locked", "Never opened."), unenrolled="verify")
    kim = browsers.person(mgw.gw.url)
    page = kim.page
    page.goto(f"/open/#/s/{share_id}")
    page.wait_for_selector("#claim-section:not([hidden])", timeout=30000)
    claim_start(page, address)
    code = code_in(mgw.sink.wait_for(address))
    for _ in range(6):
        enter_code(page, wrong(code))
        if "Too many wrong codes" in error_summary(page):
            break
    else:
        raise AssertionError("wrong codes did not lock the claim")
    assert_accessible(page, axe, "claim locked")
    # Locked: even the right code no longer works.
    page.get_by_label("Code from the e-mail").fill(code)
    page.evaluate("() => document.getElementById('code-form').requestSubmit()")
    assert "Too many wrong codes" in error_summary(page)
    assert page.locator("#view-home").is_hidden()
    assert any(e["share_id"] == share_id for e in mgw.ledger("claim_locked"))

    # A new code may be asked for, up to 3 per address and share in 15 minutes; the 4th is refused in words.
    for n in (2, 3):
        page.get_by_role("button", name="Send a new code").click()
        claim_start(page, address)
        mgw.sink.wait_for(address, count=n)
    page.get_by_role("button", name="Send a new code").click()
    page.get_by_label("Your e-mail address", exact=True).fill(address)
    page.get_by_role("button", name="Send me a code").click()
    assert "Too many codes have been asked for. Try again in" in error_summary(page)
    assert_accessible(page, axe, "too many codes")
    assert len(mgw.sink.sent_to(address)) == 3
    assert kim.problems == []


def test_passphrase_share_by_keyboard_alone(mgw: MailGateway, browsers: Browsers, axe: str) -> None:
    """From the notification link to the downloaded attachment with the keyboard alone."""
    share_id = mgw.share("ward.sister@hospital.example", mail("Keyboard", "Opened by keyboard."),
                         unenrolled="passphrase", passphrase=SHARE_PASSPHRASE)  # fmt: skip
    kit = browsers.person(mgw.gw.url)
    page = kit.page
    page.goto(f"/s/{share_id}")
    assert_accessible(page, axe, "notification page")
    tab_to(page, "#open-here")
    page.keyboard.press("Enter")
    page.wait_for_selector("#pass-section:not([hidden])", timeout=30000)
    tab_to(page, "#pass")
    page.keyboard.type(SHARE_PASSPHRASE)
    page.keyboard.press("Enter")
    page.wait_for_selector("#message:not([hidden])", timeout=120000)
    tab_to(page, '#attachments a[download="referral.pdf"]')
    with page.expect_download() as info:
        page.keyboard.press("Enter")
    assert Path(info.value.path()).read_bytes() == PDF_ATTACHMENT
    assert kit.problems == []


def test_claimed_key_waits_for_approval_where_the_organisation_requires_it(
    browsers: Browsers, axe: str, tmp_path: Path
) -> None:
    with mail_gateway(tmp_path, "claim_requires_approval = true\n") as m:
        address = "out.of.area@council.example"
        share_id = m.share(address, mail("After approval", "Opened once an administrator approved the key."),
                           unenrolled="verify")  # fmt: skip
        ana = browsers.person(m.gw.url)
        page = ana.page
        page.goto(f"/open/#/s/{share_id}")
        page.wait_for_selector("#claim-section:not([hidden])", timeout=30000)
        claim_start(page, address)
        enter_code(page, code_in(m.sink.wait_for(address)))
        page.wait_for_selector("#view-home:not([hidden])", timeout=30000)
        page.get_by_label("Choose a passphrase").fill(PASSPHRASE)
        page.get_by_label("Type the passphrase again").fill(PASSPHRASE)
        page.get_by_role("button", name="Create my key").click()
        page.wait_for_selector('#key-state[data-state="pending"]', timeout=120000)
        assert page.locator("#inbox-empty").is_visible()  # still held: nothing to open yet
        assert_accessible(page, axe, "claimed key waiting for approval")
        rid = page.evaluate("() => JSON.parse(atob(sessionStorage.getItem('safeshare-open-token').split('.')[1]"
                            ".replace(/-/g, '+').replace(/_/g, '/'))).sub")  # fmt: skip
        assert rid in m.gw.cli("recipient", "pending")
        m.gw.cli("recipient", "approve", rid)
        page.get_by_role("button", name="Check approval again").click()
        page.wait_for_selector("#message:not([hidden])", timeout=120000)
        page.wait_for_selector("#message-body[data-loaded]", timeout=15000)
        assert (
            "Opened once an administrator approved" in page.frame_locator("#message-body").locator("body").inner_text()
        )
        assert ana.problems == []
