/**
 * The share panel: an extension page (isolated from the webmail) that renders the golden-rules form from
 * the policy the gateway serves, shows the gateway's live problems next to each field, and shares or
 * records a decision not to share through the service worker.
 */
import { $, asker, el, showAlert } from "../lib/page.js";
import { setupAgreements } from "./agreements.js";
import { CHANNELS, fieldTree, placeProblems, policyInfo, problemsPerRule, ruleTexts, toDisclosure, toJustification, toLocalInput } from "./form-model.js";
import { claimSession, confirmStep, hasVisibilityTracking, watchFocus, watchVisibility } from "./guard.js";
import { renderChanged, renderRecipientSummary, renderSnapshot } from "./snapshot-view.js";
import { choiceComplete, resultRows, shareFields } from "./unenrolled.js";
import { renderUnenrolled } from "./unenrolled-view.js";

/** Given by the worker for the ticket SafeShare's content script posts into this frame (guard.js). */
let session = "";
/** The panel's visibility watch (guard.js), and whether the email changed since its snapshot. */
let visibility = null;
let draftChanged = false;

let tree = [];
let policyId;
let recipientsOk = false;
let recipientIds = [];
/** Recipients without a SafeShare key (issue 10): their addresses and the practitioner's choice for them. */
let unkeyed = [];
let unenrolledView = renderUnenrolledNone();
function renderUnenrolledNone() {
  return { choice: () => null, focusPassphrase: () => {} };
}
let valid = false;
let validating = 0;
let finished = false;
let agreementUi = null;

/** The service worker, with this panel's session on every message (lib/page.js). */
const ask = asker({ advice: "Nothing was shared and your email has not been changed.", extra: () => ({ session }) });

const idFor = (path) => "f-" + path.replace(/[^A-Za-z0-9_-]/g, "-");

/** The wrapper every field has: data-field for problem placement, and a problem line for it. */
function wrap(path, node, describedBy) {
  const problem = el("p", { class: "problem", id: "p-" + idFor(path), hidden: true });
  const box = el("div", { class: "field", dataset: { field: path } }, node, problem);
  for (const input of box.querySelectorAll("input, select, textarea")) {
    const ids = [input.getAttribute("aria-describedby"), describedBy, problem.id].filter(Boolean).join(" ");
    input.setAttribute("aria-describedby", ids);
  }
  return box;
}

function hint(path, f) {
  return f.description ? el("p", { class: "hint", id: "h-" + idFor(path), text: f.description }) : null;
}

function renderField(f, path) {
  const label = f.question ?? f.title;
  const h = hint(path, f);
  const hid = h ? h.id : undefined;
  switch (f.kind) {
    case "object":
      return renderObject(f, path);
    case "objects":
      return renderObjects(f, path);
    case "choice":
    case "boolean": {
      if (f.kind === "choice" && f.options.length > 4) {
        const select = el("select", { id: idFor(path), dataset: { path } }, el("option", { value: "", text: "Choose…" }));
        for (const o of f.options) select.append(el("option", { value: o.value, text: o.label }));
        return wrap(path, el("div", {}, el("label", { for: idFor(path), text: label }), h, select), hid);
      }
      const fs = el("fieldset", { class: "choices", id: idFor(path) }, el("legend", { text: label }), h);
      f.options.forEach((o, i) => {
        const input = el("input", { type: "radio", name: path, value: o.value, id: `${idFor(path)}-${i}`, dataset: { path, kind: "radio" } });
        fs.append(el("label", {}, input, " " + o.label));
      });
      return wrap(path, fs, hid);
    }
    case "multi": {
      const fs = el("fieldset", { class: "choices", id: idFor(path) }, el("legend", { text: label }), h);
      f.options.forEach((o, i) => {
        const input = el("input", { type: "checkbox", name: path, value: o.value, id: `${idFor(path)}-${i}`, dataset: { path, kind: "multi" } });
        fs.append(el("label", {}, input, " " + o.label));
      });
      return wrap(path, fs, hid);
    }
    case "list": {
      const input = el("input", { type: "text", id: idFor(path), dataset: { path }, autocomplete: "off" });
      const note = el("p", { class: "hint", id: "n-" + idFor(path), text: "Separate references with commas." });
      input.setAttribute("aria-describedby", note.id);
      return wrap(path, el("div", {}, el("label", { for: idFor(path), text: label }), h, note, input), hid);
    }
    case "text": {
      const input = el("textarea", { id: idFor(path), dataset: { path }, rows: 3 });
      return wrap(path, el("div", {}, el("label", { for: idFor(path), text: label }), h, input), hid);
    }
    default: {
      const input = el("input", { type: "text", id: idFor(path), dataset: { path }, autocomplete: "off", spellcheck: "false" });
      return wrap(path, el("div", {}, el("label", { for: idFor(path), text: label }), h, input), hid);
    }
  }
}

