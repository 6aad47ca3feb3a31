/**
 * The recipient's inbox and share view. Lists the shares sent to the signed-in recipient (through the service
 * worker, which holds the token), and opens one: the envelope is fetched by the service worker (checked
 * against the SHA-256 the gateway recorded), decrypted here with the keys unlocked on this page, and the
 * message shown in a sandboxed iframe (sanitised, no scripts, nothing remote) with its attachments to download
 * and the golden-rules justification beside it. A "Sent" tab shows a practitioner their shares and each
 * recipient's acknowledgement.
 */
import { downloadLink } from "../lib/download.js";
import { KeyringError, decrypt, unlock } from "../lib/keyring.js";
import { parseMessage, safeHtmlDocument, textDocument } from "../lib/mail-view.js";
import {
  base64ToBytes,
  formatTime,
  handlingNotes,
  inboxRow,
  justificationSections,
  notOpenableReason,
  policyLabels,
  sentRow,
  shareIdFromHash,
  shareState,
  stateLabel,
} from "../lib/recipient.js";
import { button, details, formChecks, summaryList, tabs, textareaField } from "../lib/govuk.js";
import { $, ask, busy, el, errors, loadKeyring, onKeyringChanged, say, showAlert } from "./common.js";

/**
 * Largest envelope opened here: it crosses from the service worker as base64 in one extension message, which
 * browsers cap (Chromium at 64 MiB of JSON).
 */
const MAX_IN_BROWSER = 40 * 1024 * 1024;
/** Unlocked keys: in this page's memory only, gone when it closes or "Lock" is chosen. */
let keys = null;
let labels = policyLabels(null);
const policies = new Map();
/** Opened shares, so going back and forth does not fetch (and count a download) again. */
const opened = new Map();
/** Blob URLs of the share on screen, released when another is shown. */
let blobUrls = [];
let waitingToOpen = null;
let currentShare = null;
let inboxCursor = null;
let sentCursor = null;
let inboxLoaded = false;

const unlockChecks = formChecks(errors, [{ input: $("unlock-pass"), check: () => ($("unlock-pass").value ? "" : "Enter your passphrase.") }]);
const ackChecks = formChecks(errors, [
  { input: $("ack-note"), check: () => ($("ack-note").value.trim() ? "" : "Write a short note for the sender about what you have done or will do.") },
]);

/** A required textarea made for one item of a list (an advice answer, a reason for revoking), with its checks. */
function requiredText(text, message) {
  return formChecks(errors, [{ input: text, check: () => (text.value.trim() ? "" : message) }]);
}

// -- keys -------------------------------------------------------------------------------------------------------

async function showKeyState() {
  const keyring = await loadKeyring();
  $("no-keys").hidden = !!keyring;
  $("unlock-form").hidden = !keyring || !!keys;
  $("unlocked").hidden = !keys;
  return keyring;
}

async function unlockKeys(ev) {
  ev.preventDefault();
  if (!unlockChecks.submit()) return;
  await busy($("unlock-go"), async () => {
    const keyring = await loadKeyring();
    if (!keyring) return showKeyState();
    say("Unlocking your keys…");
    try {
      keys = await unlock(keyring.armored, $("unlock-pass").value);
    } catch (e) {
      say("");
      if (!(e instanceof KeyringError && e.code === "wrong_passphrase")) throw e;
      unlockChecks.refuse($("unlock-pass"), "That passphrase does not unlock your keys. Check it and try again.");
      return;
    }
    $("unlock-pass").value = "";
    unlockChecks.done();
    await showKeyState();
    say(`Your keys are unlocked (${keys.length === 1 ? "1 key" : `${keys.length} keys`}).`);
    const pending = waitingToOpen;
    waitingToOpen = null;
    if (pending) await openShare(pending);
  });
}

function lockKeys() {
  keys = null;
  opened.clear();
  closeShare();
  showKeyState();
  say("Your keys are locked. Unlock them again to open a share.");
  $("unlock-pass").focus();
}

// -- the inbox --------------------------------------------------------------------------------------------------

async function loadLabels() {
  try {
    labels = policyLabels(await policy(null));
  } catch {
    // Codes are shown readably without the policy.
  }
}

async function policy(id) {
  const key = id ?? "";
  if (!policies.has(key)) policies.set(key, await ask("recipient-policy", { id }));
  return policies.get(key);
}

