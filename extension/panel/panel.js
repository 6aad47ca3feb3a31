/**
 * The share panel: an extension page (isolated from the webmail) that renders the golden-rules form from
 * the policy the gateway serves, shows the gateway's live problems next to each field, and shares or
 * records a decision not to share through the service worker.
 */
import { $, asker, el, showAlert } from "../lib/page.js";
import { setupAdvice } from "./advice.js";
import { setupAgreements } from "./agreements.js";
import { emergencyFacts, emergencyOf, emergencyStatus, renderEmergency, renderOwed } from "./emergency.js";
import { CHANNELS, fieldsOfRef, fieldTree, notApplicable, toState, placeProblems, policyInfo, problemsPerRule, ruleTexts, toDisclosure, toJustification, toLocalInput } from "./form-model.js";
import { applies, conditionalFields } from "./conditions.js";
import { claimSession, confirmStep, hasVisibilityTracking, watchFocus, watchVisibility } from "./guard.js";
import { renderMissing } from "./missing-view.js";
import { renderChanged, renderRecipientSummary, renderSnapshot } from "./snapshot-view.js";
import { offerRecipientOrganisations } from "./suggestions.js";
import { choiceComplete, resultRows, shareFields } from "./unenrolled.js";
import { renderUnenrolled } from "./unenrolled-view.js";
import { button, choiceItem, choices, errorMessage, fieldset, hint, label, markGroup, markInvalid, setError } from "../lib/govuk.js";

/** Given by the worker for the ticket SafeShare's content script posts into this frame (guard.js). */
let session = "";
/** The panel's visibility watch (guard.js), and whether the email changed since its snapshot. */
let visibility = null;
let draftChanged = false;

let tree = [];
let policyId;
let policyDoc = null;
let recipientsOk = false;
let recipientIds = [];
/** Recipients without a SafeShare key (issue 10): their addresses and the practitioner's choice for them. */
let unkeyed = [];
let unenrolledView = renderUnenrolledNone();
function renderUnenrolledNone() {
  return { choice: () => null, focusPassphrase: () => {} };
}
/** Attachments the webmail would not hand over (missing-view.js). */
let missingView = { unresolved: () => [], leaveOut: () => [] };
let valid = false;
/** Issue 14: the emergency notice while an incomplete share may go at once; the share whose justification is being completed. */
let emergency = null;
let completing = null;
let validating = 0;
let finished = false;
let agreementUi = null;
let adviceUi = null;

/** The service worker, with this panel's session on every message (lib/page.js). */
const ask = asker({ advice: "Nothing was shared and your email has not been changed.", extra: () => ({ session }) });

const idFor = (path) => "f-" + path.replace(/[^A-Za-z0-9_-]/g, "-");

/** A field's error message line: in its form group after the label and hint, or in its fieldset after the legend. */
const problemOf = (box) => box.querySelector(":scope > .problem, :scope > fieldset > .problem");

/** Every control in `box` is described by its hint and its error message (and what it had already). */
function describe(box, ...ids) {
  for (const input of box.querySelectorAll("input, select, textarea")) {
    const all = [input.getAttribute("aria-describedby"), ...ids].filter(Boolean).join(" ");
    if (all) input.setAttribute("aria-describedby", all);
  }
}

/** The GOV.UK form group every field has: data-field for problem placement, its label or fieldset, its error line. */
function group(path, children, ids) {
  const box = el("div", { class: "govuk-form-group", dataset: { field: path } }, ...children);
  describe(box, ...ids);
  return box;
}

function renderField(f, path) {
  const text = f.question ?? f.title;
  const id = idFor(path);
  const h = hint("h-" + id, f.description);
  const problem = errorMessage("p-" + id);
  const ids = [h?.id, problem.id];
  switch (f.kind) {
    case "object":
      return renderObject(f, path);
    case "objects":
      return renderObjects(f, path);
    case "choice":
    case "boolean": {
      if (f.kind === "choice" && f.options.length > 4) {
        const select = el("select", { class: "govuk-select govuk-!-width-full", id, dataset: { path } }, el("option", { value: "", text: "Choose…" }));
        for (const o of f.options) select.append(el("option", { value: o.value, text: o.label }));
        return group(path, [label(id, text), h, problem, select], ids);
      }
      const items = f.options.map((o, i) => ({ id: `${id}-${i}`, value: o.value, text: o.label, attrs: { dataset: { path, kind: "radio" } } }));
      // The small variant: a side panel with many questions (the Design System's option for dense forms).
      const radios = choices("radio", path, items, { small: true });
      return group(path, [fieldset({ id }, text, "s", h, problem, radios)], ids);
    }
    case "multi": {
      const items = f.options.map((o, i) => ({ id: `${id}-${i}`, value: o.value, text: o.label, attrs: { dataset: { path, kind: "multi" } } }));
      return group(path, [fieldset({ id }, text, "s", h, problem, choices("checkbox", path, items, { small: true }))], ids);
    }
    case "list": {
      // A list of what was entered elsewhere in the form (the subjects at risk are some of the subjects): the
      // answers are offered to tick, not typed again (WCAG 2.2 SC 3.3.7 Redundant Entry).
      const sources = f.itemRef ? fieldsOfRef(tree, f.itemRef) : [];
      if (sources.length) {
        const offers = el("div", { class: "govuk-checkboxes govuk-checkboxes--small" });
        const empty = el("div", { class: "govuk-hint empty-offers", text: "Nothing to choose yet: enter the references above first." });
        const fs = fieldset({ class: "offers", id, dataset: { offers: sources.join(" ") } }, text, "s", h, problem, empty, offers);
        return group(path, [fs], ids);
      }
      const input = el("input", { class: "govuk-input", type: "text", id, dataset: { path }, autocomplete: "off" });
      const note = el("div", { class: "govuk-hint", id: "n-" + id, text: "Separate references with commas." });
      input.setAttribute("aria-describedby", note.id);
      return group(path, [label(id, text), h, note, problem, input], ids);
    }
    case "text": {
      const input = el("textarea", { class: "govuk-textarea", id, dataset: { path }, rows: 3 });
      return group(path, [label(id, text), h, problem, input], ids);
    }
    default: {
      const input = el("input", { class: "govuk-input", type: "text", id, dataset: { path }, autocomplete: "off", spellcheck: "false" });
      return group(path, [label(id, text), h, problem, input], ids);
    }
  }
}

function renderObject(f, path) {
  const isRule = /^rules\.\d/.test(path);
  const legend = [el("span", { text: f.title }), el("span", { class: "count", dataset: { countFor: path } })];
  // The rule's full text is in "The golden rules in full" above the form (one Tab stop, not seven): the
  // question says what to answer.
  const question = f.question ? el("p", { class: "govuk-body question", text: f.question }) : null;
  const fs = fieldset({ id: idFor(path), class: isRule ? "rule" : "group" }, legend, isRule ? "m" : "s", question, errorMessage("p-" + idFor(path)));
  for (const c of f.children ?? []) fs.append(renderField(c, `${path}.${c.key}`));
  const data = { field: path, rule: f.rule ?? "", ...(f.safetyNet ? { safetyNet: f.safetyNet } : {}) };
  return el("div", { class: `govuk-form-group${isRule ? " rule-section" : ""}`, dataset: data, hidden: !!f.safetyNet }, fs);
}

