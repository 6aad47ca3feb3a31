/**
 * The partnership's agreements in the share panel (golden rule 6): under the policy's "agreements" field, the
 * agreements in force that cover this draft's purpose, data categories and subjects — each with its title, a
 * link to the document and, when a recipient's organisation has not signed it, a plain explanation. Ticking
 * one fills the field (the justification's top-level `agreements` list), which the gateway checks on sharing.
 *
 * An offered agreement version may carry standard answers: the wording its partners agreed for a kind of share
 * (issue 13). Each set for the panel's policy is offered as a button under the agreement; choosing it hands the
 * set to panel.js (`startFrom`), which fills the form and asks the practitioner to confirm each rule it answered.
 *
 * Self-contained: it reads the rendered form (data-path attributes) and asks the service worker for the
 * offers, so panel.js only calls `setupAgreements` once the form and the recipients are on screen.
 */
import { el as node } from "../lib/page.js";

const KIND_WORDS = { protocol: "Overarching protocol", data_exchange: "Data exchange agreement", other: "Agreement" };

/** What the offers depend on, read from the rendered form. */
export function draftFacts(fields) {
  const value = (path) => fields.querySelector(`[data-path="${path}"]:is(select, input[type=text])`)?.value ?? "";
  const checked = (path) => [...fields.querySelectorAll(`input[data-path="${path}"]:checked`)].map((i) => i.value);
  const roles = [];
  for (const n of fields.querySelectorAll("[data-path]")) {
    if (!/^subjects\.\d+\.role$/.test(n.dataset.path)) continue;
    const v = n.type === "radio" ? (n.checked ? n.value : "") : n.value;
    if (v && !roles.includes(v)) roles.push(v);
  }
  const purpose = value("purpose.code") || checked("purpose.code")[0] || "";
  return { purpose, categories: checked("data_categories"), roles };
}