function inboxLine(share) {
  const r = inboxRow(share, { labels });
  const open = button({ "aria-label": `Open the share from ${r.from} about ${r.cases}, received ${r.received}` }, "Open", "secondary");
  open.addEventListener("click", () => navigate(r.id));
  const cell = (attrs, ...children) => el("td", { ...attrs, class: `govuk-table__cell ${attrs.class ?? ""}`.trim() }, ...children);
  const purpose = cell({}, el("span", { text: r.purpose }));
  if (r.purposeDescription) purpose.append(el("br"), el("span", { class: "govuk-hint", text: r.purposeDescription }));
  return el(
    "tr",
    { class: "govuk-table__row", dataset: { share: r.id, state: r.state } },
    cell({ text: r.from }),
    cell({ text: r.organisation }),
    purpose,
    cell({ text: r.categories }),
    cell({ text: r.received }),
    cell({ text: r.expires }),
    cell({ class: `state state-${r.state}`, text: r.via ? `${r.stateLabel} (to team ${r.via})` : r.stateLabel }),
    cell({ class: "case", text: r.cases }),
    cell({ class: "fileid", text: r.shareRef }),
    cell({}, open),
  );
}

async function loadInbox({ more = false } = {}) {
  if (!more) inboxCursor = null;
  let page;
  try {
    page = await ask("recipient-inbox", { cursor: more ? inboxCursor : null });
  } catch (e) {
    if (e.code !== "forbidden") throw e;
    // A practitioner's sign-in: nothing is sent to it, which is not an error.
    $("inbox-rows").replaceChildren();
    $("inbox-table").hidden = true;
    $("inbox-more").hidden = true;
    $("inbox-empty").textContent = "Shares sent to you are listed here when you are signed in with a recipient sign-in.";
    $("inbox-empty").hidden = false;
    return [];
  }
  inboxLoaded = true;
  $("inbox-empty").textContent = "Nothing has been shared with you yet.";
  const rows = $("inbox-rows");
  if (!more) rows.replaceChildren();
  for (const s of page.shares) rows.append(inboxLine(s));
  inboxCursor = page.next_cursor;
  $("inbox-more").hidden = !inboxCursor;
  const any = rows.children.length > 0;
  $("inbox-table").hidden = !any;
  $("inbox-empty").hidden = any;
  return page.shares;
}

// -- the sent tab -----------------------------------------------------------------------------------------------

function sentLine(share) {
  const r = sentRow(share, { labels });
  const people = el("ul", { class: "govuk-list acks" });
  for (const p of r.recipients) {
    people.append(
      el("li", { dataset: { recipient: p.id } }, `${p.name} (${p.org}): ${p.opened}; ${p.acknowledged}`, p.note ? el("q", { class: "note", text: p.note }) : null),
    );
  }
  return el(
    "li",
    { dataset: { share: r.id } },
    el("strong", { text: `${r.purpose} — ${r.subjects}` }),
    el("span", { class: "govuk-hint", text: ` ${r.id}, sent ${r.sent}, available until ${r.expires}: ${r.stateLabel}` }),
    people,
    r.state === "active" ? revokeForm(r.id) : null,
  );
}

/** Recall a share sent to the wrong person: a reason is required, recorded with the revocation. */
function revokeForm(id) {
  const [field, reason] = textareaField({ id: `revoke-reason-${id}`, label: "Reason for revoking (recorded)", rows: 2 });
  const checks = requiredText(reason, "Say why you are revoking this share: the reason is recorded with the revocation.");
  const revoke = button({}, "Revoke this share", "warning");
  revoke.addEventListener("click", () => {
    if (!checks.submit()) return;
    busy(revoke, async () => {
      await ask("recipient-revoke", { id, reason: reason.value.trim() });
      checks.done();
      say(`Share ${id} revoked: its envelopes are destroyed and no one can open it any more.`);
      await loadSent();
    });
  });
  return details({ class: "revoke" }, "Revoke (recall) this share", field, revoke);
}

async function loadSent({ more = false } = {}) {
  if (!more) sentCursor = null;
  const list = $("sent-list");
  try {
    const page = await ask("recipient-sent", { cursor: more ? sentCursor : null });
    if (!more) list.replaceChildren();
    for (const s of page.shares) list.append(sentLine(s));
    sentCursor = page.next_cursor;
    $("sent-more").hidden = !sentCursor;
    $("sent-note").textContent = list.children.length ? "" : "You have not shared anything yet.";
  } catch (e) {
    list.replaceChildren();
    $("sent-more").hidden = true;
    $("sent-note").textContent = e.code === "forbidden" ? "Shares you sent are shown here when you are signed in as a practitioner." : e.message;
  }
}

const ADVISER_ROLES = ["dsl", "manager", "dpo", "caldicott_guardian", "legal"];

