"""How much work a routine referral is in the real panel (issue 13): Tab stops, words, screens, controls and
questions, counted in headless Chromium on the Gmail fixture with the example referral entered. The figures
are written to $SAFESHARE_MEASURE (a JSON file) when set, so that a change to the form can be compared."""

from __future__ import annotations

import json
import os
from typing import Any

from tests.conftest import example
from tests.e2e.conftest import Gateway
from tests.e2e.panel import fill, open_panel, settle
from tests.e2e.webmail import Webmail

#: Counted inside the panel document. A Tab stop is a focusable control that is rendered and enabled (radio
#: groups count once, as the browser's Tab does); words are the visible text's; a screen is the panel's own
#: scrolling area's height (#main); a question is a rendered field box with its own control.
MEASURE = """() => {
  const shown = (e) => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden';
  const focusable = [...document.querySelectorAll('a[href], button, input, select, textarea, [tabindex], summary')]
    .filter((e) => shown(e) && !e.disabled && e.type !== 'hidden' && e.tabIndex >= 0);
  const radioGroups = new Set();
  let tabStops = 0;
  for (const e of focusable) {
    if (e.type === 'radio') { if (radioGroups.has(e.name)) continue; radioGroups.add(e.name); }
    tabStops++;
  }
  const controls = [...document.querySelectorAll('button, input, select, textarea')]
    .filter((e) => shown(e) && e.type !== 'hidden').length;
  const words = document.body.innerText.split(/\\s+/).filter(Boolean).length;
  const main = document.getElementById('main');
  const screens = Math.round((main.scrollHeight / main.clientHeight) * 10) / 10;
  const questions = [...document.querySelectorAll('#fields [data-field]')].filter((b) => shown(b)
    && [...b.querySelectorAll('input:not([type=hidden]), select, textarea')].some((i) => i.closest('[data-field]') === b
       || i.closest('fieldset')?.closest('[data-field]') === b)).length;
  return { tabStops, controls, words, screens, questions };
}"""


def measure(panel: Any) -> dict[str, float]:
    return dict(panel.evaluate(MEASURE))


def test_routine_referral_figures(page: Any, webmail: Webmail, gateway: Gateway) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(webmail.gmail_url())
    panel = open_panel(page)
    settle(panel)
    empty = measure(panel)
    fill(panel, example("share"))
    settle(panel)
    filled = measure(panel)
    figures = {"opened": empty, "referral_filled_in": filled}
    print(json.dumps(figures))
    if out := os.environ.get("SAFESHARE_MEASURE"):
        with open(out, "w") as f:
            json.dump(figures, f, indent=2)
    assert filled["tabStops"] > 0 and filled["words"] > 0
