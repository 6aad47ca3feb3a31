/**
 * Emergency share in the panel (issue 14). When the policy's `x-emergency` rule applies (a share with someone at
 * immediate risk), the gateway's validate answer says whether the draft may go at once and which answers can
 * wait. The panel then lets the practitioner share with the minimum, tells them by when the rest is owed, and
 * reminds them (on opening) of every justification still owed, with a way to complete it from the same form.
 * Kept apart from panel.js so the form itself stays the policy's; this file only adds the notices.
 */

const when = (t) => new Date(t).toUTCString();

/** The emergency notice to show for a validate answer: only when the draft is incomplete but may go at once. */
export function emergencyOf(answer) {
  return !answer?.valid && answer?.emergency?.allowed ? answer.emergency : null;
}

/** Show (or remove) the notice right after the risk level, where "Immediate risk" was chosen. */
export function renderEmergency(fields, notice, el) {
  let box = fields.querySelector("#emergency");
  if (!notice) {
    box?.remove();
    return;
  }
  const key = JSON.stringify([notice.owed.length, notice.complete_within_hours]);
  if (box?.dataset.key === key) return;
  box?.remove();
  const n = notice.owed.length;
  box = el(
    "div",
    { id: "emergency", class: "warning", role: "region", "aria-labelledby": "emergency-h", dataset: { key } },
    el("h2", { id: "emergency-h", class: "govuk-heading-m", text: notice.title }),
    el("p", { class: "govuk-body principle", text: notice.guidance }),
    el("p", {
      class: "govuk-body",
      text:
        `You can share now. ${n} answer${n === 1 ? "" : "s"} can wait: complete ${n === 1 ? "it" : "them"} within ` +
        `${notice.complete_within_hours} hours of sharing. Until then the share is flagged, and SafeShare reminds you.`,
    }),
  );
  const risk = fields.querySelector('[data-field="rules.5_safety_wellbeing.risk_level"]');
  if (risk) risk.after(box);
  else fields.prepend(box);
}

/** The status line while an emergency share may go at once. */
export function emergencyStatus(notice) {
  const n = notice.owed.length;
  return `Emergency share: you can share now; ${n} answer${n === 1 ? "" : "s"} to complete within ${notice.complete_within_hours} hours.`;
}

/** Extra facts for the result of a share that went as an emergency share. */
export function emergencyFacts(result) {
  if (!result?.emergency) return [];
  return [
    ["Complete the justification by", when(result.emergency.complete_by)],
    ["Answers still owed", String(result.emergency.owed.length)],
  ];
}

/**
 * The reminder: every emergency share whose justification is still owed, overdue ones said so, each with a
 * button to complete it with this form. `container` is emptied and hidden when nothing is owed.
 */
export function renderOwed(container, owed, el, onComplete) {
  container.replaceChildren();
  container.hidden = !owed.length;
  if (!owed.length) return;
  const overdue = owed.filter((o) => o.overdue).length;
  const list = el("ul", { class: "govuk-list govuk-list--spaced" });
  for (const o of owed) {
    const button = el("button", { type: "button", class: "govuk-button govuk-button--secondary", text: `Complete the justification for ${o.share_id}` });
    button.addEventListener("click", (ev) => {
      if (ev.isTrusted) onComplete(o);
    });
    list.append(
      el(
        "li",
        { dataset: { share: o.share_id } },
        el("strong", { text: `${o.purpose?.code ?? ""} — ${(o.subjects ?? []).join(", ")}` }),
        o.overdue ? el("strong", { class: "govuk-tag govuk-tag--red", text: "Overdue" }) : null,
        el("span", { text: ` shared ${when(o.shared_at)}; ${o.overdue ? "OVERDUE since" : "due by"} ${when(o.complete_by)}. ` }),
        button,
      ),
    );
  }
  container.append(
    el("h2", { id: "owed-h", class: "govuk-heading-m", text: `Justifications to complete (${owed.length})` }),
    el("p", {
      class: "govuk-body",
      text:
        `You made ${owed.length === 1 ? "an emergency share" : `${owed.length} emergency shares`} with the minimum answers. ` +
        (overdue ? `${overdue} ${overdue === 1 ? "is" : "are"} overdue. ` : "") +
        "Complete each justification: the share stays flagged in the ledger until you do.",
    }),
    list,
  );
}