/** Issue 14, seek advice first: an adviser's questions (to their roles, in their organisation), answered here. */
async function loadAdvice() {
  const list = $("advice-list");
  const { questions } = await ask("list-advice");
  list.replaceChildren();
  for (const q of questions) {
    const what = `${q.purpose?.code ?? ""}: ${q.purpose?.description ?? ""} (${(q.data_categories ?? []).join(", ") || "no categories given"})`;
    const item = el("li", { dataset: { advice: q.advice_id } }, el("strong", { text: what }), el("span", { class: "govuk-hint", text: ` asked ${formatTime(q.asked_at)} of the ${q.to}` }));
    if (q.answer) {
      item.append(el("p", { class: "govuk-body" }, "Your answer: ", el("q", { class: "note", text: q.answer.answer })));
    } else {
      const [field, text] = textareaField({ id: `advice-answer-${q.advice_id}`, label: "Your advice (recorded)", rows: 2 });
      const checks = requiredText(text, "Write your advice before sending it.");
      const send = button({}, "Send answer");
      send.addEventListener("click", () => {
        if (!checks.submit()) return;
        busy(send, async () => {
          await ask("answer-advice", { id: q.advice_id, answer: text.value.trim() });
          checks.done();
          say("Your advice was sent and recorded.");
          await loadAdvice();
        });
      });
      item.append(field, send);
    }
    list.append(item);
  }
  $("advice").hidden = false;
}

/** Issue 14: emergency shares whose full justification is still owed, overdue ones marked; a count on the Sent tab. */
function renderOwed(owed) {
  const list = $("owed-list");
  list.replaceChildren();
  for (const o of owed) {
    list.append(
      el(
        "li",
        { dataset: { share: o.share_id } },
        el("strong", { text: `${o.purpose?.code ?? ""} — ${(o.subjects ?? []).join(", ")}` }),
        el("span", { class: "govuk-hint", text: ` ${o.share_id}, shared ${formatTime(o.shared_at)}: ` }),
        o.overdue ? el("span", { class: "overdue", text: `overdue since ${formatTime(o.complete_by)}` }) : el("span", { text: `due by ${formatTime(o.complete_by)}` }),
      ),
    );
  }
  $("owed").hidden = !owed.length;
  $("owed-badge").hidden = !owed.length;
  $("owed-badge").textContent = owed.length ? `${owed.length} to complete` : "";
}

/** Decisions recorded without a payload (newest first): "Shared by phone to …", or "Decided not to share". */
async function loadElsewhere() {
  const list = $("elsewhere-list");
  try {
    const page = await ask("recipient-decisions", { cursor: null });
    renderOwed(page.awaiting_justification ?? []);
    list.replaceChildren();
    for (const d of page.decisions) {
      const what = d.disclosure ? `Shared ${d.disclosure.description}` : "Decided not to share";
      const flagged = d.flags?.length ? " (flagged for your designated safeguarding lead)" : "";
      list.append(
        el(
          "li",
          { dataset: { entry: String(d.index) } },
          el("strong", { text: `${d.purpose?.code ?? ""} — ${(d.subjects ?? []).join(", ")}` }),
          el("span", { class: "govuk-hint", text: ` ledger entry ${d.index}, recorded ${new Date(d.time).toUTCString()}: ${what}${flagged}` }),
        ),
      );
    }
    $("elsewhere-note").textContent = list.children.length ? "" : "Nothing recorded this way yet.";
  } catch (e) {
    list.replaceChildren();
    $("elsewhere-note").textContent = e.code === "forbidden" ? "" : e.message;
  }
}

/** Received / Sent: govuk-frontend's Tabs (lib/govuk.js); each tab's list is loaded when it is chosen. */
const shareTabs = tabs($("tabs"), {
  onSelect(panel) {
    if (panel === "sent") {
      busy(null, () => loadSent());
      loadElsewhere();
    } else if (!inboxLoaded) {
      busy(null, () => loadInbox());
    }
  },
});

// -- one share --------------------------------------------------------------------------------------------------

function releaseBlobs() {
  for (const u of blobUrls) URL.revokeObjectURL(u);
  blobUrls = [];
}

function closeShare() {
  releaseBlobs();
  currentShare = null;
  $("share").hidden = true;
  $("tabs").hidden = false;
}

function navigate(id) {
  if (location.hash === `#share=${id}`) openShare(id);
  else location.hash = `share=${id}`;
}

function problem(message) {
  const p = $("share-problem");
  p.textContent = message;
  p.hidden = !message;
}

