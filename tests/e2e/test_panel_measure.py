"""How much work a routine referral is in the real panel (issue 13): Tab stops, words, screens, controls and
questions, counted in headless Chromium on the Gmail fixture with the example referral entered, and an estimate
of the time a practitioner needs for it. The figures are written to $SAFESHARE_MEASURE (a JSON file) when set,
so that a change to the form can be compared.

The time is a model, not a timed user: the Keystroke-Level Model (Card, Moran & Newell, *The Psychology of
Human-Computer Interaction*, 1983) applied to the actions this test performs to complete the referral — each
character it types, each control it operates, each answer it gives (a decision) — and the final Share. It
leaves out reading the guidance, scrolling (the model has no operator for it; the screens are reported apart)
and thinking about the case beyond one mental preparation per answer, so it is a lower bound on real time for a
practitioner who knows what to answer, not a prediction for a particular person.

The issue asks for "well under 3 minutes". With the model's published operator times this referral does not
get there: its nine free-text answers are 534 characters, 150 s of typing alone at 0.28 s a character (107 s
for a skilled typist), and its 32 answers add 32 decisions and pointing actions. The test therefore asserts a
ceiling just above today's estimate (CEILING_SECONDS), so that it fails as soon as the form grows (more answers
or more typing), and reports whether the 3-minute target is met (`under_3_minutes`) rather than hide it. The
same referral started from the answers a partnership agreed for it (an agreement's standard answers, the way a
routine referral is meant to be made) is measured in test_panel_standard_answers.py: about 127 s.

A follow-up about a known case is measured too, in the same run: the practitioner types the case reference,
starts from their last justification about it, types what is new (a purpose and an assessment as long as the
first's) and confirms each of the seven rules. It must stay well under 3 minutes (under 108 s; 80 s today)."""

from __future__ import annotations

import json
import os
from typing import Any

from tests.conftest import example
from tests.e2e.conftest import Gateway
from tests.e2e.panel import fill, open_panel, settle
from tests.e2e.test_webmail_share import result_facts
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


#: The Keystroke-Level Model's operator times (seconds; Card, Moran & Newell 1980/1983): K one keystroke (an
#: average non-secretarial typist, 40 words a minute; 0.20 s for a skilled one), P pointing with the mouse at a
#: target, B pressing or releasing the mouse button (a click is BB), H moving the hand between keyboard and
#: mouse, M mental preparation for a decision.
KLM = {"K": 0.28, "K_skilled": 0.20, "P": 1.1, "B": 0.1, "H": 0.4, "M": 1.35}
#: Issue 13's target for a routine referral ("well under 3 minutes"), reported beside the estimate.
TARGET_SECONDS = 180.0
#: Today's estimate for an average typist (255.9 s with govuk-frontend's panel, the same as before it: the model
#: counts actions, not pixels) plus about 5%: one more free-text answer or a few more choices fail the test.
CEILING_SECONDS = 270.0

#: Operators for each kind of action `fill` records (tests/e2e/panel.py): an answer is decided (M), its control
#: pointed at and clicked (P BB); text is typed between moving the hand to the keyboard and back (H ... H); a
#: drop-down needs a second point-and-click on the option; "Add another" is a click after deciding to add one.
OPERATORS = {
    "type": {"M": 1, "P": 1, "B": 2, "H": 2},
    "choose": {"M": 1, "P": 1, "B": 2},
    "tick": {"M": 1, "P": 1, "B": 2},
    "select": {"M": 1, "P": 2, "B": 4},
    "add": {"M": 1, "P": 1, "B": 2},
}


def klm_estimate(actions: list[tuple[str, int]], key: str = "K") -> dict[str, float]:
    """The model's time for `actions` (from `fill`) and pressing Share; `key` is the typist's K."""
    counts = {"K": 0.0, "P": 0.0, "B": 0.0, "H": 0.0, "M": 0.0}
    for kind, chars in actions:
        for op, n in OPERATORS[kind].items():
            counts[op] += n
        counts["K"] += chars
    counts["M"] += 1  # Share: decide that the justification is right
    counts["P"] += 1
    counts["B"] += 2
    times = {**KLM, "K": KLM[key]}
    seconds = sum(times[op] * n for op, n in counts.items())
    return {"seconds": round(seconds, 1), **{f"{op}_count": n for op, n in counts.items()}}


