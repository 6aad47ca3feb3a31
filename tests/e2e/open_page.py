"""Helpers for the recipient web page (`/open/`) in a real browser with no extension: plain headless Chromium
(Debian's), one browser context per person (its own IndexedDB and session storage), axe-core injected for the
accessibility checks, and keyboard-only driving."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import chromium_path

AXE_DIR = Path(__file__).resolve().parent / "axe"
#: WCAG 2.2 A and AA (axe's tags for 2.0, 2.1 and 2.2 success criteria).
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def _missing(what: str, how: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not installed; .ci/run should have installed it ({how})")
    pytest.skip(f"{what} is not installed ({how})")


def axe_source() -> str:
    """axe-core's browser bundle, installed from tests/e2e/axe's lock file (npm ci) when missing."""
    script = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        npm = shutil.which("npm")
        if npm is None:
            _missing("npm", "apt-get install -y npm")
        r = subprocess.run(
            [str(npm), "--prefix", str(AXE_DIR), "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert r.returncode == 0, r.stdout + r.stderr
    return script.read_text()


class Person:
    """One person's browser (a separate context: its own storage), watching for CSP violations and errors."""

    def __init__(self, browser: Any, base_url: str, downloads: Path) -> None:
        self.context = browser.new_context(accept_downloads=True, base_url=base_url)
        self.problems: list[str] = []
        self.downloads = downloads
        self.page = self.new_page()

    def new_page(self) -> Any:
        page = self.context.new_page()
        page.on("console", lambda m: self._console(m))
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        return page

    def _console(self, m: Any) -> None:
        if m.type != "error" or not ("Content Security Policy" in m.text or "integrity" in m.text.lower()):
            return
        # The shared message's own inline styles, while it is sanitised (lib/mail-view.js, in an inert document
        # that inherits the page's policy) and in its sandboxed frame (likewise): blocked by the page's
        # style-src 'self', on purpose; the message stays readable without them.
        url = str(m.location.get("url", ""))
        if (url == "about:srcdoc" or url.endswith("/open/lib/mail-view.js")) and m.text.startswith(
            "Applying inline style violates"
        ):
            return
        self.problems.append(f"{m.location.get('url')}: {m.text}")

    def close(self) -> None:
        self.context.close()


class Browsers:
    def __init__(self, playwright: Any, tmp: pytest.TempPathFactory) -> None:
        self.browser = playwright.chromium.launch(
            executable_path=chromium_path(),
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
        )
        self.tmp = tmp
        self.people: list[Person] = []

    def person(self, base_url: str) -> Person:
        p = Person(self.browser, base_url, self.tmp.mktemp("downloads"))
        self.people.append(p)
        return p

    def close(self) -> None:
        for p in self.people:
            try:
                p.close()
            except Exception:
                pass
        self.browser.close()


@contextmanager
def plain_chromium(tmp: pytest.TempPathFactory) -> Iterator[Browsers]:
    chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright (Python)", "pip install -e '.[test]'")
    with sync_playwright() as p:
        b = Browsers(p, tmp)
        try:
            yield b
        finally:
            b.close()


def axe_violations(page: Any, source: str) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.2 A/AA violations on the page as it is now (injected through the DevTools protocol,
    which the page's CSP does not govern; the page itself is not changed)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(source + "\n;undefined")
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})"
        ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' '))})))",
        AXE_TAGS,
    )
    return list(result)


async def axe_violations_bidi(tab: Any, source: str) -> list[dict[str, Any]]:
    """The same check in Firefox, through WebDriver BiDi (tests/e2e/bidi.py's Tab): axe-core is evaluated by the
    protocol, which the page's CSP does not govern either, then run with the same WCAG 2.2 A/AA tags."""
    if not await tab.call("() => typeof window.axe === 'object'"):
        await tab.call("() => {" + source + "\n; return typeof window.axe; }")
    result = await tab.call(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})"
        ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' '))})))",
        AXE_TAGS,
    )
    return list(result)


async def assert_accessible_bidi(tab: Any, source: str, state: str) -> None:
    violations = await axe_violations_bidi(tab, source)
    assert violations == [], f"axe-core violations in Firefox in state {state!r}:\n{json.dumps(violations, indent=2)}"


def assert_accessible(page: Any, source: str, state: str) -> None:
    violations = axe_violations(page, source)
    assert violations == [], f"axe-core violations in state {state!r}:\n{json.dumps(violations, indent=2)}"


def tab_to(page: Any, selector: str, limit: int = 80) -> None:
    """Press Tab until the element matching `selector` has the focus (proves it is reachable by keyboard)."""
    for _ in range(limit):
        if page.evaluate("s => document.activeElement?.matches(s) ?? false", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} was not reached with the Tab key")


def wait_status(page: Any, text: str, timeout: float = 30000) -> None:
    page.wait_for_function("t => document.getElementById('status').textContent.includes(t)", arg=text, timeout=timeout)


def error_summary(page: Any) -> str:
    page.wait_for_selector("#error-summary:not([hidden])", timeout=30000)
    return str(page.locator("#error-summary").inner_text())
