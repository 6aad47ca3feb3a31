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
            if 'role="tab"' in control:
                continue  # the Received/Sent tabs, laid out by recipient.css
            assert re.search(r'class="[^"]*govuk-(input|textarea|file-upload|button)\b', control), f"{name}: {control}"
        for label in re.findall(r"<label\b[^>]*>", html):
            assert "govuk-label" in label, f"{name}: {label}"
    assert '<table id="inbox-table" class="govuk-table"' in (EXTENSION / "recipient" / "inbox.html").read_text()
    for script in ("inbox.js", "keys.js"):
        js = (EXTENSION / "recipient" / script).read_text()
        assert 'from "../lib/govuk.js"' in js, script
