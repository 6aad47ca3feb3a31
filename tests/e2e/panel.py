"""Driving the share panel (an extension page in an iframe inside the webmail page) like a practitioner."""

from __future__ import annotations

import time
from typing import Any


def panel_frame(page: Any, timeout: float = 10.0) -> Any:
    """The panel's frame, once its form (or an error) is on screen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for f in page.frames:
            if "/panel/panel.html" in f.url:
                f.wait_for_selector("#main[aria-busy=false]", timeout=timeout * 1000)
                return f
        page.wait_for_timeout(50)  # lets Playwright process frame events (time.sleep would not)
    raise AssertionError("the share panel did not open")


def open_panel(page: Any) -> Any:
    page.get_by_role("button", name="Share securely", exact=True).click()
    return panel_frame(page)


def settle(panel: Any) -> None:
    """Wait until the live validation has answered for what is on screen (the buttons reflect it)."""
    panel.wait_for_function("() => window.__pending === false", timeout=10000)


#: What `fill` did, as a practitioner would do it, for the time estimate in test_panel_measure.py: one entry per
#: answer given, (kind, characters typed); kinds "type" (a text field), "choose" (a radio), "tick" (a
#: checkbox), "select" (a drop-down) and "add" (the "Add another" button).
Action = tuple[str, int]


def _set(panel: Any, path: str, value: Any, log: list[Action]) -> None:
    loc = panel.locator(f'[data-path="{path}"]')
    first = loc.first
    # A question the form does not ask for the answers so far (issue 13: only questions that apply) is left out.
    if first.evaluate("e => !!e.closest('[data-cond][hidden]')"):
        return
    tag = first.evaluate("e => e.tagName + ':' + (e.type || '')")
    if tag == "INPUT:radio":
        panel.locator(f'input[data-path="{path}"][value="{str(value).lower()}"]').check()
        log.append(("choose", 0))
    elif tag == "INPUT:checkbox":
        for v in value:
            panel.locator(f'input[data-path="{path}"][value="{v}"]').check()
            log.append(("tick", 0))
    elif tag.startswith("SELECT"):
        first.select_option(str(value))
        log.append(("select", 0))
    elif isinstance(value, list):
        first.fill(", ".join(value))
        first.blur()  # moving on to the next question, as a practitioner does (problems show once a field is left)
        log.append(("type", len(", ".join(value))))
    else:
        first.fill(str(value))
        first.blur()
        log.append(("type", len(str(value))))


def fill(panel: Any, doc: dict[str, Any], prefix: str = "", log: list[Action] | None = None) -> list[Action]:
    """Enter a justification document into the rendered form, field by field; returns what was done."""
    log = [] if log is None else log
    for key, value in doc.items():
        if not prefix and key == "policy":
            continue
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            fill(panel, value, path + ".", log)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for i, row in enumerate(value):
                if panel.locator(f'[data-field="{path}.{i}"]').count() == 0:
                    panel.locator(f'[data-field="{path}"] button', has_text="Add another").click()
                    log.append(("add", 0))
                fill(panel, row, f"{path}.{i}.", log)
        else:
            _set(panel, path, value, log)
    return log


def problems(panel: Any) -> dict[str, str]:
    """The problems shown, by the field they are shown next to."""
    return panel.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('[data-field]')]
            .map(b => [b.dataset.field, b.querySelector(':scope > .problem, :scope > fieldset > .problem')])
            .filter(([, p]) => p && !p.hidden).map(([f, p]) => [f, p.textContent]))"""
    )