function renderObject(f, path) {
  const isRule = /^rules\.\d/.test(path);
  const legend = el("legend", {}, el("span", { text: f.title }), el("span", { class: "count", dataset: { countFor: path } }));
  const fs = el("fieldset", { id: idFor(path), class: isRule ? "rule" : "group" }, legend);
  if (f.question) fs.append(el("p", { class: "question", text: f.question }));
  if (isRule && f.description) fs.append(el("p", { class: "hint", text: f.description }));
  for (const c of f.children ?? []) fs.append(renderField(c, `${path}.${c.key}`));
  const box = el("div", { class: "field", dataset: { field: path, rule: f.rule ?? "", ...(f.safetyNet ? { safetyNet: f.safetyNet } : {}) }, hidden: !!f.safetyNet }, fs);
  box.append(el("p", { class: "problem", id: "p-" + idFor(path), hidden: true }));
  return box;
}

function renderObjects(f, path) {
  const rows = el("div", { class: "rows" });
  const counter = el("input", { type: "hidden", dataset: { path, kind: "count" }, value: "0" });
  const fs = el("fieldset", { id: idFor(path) }, el("legend", { text: f.title }), counter);
  if (f.question) fs.append(el("p", { class: "question", text: f.question }));
  const add = el("button", { type: "button", class: "secondary", text: `Add another ${f.itemTitle.toLowerCase()}` });
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
    const row = el("fieldset", { class: "group", dataset: { prefix, field: prefix } }, el("legend", { text: `${f.itemTitle} ${i + 1}` }));
    for (const c of f.children ?? []) row.append(renderField(c, `${prefix}.${c.key}`));
    const remove = el("button", { type: "button", class: "secondary remove", text: `Remove ${f.itemTitle.toLowerCase()} ${i + 1}` });
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
  return wrap(path, fs);
}

