"""The e2e watchdog (tests/e2e/watchdog.py): a browser call that never returns fails the test, with the test's
own frames in the log, and leaves the test process running (ending it stalls pytest-xdist)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import WATCHDOG, Browser, Gateway, alive_after_kills, chromium_path
from tests.e2e.watchdog import Watchdog, descendants, kill_browsers


def _a_call_that_never_returns(page: object) -> None:
    page.evaluate("() => new Promise(() => {})")  # type: ignore[attr-defined]


def test_a_hung_browser_call_fails_and_the_log_shows_the_test_s_frames(tmp_path: Path) -> None:
    from playwright.sync_api import Error, sync_playwright

    log = tmp_path / "watchdog.txt"
    dog = Watchdog(log, limit=3.0, grace=60.0)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        with dog.watch("tests/e2e/test_watchdog.py::hung"), pytest.raises(Error):
            _a_call_that_never_returns(page)
        browser.close()  # already gone: returns at once
    text = log.read_text()
    assert "tests/e2e/test_watchdog.py::hung still running after 3 s" in text
    # The test's frames live in a suspended greenlet under sync Playwright: the dump must reach them.
    assert "_a_call_that_never_returns" in text
    assert "Killed the browsers: [(" in text and "chrom" in text
    assert dog.fired and "killed the browsers" in dog.fired[0]
    assert not [c for _, c in descendants(os.getpid()) if c.startswith("chrom")]


def test_a_test_still_hung_after_the_browsers_are_gone_loses_every_process_it_started(tmp_path: Path) -> None:
    # A shell stands in for this test process (whose gateway and webmail servers must live on): the watchdog kills
    # what the shell started, and the shell then goes on.
    shell = subprocess.Popen(["sh", "-c", "sleep 60; echo the sleep is over"], stdout=subprocess.PIPE, text=True)
    log = tmp_path / "watchdog.txt"
    dog = Watchdog(log, limit=0.5, grace=1.0, root=shell.pid)
    with dog.watch("tests/e2e/test_watchdog.py::stuck"):
        out, _ = shell.communicate(timeout=30)
    assert out == "the sleep is over\n"
    text = log.read_text()
    assert "Killed the browsers: []" in text
    assert "still running 1 s later; killed everything it started: [(" in text and "'sleep')]" in text
    assert len(dog.fired) == 2
    # A watch that ends in time leaves nothing behind.
    quiet = Watchdog(tmp_path / "quiet.txt", limit=5.0)
    with quiet.watch("quick"):
        pass
    assert not (tmp_path / "quiet.txt").exists() and quiet.fired == []


def test_after_a_kill_the_module_s_browser_is_started_again(browser: Browser, gateway: Gateway) -> None:
    """What the retry of a hung test (or the module's next test) meets: a working browser with the extension."""
    before = browser.context
    assert browser.worker.evaluate("() => chrome.storage.local.get('gatewayUrl')") == {"gatewayUrl": gateway.url}
    alive_after_kills(browser)
    assert browser.context is before  # no kill since it started: the same browser
    assert [c for _, c in kill_browsers(os.getpid()) if c.startswith("chrom")]
    WATCHDOG.kills += 1  # as the watchdog counts its kills
    alive_after_kills(browser)
    assert browser.context is not before and browser.kills == WATCHDOG.kills
    assert browser.worker.evaluate("() => chrome.storage.local.get('gatewayUrl')") == {"gatewayUrl": gateway.url}
    tab = browser.context.new_page()
    tab.goto(f"chrome-extension://{browser.extension_id}/options/options.html")
    tab.locator("#signed-in").get_by_text("Signed in as pat").wait_for()
    tab.close()
