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
PAGES = [EXTENSION / "panel" / "panel.html", EXTENSION / "options" / "options.html"]


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
