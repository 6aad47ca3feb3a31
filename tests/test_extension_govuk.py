"""The extension's pages use the GOV.UK Design System (issue 13) through govuk-frontend's own styles, compiled by
extension/build.mjs from the version pinned in extension/package-lock.json: with system fonts, because the GDS
Transport font and the crown are reserved for GOV.UK itself, and fetching nothing (the panel loads nothing
remote). The pages load it as a file of the extension, with no inline style or script (the extension pages'
CSP allows neither)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.extension_build import ensure_built

EXTENSION = Path(__file__).resolve().parents[1] / "extension"
PAGES = [
    EXTENSION / "panel" / "panel.html",
    EXTENSION / "options" / "options.html",
    EXTENSION / "recipient" / "inbox.html",
    EXTENSION / "recipient" / "keys.html",
]


def test_govuk_frontend_is_built_without_the_govuk_font_and_crown() -> None:
    ensure_built()
    css = (EXTENSION / "vendor" / "govuk-frontend.min.css").read_text(encoding="utf-8")
    assert "GDS Transport" not in css and "@font-face" not in css and "url(" not in css
    assert not css.startswith("\ufeff") and "\ufeff" not in css  # a BOM after the banner would drop the first rule
    lock = json.loads((EXTENSION / "package-lock.json").read_text())
    version = lock["packages"]["node_modules/govuk-frontend"]["version"]
    assert f"govuk-frontend@{version}" in css.splitlines()[0]
    assert f'--govuk-frontend-version: "{version}"' in css
    assert ".govuk-radios__input" in css and ".govuk-error-summary" in css and "system-ui" in css
    assert f"==== govuk-frontend@{version} (MIT)" in (EXTENSION / "vendor" / "govuk-frontend.LICENSE.txt").read_text()
    # LICENSES.txt is the JavaScript bundles' (copied byte for byte to the gateway's /open/ page, without CSS).
    assert "govuk-frontend" not in (EXTENSION / "vendor" / "LICENSES.txt").read_text()


def test_extension_pages_load_govuk_frontend_and_nothing_inline() -> None:
    for page in PAGES:
        html = page.read_text()
        assert '<link rel="stylesheet" href="../vendor/govuk-frontend.min.css">' in html, page.name
        assert "<style" not in html and " style=" not in html, page.name
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), f"{page.name} has an inline script"
        assert "govuk-header__logotype" not in html and "crown" not in html.lower(), page.name


def test_every_extension_page_is_on_govuk_frontend_and_the_old_stylesheet_is_gone() -> None:
    """The recipient's inbox and keys pages moved to govuk-frontend too, so the pre-Design-System stylesheet
    (lib/pages.css) has no page left; each page's own stylesheet only lays out what the Design System has no
    component for, and fetches nothing."""
    html_pages = sorted(p for p in EXTENSION.rglob("*.html") if "node_modules" not in p.parts)
    assert set(PAGES) <= set(html_pages)
    for page in html_pages:
        if page.parent.name == "vendor":
            continue
        html = page.read_text()
        assert "pages.css" not in html, page.name
    assert not (EXTENSION / "lib" / "pages.css").exists()
    for page in PAGES:
        for sheet in re.findall(r'<link rel="stylesheet" href="([^"]+)">', page.read_text()):
            css = (page.parent / sheet).resolve()
            assert css.is_file(), f"{page.name} links {sheet}, which does not exist"
            if css.parent.name != "vendor":
                text = css.read_text()
                assert "url(" not in text and "@import" not in text and "@font-face" not in text, css.name


def test_recipient_pages_use_the_design_systems_markup() -> None:
    """Form fields in govuk-form-group with govuk-label and the Design System's inputs, buttons as govuk-button,
    the inbox a govuk-table: the classes the compiled styles need (a field without them would look unstyled)."""
    for name in ("inbox.html", "keys.html"):
        html = (EXTENSION / "recipient" / name).read_text()
        for control in re.findall(r"<(?:input|textarea|button)\b[^>]*>", html):
            assert re.search(r'class="[^"]*govuk-(input|textarea|file-upload|button)\b', control), f"{name}: {control}"
        for label in re.findall(r"<label\b[^>]*>", html):
            assert "govuk-label" in label, f"{name}: {label}"
    assert '<table id="inbox-table" class="govuk-table"' in (EXTENSION / "recipient" / "inbox.html").read_text()
    for script in ("inbox.js", "keys.js"):
        js = (EXTENSION / "recipient" / script).read_text()
        assert 'from "../lib/govuk.js"' in js, script


def test_recipient_pages_have_the_error_summary_and_nothing_red_to_begin_with() -> None:
    """Issue 13: each recipient page has one govuk-error-summary at the top of <main> (hidden, focusable, its
    list for the fields' links and the #alert line for what is not about a field), and no field starts in an
    error state: errors appear only after the person submits or leaves a field (lib/govuk.js formChecks, which
    the e2e tests drive in a real browser)."""
    for name in ("inbox.html", "keys.html"):
        html = (EXTENSION / "recipient" / name).read_text()
        main = html[html.index("<main") :]
        first = re.search(r"<main[^>]*>\s*(<div[^>]*>)", main)
        assert first and 'id="error-summary"' in first.group(1), name
        assert 'class="govuk-error-summary"' in first.group(1) and 'tabindex="-1"' in first.group(1), name
        assert " hidden" in first.group(1), name
        summary = main[: main.index("</ul>")]
        assert '<div role="alert">' in summary and 'class="govuk-error-summary__title">There is a problem<' in summary
        assert 'id="alert"' in summary and 'class="govuk-list govuk-error-summary__list"' in summary, name
        assert html.count('role="alert"') == html.count('<div role="alert">') + html.count('class="problem"'), name
        for red in ("govuk-form-group--error", "govuk-input--error", "govuk-error-message", "aria-invalid"):
            assert red not in html, f"{name} starts with {red}"
        js = (EXTENSION / "recipient" / name.replace(".html", ".js")).read_text()
        assert "formChecks(errors" in js, name


def test_inbox_tabs_are_govuk_frontends_tabs_markup() -> None:
    """Received / Sent use govuk-frontend's Tabs markup (links to the panels, which work with no script too),
    enhanced by lib/govuk.js's tabs(), as the extension bundles govuk-frontend's styles but not its JavaScript;
    recipient.css no longer draws tabs of its own."""
    html = (EXTENSION / "recipient" / "inbox.html").read_text()
    assert '<div class="govuk-tabs" id="tabs">' in html and '<ul class="govuk-tabs__list"' in html
    selected = '<li class="govuk-tabs__list-item govuk-tabs__list-item--selected">'
    assert f'{selected}<a class="govuk-tabs__tab" href="#inbox" id="tab-inbox">' in html
    assert '<a class="govuk-tabs__tab" href="#sent" id="tab-sent">' in html
    assert '<section id="inbox" class="govuk-tabs__panel">' in html
    assert '<section id="sent" class="govuk-tabs__panel govuk-tabs__panel--hidden" hidden>' in html
    assert 'role="tab' not in html  # the roles are the script's, as govuk-frontend sets them
    tabs_html = html[html.index('<div class="govuk-tabs"') : html.index('<section id="share"')]
    assert tabs_html.count("<section id=") == 2 + tabs_html.count('<section id="owed"')
    assert 'tabs($("tabs")' in (EXTENSION / "recipient" / "inbox.js").read_text()
    css = (EXTENSION / "recipient" / "recipient.css").read_text()
    assert '[role="tab"]' not in css and ".tabs " not in css
    assert "govuk-frontend-supported" in (EXTENSION / "lib" / "govuk.js").read_text()
