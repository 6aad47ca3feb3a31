"""Fixtures for the recipient's side in a real browser: a `safeshare serve` of this module's own (escrow on or
off), and separate Chromium profiles — one persistent context each, like a recipient's own browser — with the
extension loaded. A recipient profile sets up receiving through the extension's own pages, as a person would."""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import example
from tests.e2e.conftest import EXTENSION, chromium_path, wait_until
from tests.extension_build import ensure_built
from tests.test_cli import call, multipart, safeshare, serve

PASSPHRASE = "correct horse battery staple"
#: The sending practitioner's name and organisation name, as their token carries them.
SENDER_NAME = "Pat Jones"
SENDER_ORG_NAME = "Hereford Primary School"


@dataclass
class RecipientGateway:
    """A real `safeshare serve` and the administrator's command line next to it."""

    home: Path
    url: str
    tokens: dict[str, str] = field(default_factory=dict)

    def cli(self, *args: str) -> str:
        return safeshare(self.home, *args).stdout

    def token(
        self,
        sub: str,
        role: str,
        *,
        email: str | None = None,
        org: str = "e2e",
        name: str | None = None,
        org_name: str | None = None,
    ) -> str:
        args = ["token", "issue", "--sub", sub, "--role", role, "--org", org, "--ttl", "7200"]
        if email:
            args += ["--email", email, "--name", name or sub.title()]
        elif name:
            args += ["--name", name]
        if org_name:
            args += ["--org-name", org_name]
        return self.cli(*args).split()[-1]

    def recipient_token(self, sub: str, org: str = "Hereford MASH") -> str:
        return self.token(sub, "recipient", email=f"{sub}@example.org", org=org)

    def get(self, path: str, token: str) -> Any:
        status, body = call(self.url + path, token)
        assert status == 200, body
        return json.loads(body)

    def share(
        self,
        recipients: list[str],
        payload: bytes,
        content_type: str = "message/rfc822",
        justification: dict[str, Any] | None = None,
    ) -> str:
        """A share made over plain HTTP (multipart), as tests/test_cli.py does; returns its ID."""
        meta = {
            "recipients": recipients,
            "justification": justification or example("share"),
            "payload_content_type": content_type,
        }
        body, ctype = multipart(meta, payload)
        status, resp = call(self.url + "/api/v1/shares", self.tokens["practitioner"], body, ctype)
        assert status == 201, resp
        return str(json.loads(resp)["share_id"])

    def ledger_share_entry(self, share_id: str) -> dict[str, Any]:
        q = urllib.parse.urlencode({"kind": "share", "limit": "200"})
        entries = self.get(f"/api/v1/ledger?{q}", self.tokens["auditor"])["entries"]
        return next(e["entry"] for e in entries if e["entry"]["share_id"] == share_id)


@contextmanager
def recipient_gateway(tmp: Path, escrow_recipient: str | None = None) -> Iterator[RecipientGateway]:
    home = tmp / "home"
    home.mkdir(parents=True)
    if escrow_recipient:
        (home / "safeshare.toml").write_text(f'escrow_recipient = "{escrow_recipient}"\n')
    with serve(home, tmp / "server.log") as url:
        gw = RecipientGateway(home, url)
        # Recipients here are in their own organisations (tokens of "Hereford MASH"), and the tests read their
        # entries too: the partnership-wide auditor (an "e2e" auditor sees only e2e's entries: tenancy).
        gw.tokens = {
            # The practitioner's token carries names (issue 13): recipients read them, not "pat (e2e)".
            "practitioner": gw.token("pat", "practitioner", name=SENDER_NAME, org_name=SENDER_ORG_NAME),
            "auditor": gw.token("audrey", "partnership_auditor"),
        }
        yield gw


#: The keyring as lib/private-store.js keeps it (IndexedDB "safeshare-private", store "kv"), read from any
#: extension context (the service worker cannot import modules dynamically, so this is plain IndexedDB).
READ_KEYRING_JS = """() => new Promise((ok, no) => {
    const r = indexedDB.open('safeshare-private', 1);
    r.onupgradeneeded = () => r.result.createObjectStore('kv');
    r.onsuccess = () => {
        const g = r.result.transaction('kv').objectStore('kv').get('keyring');
        g.onsuccess = () => { ok(g.result ?? null); r.result.close(); };
        g.onerror = () => no(g.error);
    };
    r.onerror = () => no(r.error);
})"""