function renderObjects(f, path) {
  const rows = el("div", { class: "rows" });
  const counter = el("input", { type: "hidden", dataset: { path, kind: "count" }, value: "0" });
  const problem = errorMessage("p-" + idFor(path));
  const question = f.question ? el("p", { class: "govuk-body question", text: f.question }) : null;
  const fs = fieldset({ id: idFor(path) }, f.title, "s", counter, question, problem);
  const add = button({}, `Add another ${f.itemTitle.toLowerCase()}`, "secondary");
  fs.append(rows, el("div", { class: "row-actions" }, add));

  const renumber = () => {
    [...rows.children].forEach((row, i) => {
      row.querySelector("legend").textContent = `${f.itemTitle} ${i + 1}`;
      const from = row.dataset.prefix;
      const to = `${path}.${i}`;
      if (from !== to) {
        for (const node of [row, ...row.querySelectorAll("*")]) {
          for (const attr of ["data-path", "data-field", "name", "id", "for", "aria-describedby"]) {
            const v = node.getAttribute(attr);
            if (v) node.setAttribute(attr, v.split(from).join(to).split(idFor(from)).join(idFor(to)));
          }
        }
        row.dataset.prefix = to;
      }
      row.querySelector(".remove").hidden = rows.children.length <= (f.minItems || 0);
    });
    counter.value = String(rows.children.length);
  };
  const addRow = () => {
    const i = rows.children.length;
    const prefix = `${path}.${i}`;
    const row = fieldset({ class: "row", dataset: { prefix, field: prefix } }, `${f.itemTitle} ${i + 1}`, "s");
    for (const c of f.children ?? []) row.append(renderField(c, `${prefix}.${c.key}`));
    const remove = button({ class: "remove" }, `Remove ${f.itemTitle.toLowerCase()} ${i + 1}`, "secondary");
    remove.addEventListener("click", () => {
      row.remove();
      renumber();
      changed();
    });
    row.append(el("div", { class: "row-actions" }, remove));
    rows.append(row);
    renumber();
  };
  add.addEventListener("click", () => {
    addRow();
    changed();
    rows.lastElementChild.querySelector("input, select, textarea")?.focus();
  });
  for (let i = 0; i < Math.max(1, f.minItems || 0); i++) addRow();
  const box = el("div", { class: "govuk-form-group", dataset: { field: path } }, fs);
  describe(box, problem.id);
  return box;
}

