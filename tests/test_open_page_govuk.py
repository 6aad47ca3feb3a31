"""The recipient page `/open/` is on the GOV.UK Design System (issue 13) through govuk-frontend's own styles: the
extension's compiled stylesheet (system fonts; the GDS Transport font and the crown are reserved for GOV.UK itself),
copied byte for byte with its licence (tests/test_open_page.py checks the copy), loaded before the page's few own
rules; and its markup uses the Design System's classes, which the compiled styles need (a field without them would
look unstyled, an error without them would not show red)."""

from __future__ import annotations

import re
from pathlib import Path

SITE = Path(__file__).resolve().parents[1] / "gateway" / "web" / "open"
HTML = SITE / "index.html"


def _css_rules(css: str) -> list[str]:
    """The page's own rules, comments dropped, one per entry."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)
    return [r.strip() + " }" for r in css.split("}") if r.strip()]


def test_the_page_loads_govuk_frontend_first_and_only_a_few_own_rules_on_top() -> None:
    html = HTML.read_text()
    sheets = re.findall(r'<link rel="stylesheet" href="([^"]+)"', html)
    assert sheets == ["vendor/govuk-frontend.min.css", "open.css"]
    assert '<html lang="en-GB" class="govuk-template">' in html
    assert '<body class="govuk-template__body">' in html
    own = (SITE / "open.css").read_text()
    rules = _css_rules(own)
    assert len(rules) <= 20, f"open.css has grown into a stylesheet of its own ({len(rules)} rules)"
    # None of the hand-written look-alikes of Design System components is left.
    for old in (".form-group", ".error-summary", ".error-message", ".button", ".input", ".header", ".phase-banner"):
        assert not re.search(re.escape(old) + r"\b", own), old
    assert "url(" not in own and "@import" not in own and "@font-face" not in own


def test_no_govuk_font_or_crown_is_shipped() -> None:
    css = (SITE / "vendor" / "govuk-frontend.min.css").read_text(encoding="utf-8")
    assert "GDS Transport" not in css and "@font-face" not in css and "url(" not in css
    assert ".govuk-error-summary" in css and ".govuk-form-group--error" in css and "system-ui" in css
    version = re.search(r"govuk-frontend@([0-9.]+)", css.splitlines()[0])
    assert version, "the stylesheet's banner names the govuk-frontend version"
    assert f'--govuk-frontend-version: "{version.group(1)}"' in css
    # Its licence ships with it, named in its banner.
    assert "govuk-frontend.LICENSE.txt" in css.splitlines()[0]
    licence = (SITE / "vendor" / "govuk-frontend.LICENSE.txt").read_text()
    assert f"==== govuk-frontend@{version.group(1)} (MIT)" in licence and "Crown Copyright" in licence
    html = HTML.read_text()
    assert "govuk-header__logotype" not in html and "crown" not in html.lower() and "<svg" not in html
    assert not [p for p in SITE.rglob("*") if p.suffix in {".woff", ".woff2", ".svg", ".png", ".ico"}]


def test_the_markup_uses_the_design_systems_classes() -> None:
    html = HTML.read_text()
    for part in (
        '<a href="#main" class="govuk-skip-link" id="skip">',
        'class="govuk-service-navigation"',
        'class="govuk-phase-banner"',
        'class="govuk-main-wrapper" id="main"',
        'class="govuk-footer"',
        'class="govuk-details" id="restore-details"',
        'class="govuk-table" id="inbox-table"',
        'class="govuk-back-link" id="back"',
        'class="govuk-notification-banner govuk-notification-banner--success" id="ack-done"',
        'class="govuk-inset-text key-state" id="key-state"',
    ):
        assert part in html, part
    # The error summary: focusable, role=alert inside, the list the script fills with links to the fields.
    summary = html[html.index('<div class="govuk-error-summary"') : html.index('id="status"')]
    assert 'id="error-summary" tabindex="-1" hidden' in summary and '<div role="alert">' in summary
    assert 'class="govuk-error-summary__title"' in summary and 'class="govuk-error-summary__body"' in summary
    assert '<ul class="govuk-list govuk-error-summary__list" id="error-list">' in summary
    # Every field: a govuk-form-group with the id the script marks in error, a govuk-label, a (hidden) error
    # message with the id the script fills, and a Design System control.
    controls = re.findall(r"<(input|textarea)\b([^>]*)>", html)
    assert len(controls) == 10
    for tag, attrs in controls:
        field = re.search(r'\bid="([^"]+)"', attrs)
        assert field, attrs
        name = field.group(1)
        assert re.search(r'class="govuk-(input|textarea|file-upload)\b', attrs), f"{name}: {attrs}"
        assert f'<div class="govuk-form-group" id="{name}-group">' in html, name
        assert f'<label class="govuk-label" for="{name}">' in html, name
        assert f'<p class="govuk-error-message" id="{name}-error" hidden></p>' in html, name
    for button in re.findall(r"<button\b[^>]*>", html):
        assert 'class="govuk-button' in button, button
    # No class of the old hand-written stylesheet is left in the markup.
    classes = {c for v in re.findall(r'class="([^"]*)"', html) for c in v.split()}
    own = {c for c in classes if not c.startswith("govuk-")}
    assert own <= {"view", "part", "key-state", "problem", "why"}, own


def test_the_script_toggles_the_design_systems_error_classes() -> None:
    """app.js marks a field in error with the classes govuk-frontend styles red, and clears them again."""
    js = (SITE / "app.js").read_text()
    for needed in (
        '"govuk-form-group--error"',
        '".govuk-error-message"',
        '"govuk-visually-hidden", text: "Error: "',
        '["govuk-input", "govuk-textarea", "govuk-file-upload"]',
        "`${c}--error`",
        '"govuk-summary-list__row"',
        '"govuk-table__cell"',
    ):
        assert needed in js, needed
    assert not re.search(r'class: "(?!govuk-)', js), "a class outside the Design System in app.js"