@dataclass
class Profile:
    """One browser profile (its own storage, so its own keys) with the extension."""

    name: str
    context: Any
    worker: Any
    extension_id: str

    def url(self, path: str) -> str:
        return f"chrome-extension://{self.extension_id}/{path}"

    def use(self, gateway: RecipientGateway, token: str) -> None:
        """Point the extension at a gateway and sign in (what the options page stores)."""
        self.worker.evaluate("v => chrome.storage.local.set(v)", {"gatewayUrl": gateway.url})
        self.worker.evaluate("t => chrome.storage.session.set({token: t})", token)

    def keyring(self) -> Any:
        """The stored keyring (the extension origin's IndexedDB); never also in storage.local, which content
        scripts can read."""
        assert self.worker.evaluate("() => chrome.storage.local.get('keyring').then(r => r.keyring ?? null)") is None
        return self.worker.evaluate(READ_KEYRING_JS)

    def open(self, path: str) -> Any:
        page = self.context.new_page()
        page.goto(self.url(path))
        page.wait_for_selector("#main[aria-busy=false]")
        return page


class Profiles:
    """Chromium profiles for one test module, each a separate persistent context, closed at the end."""

    def __init__(self, playwright: Any, tmp: pytest.TempPathFactory, host_rules: str | None) -> None:
        self.playwright = playwright
        self.tmp = tmp
        self.host_rules = host_rules
        self.open: list[Profile] = []

    def new(self, name: str) -> Profile:
        args = [
            "--no-sandbox",
            f"--disable-extensions-except={EXTENSION}",
            f"--load-extension={EXTENSION}",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ]
        if self.host_rules:
            args += [f"--host-resolver-rules={self.host_rules}", "--ignore-certificate-errors"]
        downloads = self.tmp.mktemp(f"downloads-{name}")
        context = self.playwright.chromium.launch_persistent_context(
            str(self.tmp.mktemp(f"profile-{name}")),
            executable_path=chromium_path(),
            headless=True,
            args=args,
            ignore_https_errors=True,
            accept_downloads=True,
            downloads_path=str(downloads),
        )
        worker = context.service_workers[0] if context.service_workers else context.wait_for_event("serviceworker")
        profile = Profile(name, context, worker, worker.url.split("/")[2])
        self.open.append(profile)
        return profile

    def close(self) -> None:
        for p in self.open:
            try:
                p.context.close()
            except Exception:  # closing everything that can be closed
                pass


@contextmanager
def playwright_profiles(tmp: pytest.TempPathFactory, host_rules: str | None) -> Iterator[Profiles]:
    chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright (Python) is not installed")
        pytest.skip("playwright (Python) is not installed (pip install -e '.[test]')")
    ensure_built()  # the extension's bundled libraries (extension/vendor/) before it is loaded
    with sync_playwright() as p:
        profiles = Profiles(p, tmp, host_rules)
        try:
            yield profiles
        finally:
            profiles.close()


# -- what a recipient does in the extension's pages ------------------------------------------------------------


def set_up_receiving(profile: Profile, passphrase: str = PASSPHRASE) -> Any:
    """Set up receiving on the Keys page; returns the page, showing "waiting for approval"."""
    page = profile.open("recipient/keys.html")
    page.get_by_label("Choose a passphrase").fill(passphrase)
    page.get_by_label("Type the passphrase again").fill(passphrase)
    page.get_by_role("button", name="Create my key and ask for approval").click()
    page.wait_for_selector('#state[data-state="pending"]', timeout=30000)
    return page


def check_state(page: Any, state: str) -> str:
    """Ask the Keys page to check the approval again; the state it shows."""
    page.get_by_role("button", name="Check approval again").click()
    page.wait_for_selector(f'#state[data-state="{state}"]', timeout=15000)
    return str(page.locator("#state").text_content())


def unlock(page: Any, passphrase: str = PASSPHRASE) -> None:
    page.get_by_label("Passphrase", exact=True).fill(passphrase)
    page.get_by_role("button", name="Unlock", exact=True).click()
    page.wait_for_selector("#unlocked:not([hidden])", timeout=30000)


