/**
 * The share panel: an extension page (isolated from the webmail) that renders the golden-rules form from
 * the policy the gateway serves, shows the gateway's live problems next to each field, and shares or
 * records a decision not to share through the service worker.
 */
import { setupAgreements } from "./agreements.js";
import { fieldTree, placeProblems, policyInfo, problemsPerRule, ruleTexts, toJustification } from "./form-model.js";

const api = globalThis.browser ?? globalThis.chrome;
const $ = (id) => document.getElementById(id);
const session = new URLSearchParams(location.search).get("session") ?? "";

let tree = [];
let policyId;
let recipientsOk = false;
let recipientIds = [];
let valid = false;
let validating = 0;
let finished = false;
let agreementUi = null;

async function ask(type, payload = {}) {
  let answer;
  try {
    answer = await api.runtime.sendMessage({ type, session, ...payload });
  } catch (e) {
    throw Object.assign(new Error(`SafeShare stopped unexpectedly (${e.message ?? e}). Nothing was shared and your email has not been changed.`), { code: "internal" });
  }
  if (!answer) throw Object.assign(new Error("SafeShare did not answer. Nothing was shared and your email has not been changed."), { code: "internal" });
  if (!answer.ok) throw Object.assign(new Error(answer.error.message), answer.error);
  return answer.value;
}

function showAlert(message, kind = "action") {
  const el = $("alert");
  el.dataset.kind = kind;
  el.textContent = message;
  el.hidden = !message;
}

const idFor = (path) => "f-" + path.replace(/[^A-Za-z0-9_-]/g, "-");

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

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

function renderObject(f, path, rules) {
  const isRule = /^rules\.\d/.test(path);
  const legend = el("legend", {}, el("span", { text: f.title }), el("span", { class: "count", dataset: { countFor: path } }));
  const fs = el("fieldset", { id: idFor(path), class: isRule ? "rule" : "group" }, legend);
  if (f.question) fs.append(el("p", { class: "question", text: f.question }));
  if (isRule && f.description) fs.append(el("p", { class: "hint", text: f.description }));
  for (const c of f.children ?? []) fs.append(renderField(c, `${path}.${c.key}`));
  const box = el("div", { class: "field", dataset: { field: path, rule: f.rule ?? "" } }, fs);
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
  $("share").disabled = busy || !valid || d !== "share" || !recipientsOk;
  $("not-share").disabled = busy || !valid || d !== "not_share";
}

function describeStatus(problems, perRule) {
  if (finished) return;
  if (!problems.length) {
    const d = decision();
    if (d === "share" && !recipientsOk) $("status").textContent = "The justification is complete, but the recipients need attention (see Recipients).";
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
  const now = JSON.stringify(justification());
  if (now === lastAsked) return;
  lastAsked = now;
  valid = false;
  validating++;
  updateButtons();
  clearTimeout(timer);
  timer = setTimeout(async () => {
    const mine = ++seq;
    try {
      const answer = await ask("validate", { justification: justification() });
      if (mine !== seq) return;
      valid = !!answer.valid;
      const perRule = renderProblems(answer.problems ?? []);
      describeStatus(answer.problems ?? [], perRule);
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
  $("email-subject").textContent = draft.subject || "(no subject)";
  const list = $("email-attachments");
  list.replaceChildren();
  if (!draft.attachments.length) list.append(el("li", { text: "None" }));
  for (const a of draft.attachments) list.append(el("li", { text: `${a.name} (${a.type || "unknown type"}, ${a.size} bytes)` }));
  $("email").hidden = false;
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
        text: `${u} — not in the SafeShare directory. Remove this address from the email, or ask your SafeShare administrator to register this recipient before you share.`,
      }),
    );
  }
  if (!addresses.length) list.append(el("li", { class: "unknown", text: "The email has no recipients yet. Add them to the To or Cc line first." }));
  recipientIds = matched.map((m) => m.recipient.id);
  recipientsOk = matched.length > 0 && unknown.length === 0;
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
      recipients: recipientIds,
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
        ["Recipients", result.recipients.map((r) => `${r.name} (${r.org})`).join(", ")],
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
      "Nothing was shared and your email has not been changed.",
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
  $("share").addEventListener("click", onShare);
  $("not-share").addEventListener("click", onNotShare);
  try {
    const { draft, defaultExpiryDays } = await ask("draft");
    renderDraft(draft);
    const { policy } = await ask("policy");
    const info = policyInfo(policy);
    policyId = info.id;
    tree = fieldTree(policy);
    ruleTexts(policy);
    $("policy-title").textContent = `${info.title} — ${info.source ?? info.id} (version ${info.version}). The questions below come from your organisation's SafeShare gateway.`;
    const fields = $("fields");
    for (const f of tree) fields.append(renderField(f, f.key));
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
    $("main").setAttribute("aria-busy", "false");
    // Keyboard users land at the top of the panel; Tab goes on through the form, Escape closes it.
    const heading = document.querySelector("h1");
    heading.tabIndex = -1;
    heading.focus();
  }
}

main();
// Keep the service worker (which holds this panel's email) running while the practitioner reads and writes.
setInterval(() => ask("keepalive").catch(() => {}), 20000);