/** Plain words for a failure to open, whatever part failed. */
function openProblem(e) {
  if (e instanceof KeyringError && e.code === "no_matching_key") {
    return "This share was encrypted to a key this browser does not hold. If you set up receiving in another browser, or made a new key since it was sent, restore the backup that holds the older key (Keys page) and try again.";
  }
  if (e instanceof KeyringError && e.code === "corrupt_envelope") {
    return "This share's encrypted file is damaged, so it cannot be opened. Ask the sender to share it again.";
  }
  return e?.message ?? String(e);
}

function renderJustification(info, pol) {
  const handling = $("handling");
  handling.replaceChildren();
  const notes = handlingNotes(info.justification, pol, info.handling);
  if (notes.length) {
    handling.append(el("h4", { class: "govuk-heading-s", text: "Handling" }), el("ul", { class: "govuk-list govuk-list--bullet" }, ...notes.map((n) => el("li", { text: n }))));
  }
  const box = $("justification");
  box.replaceChildren();
  const sections = justificationSections(info.justification, pol);
  if (!sections.length) {
    box.append(el("p", { class: "govuk-body", text: "The sender's justification could not be loaded." }));
    return;
  }
  for (const s of sections) {
    box.append(el("h4", { class: "govuk-heading-s", text: s.title }), summaryList(s.rows.map((r) => [r.label, r.value])));
  }
}

function renderAck(info) {
  const done = $("ack-done");
  const state = shareState(info);
  if (info.acknowledged_at) {
    done.textContent = `You marked this received and actioned on ${formatTime(info.acknowledged_at)}${info.acknowledgement ? `: “${info.acknowledgement}”` : "."} The sender can see this.`;
    done.hidden = false;
    $("ack-go").textContent = "Update the note";
  } else {
    done.hidden = true;
    $("ack-go").textContent = "Mark received and actioned";
  }
  $("ack").hidden = state === "revoked";
}

function attachmentLink(name, type, bytes) {
  // A download only, never rendered in the extension's origin (lib/download.js): the sender's type is shown, not used.
  const { link, url } = downloadLink(document, name, bytes);
  blobUrls.push(url);
  link.classList.add("govuk-link");
  return el(
    "li",
    {},
    link,
    el("span", { class: "govuk-hint", text: ` ${type || "file"}, ${bytes.length.toLocaleString("en-GB")} bytes` }),
  );
}

/** The decrypted payload on screen: an e-mail (body + attachments), plain text, or a file to download. */
async function renderPayload(info, payload) {
  const frame = $("message-body");
  const list = $("attachments");
  list.replaceChildren();
  $("message-facts").replaceChildren();
  const type = (info.payload_content_type ?? "").toLowerCase();
  // Which share the frame has finished showing (for assistive tools' and tests' sake: srcdoc loads later).
  delete frame.dataset.loaded;
  frame.onload = () => {
    frame.dataset.loaded = info.id;
  };
  if (type.startsWith("message/rfc822")) {
    const m = await parseMessage(payload);
    $("message-facts").append(
      summaryList([
        ["Subject", m.subject || "(no subject)"],
        ["From", m.from],
        ["To", m.to.join(", ")],
        ["Cc", m.cc.join(", ")],
        ["Date", m.date ? (Number.isNaN(Date.parse(m.date)) ? m.date : formatTime(m.date)) : ""],
      ]),
    );
    frame.srcdoc = m.html ? safeHtmlDocument(m.html) : textDocument(m.text ?? "");
    frame.hidden = false;
    for (const a of m.attachments) list.append(attachmentLink(a.filename, a.mimeType, a.content));
  } else if (type.startsWith("text/plain")) {
    frame.srcdoc = textDocument(new TextDecoder().decode(payload));
    frame.hidden = false;
    list.append(attachmentLink(`${info.id}.txt`, "text/plain", payload));
  } else {
    frame.hidden = true;
    frame.removeAttribute("srcdoc");
    list.append(attachmentLink(`${info.id}.bin`, info.payload_content_type, payload));
  }
  $("attachments-h").hidden = list.children.length === 0;
  $("message").hidden = false;
}