def open_share(page: Any, share_id: str) -> None:
    """Open a share from the inbox list (the row's Open button)."""
    page.locator(f'tr[data-share="{share_id}"] button', has_text="Open").click()
    wait_until(
        lambda: not page.locator("#message").is_hidden() or page.locator("#share-problem").is_visible(), 30, "the share"
    )


def message_text(page: Any) -> str:
    """The text of the shown message body (inside the sandboxed iframe)."""
    page.wait_for_selector("#message-body[data-loaded]", timeout=15000)
    frame = page.frame_locator("#message-body")
    return str(frame.locator("body").inner_text())


def attachments(page: Any) -> dict[str, bytes]:
    """Every attachment link, downloaded as the recipient would (original file names)."""
    out: dict[str, bytes] = {}
    links = page.locator("#attachments a")
    for i in range(links.count()):
        with page.expect_download() as info:
            links.nth(i).click()
        d = info.value
        out[d.suggested_filename] = Path(d.path()).read_bytes()
    return out


# -- the GOV.UK error pattern on the recipient pages (lib/govuk.js errorSummary / formChecks) --------------------

#: Every sign of an error on the page: the summary, field messages, red borders and bars, aria-invalid.
ERROR_SIGNS_JS = """() => {
    const seen = e => e.getClientRects().length > 0;
    return [
        ...[...document.querySelectorAll('#error-summary')].filter(seen).map(e => 'summary: ' + e.innerText),
        ...[...document.querySelectorAll('.govuk-error-message')].filter(seen).map(e => e.id + ': ' + e.innerText),
        ...[...document.querySelectorAll('[aria-invalid], .govuk-form-group--error, .govuk-input--error,'
            + ' .govuk-textarea--error, .govuk-file-upload--error')].map(e => 'marked: ' + (e.id || e.className)),
    ];
}"""


def error_signs(page: Any) -> list[str]:
    """What the page shows as wrong now; [] when nothing is (before any interaction, or once fixed)."""
    return list(page.evaluate(ERROR_SIGNS_JS))


def summary_links(page: Any) -> list[tuple[str, str]]:
    """The error summary's links as (text, target id), in order; the summary must be shown."""
    page.wait_for_selector("#error-summary:not([hidden])", timeout=30000)
    links = page.locator("#error-summary-list a")
    return [
        (str(links.nth(i).inner_text()), str(links.nth(i).get_attribute("href")).removeprefix("#"))
        for i in range(links.count())
    ]


def field_error(page: Any, field: str) -> str:
    """A field's own error as the Design System marks it, or "" when it shows none; asserts the markup whole:
    the message line after a visually hidden "Error:", named by the field's aria-describedby, the field's error
    border and aria-invalid, and its form group's red bar."""
    state = page.evaluate(
        """id => {
            const input = document.getElementById(id), line = document.getElementById(id + '-error');
            const shown = !!line && line.getClientRects().length > 0;
            const kind = input.type === 'file' ? 'govuk-file-upload' : input.tagName === 'TEXTAREA'
                ? 'govuk-textarea' : 'govuk-input';
            return {
                text: shown ? line.innerText : '',
                hidden: shown ? line.querySelector('.govuk-visually-hidden')?.textContent : null,
                cls: line?.className ?? null,
                described: (input.getAttribute('aria-describedby') || '').split(' ').includes(id + '-error'),
                invalid: input.getAttribute('aria-invalid') === 'true',
                border: input.classList.contains(kind + '--error'),
                group: !!input.closest('.govuk-form-group')?.classList.contains('govuk-form-group--error'),
            };
        }""",
        field,
    )
    marks = [state["described"], state["invalid"], state["border"], state["group"]]
    if not state["text"]:
        assert not any(marks), f"{field}: no message but still marked {state}"
        return ""
    assert all(marks) and state["hidden"] == "Error: " and state["cls"] == "govuk-error-message", f"{field}: {state}"
    return str(state["text"]).removeprefix("Error:").strip()


def focused_id(page: Any) -> str:
    return str(page.evaluate("() => document.activeElement?.id ?? ''"))


def follow_summary_link(page: Any, text: str) -> str:
    """Click the summary's link whose text starts with `text`; the id of the element that then has the focus."""
    page.locator("#error-summary-list a", has_text=text).click()
    return focused_id(page)