/** The IDs typed into (or ticked for) the agreements field. */
function namedIds(input) {
  return input.value
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * @param {{ask: (type: string, payload?: object) => Promise<any>, fields: HTMLElement, recipients: () => string[],
 *   policyId?: () => string, startFrom?: (agreement: object, set: {title: string, policy: string, answers: object}) => void}} opts
 */
export function setupAgreements({ ask, fields, recipients, policyId = () => "", startFrom = () => {} }) {
  const override = overrideControls(fields);
  const box = fields.querySelector('[data-field="agreements"]');
  const input = box?.querySelector('input[data-path="agreements"]');
  if (!box || !input) return { refresh: async () => {}, ...override };
  const section = node("div", { class: "agreements-offered", id: "agreements-offered", "aria-live": "polite" });
  input.insertAdjacentElement("afterend", section);

  let lastKey = null;
  let seq = 0;
  /** The sets of standard answers already put into the form (shown as such, not offered again). */
  const started = new Set();
  let timer = null;

  function render(answer) {
    section.replaceChildren();
    const offers = answer.agreements ?? [];
    if (!offers.length) {
      section.append(
        node("p", {
          class: "govuk-hint",
          text:
            "No partnership agreement in force covers this purpose, these kinds of information and these subjects. " +
            "If none applies, say why under \u201cWhy no partnership agreement applies\u201d.",
        }),
      );
      return;
    }
    const named = new Set(namedIds(input));
    const fs = node(
      "fieldset",
      { class: "govuk-fieldset" },
      node("legend", { class: "govuk-fieldset__legend govuk-fieldset__legend--s", text: "Agreements that cover this share" }),
    );
    const items = node("div", { class: "govuk-checkboxes govuk-checkboxes--small" });
    fs.append(items);
    offers.forEach((a, i) => {
      const id = `agreement-offer-${i}`;
      const explanationId = `${id}-why`;
      const cb = node("input", { class: "govuk-checkboxes__input", type: "checkbox", id, value: a.id, "aria-describedby": explanationId, checked: named.has(a.id) });
      cb.dataset.agreement = a.id;
      cb.addEventListener("change", () => {
        const ids = namedIds(input).filter((x) => x !== a.id);
        if (cb.checked) ids.push(a.id);
        input.value = ids.join(", ");
        input.dispatchEvent(new Event("input", { bubbles: true }));
      });
      const label = node("label", { class: "govuk-label govuk-checkboxes__label", for: id, text: `${a.title} (${KIND_WORDS[a.kind] ?? "Agreement"}, version ${a.version})` });
      const link = node("a", {
        href: a.document.href,
        target: "_blank",
        rel: "noopener noreferrer",
        class: "govuk-link agreement-document",
        text: `Read ${a.title} (opens in a new tab)`,
      });
      const why = node("p", {
        id: explanationId,
        class: a.covers_all_recipients ? "govuk-hint govuk-checkboxes__hint" : "govuk-hint govuk-checkboxes__hint agreement-uncovered",
        text: a.explanation,
      });
      // The checkbox's item: its input before its label (as govuk-frontend styles it), then the explanation and the link.
      const item = node("div", { class: "govuk-checkboxes__item agreement-offer", "data-agreement-offer": a.id }, cb, label, why, node("p", { class: "govuk-body-s govuk-checkboxes__hint" }, link));
      for (const set of (a.standard_answers ?? []).filter((x) => x.policy === policyId())) {
        const key = JSON.stringify([a.id, a.version, set.title]);
        const holder = node("div", { class: "govuk-checkboxes__hint" });
        const note = () =>
          node("p", { class: "govuk-body-s standard-answers-used", text: `The answers agreed for “${set.title}” are in the form: check and confirm each rule they filled in.` });
        if (started.has(key)) holder.append(note());
        else {
          const use = node("button", {
            type: "button",
            class: "govuk-button govuk-button--secondary govuk-!-margin-bottom-2 standard-answers",
            "data-standard-answers": set.title,
            text: `Start from the agreed answers: ${set.title}`,
          });
          use.addEventListener("click", () => {
            started.add(key);
            startFrom(a, set);
            holder.replaceChildren(note());
          });
          holder.append(use);
        }
        item.append(holder);
      }
      items.append(item);
    });
    section.append(fs);
  }

  async function refresh() {
    const facts = draftFacts(fields);
    const params = { recipients: recipients(), ...facts };
    const key = JSON.stringify(params);
    if (key === lastKey) return;
    lastKey = key;
    const mine = ++seq;
    try {
      const answer = await ask("agreements", params);
      if (mine === seq) render(answer);
    } catch (e) {
      if (mine !== seq) return;
      lastKey = null;
      section.replaceChildren(node("p", { class: "govuk-hint", text: `The partnership's agreements could not be loaded (${e.message}).` }));
    }
  }

  const later = (ev) => {
    if (ev.target === input || ev.target?.dataset?.agreement) return;
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  };
  fields.addEventListener("input", later);
  fields.addEventListener("change", later);
  return { refresh, ...override };
}

/**
 * After a share is refused for agreement problems: the problems, kept on screen (live validation of the
 * justification does not know the recipients, so it would not show them again), and — where the
 * practitioner's organisation allows it (`overridable`) — a reason to share anyway, sent as
 * `agreement_override` and recorded with the problems.
 */
function overrideControls(fields) {
  const id = "agreement-override-reason";
  const hintId = `${id}-hint`;
  const list = node("ul", { class: "govuk-list govuk-error-message problem", id: "agreement-problems-list" });
  const area = node("textarea", { class: "govuk-textarea", id, rows: 3, maxlength: 4000, "aria-describedby": hintId });
  const reason = node(
    "div",
    { class: "govuk-form-group", hidden: true },
    node("label", { class: "govuk-label govuk-label--s", for: id, text: "Why share despite these agreement problems?" }),
    node("div", {
      id: hintId,
      class: "govuk-hint",
      text: "Your organisation allows this with a reason. The reason and the problems are recorded with the share. Then choose Share again.",
    }),
    area,
  );
  const box = node(
    "div",
    { class: "warning", id: "agreement-problems", hidden: true },
    node("h2", { class: "govuk-heading-m", text: "The partnership's agreements do not cover this share" }),
    list,
    reason,
  );
  fields.insertAdjacentElement("afterend", box);
  return {
    /** The reason to send, if the practitioner gave one after an overridable refusal. */
    overrideReason: () => (reason.hidden || !area.value.trim() ? undefined : area.value.trim()),
    /** After a refusal: show agreement problems (and the override, when allowed); hide them otherwise. */
    refused: (error) => {
      const mine = error?.code === "agreement_problems";
      box.hidden = !mine;
      reason.hidden = !(mine && error.overridable);
      list.replaceChildren(...(mine ? (error.problems ?? []).map((p) => node("li", { text: p.message })) : []));
      if (mine && error.overridable) area.focus();
    },
  };
}
