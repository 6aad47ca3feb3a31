/**
 * The recipient's web page (`/open/`), for people who cannot install the extension. Three ways in:
 *   - a passphrase share: the passphrase is checked against the envelope's header here, then the envelope is
 *     fetched once and decrypted here;
 *   - a share held for an e-mail address: a one-time code proves the address, a key is made here, its public
 *     half enrolled, and the share (re-wrapped to that key by the gateway) opened from the inbox;
 *   - a returning recipient: sign in with the organisation's identity provider (authorization code + PKCE) or
 *     a pasted token, unlock the key kept in this browser, open shares from the inbox.
 * It reuses the extension's recipient code (lib/: byte-identical copies, checked by the tests). Everything
 * sensitive happens in this page: the gateway sees only the public key, and never the passphrase.
 */
import { decrypt, generateKey, KeyringError, lock, passphraseProblem, unlock } from "./lib/keyring.js";
import { parseMessage, safeHtmlDocument, textDocument } from "./lib/mail-view.js";
import { authorizationUrl, codeChallenge, issuerLabel, parseRedirect, parseTokenResponse, randomToken, signInIssuers, tokenRequestBody, checkTokenFor } from "./lib/oidc.js";
import { tokenClaims } from "./lib/gateway.js";
import {
  backupFileName,
  enrolmentState,
  formatTime,
  handlingNotes,
  inboxRow,
  justificationSections,
  notOpenableReason,
  policyLabels,
  recipientClient,
  SHARE_ID_RE,
  sha256Hex,
  shareState,
  stateLabel,
} from "./lib/recipient.js";
import * as age from "./vendor/age.js";
import { loadKeyring, saveKeyring } from "./keystore.js";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "safeshare-open-token";
const OIDC_KEY = "safeshare-open-oidc";
const PENDING_KEY = "safeshare-open-share";
/** Largest envelope opened in the page (decrypted in memory). */
const MAX_IN_BROWSER = 40 * 1024 * 1024;

let token = sessionStorage.getItem(TOKEN_KEY);
let claims = token ? tokenClaims(token) : null;
/** Unlocked keys: in this page's memory only. */
let keys = null;
let keyring = null;
let me = null;
let labels = policyLabels(null);
const policies = new Map();
const opened = new Map();
let blobUrls = [];
let backupUrl = null;
let currentShare = null;

// -- small DOM helpers ----------------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

function summaryList(pairs) {
  const dl = el("dl", { class: "govuk-summary-list" });
  for (const [label, value] of pairs) {
    if (value === null || value === undefined || value === "") continue;
    dl.append(
      el(
        "div",
        { class: "govuk-summary-list__row" },
        el("dt", { class: "govuk-summary-list__key", text: label }),
        el("dd", { class: "govuk-summary-list__value" }, value),
      ),
    );
  }
  return dl;
}

function say(message) {
  $("status").textContent = message ?? "";
}

/** The Design System's controls that have a red error state of their own (`govuk-input--error` and so on). */
const ERROR_CLASSES = ["govuk-input", "govuk-textarea", "govuk-file-upload"];

/** Clear every error: the summary and each field's message. */
function clearErrors() {
  $("error-summary").hidden = true;
  $("error-list").replaceChildren();
  for (const g of document.querySelectorAll(".govuk-form-group--error")) g.classList.remove("govuk-form-group--error");
  for (const m of document.querySelectorAll(".govuk-error-message")) {
    m.hidden = true;
    m.textContent = "";
  }
  for (const i of document.querySelectorAll("[aria-invalid]")) {
    i.removeAttribute("aria-invalid");
    for (const c of ERROR_CLASSES) i.classList.remove(`${c}--error`);
    const ids = (i.getAttribute("aria-describedby") ?? "").split(" ").filter((x) => x && !x.endsWith("-error"));
    if (ids.length) i.setAttribute("aria-describedby", ids.join(" "));
    else i.removeAttribute("aria-describedby");
  }
}

/**
 * The GOV.UK error pattern: a summary at the top (focused, so it is announced) linking to each field, and the
 * message beside the field. `errors` is [{field: input id or null, message}].
 */