#: A follow-up about the same child a week later: what is new is typed afresh (the purpose and the assessment,
#: as long as the first referral's), the rest is carried over from the last justification and confirmed.
FOLLOW_UP = {
    "purpose.description": "Further disclosure at school: a second injury seen today, after the first referral.",
    "rules.5_safety_wellbeing.assessment": "New bruising on the arm; the child says it happened at home again.",
}


def test_routine_referral_figures(page: Any, webmail: Webmail, gateway: Gateway, browser: Any) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(webmail.gmail_url())
    panel = open_panel(page)
    settle(panel)
    empty = measure(panel)
    actions = fill(panel, example("share"))
    settle(panel)
    filled = measure(panel)
    typist = klm_estimate(actions)
    skilled = klm_estimate(actions, "K_skilled")
    panel.get_by_role("button", name="Share", exact=True).click()
    result_facts(panel)
    follow_up = follow_up_actions(browser, webmail)
    follow_typist = klm_estimate(follow_up)
    figures = {
        "opened": empty,
        "referral_filled_in": filled,
        "actions": {
            "answers": len(actions),
            "characters_typed": sum(chars for _, chars in actions),
            **{kind: sum(1 for k, _ in actions if k == kind) for kind in OPERATORS},
        },
        "klm_seconds": {"average_typist": typist["seconds"], "skilled_typist": skilled["seconds"]},
        "under_3_minutes": typist["seconds"] < TARGET_SECONDS,
        # The same referral if every answer but the typed ones were already given: what its own words cost.
        "typed_answers_only_seconds": klm_estimate([a for a in actions if a[0] == "type"])["seconds"],
        "follow_up_from_last_justification": {
            "answers": len(follow_up),
            "characters_typed": sum(chars for _, chars in follow_up),
            "klm_seconds": {
                "average_typist": follow_typist["seconds"],
                "skilled_typist": klm_estimate(follow_up, "K_skilled")["seconds"],
            },
        },
        "klm_operators": {k: v for k, v in typist.items() if k.endswith("_count")},
    }
    print(json.dumps(figures))
    if out := os.environ.get("SAFESHARE_MEASURE"):
        with open(out, "w") as f:
            json.dump(figures, f, indent=2)
    assert filled["tabStops"] > 0 and filled["words"] > 0
    assert actions and figures["actions"]["characters_typed"] > 0
    # The estimate is for what the practitioner does: more answers or more typing in the routine referral fail here.
    assert typist["seconds"] < CEILING_SECONDS, f"routine referral estimated at {typist['seconds']} s (KLM): {figures}"
    # A follow-up about a known case, from the last justification confirmed rule by rule, is well under 3 minutes.
    assert follow_typist["seconds"] < TARGET_SECONDS * 0.6, f"follow-up estimated at {follow_typist['seconds']} s"


def follow_up_actions(browser: Any, webmail: Webmail) -> list[tuple[str, int]]:
    """A second share about the same child from another e-mail (Outlook): the case reference typed, the last
    justification taken as the starting point, what is new typed over it, each rule confirmed, then shared."""
    first = example("share")
    ref = first["subjects"][0]["ref"]
    actions: list[tuple[str, int]] = []
    other = browser.context.new_page()
    try:
        other.goto(webmail.outlook_url())
        p = open_panel(other)
        p.locator('[data-path="subjects.0.ref"]').fill(ref)
        p.locator('[data-path="subjects.0.ref"]').blur()
        actions.append(("type", len(ref)))
        p.locator("#last-offer").get_by_role("button", name=f"Start from my last justification about {ref}").click()
        actions.append(("choose", 0))
        settle(p)
        for path, text in FOLLOW_UP.items():
            field = p.locator(f'[data-path="{path}"]')
            field.fill(text)
            field.blur()
            actions.append(("type", len(text)))
        boxes = p.locator("[data-confirm-rule]")
        for i in range(boxes.count()):
            boxes.nth(i).check()
            actions.append(("tick", 0))
        settle(p)
        p.get_by_role("button", name="Share", exact=True).click()
        assert result_facts(p)["Share reference"]
    finally:
        other.close()
    return actions
