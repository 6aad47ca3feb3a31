"""End-to-end fixtures: a real `safeshare serve`, the webmail stand-ins, and headless Chromium (Debian's
package) with the extension loaded unpacked, driven by Python Playwright.

The gateway and the webmail servers are shared by the whole run; the browser lives for one test module,
because sync Playwright keeps an event loop running in the main thread while it is open, and the rest of the
suite (pytest-asyncio) needs that thread back once the end-to-end modules are done."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyrage
import pytest

from tests.e2e.bidi import firefox_path
from tests.e2e.watchdog import Watchdog
from tests.e2e.webmail import Attachment, Webmail, serve_webmail
from tests.test_cli import call, safeshare, serve

EXTENSION = Path(__file__).resolve().parents[2] / "extension"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")


def _missing(what: str, how: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not installed; .ci/run should have installed it ({how})")
    pytest.skip(f"{what} is not installed ({how})")


def chromium_path() -> str:
    for c in CHROMIUM_CANDIDATES:
        path = c if os.path.isabs(c) and os.access(c, os.X_OK) else shutil.which(c)
        if path:
            return path
    _missing("chromium", "apt-get install -y chromium")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def firefox_exe() -> str:
    """Debian's Firefox ESR: skipped locally when absent, a failure in CI (where .ci/run installs it). Name it
    first in a test so that it is checked before the gateway and webmail fixtures start."""
    exe = firefox_path()
    if exe is None:
        _missing("firefox-esr", "apt-get install -y firefox-esr")
    return str(exe)


@dataclass
class Gateway:
    home: Path
    url: str
    identities: dict[str, Any]
    tokens: dict[str, str]

    def token(self, sub: str, role: str, ttl: int = 3600, org: str = "e2e") -> str:
        return safeshare(
            self.home, "token", "issue", "--sub", sub, "--role", role, "--org", org, "--ttl", str(ttl)
        ).stdout.split()[-1]

    def get(self, path: str, role: str = "auditor") -> Any:
        status, body = call(self.url + path, self.tokens[role])
        assert status == 200, body
        return json.loads(body)

    def fetch(self, share_id: str, recipient: str) -> bytes:
        status, env = call(f"{self.url}/api/v1/shares/{share_id}/envelope", self.tokens[recipient])
        assert status == 200, env
        return pyrage.decrypt(env, [self.identities[recipient]])


RECIPIENTS = {
    "alice": ("Alice Example", "Hereford MASH", "alice@example.org"),
    "bob": ("Bob Example", "West Mercia Police", "bob@example.org"),
    "carol": ("Carol Example", "Adult Social Care", "carol@example.org"),
}


#: An organisation configured to work to the DfE 2024 edition of the golden rules.
DFE_ORG = "e2e-dfe"


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("gateway")
    home = tmp / "home"
    home.mkdir()
    # Practitioners of organisation "e2e" work to the default (hmg-2018); those of "e2e-dfe" to DfE 2024 (issue 14).
    (home / "safeshare.toml").write_text(f'[policies]\norg_default = {{ "{DFE_ORG}" = "dfe-2024" }}\n')
    with serve(home, tmp / "server.log") as url:
        identities = {}
        for rid, (name, org, email) in RECIPIENTS.items():
            identities[rid] = pyrage.x25519.Identity.generate()
            safeshare(
                home, "recipient", "add", rid, "--name", name, "--org", org, "--email", email,
                "--age-recipient", str(identities[rid].to_public()),
            )  # fmt: skip
        gw = Gateway(home, url, identities, {})
        gw.tokens = {
            "practitioner": gw.token("pat", "practitioner"),
            "auditor": gw.token("audrey", "auditor"),
            **{rid: gw.token(rid, "recipient") for rid in RECIPIENTS},
        }
        yield gw


ATTACHMENTS = {
    "gmail:0.1": ("referral-notes.pdf", "application/pdf"),
    "gmail:0.2": ("body-map – école.png", "image/png"),
    "outlook:AAMkAD1": (
        "strategy-notes.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    "roundcube:rcmfile71e0a3": ("care-plan.pdf", "application/pdf"),
}


@pytest.fixture(scope="session")
def webmail(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webmail]:
    atts = {
        key: Attachment(name, ctype, b"%PDF-1.4\n" + os.urandom(1500) + bytes(range(256)))
        for key, (name, ctype) in ATTACHMENTS.items()
    }
    with serve_webmail(tmp_path_factory.mktemp("webmail"), atts) as mail:
        yield mail


@dataclass
class Browser:
    context: Any
    worker: Any
    extension_id: str
    #: The watchdog's count of browser kills when this browser started: another count means it may be dead.
    kills: int = 0
    #: Starts another browser like this one (the module fixture's), for after a watchdog kill.
    relaunch: Callable[[], Browser] | None = field(default=None, repr=False)

    def storage(self, area: str, values: dict[str, Any]) -> None:
        self.worker.evaluate(f"v => chrome.storage.{area}.set(v)", values)

    def sign_in(self, token: str | None) -> None:
        if token is None:
            self.worker.evaluate("() => chrome.storage.session.remove('token')")
        else:
            self.storage("session", {"token": token})


@pytest.fixture(scope="module")
def browser(gateway: Gateway, webmail: Webmail, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    from tests.extension_build import ensure_built

    ensure_built()  # the extension's bundled libraries (extension/vendor/) must exist before it is loaded
    exe = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright (Python)", "pip install -e '.[test]'")

    def launch(p: Any) -> Browser:
        # A new profile each time: a killed browser's profile keeps its lock.
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=exe,
            headless=True,
            args=[
                "--no-sandbox",
                f"--disable-extensions-except={EXTENSION}",
                f"--load-extension={EXTENSION}",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--host-resolver-rules={webmail.host_rules()}",
                "--ignore-certificate-errors",
            ],
            ignore_https_errors=True,
        )
        try:
            worker = context.service_workers[0] if context.service_workers else context.wait_for_event("serviceworker")
            b = Browser(context, worker, worker.url.split("/")[2], kills=WATCHDOG.kills)
            b.storage("local", {"gatewayUrl": gateway.url, "defaultExpiryDays": 7})
            b.sign_in(gateway.tokens["practitioner"])
        except BaseException:
            context.close()
            raise
        return b

    with sync_playwright() as p:
        b = launch(p)
        b.relaunch = lambda: launch(p)
        try:
            yield b
        finally:
            b.context.close()


@pytest.fixture(autouse=True)
def _a_new_browser_after_the_watchdog_killed_one(request: pytest.FixtureRequest) -> None:
    """The watchdog kills a hung test's browsers (tests/e2e/watchdog.py); the module's next test, or the hung
    test's retry, then gets a new browser instead of failing on the dead one."""
    if "browser" in request.fixturenames:
        alive_after_kills(request.getfixturevalue("browser"))