function readState() {
  const state = {};
  for (const node of $("fields").querySelectorAll("[data-path]")) {
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

function renderProblems(problems) {
  const fields = $("fields");
  for (const p of fields.querySelectorAll(".problem")) {
    p.hidden = true;
    p.textContent = "";
  }
  for (const n of fields.querySelectorAll("[aria-invalid]")) n.removeAttribute("aria-invalid");
  for (const c of fields.querySelectorAll(".count")) c.textContent = "";
  const known = new Set([...fields.querySelectorAll("[data-field]")].map((n) => n.dataset.field));
  const { byField, general } = placeProblems(problems, (path) => known.has(path));
  for (const [path, list] of byField) {
    const box = fields.querySelector(`[data-field="${CSS.escape(path)}"]`);
    const line = box.querySelector(":scope > .problem");
    line.textContent = list.map((p) => p.message).join("\n");
    line.hidden = false;
    for (const input of box.querySelectorAll("input, select, textarea")) {
      // Only the field the problem names; a missing section's problem is shown under the section instead.
      if (input.dataset.path === path) input.setAttribute("aria-invalid", "true");
    }
  }
  const g = $("general-problems");
  g.textContent = general.map((p) => p.message).join("\n");
  g.hidden = !general.length;
  const perRule = problemsPerRule(problems);
  for (const c of fields.querySelectorAll(".count")) {
    const box = c.closest("[data-rule]");
    const path = c.dataset.countFor;
    if (!/^rules\.\d/.test(path)) continue;
    const n = perRule.get(Number(box?.dataset.rule)) ?? 0;
    c.textContent = n ? `(${n} problem${n === 1 ? "" : "s"})` : "(complete)";
  }
  return perRule;
}

function decision() {
  return readState().decision;
}

function updateButtons() {
  globalThis.__pending = validating > 0;
  const d = decision();
  const busy = validating > 0 || finished;
  const unkeyedOk = choiceComplete(unkeyed, unenrolledView.choice());
  $("share").disabled = busy || !valid || d !== "share" || !recipientsOk || !unkeyedOk || elsewhere || !guardAllows();
  $("not-share").disabled = busy || !valid || d !== "not_share";
  $("record-elsewhere").hidden = !elsewhere;
  $("record-elsewhere").disabled = busy || !valid || d !== "share" || !elsewhere;
}

function describeStatus(problems, perRule) {
  if (finished) return;
  describeProblems(problems, perRule);
  // The status line is announced: say that a safeguarding principle now applies, and where it is shown.
  if (netsShown) $("status").textContent += " A safeguarding principle applies: read it under Risk level.";
}

function describeProblems(problems, perRule) {
  if (!problems.length) {
    const d = decision();
    if (d === "share" && elsewhere) $("status").textContent = "Ready to record that you shared this another way.";
    else if (d === "share" && (!recipientsOk || !choiceComplete(unkeyed, unenrolledView.choice()))) $("status").textContent = "The justification is complete, but the recipients need attention (see Recipients).";
    else $("status").textContent = d === "not_share" ? "Ready to record your decision not to share." : "Ready to share.";
    return;
  }
  const rules = [...perRule.entries()]
    .filter(([r]) => r !== null)
    .sort((a, b) => a[0] - b[0])
    .map(([r, n]) => `rule ${r}: ${n}`);
  $("status").textContent =
    `${problems.length} problem${problems.length === 1 ? "" : "s"} to resolve before you can continue` + (rules.length ? ` (${rules.join(", ")}).` : ".");
}

let timer = null;
let seq = 0;
let lastAsked = null;
function changed() {
  // A text field's "change" on blur (e.g. when the practitioner clicks Share) changes nothing: keep the answer.
  const now = JSON.stringify([justification(), elsewhere ? disclosure() : null]);
  if (now === lastAsked) return;
  lastAsked = now;
  valid = false;
  validating++;
  updateButtons();
  clearTimeout(timer);
  timer = setTimeout(async () => {
    const mine = ++seq;
    try {
      const answer = await ask("validate", { justification: justification(), ...(elsewhere ? { disclosure: disclosure() } : {}) });
      if (mine !== seq) return;
      valid = !!answer.valid;
      const all = answer.problems ?? [];
      renderSafetyNets(answer.safety_nets ?? []);
      renderDisclosureProblems(all.filter(isDisclosureProblem));
      const perRule = renderProblems(all.filter((p) => !isDisclosureProblem(p)));
      describeStatus(all, perRule);
      if ($("alert").dataset.kind === "validate") showAlert("");
    } catch (e) {
      if (mine !== seq) return;
      valid = false;
      lastAsked = null;
      showAlert(e.message, "validate");
    } finally {
      validating = Math.max(0, validating - 1);
      if (mine === seq) validating = 0;
      updateButtons();
    }
  }, 250);
}

function renderDraft(draft) {
  renderSnapshot(draft, $);
  renderChanged(draft.changed ?? [], $);
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
  for (const [k, v] of facts) dl.append(el("dt", { text: k }), el("dd", { text: String(v) }));
  $("result-note").textContent = note;
  $("result").hidden = false;
  $("form").hidden = true;
  $("result").focus();
}

async function onShare() {
  finished = true;
  updateButtons();
  $("status").textContent = "Sharing…";
  showAlert("");
  try {
    const { result, replaced, replaceError } = await ask("share", {
      ...shareFields(
        recipientIds.map((id) => ({ recipient: { id } })),
        unkeyed,
        unenrolledView.choice(),
      ),
      justification: justification(),
      expires_in: Number($("expiry").value),
      agreement_override: agreementUi?.overrideReason(),
    });
    showResult(
      "Shared securely",
      [
        ["Share reference", result.share_id],
        ["Ledger entry", result.ledger_index],
        ["Available until", new Date(result.expires_at).toUTCString()],
        ...resultRows(result).map((r) => [r.who, r.link ? `${r.how} Link: ${r.link}` : r.how]),
        ...(result.agreements?.length ? [["Made under", result.agreements.map((a) => `${a.title} (version ${a.version})`).join(", ")]] : []),
      ],
      replaced
        ? "Your email now contains only a notification with the reference: the content and attachments were removed from the draft. You can send it."
        : `The content was shared, but SafeShare could not change your draft (${replaceError}). Remove the content and attachments from the email yourself before sending it.`,
    );
    $("status").textContent = "Shared.";
  } catch (e) {
    finished = false;
    showAlert(e.message);
    $("status").textContent = "Nothing was shared.";
    if (Array.isArray(e.problems)) renderProblems(e.problems);
    agreementUi?.refused(e);
    if (e.code === "passphrase_weak") unenrolledView.focusPassphrase();
    lastAsked = null;
    changed();
  }
}

async function onNotShare() {
  finished = true;
  updateButtons();
  $("status").textContent = "Recording your decision…";
  showAlert("");
  try {
    const r = await ask("decide", { justification: justification() });
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
  const button = el("button", { type: "button", id: "share-instead", text: n.instead.label });
  button.addEventListener("click", () => shareInstead(n));
  panel = el(
    "div",
    { id: "safety-net", class: "warning", role: "region", "aria-labelledby": "safety-net-h", dataset: { key } },
    el("h2", { id: "safety-net-h", text: `Stop: share with ${where}` }),
    el("p", { class: "principle", text: n.principle }),
    el(
      "p",
      {
        text:
          "Consent refused, no agreement, third-party information or “no lawful basis” are never reasons enough on their own: " +
          "the law allows sharing to protect someone at risk. You can record a decision not to share only if the person is " +
          "already protected by another route, or a designated safeguarding lead or manager has seen it and signs it off (under Rule 7 below). " +
          "The decision will be flagged for your designated safeguarding lead.",
      },
    ),
    el("p", { class: "hint", text: n.source }),
    button,
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

function dfield(path, node) {
  const problem = el("p", { class: "problem", id: "p-" + idFor(path), hidden: true });
  for (const input of [node, ...node.querySelectorAll("input, textarea")]) {
    if (!input.matches("input, textarea")) continue;
    const ids = [input.getAttribute("aria-describedby"), problem.id].filter(Boolean).join(" ");
    input.setAttribute("aria-describedby", ids);
  }
  return el("div", { class: "field", dataset: { dfield: path } }, node, problem);
}

function renderElsewhere() {
  const toggle = el("button", {
    type: "button",
    id: "elsewhere-toggle",
    class: "secondary",
    "aria-expanded": "false",
    "aria-controls": "elsewhere",
    text: "I shared this another way (phone, meeting…)",
  });
  const fs = el("fieldset", { id: "elsewhere", hidden: true }, el("legend", { text: "Shared another way" }));
  fs.append(
    el("p", { class: "hint", text: "Golden rule 7: record what you shared, with whom and for what purpose — also when you shared it by phone, at a meeting or by letter. Nothing is sent through SafeShare." }),
  );
  const channels = el("fieldset", { class: "choices", id: "f-disclosure-channel" }, el("legend", { text: "How did you share it?" }));
  CHANNELS.forEach((c, i) => {
    channels.append(el("label", {}, el("input", { type: "radio", name: "disclosure.channel", value: c.value, id: `f-disclosure-channel-${i}`, dataset: { dpath: "disclosure.channel" } }), " " + c.label));
  });
  fs.append(dfield("disclosure.channel", channels));
  const rows = el("div", { class: "rows" });
  const withBox = el("fieldset", { id: "f-disclosure-with" }, el("legend", { text: "Who did you share it with?" }), rows);
  const addPerson = () => {
    const i = people++;
    const row = el("fieldset", { class: "group" }, el("legend", { text: `Person ${i + 1}` }));
    for (const [k, label] of [["name", "Their name"], ["role", "Their role"], ["organisation", "Their organisation"]]) {
      const id = idFor(`disclosure.with.${i}.${k}`);
      row.append(el("div", { class: "field" }, el("label", { for: id, text: label }), el("input", { type: "text", id, autocomplete: "off", dataset: { dpath: `disclosure.with.${i}.${k}` } })));
    }
    rows.append(dfield(`disclosure.with.${i}`, row));
  };
  const add = el("button", { type: "button", class: "secondary", text: "Add another person" });
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
      el("div", {}, el("label", { for: "f-disclosure-summary", text: "What did you share? A sentence or two." }), el("textarea", { id: "f-disclosure-summary", rows: 3, dataset: { dpath: "disclosure.summary" } })),
    ),
  );
  fs.append(
    dfield(
      "disclosure.at",
      el("div", {}, el("label", { for: "f-disclosure-at", text: "When did you share it?" }), el("input", { type: "datetime-local", id: "f-disclosure-at", value: toLocalInput(new Date()), dataset: { dpath: "disclosure.at" } })),
    ),
  );
  fs.append(el("p", { class: "problem", id: "p-disclosure", hidden: true }));
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
  for (const n of fs.querySelectorAll("[aria-invalid]")) n.removeAttribute("aria-invalid");
  for (const p of problems) {
    let parts = String(p.field).split(".");
    let box = null;
    while (parts.length > 1 && !box) {
      box = fs.querySelector(`[data-dfield="${CSS.escape(parts.join("."))}"]`);
      parts = parts.slice(0, -1);
    }
    const line = box ? box.querySelector(":scope > .problem") : $("p-disclosure");
    line.textContent = line.textContent ? `${line.textContent}\n${p.message}` : p.message;
    line.hidden = false;
    box?.querySelector("input, textarea")?.setAttribute("aria-invalid", "true");
  }
}

async function onRecordElsewhere() {
  finished = true;
  updateButtons();
  $("status").textContent = "Recording what you shared…";
  showAlert("");
  try {
    const r = await ask("decide", { justification: justification(), disclosure: disclosure() });
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
    const { draft, defaultExpiryDays } = await ask("draft");
    renderDraft(draft);
    watchDraft();
    const { policy } = await ask("policy");
    const info = policyInfo(policy);
    policyId = info.id;
    tree = fieldTree(policy);
    ruleTexts(policy);
    $("policy-title").textContent = `${info.title} — ${info.source ?? info.id} (version ${info.version}). The questions below come from your organisation's SafeShare gateway.`;
    const fields = $("fields");
    for (const f of tree) fields.append(renderField(f, f.key));
    renderElsewhere();
    renderExpiry(defaultExpiryDays);
    $("form").hidden = false;
    $("actions").hidden = false;
    fields.addEventListener("input", changed);
    fields.addEventListener("change", changed);
    const addresses = [...draft.to, ...draft.cc];
    try {
      const { matched, unknown } = await ask("recipients", { addresses });
      renderRecipients(matched, unknown, addresses);
    } catch (e) {
      renderRecipients([], addresses, addresses);
      showAlert(e.message);
    }
    agreementUi = setupAgreements({ ask, fields, recipients: () => recipientIds });
    agreementUi.refresh();
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
  return !!visibility?.settled() && !draftChanged;
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