function showErrors(errors) {
  clearErrors();
  const list = $("error-list");
  for (const { field, message } of errors) {
    const input = field ? $(field) : null;
    if (input) {
      const link = el("a", { href: `#${field}`, text: message });
      link.addEventListener("click", (ev) => {
        ev.preventDefault();
        input.focus();
      });
      list.append(el("li", {}, link));
      const msg = $(`${field}-error`);
      if (msg) {
        msg.replaceChildren(el("span", { class: "govuk-visually-hidden", text: "Error: " }), message);
        msg.hidden = false;
        const ids = new Set((input.getAttribute("aria-describedby") ?? "").split(" ").filter(Boolean));
        ids.add(`${field}-error`);
        input.setAttribute("aria-describedby", [...ids].join(" "));
      }
      $(`${field}-group`)?.classList.add("govuk-form-group--error");
      for (const c of ERROR_CLASSES) if (input.classList.contains(c)) input.classList.add(`${c}--error`);
      input.setAttribute("aria-invalid", "true");
    } else {
      list.append(el("li", { text: message }));
    }
  }
  $("error-summary").hidden = errors.length === 0;
  if (errors.length) $("error-summary").focus();
}

class FieldError extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

/** Run an action from a form or button: errors go to the summary; the button is disabled meanwhile. */
async function busy(button, work) {
  clearErrors();
  if (button) button.disabled = true;
  try {
    return await work();
  } catch (e) {
    say("");
    showErrors([{ field: e?.field ?? null, message: e?.message ?? String(e) }]);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

/** Whether someone is already typing in a field of `view`: a view that finishes loading leaves their focus alone. */
function typingIn(view) {
  const active = document.activeElement;
  return !!active && view.contains(active) && active.matches("input, select, textarea");
}

function showView(name) {
  for (const v of ["start", "home", "share"]) $(`view-${v}`).hidden = v !== name;
}

// -- the gateway -------------------------------------------------------------------------------------------------

const client = () => recipientClient({ baseUrl: location.origin, token });

/** Words for this page (the extension's speak of its options page). */
function pageError(e) {
  if (e?.code === "token_expired" || e?.code === "token_invalid" || e?.code === "not_signed_in" || e?.code === "token_missing") {
    return new Error("Your sign-in has ended or was not accepted. Sign in again.");
  }
  return e;
}

async function publicPost(path, body) {
  let resp;
  try {
    resp = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new Error("The SafeShare gateway could not be reached. Check your connection and try again.");
  }
  let data = null;
  try {
    data = await resp.json();
  } catch {
    data = null;
  }
  return { status: resp.status, body: data, headers: resp.headers };
}

// -- signing in ----------------------------------------------------------------------------------------------------

function setToken(t) {
  token = t;
  claims = t ? tokenClaims(t) : null;
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

async function signInWithToken(ev) {
  ev.preventDefault();
  await busy($("token-go"), async () => {
    const t = $("token").value.trim();
    if (!t) throw new FieldError("token", "Paste your sign-in token");
    if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(t) || !tokenClaims(t)) {
      throw new FieldError("token", "That is not a sign-in token: paste the whole token, three parts separated by dots");
    }
    setToken(t);
    try {
      me = await client().me();
    } catch (e) {
      setToken(null);
      throw new FieldError("token", e?.code === "forbidden" ? "This token is not a recipient's sign-in" : pageError(e).message);
    }
    $("token").value = "";
    await enterHome();
  });
}

async function startOidc(issuer) {
  const verifier = randomToken();
  const state = randomToken();
  sessionStorage.setItem(OIDC_KEY, JSON.stringify({ verifier, state, issuer: issuer.issuer }));
  location.assign(authorizationUrl(issuer, { redirectUri: redirectUri(), state, challenge: await codeChallenge(verifier) }));
}

const redirectUri = () => `${location.origin}/open/`;

/** Back from the identity provider with ?code=…&state=…: exchange the code (PKCE) for the access token. */
async function finishOidc(config) {
  const saved = JSON.parse(sessionStorage.getItem(OIDC_KEY) ?? "null");
  sessionStorage.removeItem(OIDC_KEY);
  const here = location.href;
  history.replaceState(null, "", `/open/${location.hash}`);
  if (!saved) throw new Error("This sign-in was not started on this page. Sign in again.");
  const issuer = signInIssuers(config).find((o) => o.issuer === saved.issuer);
  if (!issuer) throw new Error("That sign-in service is no longer offered by the gateway. Sign in again.");
  const code = parseRedirect(here, { redirectUri: redirectUri(), state: saved.state });
  let resp;
  try {
    resp = await fetch(issuer.token_endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: tokenRequestBody({ code, redirectUri: redirectUri(), clientId: issuer.client_id, verifier: saved.verifier }),
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new Error("Your organisation's sign-in service could not be reached to finish the sign-in. Try again.");
  }
  let body = null;
  try {
    body = await resp.json();
  } catch {
    body = null;
  }
  const t = parseTokenResponse(resp.status, body);
  checkTokenFor(issuer, tokenClaims(t));
  setToken(t);
}

function signOut() {
  setToken(null);
  keys = null;
  keyring = null;
  me = null;
  opened.clear();
  releaseBlobs();
  history.pushState(null, "", "#/"); // no hashchange: route() once, here
  route();
  say("You are signed out. Your key stays locked in this browser.");
}

// -- passphrase shares ---------------------------------------------------------------------------------------------

/** Whether the gateway holds a passphrase envelope for this share (its header is public, not counted). */
async function passphraseHeader(id) {
  try {
    const resp = await fetch(`/api/v1/open/${encodeURIComponent(id)}/header`, { credentials: "omit", cache: "no-store" });
    if (!resp.ok) return null;
    return new Uint8Array(await resp.arrayBuffer());
  } catch {
    return null;
  }
}

async function openWithPassphrase(ev, id, header) {
  ev.preventDefault();
  await busy($("pass-go"), async () => {
    const passphrase = $("pass").value;
    if (!passphrase) throw new FieldError("pass", "Enter the passphrase the sender gave you");
    say("Checking the passphrase in this browser…");
    const d = new age.Decrypter();
    d.addPassphrase(passphrase);
    let fileKey;
    try {
      fileKey = await d.decryptHeader(header);
    } catch {
      throw new FieldError("pass", "That passphrase does not open this share. Check it with the sender and try again");
    }
    say("Fetching and decrypting the share in this browser…");
    const resp = await fetch(`/api/v1/open/${encodeURIComponent(id)}/envelope`, { credentials: "omit", cache: "no-store" });
    if (!resp.ok) {
      let body = null;
      try {
        body = await resp.json();
      } catch {
        body = null;
      }
      throw new Error(resp.status === 404 || resp.status === 410
        ? "This share is no longer available: it has expired, been revoked, or been downloaded as often as the sender allowed."
        : `The gateway refused to send the share (error ${resp.status}).${body?.message ? ` It said: ${body.message}` : ""}`);
    }
    const bytes = new Uint8Array(await resp.arrayBuffer());
    const recorded = resp.headers.get("X-SafeShare-Envelope-SHA256");
    if (recorded && recorded.toLowerCase() !== (await sha256Hex(bytes))) {
      throw new Error("The encrypted copy that arrived is not the one the gateway recorded in its ledger, so it is not opened. Try again; if it happens again, tell the sender.");
    }
    const full = new age.Decrypter();
    // The file key already unwrapped from the header above: the full decryption checks the header MAC with it
    // again, so scrypt is not run twice.
    full.addIdentity({ unwrapFileKey: async () => fileKey });
    let payload;
    try {
      payload = await full.decrypt(bytes);
    } catch {
      throw new Error("This share's encrypted file is damaged, so it cannot be opened. Ask the sender to share it again.");
    }
    $("pass").value = "";
    const type = resp.headers.get("X-SafeShare-Payload-Content-Type") ?? sniffType(payload);
    showShareShell(id);
    $("share-facts").append(summaryList([["Reference", id], ["Opened with", "the passphrase the sender gave you"]]));
    $("why").hidden = true;
    await renderPayload({ id, payload_content_type: type }, payload);
    say("The share is open. It was downloaded once and decrypted in this browser; nothing of it is kept here.");
  });
}

/** A decrypted payload without a recorded type: an e-mail message if it starts like one, else a file. */
function sniffType(bytes) {
  const head = new TextDecoder().decode(bytes.subarray(0, 2048));
  if (/^(?:[A-Za-z-]+:[^\r\n]*\r?\n)+/.test(head) && /^(?:MIME-Version|Content-Type|From|Subject):/im.test(head)) return "message/rfc822";
  return "application/octet-stream";
}

// -- held shares: proving the address with a code ------------------------------------------------------------------

const EMAIL_RE = /^[^\s@]{1,64}@[^\s@]{1,253}\.[^\s@]{2,}$/;

async function sendCode(ev, id) {
  ev?.preventDefault();
  await busy($("claim-send"), async () => {
    const email = $("claim-email").value.trim().toLowerCase();
    if (!email) throw new FieldError("claim-email", "Enter the e-mail address this was shared with");
    if (email.length > 254 || !EMAIL_RE.test(email)) throw new FieldError("claim-email", "Enter an e-mail address in the right format, like name@example.org");
    const r = await publicPost("/api/v1/claims/start", { share_id: id, email });
    if (r.status === 429) {
      const wait = Number(r.headers.get("Retry-After") ?? "0");
      throw new FieldError("claim-email", `Too many codes have been asked for. Try again in ${wait > 60 ? `${Math.ceil(wait / 60)} minutes` : "a minute"}`);
    }
    if (r.status === 410) throw new Error("This share can no longer be claimed with a code: it has been claimed already, has expired, or was withdrawn. If it was sent to you, sign in to open it.");
    if (r.status !== 202) throw new Error(`The gateway could not send a code (error ${r.status}).${r.body?.message ? ` It said: ${r.body.message}` : ""}`);
    $("code-form").hidden = false;
    $("claim-form").hidden = true;
    say(`If ${email} can receive this share, a code is on its way to it.`);
    $("claim-code").focus();
  });
}

async function verifyCode(ev, id) {
  ev.preventDefault();
  await busy($("claim-verify"), async () => {
    const code = $("claim-code").value.replace(/\s+/g, "");
    if (!code) throw new FieldError("claim-code", "Enter the code from the e-mail");
    const email = $("claim-email").value.trim().toLowerCase();
    const r = await publicPost("/api/v1/claims/verify", { share_id: id, email, code });
    if (r.status === 200 && typeof r.body?.token === "string") {
      setToken(r.body.token);
      $("claim-code").value = "";
      sessionStorage.setItem(PENDING_KEY, id);
      me = await client().me().catch(() => null);
      await enterHome();
      say("Your address is confirmed. Now make your key in this browser.");
      return;
    }
    if (r.status === 423 || r.body?.error === "claim_locked") {
      $("claim-verify").disabled = true;
      throw new FieldError("claim-code", "Too many wrong codes: this code no longer works. Ask for a new code");
    }
    if (r.status === 410) throw new Error("This share can no longer be claimed with a code: it has been claimed already, has expired, or was withdrawn. If it was sent to you, sign in to open it.");
    if (r.body?.error === "code_invalid") {
      const left = r.body.attempts_left;
      throw new FieldError(
        "claim-code",
        `That code is not right, has been used, or has expired${typeof left === "number" ? `. ${left} ${left === 1 ? "try" : "tries"} left` : ""}`,
      );
    }
    if (r.status === 429) throw new FieldError("claim-code", "Too many attempts. Wait a few minutes, then ask for a new code");
    throw new Error(`The gateway could not check the code (error ${r.status}).${r.body?.message ? ` It said: ${r.body.message}` : ""}`);
  });
}

// -- this browser's key ----------------------------------------------------------------------------------------------

function owner() {
  return claims?.sub ?? "unknown";
}

function showKeyState() {
  const local = (keyring?.keys ?? []).map((k) => k.recipient);
  const state = keyring ? enrolmentState(me, local) : { state: "none", message: "There is no key for you in this browser yet. Create one, or restore your key backup." };
  const box = $("key-state");
  box.dataset.state = keys ? state.state : keyring ? "locked" : "none";
  box.textContent = keys ? state.message : keyring ? "Your key in this browser is locked. Unlock it to open shares." : state.message;
  $("create-form").hidden = !!keyring;
  $("restore-details").hidden = !!keys;
  $("unlock-form").hidden = !keyring || !!keys;
  $("key-actions").hidden = !keys;
  $("check-again").hidden = !keys || state.state === "active";
  if (keyring) {
    if (backupUrl) URL.revokeObjectURL(backupUrl);
    backupUrl = URL.createObjectURL(new Blob([keyring.armored], { type: "application/octet-stream" }));
    $("backup-link").href = backupUrl;
    $("backup-link").download = backupFileName(owner());
  }
  return state.state;
}

async function refreshMe() {
  try {
    me = await client().me();
  } catch (e) {
    throw pageError(e);
  }
}

async function createKey(ev) {
  ev.preventDefault();
  await busy($("create-go"), async () => {
    const p1 = $("new-pass").value;
    const problem = passphraseProblem(p1);
    if (problem) throw new FieldError("new-pass", problem.replace(/\.$/, ""));
    if ($("new-pass2").value !== p1) throw new FieldError("new-pass2", "The two passphrases are different: type the same passphrase twice");
    say("Making your key and locking it with your passphrase…");
    const key = await generateKey();
    const armored = await lock([key], p1);
    keyring = await saveKeyring(owner(), armored, [key]);
    keys = [key];
    $("new-pass").value = "";
    $("new-pass2").value = "";
    say("Sending the public half of your key to the gateway…");
    await client().enrol(key.recipient).catch((e) => {
      throw pageError(e);
    });
    await refreshMe();
    const state = showKeyState();
    say(state === "active"
      ? "Your key is made and active. Download a backup of it now, and keep it with your passphrase."
      : "Your key is made and waiting for approval. Download a backup of it now, and keep it with your passphrase.");
    await afterKeyChange();
  });
}

async function restoreKey(ev) {
  ev.preventDefault();
  await busy($("restore-go"), async () => {
    const file = $("restore-file").files?.[0];
    if (!file) throw new FieldError("restore-file", "Choose your key backup file");
    if (file.size > 1024 * 1024) throw new FieldError("restore-file", "That file is too large to be a key backup");
    const pass = $("restore-pass").value;
    if (!pass) throw new FieldError("restore-pass", "Enter the passphrase of the backup");
    const bytes = new Uint8Array(await file.arrayBuffer());
    say("Opening the backup…");
    let restored;
    try {
      restored = await unlock(bytes, pass);
    } catch (e) {
      if (e instanceof KeyringError && e.code === "wrong_passphrase") throw new FieldError("restore-pass", "That passphrase does not open this backup");
      if (e instanceof KeyringError) throw new FieldError("restore-file", e.message.replace(/\.$/, ""));
      throw e;
    }
    const text = new TextDecoder().decode(bytes);
    const armored = text.startsWith("-----BEGIN AGE ENCRYPTED FILE-----") ? text : age.armor.encode(bytes);
    keyring = await saveKeyring(owner(), armored, restored);
    keys = restored;
    $("restore-pass").value = "";
    await refreshMe();
    let state = showKeyState();
    if (state === "not_enrolled" || state === "elsewhere") {
      await client().enrol(restored.at(-1).recipient).catch((e) => {
        throw pageError(e);
      });
      await refreshMe();
      state = showKeyState();
    }
    say(`Your key is restored in this browser (${restored.length === 1 ? "1 key" : `${restored.length} keys`}).`);
    await afterKeyChange();
  });
}

async function unlockKey(ev) {
  ev.preventDefault();
  await busy($("unlock-go"), async () => {
    const pass = $("unlock-pass").value;
    if (!pass) throw new FieldError("unlock-pass", "Enter your passphrase");
    say("Unlocking your key…");
    try {
      keys = await unlock(keyring.armored, pass);
    } catch (e) {
      if (e instanceof KeyringError && e.code === "wrong_passphrase") throw new FieldError("unlock-pass", "That passphrase does not unlock your key");
      throw e;
    }
    $("unlock-pass").value = "";
    showKeyState();
    say("Your key is unlocked.");
    await afterKeyChange();
  });
}

function lockKey() {
  keys = null;
  opened.clear();
  showKeyState();
  say("Your key is locked.");
  $("unlock-pass").focus();
}

async function checkAgain() {
  await busy($("check-again"), async () => {
    await refreshMe();
    const state = showKeyState();
    say(state === "active" ? "Your key is active." : "Your key is still waiting for approval.");
    await afterKeyChange();
  });
}

/** After the key changed or was unlocked: refresh the inbox, and open the share the link was for, if any. */
async function afterKeyChange() {
  await loadInbox();
  const pending = sessionStorage.getItem(PENDING_KEY);
  if (keys && pending && document.querySelector(`tr[data-share="${pending}"]`)) {
    sessionStorage.removeItem(PENDING_KEY);
    location.hash = `#/share/${pending}`;
  }
}

// -- the inbox ---------------------------------------------------------------------------------------------------------

async function loadLabels() {
  try {
    labels = policyLabels(await policy(null));
  } catch {
    // Codes are shown readably without the policy.
  }
}

async function policy(id) {
  const key = id ?? "";
  if (!policies.has(key)) policies.set(key, await client().policy(id));
  return policies.get(key);
}

async function loadInbox() {
  let page;
  try {
    page = await client().inbox();
  } catch (e) {
    throw pageError(e);
  }
  const rows = $("inbox-rows");
  rows.replaceChildren();
  for (const s of page.shares) {
    const r = inboxRow(s, { labels });
    const open = el("a", { href: `#/share/${r.id}`, class: "govuk-link", text: "Open" }, el("span", { class: "govuk-visually-hidden", text: ` the share from ${r.from}, received ${r.received}` }));
    rows.append(
      el(
        "tr",
        { class: "govuk-table__row", dataset: { share: r.id, state: r.state } },
        el("td", { class: "govuk-table__cell", text: `${r.from} (${r.organisation})` }),
        el("td", { class: "govuk-table__cell", text: r.purpose }),
        el("td", { class: "govuk-table__cell", text: r.received }),
        el("td", { class: "govuk-table__cell", text: r.expires }),
        el("td", { class: "govuk-table__cell", text: r.via ? `${r.stateLabel} (to team ${r.via})` : r.stateLabel }),
        el("td", { class: "govuk-table__cell" }, r.openable ? open : ""),
      ),
    );
  }
  $("inbox-table").hidden = rows.children.length === 0;
  $("inbox-empty").hidden = rows.children.length > 0;
}

async function enterHome() {
  if (!me) {
    try {
      await refreshMe();
    } catch (e) {
      // Not a recipient's sign-in, or no longer valid: back to the start, signed out, saying why.
      setToken(null);
      await showStart(parseHash().id);
      throw e?.code === "forbidden" ? new Error("That sign-in is not a recipient's sign-in: it cannot open shares. Sign in with the sign-in your organisation gave you as a recipient.") : e;
    }
  }
  const home = $("view-home");
  showView("home");
  home.setAttribute("aria-busy", "true");
  const name = claims?.name ? `${claims.name} (${claims.sub})` : claims?.sub ?? "";
  $("who").textContent = `Signed in as ${name}${claims?.email ? `, ${claims.email}` : ""}.`;
  try {
    keyring = await loadKeyring(owner());
    showKeyState();
    await loadLabels();
    await loadInbox();
  } finally {
    home.setAttribute("aria-busy", "false");
  }
  // The view is shown before the inbox arrives: someone quick may already be typing in it. Focus moves only if
  // they have not, or their passphrase would land in the heading and the form would be sent half-typed.
  if (typingIn(home)) return;
  const pending = sessionStorage.getItem(PENDING_KEY);
  if (pending && !keyring) $("new-pass").focus();
  else if (keyring && !keys) $("unlock-pass").focus();
  else $("home-h").focus();
}

// -- one share ---------------------------------------------------------------------------------------------------------

function releaseBlobs() {
  for (const u of blobUrls) URL.revokeObjectURL(u);
  blobUrls = [];
}

function showShareShell(id) {
  releaseBlobs();
  currentShare = id;
  showView("share");
  $("back").hidden = !token;
  $("share-h").textContent = `Share ${id}`;
  $("share-facts").replaceChildren();
  $("share-problem").hidden = true;
  $("message").hidden = true;
  delete $("message-body").dataset.loaded;
  $("handling").replaceChildren();
  $("justification").replaceChildren();
  $("why").hidden = false;
  $("ack").hidden = true;
  $("share-h").focus();
}

function problem(message) {
  $("share-problem").textContent = message;
  $("share-problem").hidden = !message;
}

/** Attachments are only ever downloaded: the blob is application/octet-stream, so nothing renders here. */
function attachmentLink(name, type, bytes) {
  const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
  blobUrls.push(url);
  return el(
    "li",
    {},
    el("a", { href: url, download: name, class: "govuk-link", text: `Download ${name}` }),
    el("span", { class: "govuk-hint", text: ` (${type || "file"}, ${bytes.length.toLocaleString("en-GB")} bytes)` }),
  );
}

async function renderPayload(info, payload) {
  const frame = $("message-body");
  const list = $("attachments");
  list.replaceChildren();
  $("message-facts").replaceChildren();
  const type = (info.payload_content_type ?? "").toLowerCase();
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
  $("attachments-hint").hidden = list.children.length === 0;
  $("message").hidden = false;
}

function renderJustification(info, pol) {
  const handling = $("handling");
  handling.replaceChildren();
  const notes = handlingNotes(info.justification, pol, info.handling);
  if (notes.length) {
    handling.append(el("h3", { class: "govuk-heading-s", text: "Handling" }), el("ul", { class: "govuk-list govuk-list--bullet" }, ...notes.map((n) => el("li", { text: n }))));
  }
  const box = $("justification");
  box.replaceChildren();
  const sections = justificationSections(info.justification, pol);
  if (!sections.length) {
    box.append(el("p", { class: "govuk-body", text: "The sender's justification could not be loaded." }));
    return;
  }
  for (const s of sections) box.append(el("h3", { class: "govuk-heading-s", text: s.title }), summaryList(s.rows.map((r) => [r.label, r.value])));
}

function renderAck(info) {
  const done = $("ack-done");
  if (info.acknowledged_at) {
    $("ack-done-text").textContent = `You marked this received and actioned on ${formatTime(info.acknowledged_at)}${info.acknowledgement ? `: “${info.acknowledgement}”` : "."} The sender can see this.`;
    done.hidden = false;
    $("ack-go").textContent = "Update the note";
  } else {
    done.hidden = true;
    $("ack-go").textContent = "Mark received and actioned";
  }
  $("ack").hidden = shareState(info) === "revoked";
}

async function openShare(id) {
  clearErrors();
  showShareShell(id);
  say("Loading the share…");
  let info;
  try {
    info = await client().share(id);
  } catch (e) {
    say("");
    problem(pageError(e).message);
    return;
  }
  if (currentShare !== id) return;
  const row = inboxRow(info, { labels });
  $("share-facts").append(
    summaryList([
      ["From", `${row.from} (${row.organisation})`],
      ["Purpose", row.purpose],
      ["Received", row.received],
      ["Available until", row.expires],
      ["State", stateLabel(row.state)],
      ["To you as a member of", row.via ?? ""],
      ["Ledger entry", String(info.ledger_index ?? "")],
    ]),
  );
  let pol = null;
  try {
    pol = await policy(info.policy?.id ?? null);
  } catch {
    pol = null;
  }
  renderJustification(info, pol);
  renderAck(info);
  const reason = notOpenableReason(shareState(info));
  if (reason && !opened.has(id)) {
    say("");
    problem(reason);
    return;
  }
  if (!keys) {
    say("");
    sessionStorage.setItem(PENDING_KEY, id);
    problem("Unlock your key (or set it up) on the previous page to open this share.");
    return;
  }
  if (!opened.has(id) && info.envelope_size > MAX_IN_BROWSER) {
    say("");
    problem(`This share is too large to open in the browser (${Math.round(info.envelope_size / 1048576)} MB). Ask your administrator about the SafeShare command line and your key backup.`);
    return;
  }
  try {
    let payload = opened.get(id);
    if (!payload) {
      say("Fetching and decrypting the share in this browser…");
      const env = await client().envelope(id);
      payload = await decrypt(env.bytes, keys);
      opened.set(id, payload);
    }
    if (currentShare !== id) return;
    await renderPayload(info, payload);
    say("The share is open.");
  } catch (e) {
    say("");
    if (e instanceof KeyringError && e.code === "no_matching_key") {
      problem("This share was encrypted to a key this browser does not hold. Restore the key backup that holds it, then try again.");
    } else {
      problem(pageError(e).message);
    }
  }
}

async function acknowledge(ev) {
  ev.preventDefault();
  const id = currentShare;
  await busy($("ack-go"), async () => {
    const note = $("ack-note").value.trim();
    if (!note) throw new FieldError("ack-note", "Write a short note for the sender about what you have done or will do");
    const r = await client().acknowledge(id, note).catch((e) => {
      throw pageError(e);
    });
    $("ack-note").value = "";
    renderAck({ state: "active", acknowledged_at: r.acknowledged_at, acknowledgement: note });
    say("Recorded: the sender can see that you received and actioned this share.");
  });
}

// -- routing -----------------------------------------------------------------------------------------------------------

/** `#/s/ID` (the notification link's hand-off), `#/share/ID` (signed in), `#/` (home or start). */
function parseHash() {
  const m = /^#\/(s|share)\/([^/?#]+)$/.exec(location.hash);
  if (m && SHARE_ID_RE.test(m[2])) return { kind: m[1], id: m[2] };
  return { kind: "home", id: null };
}

let authConfig = null;

async function showStart(id) {
  showView("start");
  $("start-ref").hidden = !id;
  $("start-ref-id").textContent = id ?? "";
  // Neither way in is shown until it works: which one applies is known only once the share's header is read, and
  // a form shown before its handler would be sent by the browser itself (the address in the page's URL).
  $("pass-section").hidden = true;
  $("claim-section").hidden = true;
  $("code-form").hidden = true;
  $("claim-form").hidden = false;
  $("signin-intro").textContent = id
    ? "Or, if your organisation gave you a SafeShare sign-in, use it to see every share sent to you."
    : "If your organisation gave you a SafeShare sign-in, use it to see every share sent to you.";
  const list = $("oidc-list");
  list.replaceChildren();
  for (const issuer of signInIssuers(authConfig)) {
    const b = el("button", { type: "button", class: "govuk-button", text: `Sign in with ${issuerLabel(issuer.issuer)}` });
    b.addEventListener("click", () => startOidc(issuer));
    list.append(el("li", {}, b));
  }
  const start = $("view-start");
  if (id) {
    sessionStorage.setItem(PENDING_KEY, id);
    start.setAttribute("aria-busy", "true");
    const header = await passphraseHeader(id); // null when there is none or it cannot be read: never throws
    start.setAttribute("aria-busy", "false");
    if (header) {
      $("pass-form").onsubmit = (ev) => openWithPassphrase(ev, id, header);
      $("pass-section").hidden = false;
    } else {
      $("claim-form").onsubmit = (ev) => sendCode(ev, id);
      $("code-form").onsubmit = (ev) => verifyCode(ev, id);
      $("claim-again").onclick = () => {
        $("code-form").hidden = true;
        $("claim-form").hidden = false;
        $("claim-verify").disabled = false;
        $("claim-email").focus();
      };
      $("claim-section").hidden = false;
    }
  }
  if (!typingIn(start)) $("start-h").focus();
}

async function route() {
  clearErrors();
  const { kind, id } = parseHash();
  if (!token) {
    await showStart(kind === "home" ? null : id);
    return;
  }
  if (kind === "s") sessionStorage.setItem(PENDING_KEY, id);
  if (kind === "share") {
    if (!me) {
      await enterHome();
    }
    await openShare(id);
    return;
  }
  if (kind === "s" && keys) {
    location.hash = `#/share/${id}`;
    return;
  }
  await enterHome();
}

async function load() {
  try {
    const r = await fetch("/api/v1/auth/config", { credentials: "omit", cache: "no-store" });
    authConfig = r.ok ? await r.json() : null;
  } catch {
    authConfig = null;
  }
  const q = new URLSearchParams(location.search);
  if (q.has("code") || q.has("error")) {
    try {
      await finishOidc(authConfig);
    } catch (e) {
      showErrors([{ field: null, message: e?.message ?? String(e) }]);
    }
  }
  await route().catch((e) => showErrors([{ field: null, message: pageError(e)?.message ?? String(e) }]));
  $("main").setAttribute("aria-busy", "false");
}

$("token-form").addEventListener("submit", signInWithToken);
$("create-form").addEventListener("submit", createKey);
$("restore-form").addEventListener("submit", restoreKey);
$("unlock-form").addEventListener("submit", unlockKey);
$("lock").addEventListener("click", lockKey);
$("check-again").addEventListener("click", checkAgain);
$("ack-form").addEventListener("submit", acknowledge);
$("sign-out").addEventListener("click", signOut);
$("inbox-reload").addEventListener("click", () => busy($("inbox-reload"), async () => {
  await loadInbox();
  say("The list is up to date.");
}));
$("skip").addEventListener("click", (ev) => {
  ev.preventDefault();
  $("main").focus();
});
addEventListener("hashchange", () => {
  if (location.hash.startsWith("#/") || location.hash === "") route().catch((e) => showErrors([{ field: null, message: e.message }]));
});
load();