def alive_after_kills(b: Browser) -> None:
    """If the watchdog has killed browsers since `b` started, put a new browser in its place."""
    if b.kills == WATCHDOG.kills or b.relaunch is None:
        return
    with contextlib.suppress(Exception):
        b.context.close()
    fresh = b.relaunch()
    b.context, b.worker, b.extension_id, b.kills = fresh.context, fresh.worker, fresh.extension_id, fresh.kills


def wait_until(predicate: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


#: Generous: a loaded 2-core machine runs the slowest browser test (a real Roundcube) in well under a minute.
WATCHDOG_SECONDS = 300
#: One file per pytest-xdist worker (`gw0`, `gw1`, …; `main` without workers), since workers run browser tests
#: at the same time: .ci/run removes them all before the run and prints every one that is not empty after a failure.
WATCHDOG_LOG = (
    Path(tempfile.gettempdir()) / f"safeshare-e2e-watchdog-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}.txt"
)
WATCHDOG = Watchdog(WATCHDOG_LOG, WATCHDOG_SECONDS)


def _is_e2e(item: pytest.Item) -> bool:
    return "tests/e2e/" in str(item.fspath).replace("\\", "/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Real-browser tests get one retry (pytest-rerunfailures): a rare timing flake under load must not fail
    CI, while a real fault still fails twice. Rerun failures are reported in the summary (`R`)."""
    for item in items:
        if _is_e2e(item):
            item.add_marker(pytest.mark.flaky(reruns=1))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Each browser test, with its set-up and tear-down (the module's browser too) and its retry, runs under the
    watchdog (tests/e2e/watchdog.py): a hang fails the test and leaves its tracebacks in WATCHDOG_LOG."""
    if not _is_e2e(item):
        yield
        return
    with WATCHDOG.watch(item.nodeid):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A test the watchdog stopped says so in its report, beside Playwright's "Target closed"."""
    outcome = yield
    if _is_e2e(item) and WATCHDOG.fired:
        outcome.get_result().sections.append(("e2e watchdog", f"{'; '.join(WATCHDOG.fired)} (see {WATCHDOG_LOG})"))


@pytest.fixture
def page(browser: Browser, gateway: Gateway) -> Iterator[Any]:
    """A fresh tab, signed in as the practitioner, pointing at the live gateway."""
    browser.storage("local", {"gatewayUrl": gateway.url})
    browser.sign_in(gateway.tokens["practitioner"])
    tab = browser.context.new_page()
    yield tab
    tab.close()


def add_roundcube_origin(browser: Browser, origin: str) -> None:
    """Add a Roundcube origin on the options page, as a user would; the extension then registers its content
    script there (the loopback origins used in tests are covered by the manifest, so no permission prompt)."""
    options = browser.context.new_page()
    try:
        options.goto(f"chrome-extension://{browser.extension_id}/options/options.html")
        field = options.get_by_label("Roundcube webmail addresses")
        field.wait_for()
        options.wait_for_function("() => document.querySelector('#gateway-url').value !== ''")
        existing = [line for line in field.input_value().splitlines() if line.strip()]
        field.fill("\n".join([*existing, origin]))
        options.get_by_role("button", name="Save settings").click()
        options.get_by_text("SafeShare now works on").wait_for()
        assert origin in options.locator("#saved").text_content()
    finally:
        options.close()


@pytest.fixture(scope="module")
def roundcube(browser: Browser, webmail: Webmail) -> str:
    """The saved Roundcube page's origin, added on the options page."""
    add_roundcube_origin(browser, webmail.roundcube_origin)
    return webmail.roundcube_origin