async function openShare(id) {
  showAlert("");
  ackChecks.done();
  problem("");
  releaseBlobs();
  currentShare = id;
  $("tabs").hidden = true;
  $("share").hidden = false;
  $("message").hidden = true;
  delete $("message-body").dataset.loaded;
  $("share-h").textContent = `Share ${id}`;
  $("share-facts").replaceChildren();
  $("handling").replaceChildren();
  $("justification").replaceChildren();
  $("ack").hidden = true;
  $("share").focus();
  say("Loading the share…");
  let info;
  try {
    info = await ask("recipient-share", { id });
  } catch (e) {
    say("");
    problem(e.message);
    return;
  }
  if (currentShare !== id) return;
  const row = inboxRow(info, { labels });
  $("share-facts").append(
    summaryList([
      ["From", `${row.from} (${row.organisation})`],
      ["Purpose", row.purpose],
      ["Data categories", row.categories],
      ["Received", row.received],
      ["Available until", row.expires],
      ["State", stateLabel(row.state)],
      ["To you as a member of", row.via ?? ""],
      ["Ledger entry", String(info.ledger_index)],
    ]),
  );
  let pol;
  try {
    pol = await policy(info.policy?.id ?? null);
  } catch {
    pol = null;
  }
  renderJustification(info, pol);
  renderAck(info);
  const state = shareState(info);
  const reason = notOpenableReason(state);
  if (reason && !opened.has(id)) {
    say("");
    problem(reason);
    return;
  }
  if (!keys) {
    const keyring = await showKeyState();
    say("");
    if (!keyring) {
      problem("Receiving is not set up in this browser, so this share cannot be opened here. Set up receiving (or restore your key backup) on the Keys page.");
      return;
    }
    waitingToOpen = id;
    problem("Unlock your keys to open this share.");
    $("unlock-pass").focus();
    return;
  }
  if (!opened.has(id) && info.envelope_size > MAX_IN_BROWSER) {
    say("");
    problem(
      `This share is too large to open in the browser (${Math.round(info.envelope_size / 1048576)} MB). ` +
        "Ask your administrator about opening it with the SafeShare command line (safeshare fetch) and your key backup.",
    );
    return;
  }
  try {
    let payload = opened.get(id);
    if (!payload) {
      say("Fetching and decrypting the share in this browser…");
      const env = await ask("recipient-envelope", { id });
      payload = await decrypt(base64ToBytes(env.base64), keys);
      opened.set(id, payload);
    }
    if (currentShare !== id) return;
    await renderPayload(info, payload);
    say("The share is open.");
  } catch (e) {
    say("");
    problem(openProblem(e));
  }
}

async function acknowledge(ev) {
  ev.preventDefault();
  const id = currentShare;
  if (!ackChecks.submit()) return;
  await busy($("ack-go"), async () => {
    const note = $("ack-note").value.trim();
    const r = await ask("recipient-acknowledge", { id, note });
    $("ack-note").value = "";
    ackChecks.done();
    renderAck({ state: "active", acknowledged_at: r.acknowledged_at, acknowledgement: note });
    say("Recorded: the sender can see that you received and actioned this share.");
    loadInbox().catch(() => {});
  });
}

// -- start ------------------------------------------------------------------------------------------------------

function fromHash() {
  const id = shareIdFromHash(location.hash);
  if (id) openShare(id);
  else closeShare();
}

async function load() {
  await showKeyState();
  let status = null;
  try {
    status = await ask("status");
  } catch (e) {
    showAlert(e.message);
  }
  if (status && !status.signedIn) {
    showAlert("You are not signed in to SafeShare. Sign in on the options page with the sign-in your organisation gave you, then reload this page.");
  }
  await loadLabels();
  const roles = Array.isArray(status?.claims?.roles) ? status.claims.roles : [];
  if (roles.some((r) => ADVISER_ROLES.includes(r))) await loadAdvice().catch((e) => showAlert(e.message));
  if (roles.includes("practitioner") && !roles.includes("recipient")) {
    shareTabs.select("sent");
  } else {
    await busy(null, () => loadInbox());
    if (roles.includes("practitioner")) loadElsewhere(); // the Sent tab's reminder count, seen from Received too
  }
  $("main").setAttribute("aria-busy", "false");
  fromHash();
}

$("unlock-form").addEventListener("submit", unlockKeys);
$("lock").addEventListener("click", lockKeys);
$("ack-form").addEventListener("submit", acknowledge);
$("back").addEventListener("click", () => {
  history.pushState(null, "", location.pathname);
  closeShare();
  $("title").focus();
});
$("inbox-more").addEventListener("click", () => busy($("inbox-more"), () => loadInbox({ more: true })));
$("inbox-reload").addEventListener("click", () => busy($("inbox-reload"), async () => {
  await loadInbox();
  say("The inbox is up to date.");
}));
$("sent-more").addEventListener("click", () => busy($("sent-more"), () => loadSent({ more: true })));
addEventListener("hashchange", fromHash);
onKeyringChanged(() => showKeyState());
load().catch((e) => showAlert(e.message));