/** Refresh each list of offers from the answers it is offered (keeping what was ticked). */
function refreshOffers() {
  for (const fs of $("fields").querySelectorAll("[data-offers]")) {
    const path = fs.closest("[data-field]").dataset.field;
    const patterns = fs.dataset.offers.split(" ").map((s) => new RegExp("^" + s.replace(/[.]/g, "\\.").replace(/#/g, "\\d+") + "$"));
    const values = [];
    for (const node of $("fields").querySelectorAll("[data-path]")) {
      const v = node.value?.trim();
      if (v && patterns.some((re) => re.test(node.dataset.path)) && !values.includes(v)) values.push(v);
    }
    const ticked = new Set([...fs.querySelectorAll("input:checked")].map((i) => i.value));
    const now = [...fs.querySelectorAll("input")].map((i) => i.value);
    if (JSON.stringify(now) === JSON.stringify(values)) continue;
    const offers = fs.querySelector(".govuk-checkboxes");
    const describedBy = [fs.querySelector(":scope > .govuk-hint:not(.empty-offers)")?.id, problemOf(fs.closest("[data-field]"))?.id].filter(Boolean).join(" ");
    offers.replaceChildren(
      ...values.map((v, i) =>
        choiceItem("checkbox", path, { id: `${idFor(path)}-${i}`, value: v, text: v, checked: ticked.has(v), attrs: { dataset: { path, kind: "multi" }, "aria-describedby": describedBy || undefined } }),
      ),
    );
    fs.querySelector(".empty-offers").hidden = values.length > 0;
  }
}

function readState() {
  const state = {};
  for (const node of $("fields").querySelectorAll("[data-path]")) {
    // A question that does not apply now is not part of the answer (what was typed stays, should it apply again).
    if (node.closest("[data-cond][hidden]")) continue;
    const p = node.dataset.path;
    const kind = node.dataset.kind;
    if (kind === "radio") {
      if (node.checked) state[p] = node.value;
    } else if (kind === "multi") {
      state[p] = state[p] ?? [];
      if (node.checked) state[p].push(node.value);
    } else if (kind === "count") {
      state[p] = Number(node.value);
    } else {
      state[p] = node.value;
    }
  }
  return state;
}

function justification() {
  return toJustification(tree, readState(), { policyId });
}

// -- A half-filled justification survives closing the panel or reloading the tab --------------------------
// Kept by the service worker in storage.session (memory only; never the webmail page, never disk), per email.

/** Every answer on screen, also those of questions that do not apply now. */
function rawState() {
  const state = {};
  for (const node of $("fields").querySelectorAll("[data-path]")) {
    const p = node.dataset.path;
    if (node.dataset.kind === "radio") {
      if (node.checked) state[p] = node.value;
    } else if (node.dataset.kind === "multi") {
      state[p] = state[p] ?? [];
      if (node.checked) state[p].push(node.value);
    } else state[p] = node.dataset.kind === "count" ? Number(node.value) : node.value;
  }
  return state;
}

let saveTimer = null;
function saveLater() {
  clearTimeout(saveTimer);
  saveTimer = setTimeout(() => {
    if (!finished) ask("form-save", { state: rawState(), confirm: confirmations(), ...(startedFrom ? { started_from: startedFrom } : {}) }).catch(() => {});
  }, 300);
}

/** Put saved (or carried-over) answers into the form: rows first, then values in the form's order. */
function restoreState(state) {
  for (const counter of $("fields").querySelectorAll('[data-kind="count"]')) {
    const want = Number(state[counter.dataset.path] ?? 0);
    const add = counter.parentElement.querySelector(":scope > .row-actions > button");
    for (let guard = 0; Number(counter.value) < want && add && guard < 50; guard++) add.click();
  }
  for (let pass = 0; pass < 2; pass++) {
    for (const node of $("fields").querySelectorAll("[data-path]")) {
      const p = node.dataset.path;
      const kind = node.dataset.kind;
      if (!(p in state) || kind === "count") continue;
      if (kind === "radio") node.checked = String(state[p]) === node.value;
      else if (kind === "multi") node.checked = [].concat(state[p]).map(String).includes(node.value);
      else node.value = String(state[p] ?? "");
    }
    refreshOffers(); // the subjects at risk can be ticked once the subjects are in
  }
  applyConditions();
}

// -- "Use the justification from my last share about this case": a starting point, confirmed rule by rule ----

let lastOffered = "";

async function offerLast() {
  const refs = [...$("fields").querySelectorAll("[data-path]")]
    .filter((n) => /^subjects\.\d+\.ref$/.test(n.dataset.path) && n.value.trim())
    .map((n) => n.value.trim());
  if (!refs.length || $("fields").querySelector("[data-confirm-rule]")) return;
  const last = await ask("last-for", { refs }).catch(() => null);
  $("last-offer")?.remove();
  if (!last || lastOffered === last.at + last.ref) return;
  const when = new Date(last.at).toLocaleString("en-GB", { dateStyle: "long", timeStyle: "short" });
  const what = last.justification.decision === "share" ? "shared information" : "recorded a decision not to share";
  const start = button({}, `Start from my last justification about ${last.ref}`, "secondary");
  const box = el(
    "div",
    { id: "last-offer", class: "govuk-inset-text", role: "region", "aria-labelledby": "last-offer-h" },
    el("h2", { id: "last-offer-h", class: "govuk-heading-s", text: `You ${what} about ${last.ref} on ${when}` }),
    el("p", { class: "govuk-body", text: "You can start from the justification you gave then. Check each rule's answers: they must be true for this share too, and you confirm each rule before sharing." }),
    start,
  );
  start.addEventListener("click", () => startFromLast(last));
  $("fields").querySelector('[data-field="subjects"]')?.after(box);
}

function startFromLast(last) {
  lastOffered = last.at + last.ref;
  const decisionNow = readState().decision;
  restoreState(toState(tree, last.justification));
  if (decisionNow) for (const n of $("fields").querySelectorAll('[data-path="decision"]')) n.checked = n.value === decisionNow;
  askToConfirm(() => true);
  $("last-offer")?.remove();
  $("status").textContent = `The answers from your last justification about ${last.ref} are in the form. Check each rule and confirm it.`;
  $("fields").querySelector("[data-rule] input:not([type=hidden])")?.focus();
  changed();
  saveLater();
}

/**
 * Standard answers the partnership agreed for this kind of share (an agreement version's `standard_answers`):
 * put into the form over what is there, the agreement ticked, and each golden rule they answer to be confirmed
 * by the practitioner before sharing, as answers carried over from a last justification are. Questions the set
 * leaves out (the case's own: who, what was seen, advice) stay as the practitioner left them.
 */
function startFromStandard(agreement, set) {
  startedFrom = { agreement: agreement.id, version: agreement.version, set: set.title };
  restoreState(toState(tree, set.answers));
  const given = new Set(Object.keys(set.answers.rules ?? {}).map((k) => `rules.${k}`));
  askToConfirm((box) => given.has(box.dataset.field));
  $("fields").querySelector(`input[data-agreement="${CSS.escape(agreement.id)}"]:not(:checked)`)?.click();
  $("status").textContent = `The answers agreed in ${agreement.title} for “${set.title}” are in the form. Answer the rest, then check and confirm each rule they filled in.`;
  // The focus goes to the first question still to answer (the set answers only some), else to the first rule
  // to confirm: the practitioner carries on from there by keyboard.
  const shown = (n) => n.getClientRects().length > 0;
  const unanswered = (n) => (n.type === "radio" ? !$("fields").querySelector(`input[name="${CSS.escape(n.name)}"]:checked`) : n.type !== "checkbox" && !n.value);
  const next = [...$("fields").querySelectorAll("[data-path]:is(input, select, textarea)")].find((n) => n.type !== "hidden" && shown(n) && unanswered(n));
  (next ?? [...$("fields").querySelectorAll("[data-confirm-rule]")].find(shown))?.focus();
  changed();
  saveLater();
}

/** The agreement's standard answers this justification started from (sent with it, recorded by the gateway). */
let startedFrom = null;

/** `started_from` for the share or decision: only while the justification still names that agreement. */
function startedFromPart() {
  if (!startedFrom || !(justification().agreements ?? []).includes(startedFrom.agreement)) return {};
  const confirmed = Object.entries(confirmations()).filter(([, checked]) => checked).map(([n]) => Number(n));
  return { started_from: { ...startedFrom, confirmed_rules: confirmed } };
}

/** A confirmation box in each golden rule's own section that `wanted` picks (not per group inside one). */
function askToConfirm(wanted) {
  applyConditions();
  for (const box of $("fields").querySelectorAll("[data-rule]")) {
    const n = box.dataset.rule;
    if (!n || !/^rules\.[^.]+$/.test(box.dataset.field) || box.querySelector("[data-confirm-rule]") || !wanted(box)) continue;
    const id = `confirm-rule-${n}`;
    const item = choiceItem("checkbox", id, { id, value: "checked", text: `I have checked rule ${n}'s answers for this share`, attrs: { dataset: { confirmRule: n } } });
    item.querySelector("input").addEventListener("change", () => {
      updateButtons();
      describeStatus(lastProblems, problemsPerRule(lastProblems));
      saveLater();
    });
    box.querySelector("fieldset").append(el("div", { class: "govuk-checkboxes govuk-checkboxes--small confirm-rule" }, item));
  }
}

/** Each rule awaiting confirmation (its number) and whether it is confirmed, for the saved answers. */
function confirmations() {
  return Object.fromEntries([...$("fields").querySelectorAll("[data-confirm-rule]")].map((i) => [i.dataset.confirmRule, i.checked]));
}

/** Rules carried over from a last justification and not yet confirmed (only those on screen count). */
function unconfirmedRules() {
  return [...$("fields").querySelectorAll("[data-confirm-rule]")].filter((i) => !i.checked && !i.closest("[hidden]")).map((i) => i.dataset.confirmRule);
}

/** The policy's rules in full, one click away above the form (the GOV.UK details pattern). */
function renderRuleTexts(fieldsTree) {
  const rules = fieldsTree.find((f) => f.key === "rules")?.children ?? [];
  const list = el("dl", { class: "govuk-summary-list rule-texts" });
  for (const r of rules) {
    if (!r.description) continue;
    list.append(el("div", { class: "govuk-summary-list__row" }, el("dt", { class: "govuk-summary-list__key", text: r.title }), el("dd", { class: "govuk-summary-list__value", text: r.description })));
  }
  if (!list.children.length) return;
  const summary = el("summary", { class: "govuk-details__summary" }, el("span", { class: "govuk-details__summary-text", text: "The golden rules in full" }));
  $("fields").before(el("details", { id: "rule-texts", class: "govuk-details" }, summary, el("div", { class: "govuk-details__text" }, list)));
}

// -- Questions only when they apply (conditions.js: from the policy's if/then and x-show-when) ---------------

let conditions = new Map();

function markConditional() {
  conditions = conditionalFields(policyDoc);
  for (const box of $("fields").querySelectorAll("[data-field]")) {
    if (conditions.has(box.dataset.field) && !box.dataset.safetyNet) box.dataset.cond = "1";
  }
}

/** Show the questions that apply to the answers so far; repeated until stable (one answer can reveal another). */
function applyConditions() {
  for (let round = 0; round < 6; round++) {
    const doc = justification();
    let moved = false;
    for (const box of $("fields").querySelectorAll("[data-cond]")) {
      const hide = !applies(policyDoc, conditions.get(box.dataset.field), doc);
      if (box.hidden !== hide) {
        box.hidden = hide;
        moved = true;
      }
    }
    if (!moved) return;
  }
}

// -- Errors only after a field is left or Share is pressed, with the GOV.UK error summary ---------------------

/** Paths of the fields the practitioner has left (or answered, for choices); and whether Share was pressed. */
const touched = new Set();
let submitted = false;
let lastProblems = [];

const related = (a, b) => a === b || a.startsWith(b + ".") || b.startsWith(a + ".");

/**
 * The problems to show now: all of them once Share (or Record) was pressed; before that only those about a
 * field the practitioner has left, and the conditions a safety net states (guidance, shown as it applies).
 */
function visibleProblems(problems) {
  if (submitted) return problems;
  return problems.filter((p) => {
    const field = String(p.field ?? "");
    if ([...touched].some((t) => related(t, field))) return true;
    const box = $("fields").querySelector(`[data-field="${CSS.escape(field)}"]`);
    return !!box?.closest("[data-safety-net]");
  });
}

function showProblems() {
  const shown = visibleProblems(lastProblems);
  const perRule = renderProblems(shown);
  renderErrorSummary(submitted ? shown : []);
  return perRule;
}

/** The field's own words for the summary: its label or legend, without the problem count. */
function fieldName(box) {
  const own = box.querySelector("label, legend > span, legend");
  return (own?.textContent ?? "").replace(/\s*\(\d+ problems?\)$/, "").trim();
}

function renderErrorSummary(problems) {
  const box = $("error-summary");
  const list = $("error-summary-list");
  list.replaceChildren();
  const known = new Set([...$("fields").querySelectorAll("[data-field]")].map((n) => n.dataset.field));
  const { byField, general } = placeProblems(problems, (path) => known.has(path));
  for (const [path, ps] of byField) {
    const fbox = $("fields").querySelector(`[data-field="${CSS.escape(path)}"]`);
    const target = fbox.querySelector("input:not([type=hidden]), select, textarea, summary, button") ?? fbox;
    for (const p of ps) {
      const a = el("a", { href: `#${target.id || idFor(path)}`, text: `${fieldName(fbox)}: ${p.message}` });
      a.addEventListener("click", (ev) => {
        ev.preventDefault();
        fbox.scrollIntoView({ block: "start" });
        target.focus();
      });
      list.append(el("li", {}, a));
    }
  }
  for (const p of general) list.append(el("li", { text: p.message }));
  box.hidden = !list.children.length;
}

/** Share or Record pressed before the justification is complete: every problem, and the summary at the top. */
function revealAll() {
  submitted = true;
  showProblems();
  if (lastProblems.length) describeStatus(lastProblems, problemsPerRule(lastProblems));
  if (!$("error-summary").hidden) {
    $("error-summary").focus();
    $("error-summary").scrollIntoView({ block: "start" });
  }
}

function renderProblems(problems) {
  const fields = $("fields");
  for (const p of fields.querySelectorAll(".problem")) {
    p.hidden = true;
    p.textContent = "";
  }
  for (const n of fields.querySelectorAll("[aria-invalid]")) markInvalid(n, false);
  for (const n of fields.querySelectorAll(".govuk-form-group--error")) markGroup(n, false);
  for (const c of fields.querySelectorAll(".count")) c.textContent = "";
  const known = new Set([...fields.querySelectorAll("[data-field]")].map((n) => n.dataset.field));
  const { byField, general } = placeProblems(problems, (path) => known.has(path));
  const unplaced = [];
  for (const [path, list] of byField) {
    const box = fields.querySelector(`[data-field="${CSS.escape(path)}"]`);
    const line = problemOf(box);
    if (!line) {
      unplaced.push(...list);
      continue;
    }
    setError(line, list.map((p) => p.message).join("\n"));
    markGroup(box.closest(".govuk-form-group"), true);
    for (const input of box.querySelectorAll("input, select, textarea")) {
      // Only the field the problem names; a missing section's problem is shown under the section instead.
      if (input.dataset.path === path) markInvalid(input, true);
    }
  }
  general.push(...unplaced);
  const g = $("general-problems");
  setError(g, general.map((p) => p.message).join("\n"));
  const perRule = problemsPerRule(problems);
  for (const c of fields.querySelectorAll(".count")) {
    const box = c.closest("[data-rule]");
    const path = c.dataset.countFor;
    if (!/^rules\.\d/.test(path)) continue;
    const n = perRule.get(Number(box?.dataset.rule)) ?? 0;
    c.textContent = n ? `(${n} problem${n === 1 ? "" : "s"})` : "";
  }
  return perRule;
}

function decision() {
  return readState().decision;
}

function updateButtons() {
  globalThis.__pending = validating > 0;
  const d = decision();
  // While the live check runs, the buttons stay in the tab order (announced as unavailable): disabling them
  // then made a keyboard user's Tab skip Share and leave the panel for the webmail page. A press meanwhile
  // shows the problems as they stand (each handler checks `validating`).
  const pending = validating > 0;
  const busy = finished;
  const unkeyedOk = choiceComplete(unkeyed, unenrolledView.choice());
  const attachmentsOk = missingView.unresolved().length === 0;
  // An incomplete justification leaves Share pressable (announced as unavailable): pressing it shows every
  // problem and the summary at the top, as GOV.UK forms do. Anything else that stops a share disables it.
  // An emergency share (issue 14) goes on the policy's minimum answers; completing one records the rest.
  const confirmed = unconfirmedRules().length === 0;
  $("share").disabled = completing
    ? busy || !confirmed || !valid || d !== "share" || !guardAllows()
    : busy || !confirmed || d === "not_share" || !recipientsOk || !unkeyedOk || !attachmentsOk || elsewhere || !guardAllows();
  setIncomplete($("share"), pending || (!completing && (!(valid || emergency) || d !== "share")));
  $("not-share").disabled = busy || !confirmed || d === "share";
  setIncomplete($("not-share"), pending || !valid || d !== "not_share");
  $("record-elsewhere").hidden = !elsewhere;
  $("record-elsewhere").disabled = busy || !valid || d !== "share" || !elsewhere;
  setIncomplete($("record-elsewhere"), pending);
}

function setIncomplete(button, incomplete) {
  if (incomplete) button.setAttribute("aria-disabled", "true");
  else button.removeAttribute("aria-disabled");
}

function describeStatus(problems, perRule) {
  if (finished) return;
  describeProblems(problems, perRule);
  if (emergency) $("status").textContent = emergencyStatus(emergency);
  if (completing && !problems.length) $("status").textContent = `Ready to record the completed justification of share ${completing}.`;
  // The status line is announced: say that a safeguarding principle now applies, and where it is shown.
  if (netsShown) $("status").textContent += " A safeguarding principle applies: read it under Risk level.";
}

function describeProblems(problems, perRule) {
  const left = unconfirmedRules();
  if (!problems.length && left.length) {
    $("status").textContent = `Confirm that you have checked the answers carried over: rule${left.length === 1 ? "" : "s"} ${left.join(", ")} still to confirm.`;
    return;
  }
  if (!problems.length) {
    const d = decision();
    if (d === "share" && elsewhere) $("status").textContent = "Ready to record that you shared this another way.";
    else if (d === "share" && (!recipientsOk || !choiceComplete(unkeyed, unenrolledView.choice()))) $("status").textContent = "The justification is complete, but the recipients need attention (see Recipients).";
    else if (d === "share" && missingView.unresolved().length) $("status").textContent = "The justification is complete, but an attachment is not included yet (see What will be shared).";
    else $("status").textContent = d === "not_share" ? "Ready to record your decision not to share." : "Ready to share.";
    return;
  }
  const rules = [...perRule.entries()]
    .filter(([r]) => r !== null)
    .sort((a, b) => a[0] - b[0])
    .map(([r, n]) => `rule ${r}: ${n}`);
  $("status").textContent = submitted
    ? `${problems.length} problem${problems.length === 1 ? "" : "s"} to resolve before you can continue` + (rules.length ? ` (${rules.join(", ")}).` : ".")
    : `Not ready yet: ${problems.length} answer${problems.length === 1 ? "" : "s"} still needed` + (rules.length ? ` (${rules.join(", ")}).` : ".");
}

let timer = null;
let seq = 0;
/**
 * Whether a newer validation is waiting for its timer: an answer that comes back meanwhile is about older
 * answers, so it must neither be shown nor end the wait (the buttons would reflect answers already changed).
 */
let scheduled = false;
let lastAsked = null;
/**
 * Show only the questions that apply (issue 19): a field the policy refuses outright under the answers so far is
 * hidden and emptied, and shown again when an answer makes it matter. Repeats while emptying changes the answers.
 */
function showApplicable() {
  if (!policyDoc) return;
  for (let round = 0; round < 4; round++) {
    const hide = notApplicable(policyDoc, justification());
    let cleared = false;
    for (const box of $("fields").querySelectorAll("[data-field]")) {
      if (box.dataset.safetyNet) continue; // the safety net shows its own section
      const off = hide.has(box.dataset.field);
      if (off && !box.hidden) cleared = clearSection(box) || cleared;
      if (off !== (box.dataset.notApplicable === "true")) {
        box.hidden = off;
        box.dataset.notApplicable = String(off);
      }
    }
    if (!cleared) return;
  }
}

function changed() {
  showApplicable();
  // A text field's "change" on blur (e.g. when the practitioner clicks Share) changes nothing: keep the answer.
  const now = JSON.stringify([justification(), elsewhere ? disclosure() : null]);
  if (now === lastAsked) return;
  lastAsked = now;
  valid = false;
  validating++;
  updateButtons();
  clearTimeout(timer);
  scheduled = true;
  timer = setTimeout(async () => {
    scheduled = false;
    const mine = ++seq;
    try {
      const answer = await ask("validate", { justification: justification(), ...(elsewhere ? { disclosure: disclosure() } : {}) });
      if (mine !== seq || scheduled) return;
      valid = !!answer.valid;
      emergency = completing ? null : emergencyOf(answer);
      renderEmergency($("fields"), emergency, el);
      const all = answer.problems ?? [];
      renderSafetyNets(answer.safety_nets ?? []);
      renderDisclosureProblems(all.filter(isDisclosureProblem));
      lastProblems = all.filter((p) => !isDisclosureProblem(p));
      showProblems();
      describeStatus(all, problemsPerRule(lastProblems));
      if ($("alert").dataset.kind === "validate") showAlert("");
    } catch (e) {
      if (mine !== seq || scheduled) return;
      valid = false;
      lastAsked = null;
      showAlert(e.message, "validate");
    } finally {
      validating = Math.max(0, validating - 1);
      // The latest answers are answered: nothing else is awaited (changes whose timers were replaced never ran).
      if (mine === seq && !scheduled) validating = 0;
      updateButtons();
    }
  }, 250);
}

function renderDraft(draft) {
  renderSnapshot(draft, $);
  renderChanged(draft.changed ?? [], $);
  missingView = renderMissing({
    box: $("missing"),
    missing: draft.missing ?? [],
    ask,
    webmail: draft.webmail,
    onDraft: (d) => {
      renderDraft(d);
      updateButtons();
      if (valid) describeStatus([], new Map());
      $("status").textContent = `${$("status").textContent} The attachment was added.`.trim();
    },
    onChange: () => {
      updateButtons();
      if (valid) describeStatus([], new Map());
    },
  });
}

function renderRecipients(matched, unknown, addresses) {
  const list = $("recipient-list");
  list.replaceChildren();
  for (const m of matched) {
    list.append(el("li", { text: `${m.address} — ${m.recipient.name}, ${m.recipient.org} (in the SafeShare directory)` }));
  }
  for (const u of unknown) {
    list.append(
      el("li", {
        class: "unknown",
        text: `${u} — no SafeShare key yet (not in the SafeShare directory, or in it without a key). Choose below how they may open the share, or remove this address from the email.`,
      }),
    );
  }
  if (!addresses.length) list.append(el("li", { class: "unknown", text: "The email has no recipients yet. Add them to the To or Cc line first." }));
  renderRecipientSummary(matched, $);
  if (unknown.length) {
    // Where they cannot be missed, beside Share too: the addresses without a key get the content as well.
    const also = ` ${matched.length ? "And" : "Share with"} ${unknown.length} address${unknown.length === 1 ? "" : "es"} without a SafeShare key: ${unknown.join(", ")}.`;
    $("recipient-summary").textContent += also;
    $("share-to").textContent = (matched.length ? $("share-to").textContent : "") + also;
  }
  recipientIds = matched.map((m) => m.recipient.id);
  offerRecipientOrganisations($("form"), tree, matched);
  unkeyed = unknown;
  recipientsOk = matched.length + unknown.length > 0;
  unenrolledView = renderUnenrolled(list, unknown, () => {
    updateButtons();
    if (valid) describeStatus([], new Map());
  });
  $("recipients").hidden = false;
}

function renderExpiry(defaultDays) {
  const select = $("expiry");
  const days = [...new Set([1, 7, 30, 90, Number(defaultDays) || 30])].sort((a, b) => a - b);
  for (const d of days) select.append(el("option", { value: String(d * 86400), text: d === 1 ? "1 day" : `${d} days`, selected: d === Number(defaultDays) }));
}

function showResult(title, facts, note) {
  $("result-h").textContent = title;
  const dl = $("result-facts");
  dl.replaceChildren();
  for (const [k, v] of facts) {
    dl.append(el("div", { class: "govuk-summary-list__row" }, el("dt", { class: "govuk-summary-list__key", text: k }), el("dd", { class: "govuk-summary-list__value", text: String(v) })));
  }
  $("result-note").textContent = note;
  $("result").hidden = false;
  $("form").hidden = true;
  $("result").focus();
}

/** The share's result: after Share, and again when the panel is opened on the draft it left behind. */
function showShared({ result, replaced, replaceError, subject }) {
  finished = true;
  showResult(
    "Shared securely",
    [
      ["Share reference", result.share_id],
      ["Ledger entry", result.ledger_index],
      ["Available until", new Date(result.expires_at).toUTCString()],
      ...resultRows(result).map((r) => [r.who, r.link ? `${r.how} Link: ${r.link}` : r.how]),
      ...(result.agreements?.length ? [["Made under", result.agreements.map((a) => `${a.title} (version ${a.version})`).join(", ")]] : []),
      ...emergencyFacts(result),
    ],
    replaced
      ? `Your email now contains only a notification with the reference, under the subject “${subject}”: the content, the attachments and the old subject were removed from the draft. Only the recipients' addresses and names remain as you wrote them. You can send it.`
      : `The content was shared, but SafeShare could not change your draft (${replaceError}). Remove the content, the attachments and anything about the case in the subject from the email yourself before sending it.`,
  );
  for (const id of ["share", "not-share", "record-elsewhere", "share-to", "confirm"]) $(id).hidden = true;
  $("actions").hidden = false;
}

async function onShare() {
  if (completing) return onComplete();
  finished = true;
  updateButtons();
  $("status").textContent = "Sharing…";
  showAlert("");
  try {
    const shareRequest = () => ({
      ...shareFields(
        recipientIds.map((id) => ({ recipient: { id } })),
        unkeyed,
        unenrolledView.choice(),
      ),
      justification: justification(),
      expires_in: Number($("expiry").value),
      agreement_override: agreementUi?.overrideReason(),
      leave_out: missingView.leaveOut(),
      advice: adviceUi?.cited() ?? [],
      ...startedFromPart(),
    });
    const shared = await ask("share", shareRequest());
    const { result } = shared;
    showShared(shared);
    $("status").textContent = "Shared.";
    if (result.emergency) offerCompletion(result);
  } catch (e) {
    finished = false;
    showAlert(e.message);
    $("status").textContent = "Nothing was shared.";
    if (Array.isArray(e.problems)) renderProblems(e.problems);
    agreementUi?.refused(e);
    if (e.code === "passphrase_weak") unenrolledView.focusPassphrase();
    if (Array.isArray(e.problems)) revealAll();
    lastAsked = null;
    changed();
  }
}

async function onNotShare(ev) {
  if (ev?.currentTarget?.getAttribute("aria-disabled") === "true" || validating > 0) {
    if (ev?.isTrusted) revealAll();
    return;
  }
  finished = true;
  updateButtons();
  $("status").textContent = "Recording your decision…";
  showAlert("");
  try {
    const r = await ask("decide", { justification: justification(), ...startedFromPart() });
    showResult(
      "Decision not to share recorded",
      [
        ["Ledger entry", r.ledger_index],
        ["Recorded at", new Date(r.recorded_at).toUTCString()],
      ],
      "Nothing was shared and your email has not been changed." +
        (r.flags?.length ? " This decision is flagged for your designated safeguarding lead: a decision not to share despite risk." : ""),
    );
    $("status").textContent = "Recorded.";
  } catch (e) {
    finished = false;
    showAlert(e.message);
    $("status").textContent = "Nothing was recorded.";
    lastAsked = null;
    changed();
  }
}

// -- Safety net (issue 17): the policy's principle, shown the moment it applies, with the quick route -------

let netsShown = 0;

function renderSafetyNets(notices) {
  netsShown = notices.length;
  const active = new Set(notices.map((n) => n.id));
  let cleared = false;
  for (const box of $("fields").querySelectorAll("[data-safety-net]")) {
    const hide = !active.has(box.dataset.safetyNet);
    // Answers in a section that no longer applies are cleared: a share carries no sign-off for not sharing.
    if (hide && !box.hidden) cleared = clearSection(box) || cleared;
    box.hidden = hide;
  }
  if (cleared) setTimeout(changed, 0);
  let panel = $("safety-net");
  if (!notices.length) {
    panel?.remove();
    return;
  }
  const n = notices[0];
  const key = JSON.stringify(n);
  if (panel?.dataset.key === key) return;
  panel?.remove();
  const where = n.share_with.join(" and ");
  const instead = button({ id: "share-instead" }, n.instead.label);
  instead.addEventListener("click", () => shareInstead(n));
  panel = el(
    "div",
    { id: "safety-net", class: "warning", role: "region", "aria-labelledby": "safety-net-h", dataset: { key } },
    el("h2", { id: "safety-net-h", class: "govuk-heading-m", text: `Stop: share with ${where}` }),
    el("p", { class: "govuk-body principle", text: n.principle }),
    el(
      "p",
      {
        class: "govuk-body",
        text:
          "Consent refused, no agreement, third-party information or “no lawful basis” are never reasons enough on their own: " +
          "the law allows sharing to protect someone at risk. You can record a decision not to share only if the person is " +
          "already protected by another route, or a designated safeguarding lead or manager has seen it and signs it off (under Rule 7 below). " +
          "The decision will be flagged for your designated safeguarding lead.",
      },
    ),
    el("p", { class: "govuk-hint", text: n.source }),
    instead,
  );
  // Right after the risk level: the moment the principle applies is when "Do not share" meets significant harm.
  const risk = $("fields").querySelector('[data-field="rules.5_safety_wellbeing.risk_level"]');
  if (risk) risk.after(panel);
  else $("fields").prepend(panel);
}

/** Empty every answer in a section; true when there was anything to empty. */
function clearSection(box) {
  let any = false;
  for (const input of box.querySelectorAll("input, textarea, select")) {
    if (input.type === "radio" || input.type === "checkbox") {
      any = any || input.checked;
      input.checked = false;
    } else if (input.type !== "hidden") {
      any = any || input.value !== "";
      input.value = "";
    }
  }
  return any;
}

/** The quick route: switch the form to a share with what the policy pre-fills (a referral), keeping the rest. */
function shareInstead(notice) {
  for (const box of $("fields").querySelectorAll(`[data-safety-net="${CSS.escape(notice.id)}"]`)) {
    clearSection(box);
    box.hidden = true;
  }
  for (const [path, value] of Object.entries(notice.instead.set)) {
    for (const node of $("fields").querySelectorAll(`[data-path="${CSS.escape(path)}"]`)) {
      if (node.dataset.kind === "radio") node.checked = value !== null && node.value === String(value);
      else node.value = value === null ? "" : String(value);
    }
  }
  changed();
  $("status").textContent = `The form now records a share with ${notice.share_with.join(" and ")}. Check each answer, then share.`;
  $("fields").querySelector('[data-path="decision"]:checked')?.focus();
}

// -- Shared another way (issue 18): phone, meeting, letter… recorded with whom, what and when ---------------

let elsewhere = false;
let people = 0;

const isDisclosureProblem = (p) => String(p.field ?? "").split(".")[0] === "disclosure";

function disclosure() {
  const state = {};
  for (const node of $("elsewhere").querySelectorAll("[data-dpath]")) {
    if (node.type === "radio") {
      if (node.checked) state[node.dataset.dpath] = node.value;
    } else state[node.dataset.dpath] = node.value;
  }
  return toDisclosure(state, people);
}

/**
 * A form group of the disclosure's: data-dfield for problem placement; `parts` are its label, hint and control
 * (the error line goes before the control) or its fieldset (the error line goes after the legend).
 */
function dfield(path, ...parts) {
  const problem = errorMessage("p-" + idFor(path));
  const fs = parts.length === 1 && parts[0].tagName === "FIELDSET" ? parts[0] : null;
  if (fs) fs.querySelector(":scope > legend").after(problem);
  else parts.splice(parts.length - 1, 0, problem);
  const box = el("div", { class: "govuk-form-group", dataset: { dfield: path } }, ...parts);
  describe(box, problem.id);
  return box;
}

function renderElsewhere() {
  const toggle = button({ id: "elsewhere-toggle", "aria-expanded": "false", "aria-controls": "elsewhere" }, "I shared this another way (phone, meeting…)", "secondary");
  const fs = fieldset(
    { id: "elsewhere", hidden: true },
    "Shared another way",
    "m",
    el("div", { class: "govuk-hint", text: "Golden rule 7: record what you shared, with whom and for what purpose — also when you shared it by phone, at a meeting or by letter. Nothing is sent through SafeShare." }),
  );
  const items = CHANNELS.map((c, i) => ({ id: `f-disclosure-channel-${i}`, value: c.value, text: c.label, attrs: { dataset: { dpath: "disclosure.channel" } } }));
  fs.append(dfield("disclosure.channel", fieldset({ id: "f-disclosure-channel" }, "How did you share it?", "s", choices("radio", "disclosure.channel", items))));
  const rows = el("div", { class: "rows" });
  const withBox = fieldset({ id: "f-disclosure-with" }, "Who did you share it with?", "s", rows);
  const addPerson = () => {
    const i = people++;
    const row = fieldset({ class: "row" }, `Person ${i + 1}`, "s");
    for (const [k, text] of [["name", "Their name"], ["role", "Their role"], ["organisation", "Their organisation"]]) {
      const id = idFor(`disclosure.with.${i}.${k}`);
      row.append(el("div", { class: "govuk-form-group" }, label(id, text), el("input", { class: "govuk-input", type: "text", id, autocomplete: "off", dataset: { dpath: `disclosure.with.${i}.${k}` } })));
    }
    rows.append(dfield(`disclosure.with.${i}`, row));
  };
  const add = button({}, "Add another person", "secondary");
  add.addEventListener("click", () => {
    addPerson();
    rows.lastElementChild.querySelector("input")?.focus();
    changed();
  });
  withBox.append(el("div", { class: "row-actions" }, add));
  addPerson();
  fs.append(dfield("disclosure.with", withBox));
  fs.append(
    dfield(
      "disclosure.summary",
      label("f-disclosure-summary", "What did you share? A sentence or two."),
      el("textarea", { class: "govuk-textarea", id: "f-disclosure-summary", rows: 3, dataset: { dpath: "disclosure.summary" } }),
    ),
  );
  fs.append(
    dfield(
      "disclosure.at",
      label("f-disclosure-at", "When did you share it?"),
      el("input", { class: "govuk-input govuk-input--width-20", type: "datetime-local", id: "f-disclosure-at", value: toLocalInput(new Date()), dataset: { dpath: "disclosure.at" } }),
    ),
  );
  fs.append(errorMessage("p-disclosure"));
  toggle.addEventListener("click", () => {
    elsewhere = !elsewhere;
    fs.hidden = !elsewhere;
    toggle.setAttribute("aria-expanded", String(elsewhere));
    if (elsewhere) {
      // A disclosure is a decision to share.
      const share = $("fields").querySelector('[data-path="decision"][value="share"]');
      if (share) share.checked = true;
      fs.querySelector("input")?.focus();
    }
    changed();
  });
  fs.addEventListener("input", changed);
  fs.addEventListener("change", changed);
  $("fields").after(toggle, fs);
}

function renderDisclosureProblems(problems) {
  const fs = $("elsewhere");
  for (const p of fs.querySelectorAll(".problem")) {
    p.hidden = true;
    p.textContent = "";
  }
  for (const n of fs.querySelectorAll("[aria-invalid]")) markInvalid(n, false);
  for (const n of fs.querySelectorAll(".govuk-form-group--error")) markGroup(n, false);
  const lines = new Map();
  for (const p of problems) {
    let parts = String(p.field).split(".");
    let box = null;
    while (parts.length > 1 && !box) {
      box = fs.querySelector(`[data-dfield="${CSS.escape(parts.join("."))}"]`);
      parts = parts.slice(0, -1);
    }
    const line = (box && problemOf(box)) || $("p-disclosure");
    lines.set(line, [...(lines.get(line) ?? []), p.message]);
    markGroup(box, !!box);
    const input = box?.querySelector("input, textarea");
    if (input) markInvalid(input, true);
  }
  for (const [line, messages] of lines) setError(line, messages.join("\n"));
}

async function onRecordElsewhere() {
  if (validating > 0) return revealAll();
  finished = true;
  updateButtons();
  $("status").textContent = "Recording what you shared…";
  showAlert("");
  try {
    const r = await ask("decide", { justification: justification(), disclosure: disclosure(), ...startedFromPart() });
    showResult(
      "Recorded: shared another way",
      [
        ["Ledger entry", r.ledger_index],
        ["Recorded at", new Date(r.recorded_at).toUTCString()],
        ["Shared", r.disclosure?.description ?? ""],
      ],
      "Nothing was sent through SafeShare and your email has not been changed.",
    );
    $("status").textContent = "Recorded.";
  } catch (e) {
    finished = false;
    showAlert(e.message);
    $("status").textContent = "Nothing was recorded.";
    if (Array.isArray(e.problems)) renderDisclosureProblems(e.problems.filter(isDisclosureProblem));
    lastAsked = null;
    changed();
  }
}

// -- emergency shares (issue 14): completing an owed justification with this form --------------------------------

/** After an emergency share: a button back to the form (answers kept) to complete the justification now. */
function offerCompletion(result) {
  const complete = button({ id: "complete-now" }, "Complete the justification now");
  complete.addEventListener("click", (ev) => {
    if (ev.isTrusted) startCompletion({ share_id: result.share_id });
  });
  $("result-note").after(complete);
}

function startCompletion(owed) {
  completing = owed.share_id;
  emergency = null;
  finished = false;
  $("complete-now")?.remove();
  $("result").hidden = true;
  $("owed").hidden = true;
  $("form").hidden = false;
  $("share").textContent = "Record the completed justification";
  $("share").hidden = false; // hidden with the other actions when the share's result was shown
  $("not-share").hidden = true;
  $("share-to").hidden = true;
  showAlert("");
  $("status").textContent = `Completing the justification of share ${completing}: answer every question.`;
  lastAsked = null;
  changed();
  $("fields").querySelector("input, select, textarea")?.focus();
}

async function onComplete() {
  finished = true;
  updateButtons();
  $("status").textContent = "Recording the completed justification…";
  showAlert("");
  try {
    const r = await ask("complete-justification", { shareId: completing, justification: justification() });
    showResult(
      "Justification completed",
      [
        ["Share reference", r.share_id],
        ["Ledger entry", r.ledger_index],
        ["Completes ledger entry", r.share_index],
        ["Recorded at", new Date(r.completed_at).toUTCString()],
      ],
      "The share's full justification is recorded in the ledger, linked to the share; it no longer awaits completion.",
    );
    completing = null;
    $("status").textContent = "Recorded.";
  } catch (e) {
    finished = false;
    showAlert(e.message);
    $("status").textContent = "Nothing was recorded.";
    if (Array.isArray(e.problems)) renderProblems(e.problems);
    lastAsked = null;
    changed();
  }
}

async function showOwed() {
  const box = el("section", { id: "owed", class: "warning", "aria-labelledby": "owed-h", hidden: true });
  $("form").before(box);
  try {
    const { owed } = await ask("owed-justifications");
    renderOwed(box, owed, el, startCompletion);
  } catch {
    // Not signed in, or an older gateway: the panel works as before, without the reminder.
  }
}

async function close() {
  await ask("close").catch(() => window.close());
}

async function main() {
  $("close").addEventListener("click", close);
  // On keyup, not keydown: the panel is gone before the key is released otherwise, and the release would land
  // in the webmail page (whose own Escape shortcut might then act on the compose window).
  document.addEventListener("keyup", (ev) => {
    if (ev.key === "Escape") close();
  });
  $("share").addEventListener("click", onShareClick);
  $("not-share").addEventListener("click", onNotShare);
  $("record-elsewhere").addEventListener("click", onRecordElsewhere);
  try {
    startGuards();
    session = await claimSession(ask);
    const { draft, defaultExpiryDays, done } = await ask("draft");
    if (done) {
      showShared(done);
      $("status").textContent = "This email has already been shared.";
      return;
    }
    renderDraft(draft);
    watchDraft();
    const { policy } = await ask("policy");
    const info = policyInfo(policy);
    policyId = info.id;
    tree = fieldTree(policy);
    policyDoc = policy;
    ruleTexts(policy);
    $("policy-title").textContent = `${info.title} — ${info.source ?? info.id} (version ${info.version}). The questions below come from your organisation's SafeShare gateway.`;
    const fields = $("fields");
    for (const f of tree) fields.append(renderField(f, f.key));
    renderRuleTexts(tree);
    markConditional();
    refreshOffers();
    applyConditions();
    renderElsewhere();
    renderExpiry(defaultExpiryDays);
    $("form").hidden = false;
    $("actions").hidden = false;
    fields.addEventListener("input", () => {
      refreshOffers();
      applyConditions();
      changed();
      saveLater();
    });
    fields.addEventListener("change", (ev) => {
      // A choice made is a field answered; a text field counts once it is left (focusout below).
      if (ev.target.matches?.("input[type=radio], input[type=checkbox], select") && ev.target.dataset.path) touched.add(ev.target.dataset.path);
      refreshOffers();
      applyConditions();
      changed();
      saveLater();
      if (validating === 0) showProblems();
    });
    fields.addEventListener("focusout", (ev) => {
      const path = ev.target.dataset?.path;
      if (/\.ref$/.test(path ?? "")) offerLast();
      if (!path || touched.has(path)) return;
      touched.add(path);
      if (validating === 0) showProblems();
    });
    showApplicable();
    const addresses = [...draft.to, ...draft.cc];
    try {
      const { matched, unknown } = await ask("recipients", { addresses });
      renderRecipients(matched, unknown, addresses);
    } catch (e) {
      renderRecipients([], addresses, addresses);
      showAlert(e.message);
    }
    const saved = await ask("form-load").catch(() => null);
    if (saved?.state) {
      restoreState(saved.state);
      if (saved.started_from) startedFrom = { agreement: saved.started_from.agreement, version: saved.started_from.version, set: saved.started_from.set };
      const confirm = saved.confirm ?? {};
      if (Object.keys(confirm).length) {
        askToConfirm((box) => box.dataset.rule in confirm);
        for (const i of $("fields").querySelectorAll("[data-confirm-rule]")) i.checked = confirm[i.dataset.confirmRule] === true;
      }
      $("restored").hidden = false;
    }
    agreementUi = setupAgreements({ ask, fields, recipients: () => recipientIds, policyId: () => policyId, startFrom: startFromStandard });
    agreementUi.refresh();
    adviceUi = setupAdvice({ ask, el, draft: justification });
    fields.after(adviceUi.box);
    adviceUi.refresh().catch(() => {}); // not signed in, or an older gateway: the box stays empty
    await showOwed();
    changed();
  } catch (e) {
    showAlert(e.message);
  } finally {
    $("loading").hidden = true;
    // Keyboard users land at the top of the panel; Tab goes on through the form, Escape closes it.
    const heading = document.querySelector("h1");
    heading.tabIndex = -1;
    heading.focus();
    // Not "ready" before the panel knows whether it is visible (it takes no input until then).
    await Promise.race([visibility?.firstVerdict, new Promise((r) => setTimeout(r, 3000))]);
    $("main").setAttribute("aria-busy", "false");
  }
}

main();
// Keep the service worker (which holds this panel's email) running while the practitioner reads and writes.
setInterval(() => ask("keepalive").catch(() => {}), 20000);

// -- Isolation from the webmail page (issue 20): visibility, deliberate Share, focus, changes to the email ----------

function guardAllows() {
  // Completing an emergency share's justification sends nothing from the email (which the share itself has
  // already replaced with its notification), so only the panel's visibility matters then.
  return !!visibility?.settled() && (!draftChanged || !!completing);
}

function startGuards() {
  visibility = watchVisibility({
    target: document.body,
    guarded: [$("main"), $("actions")],
    notice: $("hidden-notice"),
    onChange: updateButtons,
  });
  watchFocus({
    warn: (message) => {
      $("focus-lost").textContent = message;
      $("focus-lost").hidden = false;
    },
  });
  // The phrase chosen on the options page: a page's look-alike cannot know it.
  ask("phrase")
    .then(({ phrase }) => {
      $("phrase").textContent = phrase ? `Your SafeShare phrase: ${phrase}` : "No SafeShare phrase is set: choose one on SafeShare's options page, so that you can tell this panel from a fake.";
      $("phrase").hidden = false;
    })
    .catch(() => {});
}

/** Share: a trusted click, after the panel has been visible for a moment; a confirmation where visibility cannot be checked. */
function onShareClick(ev) {
  if (!ev.isTrusted || !guardAllows()) return;
  if ($("share").getAttribute("aria-disabled") === "true" || validating > 0) return revealAll();
  if (hasVisibilityTracking()) return onShare();
  confirmStep({
    box: $("confirm"),
    text: $("confirm-text"),
    yes: $("confirm-yes"),
    no: $("confirm-no"),
    message: `${$("share-to").textContent} Is this right?`,
    onYes: onShare,
  });
}

/** Ask the worker now and then whether the compose window still matches what the panel shows. */
function watchDraft() {
  $("refresh").addEventListener("click", async (ev) => {
    if (!ev.isTrusted) return;
    try {
      const { draft } = await ask("refresh");
      draftChanged = false;
      renderDraft(draft);
      const addresses = [...draft.to, ...draft.cc];
      const { matched, unknown } = await ask("recipients", { addresses });
      renderRecipients(matched, unknown, addresses);
      updateButtons();
      $("status").textContent = "SafeShare read the email again: check what will be shared.";
    } catch (e) {
      showAlert(e.message);
    }
  });
  $("keep").addEventListener("click", async (ev) => {
    if (!ev.isTrusted) return;
    await ask("keep-snapshot").catch((e) => showAlert(e.message));
    draftChanged = false;
    $("changed").hidden = true;
    updateButtons();
  });
  setInterval(async () => {
    if (finished) return;
    const { changed, kept } = await ask("draft-state").catch(() => ({ changed: [], kept: true }));
    const now = changed.length > 0 && !kept;
    if (now !== draftChanged) {
      draftChanged = now;
      renderChanged(now ? changed : [], $);
      updateButtons();
    }
  }, 1000);
}
