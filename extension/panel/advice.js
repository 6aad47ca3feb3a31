/**
 * Seek advice first, in the panel (issue 14; hmg-2018 rule 3, DfE 2024 rule 4). "Ask for advice" sends only the
 * draft's purpose and data categories to an adviser role of the practitioner's organisation: never a subject
 * reference, a name or the email. Answered questions are listed; the ones ticked are cited with the share (its
 * ledger entry then records who answered, when and what they said). Kept apart from panel.js (the form is the
 * policy's); panel.js only places the box and reads `cited()`.
 */

const ROLES = [
  ["dsl", "Designated safeguarding lead"],
  ["manager", "Manager"],
  ["dpo", "Data protection officer"],
  ["caldicott_guardian", "Caldicott Guardian"],
  ["legal", "Legal adviser"],
];

/**
 * @param {{ask: Function, el: Function, draft: () => object}} deps  `draft` gives the justification as it stands
 * @returns {{box: HTMLElement, cited: () => string[], refresh: () => Promise<void>}}
 */
export function setupAdvice({ ask, el, draft }) {
  const role = el("select", { id: "advice-to", class: "govuk-select", "aria-describedby": "advice-hint" }, ...ROLES.map(([v, t]) => el("option", { value: v, text: t })));
  const askButton = el("button", { type: "button", id: "advice-ask", class: "govuk-button govuk-button--secondary", text: "Ask for advice" });
  const said = el("p", { id: "advice-status", class: "govuk-body", role: "status" });
  const again = el("button", { type: "button", id: "advice-refresh", class: "govuk-button govuk-button--secondary", text: "Check for answers" });
  const list = el("ul", { id: "advice-list", class: "govuk-list govuk-list--spaced" });
  // The GOV.UK details component: asking for advice is one click away, not in the way of a routine referral.
  const box = el(
    "details",
    { id: "advice", class: "govuk-details" },
    el("summary", { class: "govuk-details__summary" }, el("span", { class: "govuk-details__summary-text", text: "Ask for advice (without naming anyone)" })),
    el(
      "div",
      { class: "govuk-details__text" },
      el(
        "div",
        { class: "govuk-form-group" },
        el("label", { class: "govuk-label govuk-label--s", for: "advice-to", text: "Who should advise you?" }),
        el("div", { class: "govuk-hint", id: "advice-hint", text: "Only the purpose and the data categories you chose go to the adviser: no names, references or content." }),
        role,
      ),
      askButton,
      said,
      el("h3", { class: "govuk-heading-s", text: "Your questions and the answers" }),
      list,
      again,
    ),
  );
  again.addEventListener("click", (ev) => {
    if (ev.isTrusted) refresh().catch((e) => (said.textContent = e.message));
  });

  async function refresh() {
    const { questions } = await ask("list-advice");
    const ticked = new Set(cited());
    list.replaceChildren();
    for (const q of questions) {
      const id = `cite-${q.advice_id}`;
      const answer = q.answer;
      list.append(
        el(
          "li",
          { dataset: { advice: q.advice_id } },
          el("span", { text: `${q.purpose?.code ?? ""} — to ${q.to}: ` }),
          answer
            ? el(
                "span",
                {},
                el("q", { text: answer.answer }),
                el(
                  "div",
                  { class: "govuk-checkboxes govuk-checkboxes--small" },
                  el(
                    "div",
                    { class: "govuk-checkboxes__item" },
                    el("input", { class: "govuk-checkboxes__input", type: "checkbox", id, value: q.advice_id, checked: ticked.has(q.advice_id) }),
                    el("label", { class: "govuk-label govuk-checkboxes__label", for: id, text: "Cite this advice in my justification" }),
                  ),
                ),
              )
            : el("strong", { class: "govuk-tag govuk-tag--grey", text: "Not answered yet" }),
        ),
      );
    }
  }

  function cited() {
    return [...list.querySelectorAll("input[type=checkbox]:checked")].map((c) => c.value);
  }

  askButton.addEventListener("click", async (ev) => {
    if (!ev.isTrusted) return;
    const d = draft();
    if (!d.purpose?.code || !d.purpose?.description) {
      said.textContent = "Choose the purpose and describe it first: that is what the adviser reads.";
      return;
    }
    try {
      const asked = await ask("ask-advice", {
        to: role.value,
        purpose: { code: d.purpose.code, description: d.purpose.description },
        dataCategories: d.data_categories ?? [],
      });
      said.textContent = `Asked (${asked.advice_id}). The answer appears here when it comes.`;
      await refresh();
    } catch (e) {
      said.textContent = e.message;
    }
  });
  return { box, cited, refresh };
}
