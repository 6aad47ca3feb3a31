/**
 * Answers the panel already knows, offered rather than typed again (issue 13; WCAG 2.2 SC 3.3.7 Redundant
 * Entry): beside each question that asks for an organisation the practitioner is sharing with, the chosen
 * recipients' organisations (from the directory lookup the panel makes for the e-mail's addresses) as buttons.
 * Never silently: nothing is filled in until the practitioner chooses one, the answer stays in the ordinary text
 * field where they see it and can change it, and the page says what was filled in.
 *
 * Which questions: a policy property annotated `"x-offer": "recipient-organisations"` (the request's
 * "Which organisation asked?" in hmg-2018 and dfe-2024: usually the organisation now being shared with), and
 * each person's organisation under "Shared another way". Kept apart from panel.js (which only calls
 * `offerRecipientOrganisations` when the recipients are known) so the panel's markup can change around it.
 */
import { el } from "../lib/page.js";

/** The `x-offer` value (form-model.js passes it on as `offer`) that asks for the recipients' organisations. */
export const RECIPIENT_ORGANISATIONS = "recipient-organisations";

/** The disclosure ("Shared another way") inputs for a person's organisation. */
const DISCLOSURE_ORG = /^disclosure\.with\.\d+\.organisation$/;

/**
 * Paths of the form's questions whose answer may be one of the recipients' organisations.
 * @param {import("./form-model.js").Field[]} tree
 * @returns {string[]}
 */
export function organisationPaths(tree) {
  const out = [];
  const walk = (fields) => {
    for (const f of fields ?? []) {
      if (f.offer === RECIPIENT_ORGANISATIONS && (f.kind === "line" || f.kind === "text")) out.push(f.path);
      walk(f.children);
    }
  };
  walk(tree);
  return out;
}

/**
 * The distinct organisations of the recipients matched in the directory, in the e-mail's order; the same name
 * written with other capitals or spacing is offered once.
 * @param {{recipient: {org?: string}}[]} matched
 * @returns {string[]}
 */
export function recipientOrganisations(matched) {
  const seen = new Set();
  const out = [];
  for (const m of matched ?? []) {
    const org = String(m?.recipient?.org ?? "").trim().replace(/\s+/g, " ");
    const key = org.toLowerCase();
    if (org && !seen.has(key)) {
      seen.add(key);
      out.push(org);
    }
  }
  return out;
}

let offered = { paths: [], orgs: [] };
let observer = null;

function targets(root) {
  const byPath = offered.paths.flatMap((p) => [...root.querySelectorAll(`[data-path="${CSS.escape(p)}"]`)]);
  const disclosure = [...root.querySelectorAll("[data-dpath]")].filter((n) => DISCLOSURE_ORG.test(n.dataset.dpath));
  return [...byPath, ...disclosure].filter((n) => n.matches("input[type=text], textarea"));
}

function offerBox(input) {
  const label = input.id ? document.querySelector(`label[for="${CSS.escape(input.id)}"]`)?.textContent : "";
  const note = el("p", { class: "govuk-hint suggestion-note", "aria-live": "polite" });
  const box = el(
    "div",
    { class: "suggestions govuk-!-margin-top-2", role: "group", "aria-label": `Suggested answers${label ? ` for “${label}”` : ""}`, dataset: { for: input.id, orgs: offered.orgs.join("\n") } },
    el("p", { class: "govuk-body-s govuk-!-margin-bottom-1", text: offered.orgs.length === 1 ? "The organisation you are sharing with: " : "The organisations you are sharing with: " }),
  );
  for (const org of offered.orgs) {
    const button = el("button", { type: "button", class: "govuk-button govuk-button--secondary govuk-!-margin-bottom-1 suggestion", text: `Use ${org}` });
    button.addEventListener("click", () => {
      input.value = org;
      // As if typed: the panel's own listeners check, save and count it like any other answer.
      input.dispatchEvent(new Event("input", { bubbles: true }));
      input.focus();
      note.textContent = `Filled in “${org}”. You can change it.`;
    });
    box.append(button, " ");
  }
  box.append(note);
  return box;
}

/** Put (or refresh) the offers beside every matching input; leaves each input's answer as it is. */
function attach(root) {
  for (const input of targets(root)) {
    const next = input.nextElementSibling;
    const current = next?.classList.contains("suggestions") ? next : null;
    if (current && current.dataset.orgs === offered.orgs.join("\n")) continue;
    current?.remove();
    if (offered.orgs.length) input.after(offerBox(input));
  }
}

/**
 * Offer the matched recipients' organisations beside each organisation question under `root` (the panel's form),
 * now and for rows added later (another person under "Shared another way"). Called again when the recipients
 * change (the e-mail was read again): the offers follow, answers already given stay.
 * @param {HTMLElement} root
 * @param {import("./form-model.js").Field[]} tree
 * @param {{recipient: {org?: string}}[]} matched
 */
export function offerRecipientOrganisations(root, tree, matched) {
  offered = { paths: organisationPaths(tree), orgs: recipientOrganisations(matched) };
  attach(root);
  if (!observer) {
    observer = new MutationObserver(() => attach(root));
    observer.observe(root, { childList: true, subtree: true });
  }
}
